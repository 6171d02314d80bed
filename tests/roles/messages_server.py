"""A loopback HTTP server that speaks the Anthropic Messages API from a script of answers."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Drip:
    """A scripted step: the answer `text`, sent one byte every `every` seconds, from the status
    line on (`head`) or once the headers are out (`body`): a server that holds a client."""

    text: str
    part: str = "body"
    every: float = 0.05


class MessagesServer:
    """Answers POST /v1/messages with scripted replies: text (200), (status, error type), bytes
    sent as the whole 200 body (a broken server), or a `Drip`.

    With `models` (id, created_at) given, GET /v1/models lists them and a message naming any other
    model gets the API's 404 `not_found_error` (the script is not consumed).
    """

    def __init__(self, script: list[str | tuple[int, str] | bytes],
                 models: list[tuple[str, str]] | None = None) -> None:
        self.script, self.requests, self.models = list(script), [], models
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                server.requests.append({"path": self.path, "body": None, "key": None})
                if not self.path.startswith("/v1/models") or server.models is None:
                    return self._send(404, {"type": "error", "error": {
                        "type": "not_found_error", "message": "no such endpoint"}})
                data = [{"type": "model", "id": i, "display_name": i, "created_at": at}
                        for i, at in server.models]
                self._send(200, {"data": data, "has_more": False,
                                 "first_id": data[0]["id"] if data else None,
                                 "last_id": data[-1]["id"] if data else None})

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                server.requests.append({"path": self.path, "body": body,
                                        "key": self.headers.get("x-api-key") or self.headers.get("authorization")})
                if server.models is not None and body.get("model") not in dict(server.models):
                    return self._send(404, {"type": "error", "error": {
                        "type": "not_found_error", "message": f"model: {body.get('model')}"}})
                step = server.script.pop(0) if server.script else (500, "api_error")
                if isinstance(step, Drip):
                    self._drip(step, _message(body["model"], step.text))
                elif isinstance(step, bytes):
                    self._send(200, step)
                elif isinstance(step, tuple):
                    self._send(step[0], {"type": "error",
                                         "error": {"type": step[1], "message": "scripted"}})
                else:
                    self._send(200, _message(body["model"], step))

            def _drip(self, step: Drip, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                head = (f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                        f"content-length: {len(data)}\r\n\r\n").encode()
                if step.part == "body":
                    self.wfile.write(head)
                    head = b""
                try:
                    for i in range(len(head + data)):
                        self.wfile.write((head + data)[i:i + 1])
                        self.wfile.flush()
                        time.sleep(step.every)
                except OSError:
                    pass                          # the client hung up: what a deadline does
                self.close_connection = True

            def _send(self, status: int, payload: dict[str, Any] | bytes) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
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


def _message(model: str, text: str) -> dict[str, Any]:
    return {"id": "msg_test", "type": "message", "role": "assistant", "model": model,
            "stop_reason": "end_turn", "stop_sequence": None,
            "content": [{"type": "text", "text": text}],
            "usage": {"input_tokens": 10, "output_tokens": 10}}
