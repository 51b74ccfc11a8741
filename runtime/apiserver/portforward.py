"""Port-forward for `pods/NAME/portforward`: the three wire forms clients use.

The HTTP layer answers the upgrade, then calls `serve_portforward()`, which
returns when the client is gone and every relay it started has ended (no
thread or socket outlives the call). DIAL(port) connects to
127.0.0.1:port inside the pod (netns/portforward.py's in-netns connect)
and raises on failure.

1. Raw SPDY (`POST`, `Upgrade: SPDY/3.1`, `X-Stream-Protocol-Version:
   portforward.k8s.io`; kubectl <= 1.30 and the fallback of later ones),
   protocol PROTOCOL_SPDY, TRANSPORT = the upgraded socket.
2. SPDY tunnelled in WebSocket binary messages (kubectl >= 1.31),
   protocol PROTOCOL_TUNNEL, TRANSPORT = a websocket.WebSocket.
   Both SPDY forms then run, per forwarded local connection (client-go
   tools/portforward handleConnection; kubelet portforward/httpstream.go)::

       C: SYN_STREAM a {streamtype: error, port: P, requestid: R}  S: SYN_REPLY a
       C: DATA a FIN                          (the client never writes on it)
       C: SYN_STREAM b {streamtype: data,  port: P, requestid: R}  S: SYN_REPLY b
                                              S: dial(P)
       C<->S DATA b ...  (each side's FIN = that side is done writing:
                          passed on as shutdown(SHUT_WR) / DATA FIN)
       S: DATA a "error forwarding port P to pod NAME, uid UID: ..." FIN   (dial failed)
       S: DATA a FIN                          (no error)
       C: RST_STREAM a, b CANCEL              (client done with the connection)

   Streams pair up by `requestid` (old clients without it: by stream id,
   as the kubelet guesses); a pair not complete within STREAM_TIMEOUT gets
   the kubelet's "timed out waiting for streams" on its error stream. A
   stream without a valid `port`/`streamtype` is reset, as the kubelet's
   httpStreamReceived refuses it.

3. The kubelet WebSocket form (`v4.channel.k8s.io`, `?ports=P1,P2`; the
   Python client), protocol PROTOCOL_WS_V4, PORTS = the parsed list::

       port i: channel 2i = data (both ways), channel 2i+1 = error (S->C)
       S: [2i] P_le16   S: [2i+1] P_le16    (first frame of each channel)
       C<->S [2i] bytes ...                 S: [2i+1] "error forwarding ..."
       S: WebSocket close 1000 once every port's connection has ended

Each forwarded connection costs two threads (one per direction), which
end when either the pod or the client side is gone.
"""

import os
import socket
import threading
import time
from typing import Callable

from . import spdy
from .channels import V4

PROTOCOL_SPDY = "portforward.k8s.io"
PROTOCOL_TUNNEL = "SPDY/3.1+portforward.k8s.io"
PROTOCOL_WS_V4 = V4
# What the WebSocket handshake may offer for pods/portforward, best first.
WEBSOCKET_PROTOCOLS = [PROTOCOL_TUNNEL, PROTOCOL_WS_V4]
STREAM_TIMEOUT = 30.0     # kubelet's default streamCreationTimeout
RECV_CHUNK = 32 << 10


class PortForwardError(ValueError):
    """A bad port-forward request (the server answers 400 with the message)."""


def parse_ports(values: list[str]) -> list[int]:
    """The `ports` query values of a v4 WebSocket request, as the kubelet
    parses them (NewV4Options): repeated and/or comma-separated, 1..65535."""
    if not values:
        raise PortForwardError('query parameter "port" is required')
    ports = []
    for value in values:
        if not value:
            raise PortForwardError('query parameter "port" cannot be empty')
        for p in value.split(","):
            if not p.isdigit() or int(p) > 65535:
                raise PortForwardError(f'unable to parse "{value}" as a port')
            if int(p) < 1:
                raise PortForwardError(f'port "{value}" must be > 0')
            ports.append(int(p))
    return ports


def describe_dial_error(port: int, e: BaseException) -> str:
    """Go-style text for a failed connect inside the pod."""
    if isinstance(e, OSError) and e.errno:
        return f"dial tcp4 127.0.0.1:{port}: connect: {os.strerror(e.errno).lower()}"
    return str(e) or type(e).__name__


