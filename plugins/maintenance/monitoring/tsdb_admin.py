"""Deleting series from Prometheus's TSDB, through its admin API, as the procedures' rule asks:
plan, dry run stops, a snapshot first, delete only what the policy's matchers select and only
up to a cap, clean the tombstones, verify nothing of it is left. Prometheus must run with
``--web.enable-admin-api``."""

from __future__ import annotations

from urllib.parse import urlencode

from maintenance.security.http import ServiceUnavailable, get_json


def _post(base: str, path: str, params: list[tuple[str, str]], timeout: float):
    url = f"{base.rstrip('/')}{path}" + (f"?{urlencode(params)}" if params else "")
    answer = get_json(url, timeout=timeout, method="POST")
    if answer is None:
        raise ServiceUnavailable(f"{base}{path}: not found (is the admin API on: --web.enable-admin-api?)")
    return answer


def series_count(base: str, matcher: str, *, timeout: float) -> int:
    """How many series ``matcher`` selects, over all the TSDB holds."""
    answer = get_json(f"{base.rstrip('/')}/api/v1/series?{urlencode([('match[]', matcher), ('start', '0')])}",
                      timeout=timeout)
    if not answer or answer.get("status") != "success":
        raise ServiceUnavailable(f"{base}/api/v1/series ({matcher}): {answer and answer.get('error')}")
    return len(answer["data"])


def snapshot(base: str, *, timeout: float) -> str:
    """A snapshot of the whole TSDB (hard links, cheap); its name under the data folder's snapshots/."""
    answer = _post(base, "/api/v1/admin/tsdb/snapshot", [], timeout)
    if answer.get("status") != "success":
        raise ServiceUnavailable(f"{base}/api/v1/admin/tsdb/snapshot: {answer.get('error')}")
    return answer["data"]["name"]


def delete(base: str, matcher: str, *, timeout: float) -> None:
    _post(base, "/api/v1/admin/tsdb/delete_series", [("match[]", matcher)], timeout)


def clean_tombstones(base: str, *, timeout: float) -> None:
    _post(base, "/api/v1/admin/tsdb/clean_tombstones", [], timeout)
