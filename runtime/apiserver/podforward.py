"""…/pods/NAME/portforward: the HTTP side (checks, the 101 answers), the
dial into the pod's network namespace, and the TLS relay.

The three wire forms and their relays are portforward.py's; this module
picks the form from the request:

    GET  + Upgrade: websocket, Sec-WebSocket-Protocol SPDY/3.1+portforward.k8s.io
                                      kubectl >= 1.31 (SPDY tunnelled in WebSocket)
    GET  + Upgrade: websocket, v4.channel.k8s.io, ?ports=P[,P]
                                      the Python client (kubelet's WebSocket form)
    POST + Upgrade: SPDY/3.1, X-Stream-Protocol-Version: portforward.k8s.io
                                      kubectl 1.30, and the fallback of later ones

Dialing: `dial(port)` connects to 127.0.0.1:port (then [::1]:port) from a
short-lived thread that first setns()es into /run/netns/minipod-POD: a
socket keeps the namespace it was made in, so the rest of the server
never leaves the host's (netns/portforward.py explains the rule).

TLS from several threads: port-forward reads the client from one thread
and writes to it from several (one per forwarded connection). OpenSSL does
not promise that SSL_read and SSL_write on one SSL object may run at the
same time, so no thread but one touches the TLS socket: `TlsRelay` copies
between it and one end of a socketpair(2) in a single thread
(non-blocking, a bounded buffer per direction, so a slow reader on one
side never stops the other direction), and the protocol code uses the
plain other end, where concurrent recv and send are the kernel's business.
"""
from __future__ import annotations

import contextlib
import errno
import os
import selectors
import socket
import ssl
import threading

from minipod.runtime.apiserver import portforward, websocket
from minipod.runtime.apiserver.objects import ApiError

BUFFER = 256 << 10          # per direction, in the relay
CHUNK = 64 << 10
FLUSH_SECONDS = 30          # for the last bytes to a client, once the session is over


class TlsRelay:
    """Copy bytes between a TLS socket and a plain socketpair end, in one thread.

        relay = TlsRelay(tls_sock)
        use(relay.plain)            # any threads; blocking socket
        relay.plain.shutdown(socket.SHUT_WR)    # done: the relay flushes, then ends
        relay.join()
        relay.plain.close()

    EOF on either side is passed on as shutdown(SHUT_WR) (TLS: the client
    sees the TCP FIN once the socket is closed by the HTTP layer); an error
    on either side ends the relay and shuts the plain end down, which wakes
    any thread blocked on it."""

    def __init__(self, tls: ssl.SSLSocket):
        self.tls = tls
        self.plain, self._inner = socket.socketpair()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="minipod:api-tls-relay")
        self._thread.start()

    def join(self) -> None:
        self._thread.join()
        self._inner.close()

    def _run(self) -> None:
        tls, inner = self.tls, self._inner
        tls.setblocking(False)
        inner.setblocking(False)
        up = bytearray()            # client -> inner
        down = bytearray()          # inner -> client
        tls_eof = inner_eof = up_shut = False
        tls_wants_write = False     # a TLS read needs the socket writable (rare)
        sel = selectors.DefaultSelector()
        try:
            while True:
                # client -> inner
                while not tls_eof and len(up) < BUFFER:
                    try:
                        data = tls.recv(CHUNK)
                    except ssl.SSLWantReadError:
                        break
                    except ssl.SSLWantWriteError:
                        tls_wants_write = True
                        break
                    tls_wants_write = False
                    if not data:
                        tls_eof = True
                    up += data
                if up:
                    try:
                        del up[:inner.send(up)]
                    except BlockingIOError:
                        pass
                if tls_eof and not up and not up_shut:
                    inner.shutdown(socket.SHUT_WR)
                    up_shut = True
                # inner -> client
                while not inner_eof and len(down) < BUFFER:
                    try:
                        data = inner.recv(CHUNK)
                    except BlockingIOError:
                        break
                    if not data:
                        inner_eof = True
                    down += data
                while down:
                    try:
                        del down[:tls.send(down[:CHUNK])]
                    except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                        break
                if inner_eof and not down:
                    return                  # the protocol side is done and all of it sent
                events_tls = 0
                if (not tls_eof and len(up) < BUFFER) and not tls.pending():
                    events_tls |= selectors.EVENT_READ
                if down or tls_wants_write:
                    events_tls |= selectors.EVENT_WRITE
                events_inner = 0
                if not inner_eof and len(down) < BUFFER:
                    events_inner |= selectors.EVENT_READ
                if up:
                    events_inner |= selectors.EVENT_WRITE
                if tls.pending() and len(up) < BUFFER:
                    continue                # decrypted bytes already waiting
                for sock, events in ((tls, events_tls), (inner, events_inner)):
                    with contextlib.suppress(KeyError):
                        sel.unregister(sock)
                    if events:
                        sel.register(sock, events)
                if not sel.get_map():
                    return
                if not sel.select(FLUSH_SECONDS if inner_eof else None) and inner_eof:
                    return              # a client that reads nothing more: give up the rest
        except OSError:
            pass                            # a reset on either side: the session is over
        finally:
            sel.close()
            with contextlib.suppress(OSError):
                inner.shutdown(socket.SHUT_RDWR)


