"""WebSocket (RFC 6455) server side for exec, attach and port-forward.

The HTTP layer has parsed the upgrade request; this module answers it and
then speaks WebSocket on the socket the HTTP layer hands over. The framing
itself (masking, fragmentation, 7/16/64-bit lengths, close codes, UTF-8 of
text frames) is the `wsproto` library's: a small, well-kept sans-IO
implementation, so this file only does I/O, locking and Kubernetes' rules.

Handshake::

    C: GET /api/v1/namespaces/NS/pods/P/exec?...      HTTP/1.1
       Connection: Upgrade            Upgrade: websocket
       Sec-WebSocket-Version: 13      Sec-WebSocket-Key: <base64 of 16 bytes>
       Sec-WebSocket-Protocol: v5.channel.k8s.io[,v4.channel.k8s.io]
    S: HTTP/1.1 101 Switching Protocols
       Upgrade: websocket             Connection: Upgrade
       Sec-WebSocket-Accept: base64(SHA-1(key + 258EAFA5-E914-47DA-95CA-C5AB0DC85B11))
       Sec-WebSocket-Protocol: <the first of the client's list the server supports>

`handshake()` computes those headers (it never writes). client-go accepts
only a subprotocol it offered: when none fits, `HandshakeError` makes the
server answer a non-101 status, which is what sends kubectl to its SPDY
fallback. The Python client puts its whole list in ONE comma-separated
header; several headers are accepted too (`get_all` of an email.Message).

After the 101 (`WebSocket(sock)`)::

    C->S  masked frames: binary messages (maybe fragmented), ping, close
    S->C  unmasked frames: binary messages, pong for every ping, close

* `recv()` returns one whole message (binary, or text as UTF-8 bytes);
  None once the peer closed, the TCP stream ended or a frame was invalid.
* Pings are answered from inside `recv()`: kubectl pings every 5 s and
  gives up after 61 s without a pong, even while output flows, so some
  thread must always be in `recv()` for the session's lifetime.
* `send_binary()` may be called from several threads (exec relays stdout
  and stderr from two); one lock keeps each frame whole on the wire.
* `close(code, reason)` sends the close frame (1000 = normal); the caller
  closes the socket afterwards.
"""

import base64
import binascii
import hashlib
import socket
import threading
from collections.abc import Mapping

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import (BytesMessage, CloseConnection, Message, Ping,
                            TextMessage)
from wsproto.frame_protocol import CloseReason

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# A message bigger than this closes the session with 1009 (Message Too
# Big): kubectl's messages are stdin chunks and SPDY frames of <= 32 KiB.
MAX_MESSAGE = 16 << 20
RECV_CHUNK = 65536


class HandshakeError(ValueError):
    """The upgrade request cannot be accepted; the message says why.

    The server answers 400 (or 403/426 as it sees fit) with the message in
    a metav1.Status, which kubectl shows if its SPDY fallback fails too.
    """


def _header_values(headers, name: str) -> list[str]:
    """All values of header NAME, case-insensitively, from a Mapping or an
    email.message.Message (http.server's headers, which may repeat)."""
    if hasattr(headers, "get_all"):
        return [str(v) for v in (headers.get_all(name) or [])]
    lname = name.lower()
    return [str(v) for k, v in headers.items() if k.lower() == lname]


def _tokens(values: list[str]) -> list[str]:
    return [t.strip() for v in values for t in v.split(",") if t.strip()]


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 section 4.2.2)."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def handshake(request_headers: Mapping[str, str],
              offered: list[str]) -> tuple[dict, str | None]:
    """Check a WebSocket upgrade request; return (response headers, protocol).

    OFFERED is what this server supports for the endpoint, e.g.
    ["v5.channel.k8s.io", "v4.channel.k8s.io"] for exec. The client's list
    is walked in its own order and its first supported entry wins (as
    apimachinery's wsstream handshake does). A client that names no
    subprotocol gets none (protocol None: the kubelet's "" protocol); one
    that names only unsupported ones gets HandshakeError.
    The response headers go into the 101 answer as they are.
    """
    upgrade = [t.lower() for t in _tokens(_header_values(request_headers, "Upgrade"))]
    if "websocket" not in upgrade:
        raise HandshakeError('websocket upgrade: the "Upgrade" header must be "websocket"')
    connection = [t.lower() for t in _tokens(_header_values(request_headers, "Connection"))]
    if "upgrade" not in connection:
        raise HandshakeError('websocket upgrade: the "Connection" header must contain "Upgrade"')
    versions = _tokens(_header_values(request_headers, "Sec-WebSocket-Version"))
    if versions != ["13"]:
        raise HandshakeError(f"websocket upgrade: unsupported Sec-WebSocket-Version {versions!r}"
                             " (this server speaks 13)")
    keys = _header_values(request_headers, "Sec-WebSocket-Key")
    if len(keys) != 1:
        raise HandshakeError("websocket upgrade: exactly one Sec-WebSocket-Key header is required")
    key = keys[0].strip()
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 16:
        raise HandshakeError(f"websocket upgrade: Sec-WebSocket-Key {key!r} is not 16 bytes"
                             " in base64")
    wanted = _tokens(_header_values(request_headers, "Sec-WebSocket-Protocol"))
    chosen = None
    if wanted:
        chosen = next((p for p in wanted if p in offered), None)
        if chosen is None:
            raise HandshakeError(f"requested protocol(s) are not supported: {wanted};"
                                 f" supports {list(offered)}")
    response = {"Upgrade": "websocket", "Connection": "Upgrade",
                "Sec-WebSocket-Accept": accept_key(key)}
    if chosen is not None:
        response["Sec-WebSocket-Protocol"] = chosen
    return response, chosen


