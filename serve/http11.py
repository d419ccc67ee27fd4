"""uvicorn's h11 protocol, with its reply to a malformed HTTP request in OpenAI's error format.

A request h11 cannot parse (a non-numeric ``Content-Length``, a broken request line) never
reaches the app; uvicorn answers it itself with a plain-text 400. This subclass sends the
same 400 as JSON, so every error a client sees has one shape.
"""

from __future__ import annotations

import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from kever.serve.openai_errors import bad_request

MESSAGE = "malformed HTTP request: check the request line and headers (Content-Length must be a number)"


class OpenAIErrorsH11Protocol(H11Protocol):
    def send_400_response(self, msg: str) -> None:
        body = json.dumps(bad_request(MESSAGE, "invalid_http_request").body()).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        self.transport.write(self.conn.send(h11.Response(status_code=400, headers=headers, reason=b"Bad Request")))
        self.transport.write(self.conn.send(h11.Data(data=body)))
        self.transport.write(self.conn.send(h11.EndOfMessage()))
        self.transport.close()
