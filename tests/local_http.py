"""A real HTTP/1.1 server on 127.0.0.1 in a thread, for the tests that need the
network below the client (retries, timeouts, dropped connections, redaction),
and the texts an exception or a log record can show, for the searches for
leaked secrets."""

from __future__ import annotations

import json
import logging
import threading
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from django_payments_ru.exceptions import exception_chain


class LocalServer:
    """Subclasses answer in :meth:`respond`; :meth:`connected` sees each new
    TCP connection. ``release`` ends the waits of hanging answers on stop."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive
            timeout = 5
            # Headers and body go out in two writes; with Nagle the second waits
            # for the client's delayed ACK (40 ms per request).
            disable_nagle_algorithm = True

            def setup(self) -> None:
                super().setup()
                server.connected(self.client_address)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the test output stays readable

            def serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.respond(self, body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}
        )

    @property
    def root(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def connected(self, address: tuple[str, int]) -> None:
        pass

    def respond(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        raise NotImplementedError

    @staticmethod
    def send(
        handler: BaseHTTPRequestHandler,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        """Answer with ``body`` (bytes as they are, text encoded, else JSON)."""
        if isinstance(body, bytes):
            payload = body
        elif isinstance(body, str):
            payload = body.encode()
        else:
            payload = json.dumps(body).encode()
        handler.send_response(status)
        headers = {"Content-Type": content_type, **(headers or {})}
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(2)


def exception_texts(exc: BaseException) -> Iterator[str]:
    """Everything ``exc`` and its chain can show: the traceback, each
    exception's text, repr, arguments and attributes."""
    yield "".join(traceback.format_exception(exc))
    for node in exception_chain(exc):
        yield str(node)
        yield repr(node)
        yield repr(node.args)
        yield repr(vars(node))
        for name in ("message", "provider_message", "details", "code"):
            if hasattr(node, name):
                yield repr(getattr(node, name))


def record_texts(record: logging.LogRecord) -> Iterator[str]:
    yield record.getMessage()
    yield str(record.msg)
    yield repr(record.args)
    yield logging.Formatter().format(record)  # with exc_info and stack_info
