"""A local HTTP server that answers Slack's Web API and webhooks, recording each call."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs

from devtools.jsonhttp import JSONHandler


@dataclass
class SlackCall:
    path: str
    body: dict

    @property
    def method(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]


@dataclass
class SlackServer:
    port: int
    calls: list[SlackCall] = field(default_factory=list)
    failing: bool = False  # answer every call with HTTP 500

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def messages(self, channel: str | None = None) -> list[dict]:
        return [c.body for c in self.calls
                if c.method == "chat.postMessage" and (channel is None or c.body.get("channel") == channel)]


KNOWN = {"chat.postMessage", "files.getUploadURLExternal", "files.completeUploadExternal", "auth.test"}


def block_problem(blocks) -> str | None:
    """Slack's limits on Block Kit messages: at most 50 blocks, a section's text at most 3,000
    characters, a header's at most 150."""
    if not blocks:
        return None
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    if len(blocks) > 50:
        return f"{len(blocks)} blocks: at most 50"
    for i, block in enumerate(blocks):
        text = (block.get("text") or {}).get("text", "")
        limit = 150 if block.get("type") == "header" else 3000
        if len(text) > limit:
            return f"blocks[{i}].text: {len(text)} characters, at most {limit}"
    return None


def start_slack_server(port: int = 0, log_to=None) -> tuple[SlackServer, ThreadingHTTPServer]:
    """Serve on ``port`` (0: any free one); with ``log_to`` (a path), append each message's text."""
    state = SlackServer(port=port)

    class Handler(JSONHandler):
        def _reply(self, status: int, answer: dict | None) -> None:
            self._send(status, answer if answer is not None else {})

        def _other_verb(self):
            """Recorded like any call; Slack's Web API takes only GET and POST."""
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.calls.append(SlackCall(self.path, {"_verb": self.command}))
            self._reply(405, {"ok": False, "error": "method_not_allowed"})

        do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _other_verb

        def do_GET(self):
            path, _, query = self.path.partition("?")
            state.calls.append(SlackCall(path, {"_verb": "GET", **{k: v[0] for k, v in parse_qs(query).items()}}))
            self._reply(200, {"ok": False, "error": "unknown_method"} if path.startswith("/api/") else None)

        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            ctype = self.headers.get("Content-Type", "")
            if self.path == "/upload" or "multipart" in ctype:
                body = {"_upload_bytes": len(raw), "_png": raw.startswith(b"\x89PNG") or b"\x89PNG" in raw[:4096]}
            elif "json" in ctype:
                body = json.loads(raw or b"{}")
            else:
                body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            state.calls.append(SlackCall(self.path, body))
            if self.path.rstrip("/").rsplit("/", 1)[-1] not in KNOWN and self.path != "/upload":
                self._reply(200, {"ok": False, "error": "unknown_method"})
                return
            problem = block_problem(body.get("blocks"))
            if problem:  # what Slack answers to blocks it will not render
                self._reply(200, {"ok": False, "error": "invalid_blocks", "errors": [problem]})
                return
            if log_to and body.get("text"):
                with open(log_to, "a") as log:
                    log.write(f"--- {body.get('channel')}\n{body['text']}\n")
            if state.failing:
                self.send_response(500)
                self.end_headers()
                self.wfile.write(b"internal error")
                return
            answer = {"ok": True, "channel": body.get("channel", "C1"), "ts": f"{len(state.calls)}.0001"}
            if self.path.endswith("files.getUploadURLExternal"):
                answer |= {"upload_url": f"http://127.0.0.1:{state.port}/upload", "file_id": "F1"}
            if self.path.endswith("files.completeUploadExternal"):
                answer |= {"files": [{"id": "F1"}]}
            self._send(200, answer)

    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    state.port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return state, httpd
