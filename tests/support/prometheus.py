"""A local server answering the parts of Prometheus's HTTP API the threshold review reads."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from devtools.jsonhttp import JSONHandler, serve

RULES = {"status": "success", "data": {"groups": [{"name": "platform", "file": "platform.yml", "rules": [
    {"type": "alerting", "name": "HighErrorRate", "query": "rate(http_errors_total[5m]) > 0.01", "duration": 300,
     "health": "ok", "state": "firing", "alerts": []},
    {"type": "alerting", "name": "DiskFull", "query": "disk_free_ratio < 0.05", "duration": 600, "health": "ok",
     "state": "inactive", "alerts": []},
    {"type": "alerting", "name": "BrokenRule", "query": "rate(nope[5m]) >", "duration": 0, "health": "err",
     "lastError": "parse error: unexpected end of input", "state": "inactive", "alerts": []},
    {"type": "recording", "name": "job:errors:rate5m", "query": "sum(rate(http_errors_total[5m]))",
     "health": "ok"}]}]}}


def start_prometheus():
    """A local server answering Prometheus's rules and query API: (url, queries asked, server)."""
    asked = []

    class Handler(JSONHandler):
        def do_GET(self):
            url = urlparse(self.path)
            if url.path == "/api/v1/rules":
                return self._send(200, RULES)
            if url.path == "/api/v1/query":
                asked.append(parse_qs(url.query)["query"][0])
                return self._send(200, {"status": "success", "data": {"resultType": "vector", "result": [
                    {"metric": {"alertname": "HighErrorRate"}, "value": [1764000000, "0.31"]},
                    {"metric": {"alertname": "Watchdog"}, "value": [1764000000, "1"]}]}})
            return self._send(404, {"status": "error", "error": "not found"})

    url, server = serve(Handler)
    return url, asked, server
