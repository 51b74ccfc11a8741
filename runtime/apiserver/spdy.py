"""SPDY/3.1, server side: the subset kubectl's port-forward (and old exec) speaks.

kubectl multiplexes streams over one connection with moby/spdystream, after
either `POST ... Upgrade: SPDY/3.1` (raw: the bytes follow the 101 on the
socket) or a WebSocket with subprotocol `SPDY/3.1+portforward.k8s.io`
(tunnelled: the same byte stream cut into binary messages whose
boundaries mean nothing). `Session` takes a reader and a writer, so both
run the same code: `SocketTransport` / `WebSocketTransport` adapt them.

Frames (big-endian; spdystream spdy/types.go)::

    control |1| version=3 (15) | type (16) | flags (8) | length (24) | payload
    data    |0| stream-id (31)             | flags (8) | length (24) | data

    type 1 SYN_STREAM    stream-id, assoc-id, pri(3)+unused(5), slot(8), header block
         2 SYN_REPLY     stream-id, header block
         3 RST_STREAM    stream-id, status (5 CANCEL, 1 PROTOCOL_ERROR, ...)
         4 SETTINGS      n, n x (flags(8) id(24), value(32))      ignored
         6 PING          id(32): echoed when the peer started it (odd id)
         7 GOAWAY        last-good-stream-id, status
         8 HEADERS       stream-id, header block                   accepted, unused
         9 WINDOW_UPDATE stream-id, delta                          ignored
    flags FIN 0x01 (sender half-closes), UNIDIRECTIONAL 0x02

Header block = zlib(u32 count, count x (u32 len, name, u32 len, value)),
names lowercase, several values of a name joined by NUL. The zlib streams
use the SPDY/3 preset dictionary and there is ONE compression context per
direction for the whole connection, flushed (Z_SYNC_FLUSH) at the end of
each block: a fresh context per frame breaks on the second frame. So the
compressor is used only under the write lock, in wire order.

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
import struct
import threading
import zlib
from dataclasses import dataclass, field
from typing import Callable

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS = 1, 2, 3, 4
NOOP, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 5, 6, 7, 8, 9
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
# RST_STREAM status codes
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, UNSUPPORTED_VERSION = 1, 2, 3, 4
CANCEL, INTERNAL_ERROR, FLOW_CONTROL_ERROR, STREAM_IN_USE = 5, 6, 7, 8
STREAM_ALREADY_CLOSED = 9
# GOAWAY status codes
GOAWAY_OK, GOAWAY_PROTOCOL_ERROR, GOAWAY_INTERNAL_ERROR = 0, 1, 2

MAX_HEADER_BLOCK = 256 << 10      # decompressed bytes; refuses zlib bombs
MAX_HEADERS = 1024
MAX_DATA_CHUNK = 32 << 10         # per DATA frame we send (client-go's buffer size)
MAX_STREAM_BUFFER = 1 << 20       # inbound bytes buffered per stream
MAX_STREAMS = 1024                # open streams per connection; more are refused

# The SPDY/3 header dictionary (draft-mbelshe-httpbis-spdy-00 section 2.6.10.1,
# spdystream spdy/dictionary.go): 65 length-prefixed words, then raw text.
_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding"
    " accept-language accept-ranges age allow authorization cache-control connection"
    " content-base content-encoding content-language content-length content-location"
    " content-md5 content-range content-type date etag expect expires from host if-match"
    " if-modified-since if-none-match if-range if-unmodified-since last-modified location"
    " max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after"
    " server te trailer transfer-encoding upgrade user-agent vary via warning"
    " www-authenticate method get status 200_OK version HTTP/1.1 url public set-cookie"
    " keep-alive origin")
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417"
    "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
    "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
    "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct"
    " Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
    "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8"
    "charset=iso-8859-1,utf-,*,enq=0.")


def _dictionary() -> bytes:
    words = [w.replace("_", " ") for w in _WORDS.split(" ")]   # "200_OK" is "200 OK"
    return b"".join(struct.pack(">I", len(w)) + w.encode() for w in words) + _TAIL.encode()


DICTIONARY = _dictionary()


class SpdyError(Exception):
    """The peer broke the protocol; the session ends (with GOAWAY if possible)."""


# ---------------------------------------------------------------- frames
@dataclass
class SynStream:
    stream_id: int
    headers: dict
    flags: int = 0
    assoc_id: int = 0
    priority: int = 0


@dataclass
class SynReply:
    stream_id: int
    headers: dict = field(default_factory=dict)
    flags: int = 0


@dataclass
class RstStream:
    stream_id: int
    status: int


@dataclass
class Settings:
    entries: list = field(default_factory=list)   # (flags, id, value)
    flags: int = 0


@dataclass
class Ping:
    id: int


@dataclass
class GoAway:
    last_good_stream_id: int
    status: int = GOAWAY_OK


@dataclass
class Headers:
    stream_id: int
    headers: dict
    flags: int = 0


@dataclass
class WindowUpdate:
    stream_id: int
    delta: int


@dataclass
class Data:
    stream_id: int
    data: bytes
    flags: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


@dataclass
class UnknownControl:
    type: int
    flags: int
    payload: bytes


# ----------------------------------------------------------- header blocks
def encode_header_block(headers: dict) -> bytes:
    """The uncompressed block: count, then (name, value) length-prefixed."""
    out = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        if isinstance(value, (list, tuple)):
            value = "\0".join(value)
        n, v = name.lower().encode("utf-8"), str(value).encode("utf-8")
        out.append(struct.pack(">I", len(n)) + n + struct.pack(">I", len(v)) + v)
    return b"".join(out)


def parse_header_block(raw: bytes) -> dict:
    """Inverse of encode_header_block; names lowercase, values as strings."""
    def take(pos, what):
        if pos + 4 > len(raw):
            raise SpdyError(f"header block truncated reading {what} length")
        n = struct.unpack_from(">I", raw, pos)[0]
        if pos + 4 + n > len(raw):
            raise SpdyError(f"header block truncated reading {what} ({n} bytes)")
        return raw[pos + 4:pos + 4 + n], pos + 4 + n

    if len(raw) < 4:
        raise SpdyError("header block shorter than its count")
    count = struct.unpack_from(">I", raw, 0)[0]
    if count > MAX_HEADERS:
        raise SpdyError(f"header block has {count} headers (limit {MAX_HEADERS})")
    headers, pos = {}, 4
    for _ in range(count):
        name, pos = take(pos, "name")
        value, pos = take(pos, "value")
        if not name:
            raise SpdyError("header block has an empty header name")
        try:
            key = name.decode("ascii")
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            raise SpdyError(f"header {name!r} is not valid text") from None
        if key != key.lower():
            raise SpdyError(f"header name {key!r} is not lowercase")
        headers[key] = headers[key] + "\0" + text if key in headers else text
    if pos != len(raw):
        raise SpdyError(f"header block has {len(raw) - pos} trailing bytes")
    return headers


class HeaderCompressor:
    """The sending direction's zlib context (one per connection)."""

    def __init__(self):
        self._z = zlib.compressobj(level=9, wbits=15, zdict=DICTIONARY)

    def compress(self, headers: dict) -> bytes:
        raw = encode_header_block(headers)
        return self._z.compress(raw) + self._z.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    """The receiving direction's zlib context (one per connection)."""

    def __init__(self):
        self._z = zlib.decompressobj(wbits=15, zdict=DICTIONARY)

    def decompress(self, block: bytes) -> dict:
        try:
            raw = self._z.decompress(block, MAX_HEADER_BLOCK + 1)
        except zlib.error as e:
            raise SpdyError(f"header block does not decompress: {e}") from None
        if len(raw) > MAX_HEADER_BLOCK or self._z.unconsumed_tail:
            raise SpdyError(f"header block larger than {MAX_HEADER_BLOCK} bytes")
        return parse_header_block(raw)


