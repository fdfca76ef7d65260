"""Thursday's threshold review against a local server answering Prometheus's HTTP API."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from maintenance.monitoring.thresholds import review
from maintenance.security.http import ServiceUnavailable

from devtools import servers
from tests.conftest import use_policy
from tests.support.airflow_runs import run_dag
from tests.support.prometheus import start_prometheus


@pytest.fixture(scope="module")
def prometheus():
    url, asked, server = start_prometheus()
    yield url, asked
    server.shutdown()


def test_rules_are_sorted_into_unhealthy_noisy_and_silent(prometheus):
    url, asked = prometheus
    found = review(url, lookback_days=7, noisy_fraction=0.05, timeout=5)
    assert [r["rule"] for r in found["rules"]] == ["HighErrorRate", "DiskFull", "BrokenRule"]  # alerting only
    assert [r["rule"] for r in found["noisy"]] == ["HighErrorRate"] and found["noisy"][0]["firing_share"] == 0.31
    assert [r["rule"] for r in found["silent"]] == ["DiskFull"]
    assert found["unhealthy"][0]["error"] == "parse error: unexpected end of input"
    assert "[168h:5m]" in asked[-1] and 'ALERTS{alertstate="firing"}' in asked[-1]


def test_an_unreachable_prometheus_fails_clearly():
    with pytest.raises(ServiceUnavailable, match="/api/v1/rules"):
        review(f"http://127.0.0.1:{servers.free_port()}", lookback_days=7, noisy_fraction=0.05, timeout=2)


def test_thursday_review_through_the_dag(prometheus, platform_db, airflow_db, slack, tmp_path, monkeypatch):
    use_policy(tmp_path, monkeypatch, monitoring={"prometheus_url": prometheus[0]})
    result = run_dag("maintenance_weekly", datetime(2026, 11, 26, 6, tzinfo=UTC), {"theme": "thursday"},
                     mark_success_pattern=r"^thursday\.restore_test$")
    assert result.states["thursday.threshold_review"] == "success", result.states
    findings = platform_db.execute("SELECT check_name, target FROM maintenance.findings WHERE run_id = %s "
                                   "ORDER BY 1", (result.run.run_id,))
    assert findings == [("alert_rule_noisy", "HighErrorRate"), ("alert_rule_unhealthy", "BrokenRule")]
