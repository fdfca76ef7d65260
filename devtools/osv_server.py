"""A local server speaking the OSV API and the PyPI and npm registries' JSON, from one data file.

For the tests and the demo, which cannot reach the internet: the scan and the review run
their real HTTP requests and parsing against it. The data file holds OSV advisories as
osv.dev publishes them, and the newest version of each package:

    {"advisories": [<OSV records>], "pypi": {"name": "1.2.3"}, "npm": {"name": "4.5.6"}}
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote

from devtools.jsonhttp import JSONHandler, serve


def _affects(advisory: dict, ecosystem: str, name: str, version: str) -> bool:
    from maintenance.security.versions import sort_key

    for affected in advisory.get("affected", []):
        package = affected.get("package", {})
        if package.get("ecosystem") != ecosystem or package.get("name", "").lower() != name.lower():
            continue
        if version in affected.get("versions", []):
            return True
        for rng in affected.get("ranges", []):
            introduced, fixed = None, None
            for event in rng.get("events", []):
                introduced = event.get("introduced", introduced)
                fixed = event.get("fixed", fixed)
            low = introduced in (None, "0") or sort_key(version, ecosystem) >= sort_key(introduced, ecosystem)
            high = fixed is None or sort_key(version, ecosystem) < sort_key(fixed, ecosystem)
            if low and high:
                return True
    return False


def start_osv_server(data: dict | Path, port: int = 0):
    """Start the server in a thread; returns (base URL, server). ``data`` may be changed live."""
    db = json.loads(Path(data).read_text()) if isinstance(data, Path) else data

    class Handler(JSONHandler):
        def do_POST(self):
            if self.path != "/v1/querybatch":
                return self._send(404, {"message": "not found"})
            queries = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["queries"]
            results = []
            for q in queries:
                hits = [{"id": a["id"], "modified": a.get("modified", "")} for a in db["advisories"]
                        if _affects(a, q["package"]["ecosystem"], q["package"]["name"], q["version"])]
                results.append({"vulns": hits} if hits else {})
            return self._send(200, {"results": results})

        def do_GET(self):
            path = unquote(self.path)
            if path.startswith("/v1/vulns/"):
                found = next((a for a in db["advisories"] if a["id"] == path.rsplit("/", 1)[1]), None)
                return self._send(200, found) if found else self._send(404, {"message": "not found"})
            if path.startswith("/pypi/") and path.endswith("/json"):
                name = path.split("/")[2]
                version = db.get("pypi", {}).get(name)
                return self._send(200, {"info": {"name": name, "version": version}}) if version else \
                    self._send(404, {"message": "not found"})
            version = db.get("npm", {}).get(path.lstrip("/"))
            return self._send(200, {"name": path.lstrip("/"), "dist-tags": {"latest": version}}) if version else \
                self._send(404, {"error": "not found"})

    url, server = serve(Handler, port)
    return url, server
