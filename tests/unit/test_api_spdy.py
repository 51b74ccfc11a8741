"""SPDY/3.1 server side: frames, the shared zlib header context, sessions.

The client is a second Framer on the other end of a socketpair (frames it
writes are parsed by the server code under test and vice versa). No root.
"""
from __future__ import annotations

import hashlib
import socket
import struct
import threading
import zlib

import pytest

from minipod.runtime.apiserver import spdy


def test_dictionary_is_spdystreams_byte_for_byte():
    # sha256 of moby/spdystream spdy/dictionary.go's headerDictionary (1423 bytes).
    assert len(spdy.DICTIONARY) == 1423
    assert hashlib.sha256(spdy.DICTIONARY).hexdigest() == \
        "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02"


ALL_FRAMES = [
    spdy.SynStream(1, {"streamtype": "error", "port": "80", "requestid": "0"}, 0, 0, 0),
    spdy.SynStream(3, {"a": "b"}, spdy.FLAG_FIN, 1, 7),
    spdy.SynReply(1, {}, 0),
    spdy.SynReply(5, {"x": "1\x002"}, spdy.FLAG_FIN),
    spdy.RstStream(3, spdy.CANCEL),
    spdy.Settings([(0, 4, 100), (1, 7, 65536)]),
    spdy.Ping(7),
    spdy.GoAway(9, spdy.GOAWAY_PROTOCOL_ERROR),
    spdy.Headers(1, {"k": "v"}, spdy.FLAG_FIN),
    spdy.WindowUpdate(1, 65536),
    spdy.Data(3, b"hello", 0),
    spdy.Data(3, b"", spdy.FLAG_FIN),
]


def framer_pair():
    a, b = socket.socketpair()
    return (spdy.Framer(a.recv, a.sendall), spdy.Framer(b.recv, b.sendall), a, b)


def test_every_frame_type_roundtrips_with_one_shared_context():
    client, server, a, b = framer_pair()
    try:
        for f in ALL_FRAMES:
            client.write_frame(f)
        for f in ALL_FRAMES:
            assert server.read_frame() == f
    finally:
        a.close()
        b.close()


def test_frame_bytes_match_the_spec_layout():
    f = spdy.Framer(None, None)
    assert f.serialize(spdy.Ping(1)) == bytes.fromhex("80030006" "00000004" "00000001")
    assert f.serialize(spdy.RstStream(3, 5)) == bytes.fromhex("80030003 00000008 00000003 00000005")
    assert f.serialize(spdy.Data(3, b"ab", spdy.FLAG_FIN)) == bytes.fromhex("00000003 01000002 6162")
    assert f.serialize(spdy.GoAway(0, 0)) == bytes.fromhex("80030007 00000008 00000000 00000000")


def test_header_context_is_shared_across_frames_the_classic_trap():
    """The second header block only decodes with the first one's context."""
    writer = spdy.HeaderCompressor()
    h = {"streamtype": "data", "port": "8080", "requestid": "1"}
    first, second = writer.compress(h), writer.compress(h)
    assert len(second) < len(first)     # back-references into the first block
    shared = spdy.HeaderDecompressor()
    assert shared.decompress(first) == h and shared.decompress(second) == h
    with pytest.raises(spdy.SpdyError):
        spdy.HeaderDecompressor().decompress(second)   # a fresh context per frame fails


def test_header_block_uses_the_preset_dictionary():
    block = spdy.HeaderCompressor().compress({"content-type": "text/plain"})
    header = block[:2]
    assert header[1] & 0x20            # FDICT set
    dictid = struct.unpack(">I", block[2:6])[0]
    assert dictid == zlib.adler32(spdy.DICTIONARY)
    with pytest.raises(zlib.error):    # and does not decode without it
        zlib.decompressobj().decompress(block)


