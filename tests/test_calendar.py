"""The maintenance calendar: blackouts, freezes, the planned window, across DST and years."""

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from maintenance.calendar import MaintenanceCalendar, local_instant, nth_weekday
from maintenance.policy import load_policy
from maintenance.policy.model import Blackout, Freeze, PlannedWindow

NY = ZoneInfo("America/New_York")


def ny(*args) -> datetime:
    return datetime(*args, tzinfo=NY)


@pytest.fixture(scope="module")
def cal() -> MaintenanceCalendar:
    return MaintenanceCalendar.from_policy(load_policy())


@pytest.mark.parametrize(("instant", "expected"), [
    # school start, both days inclusive: from 00:00 on 08-15 to 00:00 on 09-16
    (ny(2026, 8, 14, 23, 59, 59), []),
    (ny(2026, 8, 15, 0, 0), ["school_start"]),
    (ny(2026, 9, 15, 23, 59, 59), ["school_start"]),
    (ny(2026, 9, 16, 0, 0), []),
    # testing periods March-April and May-June meet at the month boundary
    (ny(2027, 2, 28, 23, 59), []),
    (ny(2027, 3, 1, 0, 0), ["testing_spring"]),
    (ny(2027, 4, 30, 23, 0), ["testing_spring"]),
    (ny(2027, 5, 1, 0, 0), ["testing_early_summer"]),
    (ny(2027, 6, 30, 23, 59), ["testing_early_summer"]),
    (ny(2027, 7, 1, 0, 0), []),
    # holidays wrap the year end
    (ny(2026, 12, 19, 23, 59), []),
    (ny(2026, 12, 20, 0, 0), ["holidays"]),
    (ny(2026, 12, 31, 23, 59), ["holidays"]),
    (ny(2027, 1, 1, 0, 0), ["holidays"]),
    (ny(2027, 1, 5, 23, 59), ["holidays"]),
    (ny(2027, 1, 6, 0, 0), []),
    # an ordinary day
    (ny(2026, 11, 27, 12, 0), []),
])
def test_blackouts_at(cal, instant, expected):
    assert [p.name for p in cal.blackouts_at(instant)] == expected


def test_blackout_boundary_is_local_midnight_in_both_offsets(cal):
    # 03-01 begins in EST (UTC-5); the spring blackout ends 05-01 00:00 EDT (UTC-4).
    spring = cal.blackouts_at(ny(2027, 3, 15))[0]
    assert spring.start == datetime(2027, 3, 1, 5, 0, tzinfo=UTC)
    assert spring.end == datetime(2027, 5, 1, 4, 0, tzinfo=UTC)


@pytest.mark.parametrize(("year", "month", "expected_day"), [
    (2026, 11, date(2026, 11, 1)),   # the fall-back Sunday itself
    (2026, 12, date(2026, 12, 6)),
    (2027, 3, date(2027, 3, 7)),     # the Sunday before spring-forward (03-14)
    (2028, 2, date(2028, 2, 6)),     # leap year
])
def test_first_sunday_windows(year, month, expected_day):
    window = MaintenanceCalendar(NY, PlannedWindow(placement="fixed"), []).window_in(year, month)
    assert window.start.astimezone(NY).date() == expected_day
    assert window.start.astimezone(NY).time() == time(2, 0)
    assert window.end.astimezone(NY).time() == time(6, 0)


def test_window_on_fall_back_day_is_four_real_hours(cal):
    # 2026-11-01: clocks fall back at 02:00 EDT to 01:00 EST; 02:00 happens once, in EST.
    window = cal.window_in(2026, 11)
    assert window.start == datetime(2026, 11, 1, 7, 0, tzinfo=UTC)
    assert window.end == datetime(2026, 11, 1, 11, 0, tzinfo=UTC)


