"""A loopback HTTP server that speaks the Anthropic Messages API from a script of answers."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class MessagesServer:
    """Answers POST /v1/messages with scripted replies: text (200) or (status, error type)."""

    def __init__(self, script: list[str | tuple[int, str]]) -> None:
        self.script, self.requests = list(script), []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                server.requests.append({"path": self.path, "body": body,
                                        "key": self.headers.get("x-api-key") or self.headers.get("authorization")})
                step = server.script.pop(0) if server.script else (500, "api_error")
                if isinstance(step, tuple):
                    self._send(step[0], {"type": "error",
                                         "error": {"type": step[1], "message": "scripted"}})
                else:
                    self._send(200, {"id": "msg_test", "type": "message", "role": "assistant",
                                     "model": body["model"], "stop_reason": "end_turn",
                                     "stop_sequence": None,
                                     "content": [{"type": "text", "text": step}],
                                     "usage": {"input_tokens": 10, "output_tokens": 10}})

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> MessagesServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