def test_header_bomb_is_refused():
    z = zlib.compressobj(zdict=spdy.DICTIONARY)
    raw = struct.pack(">I", 1) + struct.pack(">I", 1) + b"a" + struct.pack(">I", 10 << 20) + b"x" * (10 << 20)
    block = z.compress(raw) + z.flush(zlib.Z_SYNC_FLUSH)
    assert len(block) < 64 << 10
    with pytest.raises(spdy.SpdyError, match="larger than"):
        spdy.HeaderDecompressor().decompress(block)


@pytest.mark.parametrize("raw, message", [
    (b"\x00\x00", "shorter than its count"),
    (struct.pack(">I", 1) + struct.pack(">I", 9) + b"ab", "truncated"),
    (struct.pack(">II", 1, 1) + b"A" + struct.pack(">I", 0), "not lowercase"),
    (struct.pack(">II", 1, 0) + struct.pack(">I", 0), "empty header name"),
    (struct.pack(">I", 5000), "5000 headers"),
    (struct.pack(">I", 0) + b"junk", "trailing bytes"),
])
def test_bad_header_blocks(raw, message):
    with pytest.raises(spdy.SpdyError, match=message):
        spdy.parse_header_block(raw)


def test_frames_dribbled_one_byte_at_a_time_and_split_messages():
    client = spdy.Framer(None, None)
    wire = b"".join(client.serialize(f) for f in ALL_FRAMES)
    pos = [0]

    def one_byte(n):
        out = wire[pos[0]:pos[0] + 1]
        pos[0] += 1
        return out
    server = spdy.Framer(one_byte, None)
    assert [server.read_frame() for _ in ALL_FRAMES] == ALL_FRAMES
    assert server.read_frame() is None

    # Tunnelled: WebSocket messages cut anywhere (7-byte pieces) mean nothing.
    class FakeWS:
        pieces = [wire[i:i + 7] for i in range(0, len(wire), 7)]

        def recv(self):
            return self.pieces.pop(0) if self.pieces else None
    t = spdy.WebSocketTransport(FakeWS())
    server = spdy.Framer(t.read, None)
    assert [server.read_frame() for _ in ALL_FRAMES] == ALL_FRAMES


def reader(*chunks):
    it = iter(chunks)
    return lambda n: next(it, b"")


def test_truncated_frame_and_bad_version():
    client = spdy.Framer(None, None)
    wire = client.serialize(spdy.Ping(1))
    with pytest.raises(spdy.SpdyError, match="inside a frame"):
        spdy.Framer(reader(wire[:6]), None).read_frame()
    v2 = bytes.fromhex("80020006 00000004 00000001")
    with pytest.raises(spdy.SpdyError, match="version 2"):
        spdy.Framer(reader(v2), None).read_frame()


def test_unknown_control_frame_is_skipped():
    wire = bytes.fromhex("8003007f 00000002 abcd") + spdy.Framer(None, None).serialize(spdy.Ping(3))
    f = spdy.Framer(reader(wire), None)
    assert isinstance(f.read_frame(), spdy.UnknownControl)
    assert f.read_frame() == spdy.Ping(3)


# ------------------------------------------------------------------ sessions
class Harness:
    """A server Session on one end of a socketpair, a client Framer on the other."""

    def __init__(self, on_stream=None):
        self.a, self.b = socket.socketpair()
        self.client = spdy.Framer(self.b.recv, self.b.sendall)
        self.streams = []
        self.pings = []

        def default(stream):
            self.streams.append(stream)
            stream.reply()
        self.session = spdy.Session(self.a.recv, self.a.sendall, on_stream or default,
                                    self.pings.append)
        self.thread = threading.Thread(target=self.session.serve)
        self.thread.start()

    def send(self, *frames):
        for f in frames:
            self.client.write_frame(f)

    def expect(self):
        return self.client.read_frame()

    def finish(self):
        self.b.shutdown(socket.SHUT_WR)
        self.thread.join(10)
        assert not self.thread.is_alive()
        self.a.close()
        self.b.close()


