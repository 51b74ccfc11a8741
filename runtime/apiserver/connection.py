"""One client connection, HTTP/1.1: read a request, write an answer.

The plumbing under the routes (server.py's Handler is a Connection): the
request body (Content-Length or chunked, at most MAX_BODY; more is 413 and
the rest is read and dropped before the close, so the answer is not lost to
a reset), answers as JSON (gzip when large and accepted), chunked streams
for watches and logs, whether a streaming client is still there, and the
deadlines that cut off a client trickling its TLS handshake or headers.

    Deadlines, DEADLINES   one thread for all connections: shuts down late sockets
    Connection             BaseHTTPRequestHandler with the readers and writers
    log(msg)               a timestamped line on stderr (the apiserver's log)
"""
from __future__ import annotations

import gzip
import json
import os
import select
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler

from minipod.runtime.apiserver import discovery
from minipod.runtime.apiserver.objects import ApiError

MAX_BODY = 3 * 1024 * 1024     # kube-apiserver's MaxRequestBodyBytes
DISCARD_BYTES = 64 << 20       # read and dropped after a 413, at most
IDLE_CONNECTION_SECONDS = 120
HANDSHAKE_SECONDS = 10         # for the whole TLS handshake
HEADER_SECONDS = 32            # for a request's headers, from their first byte (kube-apiserver's
                               # ReadHeaderTimeout): a client trickling them is cut off
VERBOSE = bool(os.environ.get("MINIPOD_API_VERBOSE"))
TABLE = {"type": "application/json", "as": "Table", "g": "meta.k8s.io", "v": "v1"}


def log(msg: str) -> None:
    sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} apiserver[{os.getpid()}]: {msg}\n")
    sys.stderr.flush()


class Deadlines:
    """Connections that must finish a step (the TLS handshake, a request's
    headers) by a time: one thread for all of them shuts down the socket of
    the late ones, which ends the blocked read in the connection's thread.
    A per-read timeout alone cannot: a byte every few seconds resets it.

    Keyed by fd (wrap_socket moves the fd to a new socket object). The
    shutdown runs under the lock that clear() takes, and a connection clears
    its fd before closing it, so a late shutdown never hits a reused fd."""

    def __init__(self):
        self.lock = threading.Lock()
        self.due: dict[int, float] = {}
        self.thread: threading.Thread | None = None

    def set(self, fd: int, seconds: float) -> None:
        with self.lock:
            self.due[fd] = time.monotonic() + seconds
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, daemon=True,
                                               name="minipod:api-deadlines")
                self.thread.start()

    def clear(self, fd: int) -> None:
        with self.lock:
            self.due.pop(fd, None)

    def _run(self) -> None:
        while True:
            time.sleep(1)
            now = time.monotonic()
            with self.lock:
                for fd in [fd for fd, t in self.due.items() if t <= now]:
                    del self.due[fd]
                    try:   # on a dup of the fd: the SSL object stays its reader's alone
                        with socket.socket(fileno=os.dup(fd)) as dup:
                            dup.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass


DEADLINES = Deadlines()


def _one(q: dict, key: str, default=None):
    """The value of query parameter KEY (repeated: the last one), else DEFAULT."""
    values = q.get(key)
    return values[-1] if values else default


