"""SPDY/3.1, server side: the subset kubectl's port-forward (and old exec) speaks.

kubectl multiplexes streams over one connection with moby/spdystream, after
either `POST ... Upgrade: SPDY/3.1` (raw: the bytes follow the 101 on the
socket) or a WebSocket with subprotocol `SPDY/3.1+portforward.k8s.io`
(tunnelled: the same byte stream cut into binary messages whose
boundaries mean nothing). `Session` takes a reader and a writer, so both
run the same code: `SocketTransport` / `WebSocketTransport` adapt them.

The frames and the Framer are spdyframes.py's, the zlib header blocks
spdyheaders.py's; their names are re-exported here, so a user of the
protocol imports this one module (spdy.Data, spdy.Framer, spdy.FLAG_FIN).

Flow control: spdystream neither sends WINDOW_UPDATE nor honours windows,
so neither does this side; back-pressure is TCP's (a stream's inbound
buffer is bounded, and a full one stalls the reader, as spdystream does).

A stream, server view (client-initiated, odd ids, increasing)::

    C: SYN_STREAM id headers [FIN]   S: SYN_REPLY id {}   (on_stream decides)
    C/S: DATA id ...                 either side: DATA id FIN = done sending
    either side: RST_STREAM id status = abort both directions
    the stream is gone once both sides sent FIN, or after a RST.
"""
import collections
import socket
import threading
from typing import Callable

from minipod.runtime.apiserver.spdyframes import (  # noqa: F401  (some re-exported, see above)
    CANCEL, FLAG_FIN, FLAG_UNIDIRECTIONAL, GOAWAY_OK, GOAWAY_PROTOCOL_ERROR, PROTOCOL_ERROR,
    REFUSED_STREAM, Data, Framer, GoAway, Headers, Ping, RstStream, Settings, SynReply, SynStream,
    UnknownControl, WindowUpdate)
from minipod.runtime.apiserver.spdyheaders import (  # noqa: F401  (re-exported, see above)
    DICTIONARY, HeaderCompressor, HeaderDecompressor, SpdyError, parse_header_block)

MAX_DATA_CHUNK = 32 << 10         # per DATA frame we send (client-go's buffer size)
MAX_STREAM_BUFFER = 1 << 20       # inbound bytes buffered per stream
MAX_STREAMS = 1024                # open streams per connection; more are refused


