"""SPDY/3.1 frames: their types, flags and status codes, and the Framer that
reads and writes them on a byte transport (spdy.py runs the session).

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

Header blocks (zlib, one context per direction) are spdyheaders.py's; the
Framer owns the connection's two contexts, so frames with headers are
serialized under its write lock, in wire order.
"""

import struct
import threading
from dataclasses import dataclass, field
from typing import Callable

from minipod.runtime.apiserver.spdyheaders import HeaderCompressor, HeaderDecompressor, SpdyError

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