def test_window_on_spring_forward_day_starts_when_clocks_jump():
    # Second Sunday of March 2027 is 03-14, when 02:00-03:00 does not exist.
    calendar = MaintenanceCalendar(NY, PlannedWindow(week_of_month=2), [])
    window = calendar.window_in(2027, 3)
    assert window.start == datetime(2027, 3, 14, 7, 0, tzinfo=UTC)  # 03:00 EDT
    assert window.start.astimezone(NY).strftime("%H:%M %Z") == "03:00 EDT"
    assert (window.end - window.start).total_seconds() == 3 * 3600


@pytest.mark.parametrize(("wall", "expected_utc"), [
    ((2027, 3, 14, 2, 0), datetime(2027, 3, 14, 7, 0, tzinfo=UTC)),    # gap start
    ((2027, 3, 14, 2, 30), datetime(2027, 3, 14, 7, 0, tzinfo=UTC)),   # inside the gap
    ((2027, 3, 14, 3, 0), datetime(2027, 3, 14, 7, 0, tzinfo=UTC)),    # first EDT minute
    ((2027, 3, 14, 1, 59), datetime(2027, 3, 14, 6, 59, tzinfo=UTC)),  # last EST minute
    ((2026, 11, 1, 1, 30), datetime(2026, 11, 1, 5, 30, tzinfo=UTC)),  # twice: the first (EDT)
    ((2026, 11, 1, 2, 0), datetime(2026, 11, 1, 7, 0, tzinfo=UTC)),    # once, EST
])
def test_local_instant_dst(wall, expected_utc):
    y, m, d, hh, mm = wall
    assert local_instant(date(y, m, d), time(hh, mm), NY) == expected_utc


@pytest.mark.parametrize(("instant", "inside"), [
    (ny(2026, 12, 6, 1, 59, 59), False),
    (ny(2026, 12, 6, 2, 0), True),
    (ny(2026, 12, 6, 5, 59, 59), True),
    (ny(2026, 12, 6, 6, 0), False),
    (ny(2026, 12, 13, 3, 0), False),  # second Sunday: not the window
])
def test_window_at_boundaries(cal, instant, inside):
    assert (cal.window_at(instant) is not None) is inside


def test_next_window_and_next_blackout(cal):
    now = ny(2026, 11, 27, 12, 0)
    assert cal.next_window(now).start == ny(2026, 12, 6, 2, 0)
    blackout = cal.next_blackout(now)
    assert (blackout.name, blackout.start, blackout.end) == ("holidays", ny(2026, 12, 20), ny(2027, 1, 6))
    # inside a blackout, "next" is the current one; after a window, the next month's
    assert cal.next_blackout(ny(2027, 1, 2)).name == "holidays"
    # January's first Sunday is in the holidays: its window moves to the second
    assert cal.next_window(ny(2026, 12, 6, 6, 0)).start == ny(2027, 1, 10, 2, 0)
    # year wrap: from late December the next window is January's
    assert cal.next_window(ny(2026, 12, 31)).start.astimezone(NY).date() == date(2027, 1, 10)


def test_windows_are_placed_around_the_procedures_blackouts(cal):
    """The procedures' own blackouts: January's first Sunday is in the holidays, September's
    first two in school start, and March to June are testing periods from end to end."""
    days = {m: cal.window_in(2027, m) for m in range(1, 13)}
    placed = {m: w.start.astimezone(NY).date().isoformat() for m, w in days.items() if w}
    assert placed == {1: "2027-01-10", 2: "2027-02-07", 7: "2027-07-04", 8: "2027-08-01", 9: "2027-09-19",
                      10: "2027-10-03", 11: "2027-11-07", 12: "2027-12-05"}
    assert cal.months_without_window(ny(2027, 2, 10), 6) == ["2027-03", "2027-04", "2027-05", "2027-06"]
    assert cal.next_window(ny(2027, 2, 7, 6, 0)).start == ny(2027, 7, 4, 2, 0)  # through the spring
    assert [cal.monthly_run_day(2027, m) for m in (3, 9)] == [date(2027, 3, 7), date(2027, 9, 19)]
    assert cal.last_window(ny(2027, 5, 1)).start == ny(2027, 2, 7, 2, 0)
    assert cal.window_at(ny(2027, 1, 3, 3, 0)) is None and cal.window_at(ny(2027, 1, 10, 3, 0)) is not None


