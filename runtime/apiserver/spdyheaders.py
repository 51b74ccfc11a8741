"""SPDY/3 header blocks: the zlib-compressed name/value lists of SYN_STREAM,
SYN_REPLY and HEADERS frames (spdyframes.py carries them, spdy.py has the session).

Header block = zlib(u32 count, count x (u32 len, name, u32 len, value)),
names lowercase, several values of a name joined by NUL. The zlib streams
use the SPDY/3 preset dictionary and there is ONE compression context per
direction for the whole connection, flushed (Z_SYNC_FLUSH) at the end of
each block: a fresh context per frame breaks on the second frame. So the
compressor is used only under the write lock, in wire order.

A block is a peer's input: it decompresses to at most MAX_HEADER_BLOCK
bytes (a zlib bomb ends the session), holds at most MAX_HEADERS headers,
and every length is checked against what is there (SpdyError says which).
"""

import struct
import zlib

MAX_HEADER_BLOCK = 256 << 10      # decompressed bytes; refuses zlib bombs
MAX_HEADERS = 1024

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
