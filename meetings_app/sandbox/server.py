"""A stand-in for Feishu, Zoom and Google Calendar that speaks their real HTTP APIs on a local port.

Point `FEISHU_BASE_URL` at `url`, `ZOOM_API_BASE_URL` at `{url}/v2`, `ZOOM_OAUTH_URL` at `{url}/oauth/token`
and `GOOGLE_CALENDAR_BASE_URL` at `{url}/calendar/v3`. Every provider call first waits `latencyMs` (a token
fetch `tokenLatencyMs` more), then may fail on purpose (`failNext`, then `failRate`), and only then is
applied: once applied it stays applied even if the caller has hung up, as with the real providers, and even
if its answer is then lost on purpose (`applyThenFailNext`, then `applyThenFailRate`: a gateway's error page
after `applyThenDelayMs`). `/_sandbox/...` configures the sandbox and shows what it holds and what it
injected (API.md "Provider sandbox"); those endpoints never wait and never fail on purpose.

This module is the HTTP server (`ProviderSandbox`, used by `manage.py run_provider_sandbox` and the tests);
the rest lives beside it: `state` (what the providers hold, config, counters, fault injection), `feishu`,
`zoom`, `google` (one module per provider), `router` (the route table and a request's life) and `control`
(`/_sandbox/*`). Standard library only, so the demo and load tests can run it anywhere Python runs.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from meetings_app.sandbox.events import EventTarget
from meetings_app.sandbox.router import serve
from meetings_app.sandbox.state import ProviderRequest, Reply, SandboxState, control_error

__all__ = ["EventTarget", "ProviderRequest", "ProviderSandbox", "Reply", "SandboxState", "serve"]


class SandboxRequestHandler(BaseHTTPRequestHandler):
    # Keep-alive, so load tests do not pay a TCP handshake per call.
    protocol_version = "HTTP/1.1"
    server_version = "ProviderSandbox/1.0"
    # An idle keep-alive connection holds a thread; give it back after a while.
    timeout = 120

    server: SandboxHTTPServer

    def do_GET(self) -> None:
        self._respond()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _respond(self) -> None:
        try:
            raw_body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self._send(control_error(400, "BAD_REQUEST", "Unreadable request body."))
            return
        url = urlsplit(self.path)
        request = ProviderRequest(
            method=self.command,
            path=url.path,
            query={key: values[0] for key, values in parse_qs(url.query, keep_blank_values=True).items()},
            headers=self.headers,
            raw_body=raw_body,
        )
        try:
            reply = serve(self.server.state, request)
        except Exception:
            # A bug of the sandbox's own: say so plainly rather than pass for a provider's injected failure.
            traceback.print_exc()
            reply = control_error(500, "SANDBOX_BUG", "The sandbox itself failed; see its stderr.")
        self._send(reply)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while (size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)) > 0:
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, reply: Reply) -> None:
        if reply.body is None or isinstance(reply.body, bytes):
            payload = reply.body or b""
        else:
            payload = json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            if reply.body is not None:
                self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            # The caller hung up (it timed out while we slept). The operation is applied all the same.
            self.close_connection = True

    def log_request(self, code="-", size="-") -> None:
        if self.server.verbose:
            sys.stderr.write(f"sandbox {self.command} {self.path} {code}\n")

    def log_message(self, format, *args) -> None:
        if self.server.verbose:
            sys.stderr.write(f"sandbox {format % args}\n")


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # Hundreds of callers connect at once in load tests; a short backlog would drop their SYNs.
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: SandboxState, *, verbose: bool = False):
        self.state = state
        self.verbose = verbose
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, SandboxRequestHandler)

    def process_request(self, request, client_address) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Hang up on every open connection, so keep-alive threads do not outlive the server."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address) -> None:
        # Callers that hang up mid-request are part of the plan (timeouts, load tests): not worth a traceback.
        if isinstance(sys.exception(), ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class ProviderSandbox:
    """The sandbox server. Binds at construction, so `url` is known before `start()`.

    `start()` serves from a daemon thread and `stop()` ends it; `serve_forever()` serves in the calling
    thread until interrupted. Usable as a context manager (`with ProviderSandbox().start() as sandbox:`).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0,
        fail_rate: float = 0.0,
        *,
        verbose: bool = False,
        event_target: EventTarget | None = None,
    ):
        self.state = SandboxState(latency_ms=latency_ms, fail_rate=fail_rate, event_target=event_target)
        self._httpd = SandboxHTTPServer((host, port), self.state, verbose=verbose)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ProviderSandbox:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="provider-sandbox", daemon=True
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (KeyboardInterrupt, SystemExit), then close."""
        try:
            self._httpd.serve_forever(poll_interval=0.1)
        finally:
            self._close()

    def stop(self) -> None:
        """Stop a sandbox started with `start()`, hang up on its callers and free its port."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._close()

    def _close(self) -> None:
        self._httpd.server_close()
        self._httpd.close_connections()

    def __enter__(self) -> ProviderSandbox:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