class WebSocket:
    """A server-side WebSocket on an upgraded socket (plain or TLS).

    TRAILING is any bytes the HTTP layer read past the request head (a
    client may send its first frame right behind the upgrade request).
    One thread reads (`recv`), any number write (`send_binary`, `close`).
    """

    def __init__(self, sock: socket.socket, trailing: bytes = b"",
                 max_message: int = MAX_MESSAGE):
        self._sock = sock
        self._conn = Connection(ConnectionType.SERVER, trailing_data=trailing)
        self._max = max_message
        self._state_lock = threading.Lock()   # wsproto's state (not thread-safe)
        self._write_lock = threading.Lock()   # one frame at a time on the wire
        self._parts: list[bytes] = []
        self._size = 0
        self._ended = False

    # -- sending ---------------------------------------------------------
    def _send(self, event) -> bool:
        """Serialize EVENT and write it; False when the session is closing."""
        with self._write_lock:
            with self._state_lock:
                try:
                    data = self._conn.send(event)
                except Exception:  # wsproto: LocalProtocolError in a closed state
                    return False
            try:
                self._sock.sendall(data)
            except OSError:
                return False
        return True

    def send_binary(self, data: bytes) -> bool:
        """Send DATA as one binary message; False if the session is over."""
        return self._send(BytesMessage(data=bytes(data)))

    def send_text(self, text: str) -> bool:
        """Send one text message (base64.channel.k8s.io style peers)."""
        return self._send(TextMessage(data=text))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send the close frame (once); the caller closes the socket."""
        with self._state_lock:
            state = self._conn.state
        if state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            self._send(CloseConnection(code=code, reason=reason))

    @property
    def closed(self) -> bool:
        """True once the peer's close (or EOF) was read by recv()."""
        return self._ended

    # -- receiving -------------------------------------------------------
    def recv(self) -> bytes | None:
        """Return the next whole message, or None at the end of the session."""
        while not self._ended:
            message = self._drain_events()
            if message is not None:
                return message
            if self._ended:
                break
            try:
                data = self._sock.recv(RECV_CHUNK)
            except OSError:
                data = b""
            with self._state_lock:
                self._conn.receive_data(data or None)
            if not data:
                self._ended = True
        return None

    def _drain_events(self) -> bytes | None:
        while True:
            with self._state_lock:
                event = next(self._conn.events(), None)
            if event is None:
                return None
            if isinstance(event, Ping):
                self._send(event.response())
            elif isinstance(event, CloseConnection):
                # Answer the peer's close (or our parse failure) and stop.
                self._send(event.response() if self._conn.state is
                           ConnectionState.REMOTE_CLOSING else
                           CloseConnection(code=event.code, reason=event.reason or ""))
                self._ended = True
                return None
            elif isinstance(event, Message):
                part = event.data.encode("utf-8") if isinstance(event, TextMessage) else bytes(event.data)
                self._size += len(part)
                if self._size > self._max:
                    self._send(CloseConnection(code=CloseReason.MESSAGE_TOO_BIG,
                                               reason=f"message larger than {self._max} bytes"))
                    self._ended = True
                    return None
                self._parts.append(part)
                if event.message_finished:
                    message = b"".join(self._parts)
                    self._parts, self._size = [], 0
                    return message
            # Pong and anything else: nothing to do.
