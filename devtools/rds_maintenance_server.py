"""RDS's pending maintenance actions, in front of moto's server.

moto answers RDS's instance calls (DescribeDBInstances, ModifyDBInstance, ...) but not its
pending maintenance actions. This server answers those two actions of the RDS Query API
(DescribePendingMaintenanceActions, ApplyPendingMaintenanceAction) from its own state, as RDS
does (XML, its error codes for an unknown resource or action), and passes every other request
to moto unchanged. It records every request: method, path and Action.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

NS = "http://rds.amazonaws.com/doc/2014-10-31/"


@dataclass
class PendingState:
    moto_url: str
    # resource ARN -> [{"Action", "Description", "AutoAppliedAfterDate", "OptInStatus"}]
    pending: dict[str, list[dict]] = field(default_factory=dict)
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, Action)
    url: str = ""


def _actions_xml(arn: str, actions: list[dict]) -> str:
    items = "".join(
        "<PendingMaintenanceAction>" + "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in a.items() if v is not None)
        + "</PendingMaintenanceAction>" for a in actions)
    return (f"<ResourceIdentifier>{escape(arn)}</ResourceIdentifier>"
            f"<PendingMaintenanceActionDetails>{items}</PendingMaintenanceActionDetails>")


def _error(code: str, message: str) -> str:
    return (f'<ErrorResponse xmlns="{NS}"><Error><Type>Sender</Type><Code>{code}</Code>'
            f"<Message>{escape(message)}</Message></Error><RequestId>local</RequestId></ErrorResponse>")


def start_rds_maintenance_server(state: PendingState):
    """Serve on a free local port; returns the HTTP server (state.url is its address)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, code: int, body: bytes, content_type: str = "text/xml") -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _forward(self, method: str, body: bytes | None) -> None:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            request = urllib.request.Request(state.moto_url + self.path, data=body, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=60) as answer:
                    self._send(answer.status, answer.read(), answer.headers.get("Content-Type", "text/xml"))
            except urllib.error.HTTPError as exc:
                self._send(exc.code, exc.read(), exc.headers.get("Content-Type", "text/xml"))

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            form = {k: v[0] for k, v in parse_qs((body or b"").decode()).items()}
            action = form.get("Action", "")
            state.requests.append((method, self.path, action))
            if action == "DescribePendingMaintenanceActions":
                wanted = form.get("ResourceIdentifier")
                found = "".join(f"<ResourcePendingMaintenanceActions>{_actions_xml(arn, acts)}"
                                "</ResourcePendingMaintenanceActions>"
                                for arn, acts in state.pending.items() if acts and wanted in (None, arn))
                return self._send(200, (
                    f'<DescribePendingMaintenanceActionsResponse xmlns="{NS}"><DescribePendingMaintenanceActionsResult>'
                    f"<PendingMaintenanceActions>{found}</PendingMaintenanceActions>"
                    "</DescribePendingMaintenanceActionsResult><ResponseMetadata><RequestId>local</RequestId>"
                    "</ResponseMetadata></DescribePendingMaintenanceActionsResponse>").encode())
            if action == "ApplyPendingMaintenanceAction":
                arn, name, opt_in = form.get("ResourceIdentifier"), form.get("ApplyAction"), form.get("OptInType")
                if arn not in state.pending:
                    missing = _error("ResourceNotFoundFault", f"The resource {arn} could not be found.")
                    return self._send(404, missing.encode())
                if opt_in not in ("immediate", "next-maintenance", "undo-opt-in"):
                    return self._send(400, _error("InvalidParameterValue", f"Invalid OptInType: {opt_in}").encode())
                match = [a for a in state.pending[arn] if a["Action"] == name]
                if not match:
                    return self._send(400, _error("InvalidParameterValue",
                                                  f"No pending maintenance action {name} for {arn}").encode())
                for item in match:
                    item["OptInStatus"] = opt_in
                return self._send(200, (
                    f'<ApplyPendingMaintenanceActionResponse xmlns="{NS}"><ApplyPendingMaintenanceActionResult>'
                    f"<ResourcePendingMaintenanceActions>{_actions_xml(arn, state.pending[arn])}"
                    "</ResourcePendingMaintenanceActions></ApplyPendingMaintenanceActionResult><ResponseMetadata>"
                    "<RequestId>local</RequestId></ResponseMetadata></ApplyPendingMaintenanceActionResponse>").encode())
            return self._forward(method, body)

        def do_GET(self):
            self._handle("GET")

        def do_POST(self):
            self._handle("POST")

        def do_PUT(self):
            self._handle("PUT")

        def do_DELETE(self):
            self._handle("DELETE")

        def do_PATCH(self):
            self._handle("PATCH")

        def do_HEAD(self):
            self._handle("HEAD")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