class Connection(BaseHTTPRequestHandler):
    """The readers and writers of one connection; the subclass routes
    (dispatch(method)). Errors are ApiError, answered as metav1.Status."""

    protocol_version = "HTTP/1.1"
    server_version = "minipod-apiserver"
    timeout = IDLE_CONNECTION_SECONDS

    def log_message(self, fmt, *args) -> None:
        if VERBOSE:
            log(f"{self.client_address[0]} {fmt % args}")

    def handle_one_request(self) -> None:
        """One request; its headers must all arrive within HEADER_SECONDS of
        their first byte (waiting for that byte is the idle timeout's)."""
        try:
            if not self.rfile.peek(1):
                self.close_connection = True
                return
        except (OSError, ValueError):
            self.close_connection = True
            return
        fd = self.connection.fileno()
        DEADLINES.set(fd, HEADER_SECONDS)
        try:
            super().handle_one_request()
        finally:
            DEADLINES.clear(fd)

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    # ---- plumbing ------------------------------------------------------------

    def read_body(self) -> bytes:
        """The request's body (Content-Length or chunked), at most MAX_BODY
        bytes: more is 413 in kube-apiserver's words, a malformed length 400."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                line = self.rfile.readline(100)
                try:
                    size = int(line.split(b";")[0].strip() or b"0", 16)
                except ValueError:
                    self.close_connection = True
                    raise ApiError(400, "BadRequest", f"invalid chunk size {line[:20]!r}")
                if size == 0:
                    self.rfile.readline(100)
                    return data
                if len(data) + size > MAX_BODY:
                    raise self.too_large()
                data += self.rfile.read(size)
                self.rfile.readline(100)
        text = self.headers.get("Content-Length") or "0"
        if not text.isdigit():          # int() would take "-5" and read to EOF
            self.close_connection = True
            raise ApiError(400, "BadRequest", f"invalid Content-Length {text[:20]!r}")
        length = int(text)
        if length > MAX_BODY:
            raise self.too_large()
        return self.rfile.read(length) if length else b""

    def too_large(self) -> ApiError:
        self.close_connection = True
        self.unread = True
        return ApiError(413, "RequestEntityTooLarge",
                        f"Request entity too large: limit is {MAX_BODY}")

    def discard_unread(self) -> None:
        """After an answer to a body too large: read and drop what the client
        still sends (a few seconds, DISCARD_BYTES at most) before the close,
        so that the close is no reset that loses the answer on its way (Go's
        http server waits the same way before it closes)."""
        deadline = time.monotonic() + 5
        left = DISCARD_BYTES
        try:
            self.connection.settimeout(1)
            while left > 0 and time.monotonic() < deadline:
                data = self.connection.recv(min(left, 1 << 16))
                if not data:
                    return
                left -= len(data)
        except (OSError, ssl.SSLError):
            pass

    def send_json(self, code: int, obj, content_type: str = "application/json",
                  headers: list[tuple[str, str]] = ()) -> None:
        body = json.dumps(obj, separators=(",", ":")).encode()
        self.send_bytes(code, body, content_type, headers)

    def send_bytes(self, code: int, body: bytes, content_type: str,
                   headers: list[tuple[str, str]] = ()) -> None:
        gz = len(body) > 16384 and "gzip" in self.headers.get("Accept-Encoding", "")
        if gz:
            body = gzip.compress(body, 1)
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache, private")
        if gz:
            self.send_header("Content-Encoding", "gzip")
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def start_stream(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def end_stream(self) -> None:
        try:
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True

    def client_gone(self) -> bool:
        """Did the client close a connection it should only be reading from?"""
        try:
            ready, _, _ = select.select([self.connection], [], [], 0)
            if not ready:
                return False
            self.connection.settimeout(0.05)
            try:
                return self.connection.recv(1) == b""
            finally:
                self.connection.settimeout(None)
        except (TimeoutError, ssl.SSLWantReadError, BlockingIOError):
            return False
        except OSError:
            return True

    def wants_table(self) -> bool:
        return any(all(e.get(k) == v for k, v in TABLE.items())
                   for e in discovery.accept_params(self.headers.get("Accept", "")))

    def decode(self, body: bytes) -> dict:
        """A request body as JSON (or YAML); a missing Content-Type means JSON."""
        ctype = self.headers.get("Content-Type", "application/json")
        if "protobuf" in ctype:
            raise ApiError(415, "UnsupportedMediaType",
                           'the body of the request was in an unknown format - accepted media '
                           'types include: application/json, application/yaml')
        from minipod.runtime.apiserver import decoding
        obj = decoding.loads(body, yaml="yaml" in ctype)
        if not isinstance(obj, dict):
            raise ApiError(400, "BadRequest",
                           "couldn't get version/kind; json parse error: expected an object")
        return obj
