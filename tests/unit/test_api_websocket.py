"""WebSocket server side: handshake, framing edge cases, pings, close, locking.

The client side is wsproto's own client connection (masked frames) or
frames built by hand here, over a socketpair. No root needed.
"""
from __future__ import annotations

import base64
import os
import socket
import struct
import threading
from email.message import Message

import pytest
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage

from minipod.runtime.apiserver import channels
from minipod.runtime.apiserver.websocket import (HandshakeError, WebSocket, accept_key,
                                                 handshake)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="   # RFC 6455 section 1.3's example


def request(**extra):
    h = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
         "Sec-WebSocket-Key": KEY}
    h.update(extra)
    return h


def test_accept_key_is_the_rfc_example():
    assert accept_key(KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_handshake_picks_the_clients_first_supported_protocol():
    headers, chosen = handshake(request(**{"Sec-WebSocket-Protocol": "v5.channel.k8s.io"}),
                                channels.EXEC_PROTOCOLS)
    assert chosen == "v5.channel.k8s.io"
    assert headers == {"Upgrade": "websocket", "Connection": "Upgrade",
                       "Sec-WebSocket-Accept": "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
                       "Sec-WebSocket-Protocol": "v5.channel.k8s.io"}


def test_handshake_python_client_sends_one_comma_separated_header():
    # kubernetes 37: "v5.channel.k8s.io,v4.channel.k8s.io" for port-forward too,
    # where only v4 is served.
    _, chosen = handshake(request(**{"sec-websocket-protocol": "v5.channel.k8s.io,v4.channel.k8s.io"}),
                          ["SPDY/3.1+portforward.k8s.io", "v4.channel.k8s.io"])
    assert chosen == "v4.channel.k8s.io"


def test_handshake_repeated_headers_of_an_email_message():
    m = Message()
    for k, v in request().items():
        m[k] = v
    m["Sec-WebSocket-Protocol"] = "bogus"
    m["Sec-WebSocket-Protocol"] = "v4.channel.k8s.io"
    assert handshake(m, channels.EXEC_PROTOCOLS)[1] == "v4.channel.k8s.io"


def test_handshake_without_subprotocol_chooses_none():
    headers, chosen = handshake(request(), ["v4.channel.k8s.io"])
    assert chosen is None and "Sec-WebSocket-Protocol" not in headers


@pytest.mark.parametrize("change, message", [
    ({"Sec-WebSocket-Protocol": "base64.channel.k8s.io"}, "not supported"),
    ({"Upgrade": "h2c"}, '"Upgrade" header must be "websocket"'),
    ({"Connection": "keep-alive"}, 'must contain "Upgrade"'),
    ({"Sec-WebSocket-Version": "8"}, "unsupported Sec-WebSocket-Version"),
    ({"Sec-WebSocket-Key": "c2hvcnQ="}, "is not 16 bytes"),
    ({"Sec-WebSocket-Key": "not base64!!"}, "is not 16 bytes"),
])
def test_handshake_refusals(change, message):
    with pytest.raises(HandshakeError, match=message):
        handshake(request(**change), channels.EXEC_PROTOCOLS)


def test_handshake_accepts_token_lists_and_case():
    h = request(Connection="keep-alive, Upgrade", Upgrade="WebSocket")
    assert handshake(h, [])[1] is None


# ------------------------------------------------------------------ framing
class Client:
    """wsproto's client side of an already upgraded connection."""

    def __init__(self, sock):
        self.sock = sock
        self.conn = Connection(ConnectionType.CLIENT)

    def send(self, event):
        self.sock.sendall(self.conn.send(event))

    def events(self):
        """Read until at least one event arrives; return them all."""
        while True:
            out = list(self.conn.events())
            if out:
                return out
            data = self.sock.recv(65536)
            self.conn.receive_data(data or None)
            if not data:
                return list(self.conn.events()) or [None]


def masked_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A client frame built by hand (RFC 6455 section 5.2)."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes(((0x80 if fin else 0) | opcode,))
    if n < 126:
        head += bytes((0x80 | n,))
    elif n < 65536:
        head += bytes((0x80 | 126,)) + struct.pack(">H", n)
    else:
        head += bytes((0x80 | 127,)) + struct.pack(">Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield WebSocket(a), b
    a.close()
    b.close()


def test_binary_message_roundtrip(pair):
    ws, peer = pair
    client = Client(peer)
    client.send(BytesMessage(data=b"\x00hello"))
    assert ws.recv() == b"\x00hello"
    assert ws.send_binary(b"\x01out")
    (event,) = client.events()
    assert isinstance(event, BytesMessage) and event.data == b"\x01out"


def test_text_message_is_returned_as_utf8_bytes(pair):
    ws, peer = pair
    Client(peer).send(TextMessage(data="héllo"))
    assert ws.recv() == "héllo".encode()


def test_fragmented_message_is_reassembled_across_byte_sized_reads(pair):
    ws, peer = pair
    frames = (masked_frame(0x2, b"\x00abc", fin=False) + masked_frame(0x9, b"mid-ping")
              + masked_frame(0x0, b"def", fin=False) + masked_frame(0x0, b"ghi"))

    def dribble():
        for i in range(len(frames)):
            peer.send(frames[i:i + 1])
    t = threading.Thread(target=dribble)
    t.start()
    assert ws.recv() == b"\x00abcdefghi"
    t.join()
    # The ping between fragments was answered with a pong carrying its payload.
    client = Client(peer)
    (pong,) = client.events()
    assert isinstance(pong, Pong) and pong.payload == b"mid-ping"


def test_16_and_64_bit_lengths(pair):
    ws, peer = pair
    medium, big = os.urandom(70_000 - 65_000), os.urandom(70_000)
    peer.sendall(masked_frame(0x2, medium))
    assert ws.recv() == medium
    threading.Thread(target=peer.sendall, args=(masked_frame(0x2, big),)).start()
    assert ws.recv() == big
    # And the server's own 64-bit length frame parses in wsproto's client.
    client = Client(peer)
    threading.Thread(target=ws.send_binary, args=(big,)).start()
    got = b""
    while len(got) < len(big):
        for e in client.events():
            got += e.data
    assert got == big


def test_ping_gets_pong_with_same_payload(pair):
    ws, peer = pair
    client = Client(peer)
    client.send(Ping(payload=b"kubectl"))
    client.send(BytesMessage(data=b"x"))
    assert ws.recv() == b"x"            # the pong was sent while reading
    (pong,) = client.events()
    assert isinstance(pong, Pong) and pong.payload == b"kubectl"


def test_peer_close_is_answered_and_recv_returns_none(pair):
    ws, peer = pair
    client = Client(peer)
    client.send(CloseConnection(code=1000, reason="bye"))
    assert ws.recv() is None
    assert ws.closed
    (echo,) = client.events()
    assert isinstance(echo, CloseConnection) and echo.code == 1000
    assert not ws.send_binary(b"late")  # nothing is sent after the close


def test_server_close_sends_code_and_reason(pair):
    ws, peer = pair
    client = Client(peer)
    ws.close(1000, "done")
    (event,) = client.events()
    assert isinstance(event, CloseConnection) and (event.code, event.reason) == (1000, "done")
    ws.close()                          # idempotent
    client.send(event.response())
    assert ws.recv() is None


def test_eof_without_close_frame_returns_none(pair):
    ws, peer = pair
    peer.shutdown(socket.SHUT_WR)
    assert ws.recv() is None


def test_unmasked_client_frame_is_a_protocol_error(pair):
    ws, peer = pair
    peer.sendall(b"\x82\x03abc")       # no mask bit: RFC 6455 says close 1002
    assert ws.recv() is None
    (event,) = Client(peer).events()
    assert isinstance(event, CloseConnection) and event.code == 1002


def test_message_bigger_than_the_limit_closes_1009():
    a, b = socket.socketpair()
    try:
        ws = WebSocket(a, max_message=1000)
        threading.Thread(target=b.sendall, args=(masked_frame(0x2, b"x" * 2000),)).start()
        assert ws.recv() is None
        (event,) = Client(b).events()
        assert isinstance(event, CloseConnection) and event.code == 1009
    finally:
        a.close()
        b.close()


def test_trailing_bytes_from_the_http_layer_are_read_first():
    a, b = socket.socketpair()
    try:
        ws = WebSocket(a, trailing=masked_frame(0x2, b"early"))
        assert ws.recv() == b"early"
    finally:
        a.close()
        b.close()


def test_concurrent_senders_never_interleave_frames(pair):
    ws, peer = pair
    client = Client(peer)
    n, size = 200, 3000

    def sender(ch):
        for i in range(n):
            ws.send_binary(bytes((ch,)) + bytes((i % 256,)) * size)
    threads = [threading.Thread(target=sender, args=(ch,)) for ch in (1, 2)]
    for t in threads:
        t.start()
    got = []
    buf = b""
    while len(got) < 2 * n:
        for e in client.events():
            buf += e.data
            if e.message_finished:
                got.append(buf)
                buf = b""
    for t in threads:
        t.join()
    for m in got:
        assert len(m) == size + 1 and len(set(m[1:])) == 1
    for ch in (1, 2):
        seq = [m[1] for m in got if m[0] == ch]
        assert seq == [i % 256 for i in range(n)]


def test_handshake_key_roundtrip_random():
    key = base64.b64encode(os.urandom(16)).decode()
    headers, _ = handshake(request(**{"Sec-WebSocket-Key": key}), [])
    assert headers["Sec-WebSocket-Accept"] == accept_key(key)