def test_stream_open_reply_data_both_ways_and_half_close():
    h = Harness()
    h.send(spdy.SynStream(1, {"streamtype": "data", "port": "80"}))
    assert h.expect() == spdy.SynReply(1, {}, 0)
    (stream,) = h.streams
    assert stream.headers == {"streamtype": "data", "port": "80"}
    h.send(spdy.Data(1, b"ping"), spdy.Data(1, b"", spdy.FLAG_FIN))
    assert stream.read(5) == b"ping"
    assert stream.read(5) == b""                 # client half-closed ...
    stream.write(b"pong")                       # ... the server still writes
    assert h.expect() == spdy.Data(1, b"pong")
    stream.close()
    assert h.expect() == spdy.Data(1, b"", spdy.FLAG_FIN)
    assert stream.done and 1 not in h.session.streams
    with pytest.raises(spdy.StreamClosed):
        stream.write(b"late")
    h.finish()


def test_large_write_is_cut_into_chunks():
    h = Harness()
    h.send(spdy.SynStream(1, {}))
    h.expect()
    payload = bytes(range(256)) * 1000
    threading.Thread(target=h.streams[0].write, args=(payload,)).start()
    got = b""
    while len(got) < len(payload):
        f = h.expect()
        assert isinstance(f, spdy.Data) and len(f.data) <= spdy.MAX_DATA_CHUNK
        got += f.data
    assert got == payload
    h.finish()


def test_reset_by_client_wakes_reader_and_stops_writer():
    h = Harness()
    h.send(spdy.SynStream(1, {}))
    h.expect()
    stream = h.streams[0]
    got = []
    reader = threading.Thread(target=lambda: got.append(stream.read(10)))
    reader.start()
    h.send(spdy.RstStream(1, spdy.CANCEL))
    reader.join(10)
    assert got == [b""]
    assert stream.reset_status == spdy.CANCEL
    with pytest.raises(spdy.StreamClosed, match="reset"):
        stream.write(b"x")
    stream.close()                              # no FIN after a reset
    h.send(spdy.Ping(1))
    assert h.expect() == spdy.Ping(1)           # (and nothing else was sent before it)
    assert 1 not in h.session.streams
    h.finish()


def test_server_reset_sends_rst():
    h = Harness()
    h.send(spdy.SynStream(1, {}))
    h.expect()
    h.streams[0].reset(spdy.REFUSED_STREAM)
    assert h.expect() == spdy.RstStream(1, spdy.REFUSED_STREAM)
    h.finish()


def test_ping_echo_only_for_peer_pings():
    h = Harness()
    h.send(spdy.Ping(2), spdy.Ping(5))          # 2: an answer to a server ping (none sent)
    assert h.expect() == spdy.Ping(5)
    h.finish()
    assert h.pings == [5]


@pytest.mark.parametrize("ids", [[2], [3, 1], [1, 1]])
def test_bad_stream_ids_are_reset_with_protocol_error(ids):
    h = Harness()
    for sid in ids:
        h.send(spdy.SynStream(sid, {}))
    if ids[0] & 1:
        assert h.expect() == spdy.SynReply(ids[0], {})
    assert h.expect() == spdy.RstStream(ids[-1], spdy.PROTOCOL_ERROR)
    h.finish()


def test_data_for_unknown_stream_is_dropped_and_settings_ignored():
    h = Harness()
    h.send(spdy.Data(99, b"lost"), spdy.Settings([(0, 7, 1)]), spdy.WindowUpdate(0, 5),
           spdy.Ping(1))
    assert h.expect() == spdy.Ping(1)
    h.finish()


def test_syn_stream_with_fin_is_half_closed_from_the_start():
    h = Harness()
    h.send(spdy.SynStream(1, {"streamtype": "error"}, spdy.FLAG_FIN))
    h.expect()
    assert h.streams[0].read(5) == b""
    h.finish()


def test_protocol_error_sends_goaway_and_ends_all_streams():
    h = Harness()
    h.send(spdy.SynStream(1, {}))
    h.expect()
    stream = h.streams[0]
    h.b.sendall(bytes.fromhex("80020006 00000004 00000001"))   # SPDY/2 frame
    assert h.expect() == spdy.GoAway(1, spdy.GOAWAY_PROTOCOL_ERROR)
    h.thread.join(10)
    assert "version 2" in h.session.error
    assert stream.read(1) == b""
    with pytest.raises(spdy.StreamClosed):
        stream.write(b"x")
    h.finish()


