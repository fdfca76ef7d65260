"""The platform's availability from Prometheus (procedures 9.1): the spans in which the policy's
availability series (for example the health check's ``probe_success``) said the platform was
down, for the KPIs to merge with outage incidents. Read-only."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from maintenance.security.http import ServiceUnavailable

MAX_POINTS = 10_000  # Prometheus refuses more than 11,000 points per series in one query_range


def query_range(base: str, expr: str, *, start: datetime, end: datetime, step: float,
                timeout: float = 30) -> list[tuple[datetime, float]]:
    """The one series ``expr`` returns, as (time, value); asked in pieces of at most MAX_POINTS.
    An expression that returns several series is refused: availability is one number."""
    found: list[tuple[datetime, float]] = []
    piece = timedelta(seconds=step * MAX_POINTS)
    at = start
    while at < end:
        upto = min(at + piece, end)
        params = urlencode({"query": expr, "start": f"{at.timestamp():.3f}", "end": f"{upto.timestamp():.3f}",
                            "step": f"{step:g}"})
        try:
            with urllib.request.urlopen(f"{base.rstrip('/')}/api/v1/query_range?{params}", timeout=timeout) as answer:
                result = json.loads(answer.read())["data"]["result"]
        except urllib.error.HTTPError as exc:
            raise ServiceUnavailable(f"{base}/api/v1/query_range ({expr}): HTTP {exc.code} "
                                     f"{exc.read()[:300].decode(errors='replace')}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise ServiceUnavailable(f"{base}/api/v1/query_range: {getattr(exc, 'reason', exc)}") from exc
        if len(result) > 1:
            raise ValueError(f"incidents.availability.query: returns {len(result)} series; aggregate it to one "
                             f"(e.g. min(...)): {expr}")
        for series in result:
            found += [(datetime.fromtimestamp(float(t), UTC), float(v)) for t, v in series["values"]]
        at = upto + timedelta(seconds=step)
    return found


def down_spans(samples: list[tuple[datetime, float]], *, below: float, step: float) -> list[tuple[datetime, datetime]]:
    """The spans in which the value was below ``below``: each down sample stands for the step it
    starts. No sample (a gap) is not downtime: it is unknown, reported as such by the caller."""
    spans: list[tuple[datetime, datetime]] = []
    width = timedelta(seconds=step)
    for at, value in samples:
        if value >= below:
            continue
        if spans and at <= spans[-1][1]:
            spans[-1] = (spans[-1][0], at + width)
        else:
            spans.append((at, at + width))
    return spans


def downtime(base: str, settings, *, start: datetime, end: datetime) -> dict:
    """The down spans of the policy's availability series between ``start`` and ``end``, and how
    much of the period had no sample."""
    samples = query_range(base, settings.query, start=start, end=end, step=settings.step_seconds)
    expected = max(int((end - start).total_seconds() // settings.step_seconds), 1)
    return {"spans": down_spans(samples, below=settings.down_below, step=settings.step_seconds),
            "no_data_minutes": max(expected - len(samples), 0) * settings.step_seconds / 60}