def _shutdown(sock: socket.socket, how: int) -> None:
    try:
        sock.shutdown(how)
    except OSError:
        pass


class _Relays:
    """The pod-side sockets and threads of one port-forward session."""

    def __init__(self):
        self._lock = threading.Lock()
        self.sockets: set[socket.socket] = set()
        self.threads: list[threading.Thread] = []
        self.closed = False

    def start(self, target, *args) -> None:
        t = threading.Thread(target=target, args=args, daemon=True,
                             name="minipod:portforward")
        with self._lock:
            self.threads = [x for x in self.threads if x.is_alive()]
            self.threads.append(t)
        t.start()

    def add_socket(self, sock: socket.socket) -> bool:
        with self._lock:
            if self.closed:
                return False
            self.sockets.add(sock)
            return True

    def drop_socket(self, sock: socket.socket) -> None:
        with self._lock:
            self.sockets.discard(sock)
        sock.close()

    def shutdown_all(self) -> None:
        """The client is gone: wake every relay blocked on a pod socket."""
        with self._lock:
            self.closed = True
            socks = list(self.sockets)
        for sock in socks:
            _shutdown(sock, socket.SHUT_RDWR)

    def join(self) -> None:
        while True:
            with self._lock:
                threads = [t for t in self.threads if t.is_alive()]
            if not threads:
                return
            for t in threads:
                t.join()


# ------------------------------------------------------------------ SPDY
class _Pair:
    def __init__(self, request_id: str):
        self.request_id = request_id
        self.data: spdy.Stream | None = None
        self.error: spdy.Stream | None = None
        self.created = time.monotonic()


class _SpdyForwarder:
    def __init__(self, dial, pod, uid):
        self.dial = dial
        self.pod, self.uid = pod, uid
        self.pairs: dict[str, _Pair] = {}
        self.relays = _Relays()

    def on_stream(self, stream: spdy.Stream) -> None:
        """New stream (reader thread): validate, reply, pair, maybe start."""
        self._expire()
        port = stream.headers.get("port", "")
        kind = stream.headers.get("streamtype", "")
        if not port.isdigit() or not 1 <= int(port) <= 65535 or kind not in ("data", "error"):
            stream.reset(spdy.CANCEL)    # the kubelet's newStreamHandler error -> Reset
            return
        stream.reply()
        rid = stream.headers.get("requestid", "")
        if not rid:                      # pre-1.6 clients: guess from the stream id
            rid = str(stream.id if kind == "error" else stream.id - 2)
        pair = self.pairs.setdefault(rid, _Pair(rid))
        if getattr(pair, kind) is not None:
            msg = (f"error processing stream for request {rid}: "
                   f"{kind} stream already assigned")
            self._print_error(pair, msg)
            stream.reset(spdy.CANCEL)
            return
        setattr(pair, kind, stream)
        if pair.data is not None and pair.error is not None:
            del self.pairs[rid]
            self.relays.start(self._forward, pair)

    def _print_error(self, pair: _Pair, msg: str) -> None:
        if pair.error is not None:
            try:
                pair.error.write(msg.encode())
            except OSError:
                pass

    def _expire(self) -> None:
        now = time.monotonic()
        for rid, pair in list(self.pairs.items()):
            if now - pair.created > STREAM_TIMEOUT:
                del self.pairs[rid]
                self._print_error(pair, f"(conn=minipod, request={rid}) timed out waiting for streams")
                for s in (pair.data, pair.error):
                    if s is not None:
                        s.reset(spdy.CANCEL)

    def drop_incomplete(self) -> None:
        for pair in self.pairs.values():
            for s in (pair.data, pair.error):
                if s is not None:
                    s.reset(spdy.CANCEL)
        self.pairs.clear()

    def _forward(self, pair: _Pair) -> None:
        data, error = pair.data, pair.error
        port = int(data.headers["port"])
        try:
            sock = self.dial(port)
        except Exception as e:  # the dial's own error, whatever its kind, goes to the client
            msg = (f"error forwarding port {port} to pod {self.pod}, uid {self.uid}: "
                   f"{describe_dial_error(port, e)}")
            self._print_error(pair, msg)
            error.close()
            data.close()
            return
        if not self.relays.add_socket(sock):
            sock.close()
            return
        try:
            up = threading.Thread(target=self._client_to_pod, args=(data, sock), daemon=True,
                                  name="minipod:portforward")
            up.start()
            try:
                while True:
                    chunk = sock.recv(RECV_CHUNK)
                    if not chunk:
                        break
                    data.write(chunk)
            except OSError:             # pod reset, or the stream is gone (StreamClosed)
                pass
            data.close()                 # FIN: the pod is done sending
            up.join()
        finally:
            error.close()
            self.relays.drop_socket(sock)

    @staticmethod
    def _client_to_pod(data: spdy.Stream, sock: socket.socket) -> None:
        try:
            while True:
                chunk = data.read()
                if not chunk:
                    break
                sock.sendall(chunk)
        except OSError:
            pass
        if data.reset_status is not None or data.session.closed:
            _shutdown(sock, socket.SHUT_RDWR)   # aborted: wake the other direction too
        else:
            _shutdown(sock, socket.SHUT_WR)     # the client's FIN, passed on


