"""Loading and validating the maintenance policy file."""

from pathlib import Path

import pytest
import yaml
from maintenance.policy import PolicyError, load_policy

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load((ROOT / "include" / "maintenance_policy.yaml").read_text())
    mutate(data)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_shipped_policy_has_the_documents_defaults():
    policy = load_policy()
    assert policy.timezone == "America/New_York"
    assert (policy.planned_window.weekday, policy.planned_window.week_of_month) == ("sunday", 1)
    # Placed on the first Sunday outside blackouts: due every Sunday, the other Sundays end at once.
    assert policy.planned_window.placement == "first_clear" and policy.planned_window.cron == "0 2 * * 0"
    assert {b.name: (str(b.start), str(b.end)) for b in policy.blackouts} == {
        "school_start": ("08-15", "09-15"), "testing_spring": ("03-01", "04-30"),
        "testing_early_summer": ("05-01", "06-30"), "holidays": ("12-20", "01-05")}
    assert policy.decision.max_affected_users_outside_window == 1000
    assert policy.decision.load.active_users_threshold == 50000
    assert policy.decision.load.recheck_after_minutes == 120


@pytest.mark.parametrize(("mutate", "field", "message"), [
    (lambda d: d.update(timezon="UTC"), "timezon", "unknown key"),
    (lambda d: d.update(timezone="America/Atlantis"), "timezone", "unknown timezone"),
    (lambda d: d["decision"]["load"].update(active_users_threshold=-1), "decision.load.active_users_threshold",
     "greater than or equal to 0"),
    (lambda d: d["planned_window"].update(start="06:00", end="02:00"), "planned_window",
     "end (02:00) must be after start (06:00)"),
    (lambda d: d["planned_window"].update(start=120), "planned_window.start", "quote times of day"),
    (lambda d: d["blackouts"][0].update(start="02-30"), "blackouts.0.start", "not a day of the year"),
    (lambda d: d.update(freezes=[{"name": "x", "start": "2027-02-05", "end": "2027-02-01"}]), "freezes.0",
     "end (2027-02-01) is before start (2027-02-05)"),
    (lambda d: d["decision"]["load"].pop("probe"), "decision.load.probe", "required key is missing"),
    (lambda d: d["planned_window"].update(week_of_month=5), "planned_window.week_of_month", "must be 1, 2, 3, 4"),
    (lambda d: d["postgres"]["safety"].update(max_relations_per_run=5000), "postgres.safety.max_relations_per_run",
     "less than or equal to 1000"),
    (lambda d: d["postgres"]["safety"].update(vacuum_cost_delay_ms=250), "postgres.safety.vacuum_cost_delay_ms",
     "less than or equal to 100"),
    (lambda d: d["postgres"]["thresholds"]["unused_index"].update(writes_per_scan=0),
     "postgres.thresholds.unused_index.writes_per_scan", "greater than or equal to 1"),
    # Accepted once, wrong all the same: refused now, naming the field.
    (lambda d: d.update(timezone="EST"), "timezone", "'EST' is an abbreviation or a fixed offset"),
    (lambda d: d.update(timezone="EST5EDT"), "timezone", "use the IANA name of the place"),
    (lambda d: d.update(timezone="Etc/GMT+5"), "timezone", "not a place's clock"),
    (lambda d: d["blackouts"][0].update(start="09-15", end="08-15"), "blackouts.0",
     "end (08-15) is before start (09-15): if the blackout runs over the new year, say so with wraps_year: true"),
    (lambda d: d["blackouts"][0].update(wraps_year=True), "blackouts.0", "does not cross the new year"),
    (lambda d: d["blackouts"].append({"name": "exams", "start": "04-20", "end": "05-10"}), "blackouts",
     "testing_spring and exams overlap (11 days from 04-20)"),
    (lambda d: d["blackouts"].append({"name": "new_year", "start": "12-31", "end": "01-02", "wraps_year": True}),
     "blackouts", "holidays and new_year overlap (3 days from 01-01)"),
    (lambda d: d.setdefault("security", {}).update(certificates={"warn_days": 5, "critical_days": 10}),
     "security.certificates", "critical_days (10) is above warn_days (5)"),
])
def test_invalid_policy_names_file_and_field(tmp_path, mutate, field, message):
    path = write(tmp_path, mutate)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    text = str(info.value)
    assert text.startswith(str(path))
    assert f"  {field}: " in text
    assert message in text


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(PolicyError, match="policy file not found"):
        load_policy(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("timezone: [unclosed")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(bad)


def test_reload_after_edit(tmp_path):
    path = write(tmp_path, lambda d: None)
    assert load_policy(path).decision.load.active_users_threshold == 50000
    path.write_text(path.read_text().replace("50000", "40000"))
    import os
    os.utime(path, ns=(1, 10**18))  # a new mtime, as an edit gives
    assert load_policy(path).decision.load.active_users_threshold == 40000