def dialer(netns_path: str, pod: str):
    """DIAL(port) -> a socket connected to localhost:port inside the pod's
    network namespace; raises OSError (connect's errno) on failure."""
    def dial(port: int) -> socket.socket:
        result: list = []

        def inside() -> None:
            from minipod import libc
            try:
                fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    libc.setns(fd, libc.CLONE_NEWNET, netns_path)
                finally:
                    os.close(fd)
                last = None
                for family, ip in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
                    try:
                        sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
                    except OSError as e:
                        last = last or e
                        continue
                    try:
                        sock.settimeout(10)
                        sock.connect((ip, port))
                        sock.settimeout(None)
                        result.append(sock)
                        return
                    except OSError as e:
                        sock.close()
                        if family == socket.AF_INET or e.errno not in (
                                errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT, errno.ENETUNREACH):
                            last = last or e
                result.append(last or OSError(errno.ECONNREFUSED, "connection refused"))
            except OSError as e:
                result.append(e)

        # a fresh thread per dial: it alone changes namespace, and ends with its work
        t = threading.Thread(target=inside, name=f"minipod:pf-dial-{pod}", daemon=True)
        t.start()
        t.join()
        if isinstance(result[0], BaseException):
            raise result[0]
        return result[0]
    return dial


def trailing_bytes(handler) -> bytes:
    """Bytes BaseHTTPRequestHandler's rfile read past the request head (a
    client may send its first frames right behind the upgrade request)."""
    sock = handler.connection
    sock.setblocking(False)
    try:
        return handler.rfile.read1(65536) or b""
    except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return b""
    finally:
        sock.setblocking(True)


def serve(handler, method: str, record, q: dict) -> None:
    """Check the request and the pod (its PodRecord), answer 101, forward
    until the client leaves."""
    name, uid = record.name, record.uid
    upgrade = handler.headers.get("Upgrade", "").lower()
    if method == "GET" and upgrade == "websocket":
        try:
            response, protocol = websocket.handshake(handler.headers,
                                                     portforward.WEBSOCKET_PROTOCOLS)
        except websocket.HandshakeError as e:
            raise ApiError(400, "BadRequest", str(e))
        if protocol is None:
            protocol = portforward.PROTOCOL_WS_V4   # the kubelet's "" protocol is v4's framing
        ports: list[int] = []
        if protocol == portforward.PROTOCOL_WS_V4:
            try:
                ports = portforward.parse_ports(q.get("ports") or [])
            except portforward.PortForwardError as e:
                raise ApiError(400, "BadRequest", str(e))
    elif method == "POST" and upgrade.startswith("spdy/3.1"):
        offered = [p.strip() for h in handler.headers.get_all("X-Stream-Protocol-Version") or []
                   for p in h.split(",")]
        if portforward.PROTOCOL_SPDY not in offered:
            raise ApiError(403, "Forbidden",
                           f"unable to upgrade: unable to negotiate protocol: client supports "
                           f"{offered}, server supports [{portforward.PROTOCOL_SPDY}]")
        protocol = portforward.PROTOCOL_SPDY
        response = {"Connection": "Upgrade", "Upgrade": "SPDY/3.1",
                    "X-Stream-Protocol-Version": portforward.PROTOCOL_SPDY}
        ports = []
    else:
        raise ApiError(400, "BadRequest",
                       "Upgrade request required: port-forward takes a WebSocket GET "
                       f"({', '.join(portforward.WEBSOCKET_PROTOCOLS)}) or a SPDY/3.1 POST")
    from minipod.runtime.api import podstatus
    if podstatus.phase(record) != "Running" or not any(
            c.state == "running" for c in record.containers):
        raise ApiError(400, "BadRequest",
                       f"unable to upgrade connection: pod {name} is not running")
    from minipod.runtime.paths import record_key
    netns = str(handler.server.paths.netns_path(record_key(record)))
    if not os.path.exists(netns):
        raise ApiError(400, "BadRequest", f"unable to upgrade connection: pod {name} has no "
                                          f"network namespace ({netns})")
    handler.send_response(101, "Switching Protocols")
    for k, v in response.items():
        handler.send_header(k, v)
    handler.end_headers()
    handler.close_connection = True
    trailing = trailing_bytes(handler)
    tls = handler.connection
    tls.settimeout(None)
    relay = TlsRelay(tls)
    plain = relay.plain
    try:
        if protocol == portforward.PROTOCOL_SPDY:
            from minipod.runtime.apiserver import spdy
            transport = spdy.SocketTransport(plain, trailing=trailing)
        else:
            transport = websocket.WebSocket(plain, trailing=trailing)
        portforward.serve_portforward(transport, protocol, dialer(netns, name), ports=ports,
                                      pod=name, uid=uid)
    finally:
        with contextlib.suppress(OSError):
            plain.shutdown(socket.SHUT_WR)      # the relay sends what is left, then ends
        relay.join()
        plain.close()