def test_eof_ends_streams_and_goaway_refuses_new_ones():
    h = Harness()
    h.send(spdy.SynStream(1, {}))
    h.expect()
    h.send(spdy.GoAway(1), spdy.SynStream(3, {}), spdy.Ping(1))
    assert h.expect() == spdy.Ping(1)           # stream 3 got no SYN_REPLY
    assert [s.id for s in h.streams] == [1]
    h.finish()
    assert h.streams[0].read(1) == b""


def test_full_buffer_blocks_reader_until_consumed():
    h = Harness()
    h.send(spdy.SynStream(1, {}))
    h.expect()
    stream = h.streams[0]
    chunk = b"z" * (64 << 10)
    n = (spdy.MAX_STREAM_BUFFER // len(chunk)) + 8
    threading.Thread(target=lambda: h.send(*[spdy.Data(1, chunk)] * n, spdy.Ping(1))).start()
    got = 0
    while got < n * len(chunk):
        got += len(stream.read(10))
        assert stream._buffered <= spdy.MAX_STREAM_BUFFER + len(chunk)
    assert h.expect() == spdy.Ping(1)
    h.finish()


# The first bytes kubectl 1.32.4 (spdystream, Go's zlib) sent to a minipod
# SPDY layer for `kubectl port-forward web 18081:80` (raw POST upgrade),
# captured on the server side: SYN_STREAM 1 (error), DATA 1 FIN, SYN_STREAM 3
# (data). The second header block refers back into the first one's zlib
# window: it only decodes with the connection's one shared context.
KUBECTL_GOLDEN = bytes.fromhex(
    "800300010000003d0000000100000000000078f9e3c6a7c202253a48f95b044aab4c16060c0c0c9c"
    "4590d8ca04a5624603703a2c294a4dcc851635aca9a08800000000ffff0000000101000000800300"
    "010000001a00000003000000000000826a459502954289840c04000000ffff")


def test_golden_kubectl_frames_parse():
    f = spdy.Framer(reader(KUBECTL_GOLDEN), None)
    assert f.read_frame() == spdy.SynStream(1, {"port": "80", "requestid": "0", "streamtype": "error"})
    assert f.read_frame() == spdy.Data(1, b"", spdy.FLAG_FIN)
    assert f.read_frame() == spdy.SynStream(3, {"streamtype": "data", "port": "80", "requestid": "0"})
    assert f.read_frame() is None
    second_block = KUBECTL_GOLDEN[77 + 18:]
    with pytest.raises(spdy.SpdyError):
        spdy.HeaderDecompressor().decompress(second_block)


def test_golden_kubectl_session_gets_both_replies():
    sent = []
    seen = []
    session = spdy.Session(reader(KUBECTL_GOLDEN), sent.append,
                           lambda s: (seen.append(s.headers["streamtype"]), s.reply()))
    session.serve()
    assert seen == ["error", "data"] and session.error is None
    replies = spdy.Framer(reader(b"".join(sent)), None)
    assert replies.read_frame() == spdy.SynReply(1, {})
    assert replies.read_frame() == spdy.SynReply(3, {})


def test_streams_beyond_the_limit_are_refused():
    h = Harness()
    h.session.max_streams = 2
    h.send(spdy.SynStream(1, {}), spdy.SynStream(3, {}), spdy.SynStream(5, {}))
    assert [h.expect() for _ in range(3)] == [spdy.SynReply(1, {}), spdy.SynReply(3, {}),
                                              spdy.RstStream(5, spdy.REFUSED_STREAM)]
    h.streams[0].reset()
    assert h.expect() == spdy.RstStream(1, spdy.CANCEL)
    h.send(spdy.SynStream(7, {}))               # room again once a stream is gone
    assert h.expect() == spdy.SynReply(7, {})
    h.finish()