# ------------------------------------------------------------- transports
class SocketTransport:
    """A raw upgraded socket (plain or TLS) as read/write callables."""

    def __init__(self, sock: socket.socket, trailing: bytes = b""):
        self.sock = sock
        self._pending = bytes(trailing)

    def read(self, n: int) -> bytes:
        if self._pending:
            out, self._pending = self._pending[:n], self._pending[n:]
            return out
        try:
            return self.sock.recv(n)
        except OSError:
            return b""

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def shutdown(self) -> None:
        """Wake a reader blocked in read() (the session is over)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class WebSocketTransport:
    """SPDY tunnelled in WebSocket binary messages (`SPDY/3.1+portforward.k8s.io`).

    Reads concatenate messages (their boundaries mean nothing); each write
    is one message. WS is a websocket.WebSocket (recv/send_binary/close).
    """

    def __init__(self, ws):
        self.ws = ws
        self._pending = b""

    def read(self, n: int) -> bytes:
        while not self._pending:
            message = self.ws.recv()
            if message is None:
                return b""
            self._pending = message
        out, self._pending = self._pending[:n], self._pending[n:]
        return out

    def write(self, data: bytes) -> None:
        if not self.ws.send_binary(data):
            raise BrokenPipeError("websocket is closed")

    def shutdown(self) -> None:
        self.ws.close()


# ------------------------------------------------------- session, streams
class StreamClosed(OSError):
    """Writing to a stream that was reset, finished or whose session ended."""


class Stream:
    """One SPDY stream as the server sees it (the client opened it)."""

    def __init__(self, session: "Session", stream_id: int, headers: dict, remote_fin: bool):
        self.session = session
        self.id = stream_id
        self.headers = headers
        self._cond = threading.Condition()
        self._inbox: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self.remote_closed = remote_fin     # peer sent FIN (or the stream/session ended)
        self.local_closed = False           # we sent FIN
        self.reset_status: int | None = None
        self.replied = False

    def __repr__(self):
        return f"<spdy.Stream {self.id} {self.headers}>"

    # -- outbound
    def reply(self, headers: dict | None = None, fin: bool = False) -> None:
        """SYN_REPLY (once). kubectl waits up to 30 s for it."""
        with self._cond:
            if self.replied or self.reset_status is not None:
                return
            self.replied = True
            if fin:
                self.local_closed = True
        self.session._send(SynReply(self.id, headers or {}, FLAG_FIN if fin else 0))
        if fin:
            self.session._maybe_forget(self)

    def write(self, data: bytes) -> None:
        """Send DATA (in chunks); StreamClosed once reset or half-closed."""
        if not self.replied:
            self.reply()
        view = memoryview(bytes(data))
        while view:
            chunk, view = view[:MAX_DATA_CHUNK], view[MAX_DATA_CHUNK:]
            self._check_writable()
            self.session._send(Data(self.id, bytes(chunk)))

    def _check_writable(self):
        if self.reset_status is not None:
            raise StreamClosed(f"spdy stream {self.id} was reset (status {self.reset_status})")
        if self.local_closed:
            raise StreamClosed(f"spdy stream {self.id} is closed for writing")
        if self.session.closed:
            raise StreamClosed(f"spdy stream {self.id}: the connection is gone")

    def close(self) -> None:
        """Half-close: DATA with FIN and no payload (idempotent)."""
        if not self.replied:
            self.reply()
        with self._cond:
            if self.local_closed or self.reset_status is not None or self.session.closed:
                return
            self.local_closed = True
        try:
            self.session._send(Data(self.id, b"", FLAG_FIN))
        except OSError:
            pass
        self.session._maybe_forget(self)

    def reset(self, status: int = CANCEL) -> None:
        """RST_STREAM: abort both directions (idempotent)."""
        with self._cond:
            if self.reset_status is not None:
                return
            self._end(status)
        try:
            if not self.session.closed:
                self.session._send(RstStream(self.id, status))
        except OSError:
            pass
        self.session._forget(self)

    # -- inbound
    def read(self, timeout: float | None = None) -> bytes:
        """Next chunk of DATA; b"" after the peer's FIN, a reset or the end
        of the connection. Raises TimeoutError after TIMEOUT seconds."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._inbox or self.remote_closed, timeout):
                raise TimeoutError(f"no data on spdy stream {self.id} for {timeout} s")
            if not self._inbox:
                return b""
            chunk = self._inbox.popleft()
            self._buffered -= len(chunk)
            self._cond.notify_all()
            return chunk

    def _deliver(self, data: bytes, fin: bool) -> None:
        """Called by the session's reader thread. Blocks while the buffer is
        full: TCP back-pressure, as in spdystream."""
        with self._cond:
            if data and not self.remote_closed:
                self._cond.wait_for(lambda: self._buffered < MAX_STREAM_BUFFER
                                    or self.remote_closed)
                if not self.remote_closed:
                    self._inbox.append(data)
                    self._buffered += len(data)
            if fin:
                self.remote_closed = True
            self._cond.notify_all()

    def _end(self, status: int | None) -> None:
        # caller holds self._cond
        if status is not None and self.reset_status is None:
            self.reset_status = status
        self.remote_closed = True
        self._cond.notify_all()

    @property
    def done(self) -> bool:
        return self.reset_status is not None or (self.remote_closed and self.local_closed)