def test_a_fixed_window_stays_and_explicit_dates_win():
    blackouts = load_policy().blackouts
    fixed = MaintenanceCalendar(NY, PlannedWindow(placement="fixed"), blackouts)
    assert fixed.window_in(2027, 1).start == ny(2027, 1, 3, 2, 0)  # in the holidays: the gate holds its work
    assert fixed.window_in(2027, 4).start == ny(2027, 4, 4, 2, 0)
    explicit = MaintenanceCalendar(NY, PlannedWindow(dates=[date(2027, 4, 11)]), [])
    assert explicit.window_in(2027, 4).start == ny(2027, 4, 11, 2, 0)
    assert explicit.window_in(2027, 5).start == ny(2027, 5, 2, 2, 0)
    assert PlannedWindow(dates=[date(2027, 4, 11)]).cron == "0 2 * * *"
    assert PlannedWindow().cron == "0 2 * * 0" and PlannedWindow(placement="fixed").cron == "0 2 * * 0#1"
    # Every Sunday of every month blacked out: no window in two years, said, not looped forever.
    everything = MaintenanceCalendar(NY, PlannedWindow(), [Blackout(name="all", start="01-01", end="12-31")])
    assert everything.next_window(ny(2027, 1, 1)) is None and everything.last_window(ny(2027, 1, 1)) is None


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d["planned_window"].update(dates=["2027-04-11"]), "planned_window.dates[0]: 2027-04-11 is in "
                                                                 "testing_spring"),
    (lambda d: d["planned_window"].update(dates=["2027-02-14", "2027-02-21"]), "at most one window per month, got "
                                                                               "two or more in 2027-02"),
    (lambda d: d["planned_window"].update(placement="first_free"), "planned_window.placement"),
])
def test_window_placement_typos_are_named(tmp_path, mutate, message):
    import yaml
    from maintenance.policy import PolicyError

    from tests.conftest import ROOT

    data = yaml.safe_load((ROOT / "include" / "maintenance_policy.yaml").read_text())
    mutate(data)
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(PolicyError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        load_policy(tmp_path / "policy.yaml")


def test_last_sunday_and_nth_weekday():
    assert nth_weekday(2027, 2, "sunday", -1) == date(2027, 2, 28)
    assert nth_weekday(2028, 2, "tuesday", -1) == date(2028, 2, 29)
    assert nth_weekday(2026, 11, "sunday", 1) == date(2026, 11, 1)


@pytest.mark.parametrize(("year", "start_utc", "end_utc"), [
    (2027, datetime(2027, 2, 28, 5, tzinfo=UTC), datetime(2027, 3, 2, 5, tzinfo=UTC)),  # common: 02-28
    (2028, datetime(2028, 2, 29, 5, tzinfo=UTC), datetime(2028, 3, 2, 5, tzinfo=UTC)),  # leap: 02-29
])
def test_leap_day_blackout(year, start_utc, end_utc):
    calendar = MaintenanceCalendar(NY, PlannedWindow(), [Blackout(name="leap", start="02-29", end="03-01")])
    period = calendar.blackouts_at(datetime(year, 3, 1, 12, tzinfo=NY))[0]
    assert (period.start, period.end) == (start_utc, end_utc)


def test_one_off_freeze_dates():
    calendar = MaintenanceCalendar(NY, PlannedWindow(), [],
                                   [Freeze(name="launch", start=date(2027, 2, 1), end=date(2027, 2, 5))])
    assert calendar.blackouts_at(ny(2027, 1, 31, 23, 59)) == []
    assert calendar.blackouts_at(ny(2027, 2, 5, 23, 59))[0].kind == "freeze"
    assert calendar.blackouts_at(ny(2027, 2, 6)) == []
    assert calendar.next_blackout(ny(2027, 1, 20)).name == "launch"
