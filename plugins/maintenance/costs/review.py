"""Monday's cost review: what the platform cost per day, per student, and what grew.

The procedures set a goal of keeping costs under $0.05 per student per day. Costs come from
AWS Cost Explorer (daily, by service); students from the platform's own database (distinct
students with a session that day). The review compares the last ``days`` with the ``days``
before: the cost per student per day against the target, and the services whose cost grew
most. It reads only.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta


@dataclass
class ServiceCost:
    service: str
    cost: float
    previous: float

    @property
    def growth(self) -> float | None:
        return (self.cost - self.previous) / self.previous if self.previous else None


@dataclass
class CostReview:
    start: date  # the reviewed period, [start, end)
    end: date
    currency: str
    cost: float
    previous_cost: float
    student_days: int  # sum over the period's days of that day's distinct students
    per_student_day: float | None
    target: float
    days_over_target: list[dict] = field(default_factory=list)
    services: list[ServiceCost] = field(default_factory=list)
    days_without_costs: list[str] = field(default_factory=list)

    @property
    def growth(self) -> float | None:
        return (self.cost - self.previous_cost) / self.previous_cost if self.previous_cost else None

    def as_dict(self) -> dict:
        found = asdict(self)
        found.update(start=self.start.isoformat(), end=self.end.isoformat(), growth=self.growth,
                     services=[asdict(s) | {"growth": s.growth} for s in self.services])
        return found


def daily_costs(ce, start: date, end: date, metric: str) -> tuple[dict[date, dict[str, float]], str]:
    """Cost per day and service over [start, end) from Cost Explorer, and its currency."""
    by_day: dict[date, dict[str, float]] = defaultdict(dict)
    currency, token = "USD", None
    while True:
        asked = {"TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()}, "Granularity": "DAILY",
                 "Metrics": [metric], "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}]}
        if token:
            asked["NextPageToken"] = token
        answer = ce.get_cost_and_usage(**asked)
        for period in answer.get("ResultsByTime", []):
            day = date.fromisoformat(period["TimePeriod"]["Start"])
            groups = period.get("Groups") or []
            if groups:
                for group in groups:
                    amount = group["Metrics"][metric]
                    by_day[day][group["Keys"][0]] = by_day[day].get(group["Keys"][0], 0.0) + float(amount["Amount"])
                    currency = amount.get("Unit", currency)
            elif metric in (period.get("Total") or {}):
                amount = period["Total"][metric]
                by_day[day]["(total)"] = float(amount["Amount"])
                currency = amount.get("Unit", currency)
        token = answer.get("NextPageToken")
        if not token:
            return dict(by_day), currency


def review(costs: dict[date, dict[str, float]], students: dict[date, int], *, end: date, days: int,
           target: float, currency: str = "USD", top: int = 10) -> CostReview:
    """The last ``days`` before ``end`` against the ``days`` before them."""
    start, previous_start = end - timedelta(days=days), end - timedelta(days=2 * days)
    period = [start + timedelta(days=n) for n in range(days)]
    before = [previous_start + timedelta(days=n) for n in range(days)]

    def total(day: date) -> float:
        return sum(costs.get(day, {}).values())

    cost, previous = sum(map(total, period)), sum(map(total, before))
    student_days = sum(students.get(day, 0) for day in period)
    over = []
    for day in period:
        if day in costs and students.get(day):
            per = total(day) / students[day]
            if per > target:
                over.append({"day": day.isoformat(), "cost": round(total(day), 2), "students": students[day],
                             "per_student": round(per, 4)})
    services = defaultdict(lambda: [0.0, 0.0])
    for days_, slot in ((period, 0), (before, 1)):
        for day in days_:
            for service, amount in costs.get(day, {}).items():
                services[service][slot] += amount
    ranked = sorted((ServiceCost(name, round(now, 2), round(then, 2)) for name, (now, then) in services.items()),
                    key=lambda s: (-s.cost, s.service))[:top]
    return CostReview(start, end, currency, round(cost, 2), round(previous, 2), student_days,
                      round(cost / student_days, 4) if student_days else None, target, over, ranked,
                      [d.isoformat() for d in period if d not in costs])
