"""Small JSON-over-HTTP client for the vulnerability database and the package registries.

The standard library only: nothing heavy to import, and every address comes from the policy,
so tests and air-gapped sites point it at a local server speaking the same API.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request


class ServiceUnavailable(RuntimeError):
    """The service could not be asked; never read as 'nothing found'."""


def get_json(url: str, *, timeout: float, body: dict | None = None, method: str | None = None) -> dict | None:
    """GET (or POST ``body``, or ``method``) and decode JSON (an empty answer: {}); None for 404;
    ServiceUnavailable otherwise."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method or ("POST" if body is not None else "GET"),
                                     headers={"Content-Type": "application/json", "Accept": "application/json",
                                              "User-Agent": "pathfinity-maintenance"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            return json.loads(raw) if raw.strip() else {}
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise ServiceUnavailable(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, TimeoutError, OSError, json.JSONDecodeError) as exc:
        raise ServiceUnavailable(f"{url}: {getattr(exc, 'reason', exc)}") from exc