# ----------------------------------------------------------------- framer
def _control(ftype: int, flags: int, payload: bytes) -> bytes:
    if len(payload) > 0xFFFFFF:
        raise SpdyError(f"control frame payload of {len(payload)} bytes is too long")
    return struct.pack(">HHI", 0x8000 | VERSION, ftype, (flags << 24) | len(payload)) + payload


class Framer:
    """Reads and writes frames on a byte transport.

    READ(n) returns up to n bytes (b"" at the end); WRITE(data) writes all.
    `write_frame` is thread-safe and writes each frame with one WRITE call
    (one WebSocket message when tunnelled).
    """

    def __init__(self, read: Callable[[int], bytes], write: Callable[[bytes], None]):
        self._read = read
        self._write = write
        self._lock = threading.Lock()
        self._compressor = HeaderCompressor()
        self._decompressor = HeaderDecompressor()
        self._buf = bytearray()

    def _read_exact(self, n: int, at_start: bool = False) -> bytes | None:
        while len(self._buf) < n:
            chunk = self._read(max(n - len(self._buf), 65536))
            if not chunk:
                if at_start and not self._buf:
                    return None
                raise SpdyError(f"connection ended inside a frame ({len(self._buf)} of {n} bytes)")
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def read_frame(self):
        """The next frame, or None at a clean end of the byte stream."""
        head = self._read_exact(8, at_start=True)
        if head is None:
            return None
        first, second, word = struct.unpack(">HHI", head)
        flags, length = word >> 24, word & 0xFFFFFF
        payload = self._read_exact(length) if length else b""
        if not first & 0x8000:
            stream_id = (first << 16 | second) & 0x7FFFFFFF
            if stream_id == 0:
                raise SpdyError("DATA frame on stream 0")
            return Data(stream_id, payload, flags)
        version, ftype = first & 0x7FFF, second
        if version != VERSION:
            raise SpdyError(f"unsupported SPDY version {version} (this server speaks 3)")
        return self._parse_control(ftype, flags, payload)

    def _parse_control(self, ftype, flags, p):
        def need(n):
            if len(p) < n:
                raise SpdyError(f"control frame type {ftype} too short ({len(p)} < {n} bytes)")
        if ftype == SYN_STREAM:
            need(10)
            sid, assoc = struct.unpack_from(">II", p)
            return SynStream(sid & 0x7FFFFFFF, self._decompressor.decompress(p[10:]),
                             flags, assoc & 0x7FFFFFFF, p[8] >> 5)
        if ftype == SYN_REPLY:
            need(4)
            return SynReply(struct.unpack_from(">I", p)[0] & 0x7FFFFFFF,
                            self._decompressor.decompress(p[4:]), flags)
        if ftype == HEADERS:
            need(4)
            return Headers(struct.unpack_from(">I", p)[0] & 0x7FFFFFFF,
                           self._decompressor.decompress(p[4:]), flags)
        if ftype == RST_STREAM:
            need(8)
            sid, status = struct.unpack_from(">II", p)
            return RstStream(sid & 0x7FFFFFFF, status)
        if ftype == SETTINGS:
            need(4)
            n = struct.unpack_from(">I", p)[0]
            need(4 + 8 * n)
            entries = []
            for i in range(n):
                fid, value = struct.unpack_from(">II", p, 4 + 8 * i)
                entries.append((fid >> 24, fid & 0xFFFFFF, value))
            return Settings(entries, flags)
        if ftype == PING:
            need(4)
            return Ping(struct.unpack_from(">I", p)[0])
        if ftype == GOAWAY:
            need(4)
            last = struct.unpack_from(">I", p)[0] & 0x7FFFFFFF
            status = struct.unpack_from(">I", p, 4)[0] if len(p) >= 8 else GOAWAY_OK
            return GoAway(last, status)
        if ftype == WINDOW_UPDATE:
            need(8)
            sid, delta = struct.unpack_from(">II", p)
            return WindowUpdate(sid & 0x7FFFFFFF, delta & 0x7FFFFFFF)
        # SPDY/3 section 2.2.1: unknown control frames are ignored.
        return UnknownControl(ftype, flags, p)

    def serialize(self, frame) -> bytes:
        """Bytes of FRAME. Uses the compressor: call only with the lock
        held (write_frame does), or from a single thread."""
        if isinstance(frame, Data):
            if len(frame.data) > 0xFFFFFF:
                raise SpdyError("DATA frame longer than 16 MiB")
            return struct.pack(">II", frame.stream_id & 0x7FFFFFFF,
                               (frame.flags << 24) | len(frame.data)) + bytes(frame.data)
        if isinstance(frame, SynStream):
            block = self._compressor.compress(frame.headers)
            return _control(SYN_STREAM, frame.flags,
                            struct.pack(">IIBB", frame.stream_id, frame.assoc_id,
                                        (frame.priority & 7) << 5, 0) + block)
        if isinstance(frame, SynReply):
            return _control(SYN_REPLY, frame.flags, struct.pack(">I", frame.stream_id)
                            + self._compressor.compress(frame.headers))
        if isinstance(frame, Headers):
            return _control(HEADERS, frame.flags, struct.pack(">I", frame.stream_id)
                            + self._compressor.compress(frame.headers))
        if isinstance(frame, RstStream):
            return _control(RST_STREAM, 0, struct.pack(">II", frame.stream_id, frame.status))
        if isinstance(frame, Settings):
            body = struct.pack(">I", len(frame.entries)) + b"".join(
                struct.pack(">II", (f << 24) | i, v) for f, i, v in frame.entries)
            return _control(SETTINGS, frame.flags, body)
        if isinstance(frame, Ping):
            return _control(PING, 0, struct.pack(">I", frame.id))
        if isinstance(frame, GoAway):
            return _control(GOAWAY, 0, struct.pack(">II", frame.last_good_stream_id, frame.status))
        if isinstance(frame, WindowUpdate):
            return _control(WINDOW_UPDATE, 0, struct.pack(">II", frame.stream_id, frame.delta))
        raise TypeError(f"cannot serialize {frame!r}")

    def write_frame(self, frame) -> None:
        with self._lock:
            self._write(self.serialize(frame))


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
