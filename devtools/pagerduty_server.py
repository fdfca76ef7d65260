"""A local server that speaks PagerDuty's Events API v2 (``POST /v2/enqueue``), records every
request of every verb, and keeps each dedup key's alert as PagerDuty would: triggered,
acknowledged, resolved. It answers what PagerDuty answers: 202 for a valid event, 400 with its
errors for an invalid one, 404 for other paths, 405 for other verbs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from devtools.jsonhttp import JSONHandler, serve

ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")


@dataclass
class PagerDuty:
    url: str = ""
    cert: Path | None = None
    calls: list[dict] = field(default_factory=list)  # every request: verb, path, body
    alerts: dict[str, str] = field(default_factory=dict)  # dedup key -> its state

    def events(self) -> list[dict]:
        return [c["body"] for c in self.calls if c["verb"] == "POST" and c["path"] == "/v2/enqueue"]


def problems(event: dict) -> list[str]:
    found = []
    if not event.get("routing_key") or len(str(event["routing_key"])) != 32:
        found.append("'routing_key' is missing or not 32 characters")
    if event.get("event_action") not in ACTIONS:
        found.append(f"'event_action' must be one of {', '.join(ACTIONS)}")
    if event.get("event_action") == "trigger":
        payload = event.get("payload") or {}
        for key in ("summary", "source", "severity"):
            if not payload.get(key):
                found.append(f"'payload.{key}' is missing")
        if payload.get("severity") and payload["severity"] not in SEVERITIES:
            found.append(f"'payload.severity' must be one of {', '.join(SEVERITIES)}")
    elif not event.get("dedup_key"):
        found.append("'dedup_key' is required to acknowledge or resolve")
    return found


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (PagerDuty's client speaks only https), and its key."""
    import ipaddress
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "pagerduty.crt", folder / "pagerduty.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def start_pagerduty_server(folder: Path) -> tuple[PagerDuty, object]:
    """Serve over https with a certificate made in ``folder``; ``state.cert`` is the file a client
    trusts it by."""
    import ssl

    state = PagerDuty()

    class Handler(JSONHandler):
        def _record(self) -> dict:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                body = {"_raw": raw.decode(errors="replace")}
            state.calls.append({"verb": self.command, "path": self.path, "body": body})
            return body

        def do_PUT(self):
            """Every verb but POST: recorded, and answered as PagerDuty does (405 on the events
            path, 404 elsewhere)."""
            self._record()
            self._send(405 if self.path == "/v2/enqueue" else 404, {"status": "invalid request"})

        do_GET = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_PUT

        def do_POST(self):
            event = self._record()
            if self.path != "/v2/enqueue":
                return self._send(404, {"status": "invalid request", "message": "not found"})
            errors = problems(event)
            if errors:
                return self._send(400, {"status": "invalid event", "message": "Event object is invalid",
                                        "errors": errors})
            key = event.get("dedup_key") or f"pd-{len(state.calls)}"
            state.alerts[key] = {"trigger": "triggered", "acknowledge": "acknowledged",
                                 "resolve": "resolved"}[event["event_action"]]
            return self._send(202, {"status": "success", "message": "Event processed", "dedup_key": key})

    cert, key = self_signed(folder)
    url, server = serve(Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    state.url, state.cert = url.replace("http://", "https://"), cert
    return state, server