def _serve_spdy(read, write, dial, pod, uid) -> str | None:
    fwd = _SpdyForwarder(dial, pod, uid)
    session = spdy.Session(read, write, fwd.on_stream)
    try:
        session.serve()
    finally:
        fwd.drop_incomplete()
        fwd.relays.shutdown_all()
        fwd.relays.join()
    return session.error


# ------------------------------------------------------------ v4 channels
def _serve_ws_v4(ws, dial, ports: list[int], pod, uid) -> None:
    relays = _Relays()
    socks: dict[int, socket.socket] = {}
    remaining = [len(ports)]
    lock = threading.Lock()

    def port_done():
        with lock:
            remaining[0] -= 1
            last = remaining[0] == 0
        if last:
            ws.close(1000)

    def pod_to_client(i: int, sock: socket.socket):
        try:
            while True:
                chunk = sock.recv(RECV_CHUNK)
                if not chunk or not ws.send_binary(bytes((2 * i,)) + chunk):
                    break
        except OSError:
            pass
        port_done()

    for i, port in enumerate(ports):
        prefix = port.to_bytes(2, "little")
        ws.send_binary(bytes((2 * i,)) + prefix)
        ws.send_binary(bytes((2 * i + 1,)) + prefix)
    for i, port in enumerate(ports):
        try:
            sock = dial(port)
        except Exception as e:  # reported to the client on the port's error channel
            msg = (f"error forwarding port {port} to pod {pod}, uid {uid}: "
                   f"{describe_dial_error(port, e)}")
            ws.send_binary(bytes((2 * i + 1,)) + msg.encode())
            port_done()
            continue
        relays.add_socket(sock)
        socks[2 * i] = sock
        relays.start(pod_to_client, i, sock)
    try:
        while True:
            message = ws.recv()
            if message is None:
                break
            if not message:
                continue
            sock = socks.get(message[0])
            if sock is None:
                continue                 # unknown channel, or a port that failed: dropped
            try:
                sock.sendall(message[1:])
            except OSError:
                pass
    finally:
        relays.shutdown_all()
        relays.join()
        for sock in socks.values():
            relays.drop_socket(sock)
        ws.close(1000)


# ------------------------------------------------------------- entry point
def serve_portforward(transport, protocol: str, dial: Callable[[int], socket.socket],
                      ports: list[int] = (), pod: str = "", uid: str = "") -> None:
    """Serve one upgraded port-forward connection until the client leaves.

    TRANSPORT: for PROTOCOL_SPDY the upgraded socket (or a
    spdy.SocketTransport carrying bytes read past the request); for
    PROTOCOL_TUNNEL and PROTOCOL_WS_V4 a websocket.WebSocket. POD and UID
    only fill the kubelet's error message. The caller closes the socket.
    """
    if protocol == PROTOCOL_SPDY:
        t = transport if hasattr(transport, "read") else spdy.SocketTransport(transport)
        _serve_spdy(t.read, t.write, dial, pod, uid)
    elif protocol == PROTOCOL_TUNNEL:
        t = spdy.WebSocketTransport(transport)
        try:
            _serve_spdy(t.read, t.write, dial, pod, uid)
        finally:
            transport.close(1000)
    elif protocol == PROTOCOL_WS_V4:
        if not ports:
            raise PortForwardError('query parameter "port" is required')
        _serve_ws_v4(transport, dial, list(ports), pod, uid)
    else:
        raise PortForwardError(f"unsupported port-forward protocol {protocol!r}; "
                               f"supported: {PROTOCOL_SPDY}, {', '.join(WEBSOCKET_PROTOCOLS)}")