class Session:
    """A server-side SPDY/3.1 connection.

    ON_STREAM(stream) is called in the reader thread for every new stream
    (with its headers); it must not block: it replies (stream.reply()),
    resets (stream.reset(REFUSED_STREAM)) or hands the stream to a thread.
    ON_PING(id) is called after each echoed ping (tests, idle timers).
    `serve()` runs the reader until the byte stream ends, a GOAWAY arrives
    and every stream is done, or the peer breaks the protocol; then every
    stream is ended (readers get b"", writers StreamClosed).
    """

    def __init__(self, read: Callable[[int], bytes], write: Callable[[bytes], None],
                 on_stream: Callable[[Stream], None], on_ping: Callable[[int], None] | None = None):
        self.framer = Framer(read, write)
        self.on_stream = on_stream
        self.on_ping = on_ping
        self.streams: dict[int, Stream] = {}
        self._lock = threading.Lock()
        self.last_stream_id = 0
        self.closed = False
        self.went_away = False
        self.error: str | None = None
        self.max_streams = MAX_STREAMS

    def _send(self, frame) -> None:
        if self.closed:
            raise StreamClosed("spdy connection is closed")
        try:
            self.framer.write_frame(frame)
        except OSError:
            self.closed = True
            raise

    def _forget(self, stream: Stream) -> None:
        with self._lock:
            if self.streams.get(stream.id) is stream:
                del self.streams[stream.id]

    def _maybe_forget(self, stream: Stream) -> None:
        if stream.done:
            self._forget(stream)

    def goaway(self, status: int = GOAWAY_OK) -> None:
        """Tell the peer no new streams will be accepted."""
        try:
            self._send(GoAway(self.last_stream_id, status))
        except OSError:
            pass

    def serve(self) -> None:
        try:
            while True:
                frame = self.framer.read_frame()
                if frame is None:
                    break
                self._handle(frame)
        except SpdyError as e:
            self.error = str(e)
            self.goaway(GOAWAY_PROTOCOL_ERROR)
        finally:
            self._end_all()

    def _end_all(self) -> None:
        self.closed = True
        with self._lock:
            streams, self.streams = list(self.streams.values()), {}
        for stream in streams:
            with stream._cond:
                stream._end(None)

    def _handle(self, frame) -> None:
        if isinstance(frame, Data):
            with self._lock:
                stream = self.streams.get(frame.stream_id)
            if stream is not None:   # data for a gone stream is dropped (spdystream)
                stream._deliver(frame.data, frame.fin)
                if frame.fin:
                    self._maybe_forget(stream)
        elif isinstance(frame, SynStream):
            self._new_stream(frame)
        elif isinstance(frame, RstStream):
            with self._lock:
                stream = self.streams.pop(frame.stream_id, None)
            if stream is not None:
                with stream._cond:
                    stream._end(frame.status)
        elif isinstance(frame, Ping):
            if frame.id & 1:         # the peer's ping (clients use odd ids): echo it
                try:
                    self._send(frame)
                except OSError:
                    pass
                if self.on_ping:
                    self.on_ping(frame.id)
        elif isinstance(frame, GoAway):
            self.went_away = True
        elif isinstance(frame, Headers):
            with self._lock:
                stream = self.streams.get(frame.stream_id)
            if stream is not None and frame.flags & FLAG_FIN:
                stream._deliver(b"", True)
                self._maybe_forget(stream)
        # SynReply (we open no streams), Settings, WindowUpdate, unknown: ignored.

    def _new_stream(self, frame: SynStream) -> None:
        sid = frame.stream_id
        if self.went_away:
            return                   # spdystream drops streams after GOAWAY
        if sid == 0 or not sid & 1 or sid <= self.last_stream_id:
            # spdystream's validateStreamId: ids are odd and increasing.
            try:
                self._send(RstStream(sid or 1, PROTOCOL_ERROR))
            except OSError:
                pass
            return
        self.last_stream_id = sid
        with self._lock:
            full = len(self.streams) >= self.max_streams
        if full:
            # Each forwarded connection holds 2 streams and 2 threads: a
            # client may not grow that without bound.
            try:
                self._send(RstStream(sid, REFUSED_STREAM))
            except OSError:
                pass
            return
        stream = Stream(self, sid, frame.headers, bool(frame.flags & FLAG_FIN))
        if frame.flags & FLAG_UNIDIRECTIONAL:
            stream.local_closed = True
        with self._lock:
            self.streams[sid] = stream
        self.on_stream(stream)

