"""minipod.netns.rtnl as pure logic: the bytes of each request, the decoding of
answers, and the exchange (ACK, errors, dumps, sequence numbers) against a
fake kernel on a socketpair. No root needed.

pyroute2 (a test dependency only) is the independent check: it decodes what
rtnl encodes and encodes what rtnl decodes."""
from __future__ import annotations

import errno
import socket
import struct
import threading

import pytest
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from minipod.netns import rtnl

CREATE = rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK | rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL


def decoded(cls, kind: int, body: bytes, flags: int = CREATE):
    msg = cls(rtnl.message(kind, flags, 7, body))
    msg.decode()
    return msg


# -- encoding ------------------------------------------------------------------

def test_an_attribute_is_padded_to_four_bytes():
    assert rtnl.attr_str(rtnl.IFLA_IFNAME, "eth0") == b"\x09\x00\x03\x00eth0\x00\x00\x00\x00"
    assert rtnl.attr_u32(rtnl.IFLA_MASTER, 3) == b"\x08\x00\x0a\x00\x03\x00\x00\x00"


def test_the_header_counts_itself():
    msg = rtnl.message(rtnl.RTM_GETLINK, rtnl.NLM_F_REQUEST, 42, b"x" * 16)
    assert rtnl.NLMSGHDR.unpack_from(msg) == (32, rtnl.RTM_GETLINK, rtnl.NLM_F_REQUEST, 42, 0)


def test_new_bridge():
    msg = decoded(ifinfmsg, rtnl.RTM_NEWLINK, rtnl.new_bridge_body("minipod0", "0a:58:0a:59:00:01"))
    assert msg["index"] == 0
    assert msg.get("ifname") == "minipod0"
    assert msg.get("address") == "0a:58:0a:59:00:01"
    assert msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") == "bridge"


def test_new_veth_places_its_peer_in_a_netns_by_fd():
    msg = decoded(ifinfmsg, rtnl.RTM_NEWLINK,
                  rtnl.new_veth_body("mp0123456789", "eth0", "0a:58:0a:59:00:02", 9))
    assert msg.get("ifname") == "mp0123456789"
    assert msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") == "veth"
    peer = msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA", "VETH_INFO_PEER")
    assert peer.get("ifname") == "eth0"
    assert peer.get("address") == "0a:58:0a:59:00:02"
    assert peer.get("net_ns_fd") == 9


def test_set_link_by_name_with_master_alias_and_no_ipv6_link_local():
    body = rtnl.set_link_body("mp0123456789", master=3, alias="minipod-1a2b3c4d",
                              addrgenmode_none=True)
    msg = decoded(ifinfmsg, rtnl.RTM_NEWLINK, body, rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK)
    assert (msg["index"], msg["flags"], msg["change"]) == (0, 0, 0)   # up untouched
    assert msg.get("ifname") == "mp0123456789"
    assert msg.get("master") == 3
    assert msg.get("ifalias") == "minipod-1a2b3c4d"
    assert msg.get_nested("IFLA_AF_SPEC", "AF_INET6", "IFLA_INET6_ADDR_GEN_MODE") == 1


def test_set_link_up_by_index_changes_only_iff_up():
    msg = decoded(ifinfmsg, rtnl.RTM_NEWLINK, rtnl.set_link_body(5, up=True))
    assert (msg["index"], msg["flags"], msg["change"]) == (5, rtnl.IFF_UP, rtnl.IFF_UP)
    assert msg["attrs"] == []


def test_get_link_skips_statistics():
    msg = decoded(ifinfmsg, rtnl.RTM_GETLINK, rtnl.get_link_body("lo"))
    assert msg.get("ifname") == "lo"
    assert msg.get("ext_mask") == rtnl.RTEXT_FILTER_SKIP_STATS


def test_add_addr():
    msg = decoded(ifaddrmsg, rtnl.RTM_NEWADDR,
                  rtnl.add_addr_body(4, "10.89.0.2", 16, "10.89.255.255"))
    assert (msg["family"], msg["prefixlen"], msg["index"]) == (socket.AF_INET, 16, 4)
    assert msg.get("local") == msg.get("address") == "10.89.0.2"
    assert msg.get("broadcast") == "10.89.255.255"


def test_default_route():
    msg = decoded(rtmsg, rtnl.RTM_NEWROUTE, rtnl.default_route_body("10.89.0.1", 4))
    assert (msg["family"], msg["dst_len"], msg["table"]) == (socket.AF_INET, 0, 254)
    assert (msg["proto"], msg["type"]) == (rtnl.RTPROT_STATIC, rtnl.RTN_UNICAST)
    assert msg.get("gateway") == "10.89.0.1" and msg.get("oif") == 4
    assert msg.get("dst") is None


# -- decoding ------------------------------------------------------------------

def encoded(msg) -> bytes:
    """The body (after nlmsghdr) of a message pyroute2 encodes."""
    msg.encode()
    ((_, _, _, body),) = rtnl.split(bytes(msg.data))
    return body


def test_decode_link():
    msg = ifinfmsg()
    msg["index"], msg["flags"] = 7, 0x1043
    msg["attrs"] = [("IFLA_IFNAME", "mp0123456789"), ("IFLA_ADDRESS", "0a:58:0a:59:00:02"),
                    ("IFLA_MASTER", 3), ("IFLA_IFALIAS", "minipod-1a2b3c4d"),
                    ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "veth")]})]
    assert rtnl.decode_link(encoded(msg)) == rtnl.Link(
        index=7, ifname="mp0123456789", flags=0x1043, mac="0a:58:0a:59:00:02", master=3,
        kind="veth", alias="minipod-1a2b3c4d")


def test_decode_link_without_optional_attributes():
    msg = ifinfmsg()
    msg["index"] = 1
    msg["attrs"] = [("IFLA_IFNAME", "lo")]
    link = rtnl.decode_link(encoded(msg))
    assert (link.ifname, link.master, link.kind, link.alias, link.mac) == ("lo", None, None,
                                                                          None, None)


def test_decode_addr():
    msg = ifaddrmsg()
    msg["family"], msg["prefixlen"], msg["index"] = socket.AF_INET, 24, 2
    msg["attrs"] = [("IFA_ADDRESS", "192.0.2.7"), ("IFA_LOCAL", "192.0.2.7"),
                    ("IFA_LABEL", "enp0s3")]
    assert rtnl.decode_addr(encoded(msg)) == rtnl.Addr(
        index=2, family=socket.AF_INET, prefixlen=24, address="192.0.2.7", label="enp0s3")


def test_split_refuses_a_truncated_message():
    msg = rtnl.message(rtnl.RTM_NEWLINK, 0, 1, b"x" * 16)
    with pytest.raises(rtnl.NetlinkError) as err:
        list(rtnl.split(msg[:-4]))
    assert err.value.errno == errno.EBADMSG


# -- the exchange, against a fake kernel -----------------------------------------

def answer(kind: int, seq: int, body: bytes, flags: int = 0) -> bytes:
    return rtnl.message(kind, flags, seq, body)


def ack(seq: int, code: int = 0) -> bytes:
    return answer(rtnl.NLMSG_ERROR, seq, struct.pack("=i", code) + b"\0" * 16)


def done(seq: int) -> bytes:
    return answer(rtnl.NLMSG_DONE, seq, struct.pack("=i", 0), rtnl.NLM_F_MULTI)


def link_body(index: int, name: str) -> bytes:
    return rtnl.ifinfomsg(index) + rtnl.attr_str(rtnl.IFLA_IFNAME, name)


class FakeKernel:
    """Reads one request from the other end of a datagram socketpair and
    sends the datagrams reply(seq) makes; the request is kept."""

    def __init__(self, reply):
        self.ours, self.theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.reply, self.requests = reply, []
        self.nl = rtnl.Rtnl(self.ours)

    def __enter__(self):
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self

    def _serve(self):
        ((kind, flags, seq, body),) = rtnl.split(self.theirs.recv(65536))
        self.requests.append((kind, flags, body))
        for datagram in self.reply(seq):
            self.theirs.send(datagram)

    def __exit__(self, *exc):
        self.thread.join(5)
        self.nl.close()
        self.theirs.close()


def test_a_request_asks_for_an_ack():
    with FakeKernel(lambda seq: [ack(seq)]) as kernel:
        kernel.nl.del_link("mp0123456789")
    ((kind, flags, body),) = kernel.requests
    assert kind == rtnl.RTM_DELLINK
    assert flags == rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK
    assert rtnl.decode_link(body).ifname == "mp0123456789"


def test_a_refusal_is_an_oserror_with_errno():
    with FakeKernel(lambda seq: [ack(seq, -errno.EEXIST)]) as kernel:
        with pytest.raises(rtnl.NetlinkError) as err:
            kernel.nl.new_bridge("minipod0", "0a:58:0a:59:00:01")
    assert isinstance(err.value, OSError)
    assert err.value.errno == errno.EEXIST
    assert err.value.strerror == "File exists"
    assert kernel.requests[0][1] == CREATE


def test_a_late_answer_to_another_request_is_skipped():
    stale = lambda seq: [ack(seq - 1, -errno.ENODEV), answer(rtnl.RTM_NEWLINK, seq - 1,  # noqa: E731
                                                            link_body(9, "old"))]
    with FakeKernel(lambda seq: stale(seq) + [answer(rtnl.RTM_NEWLINK, seq, link_body(3, "br")),
                                              ack(seq)]) as kernel:
        link = kernel.nl.get_link("br")
    assert (link.index, link.ifname) == (3, "br")


def test_a_dump_reads_every_datagram_up_to_done():
    multi = rtnl.NLM_F_MULTI

    def reply(seq):
        first = (answer(rtnl.RTM_NEWLINK, seq, link_body(1, "lo"), multi)
                 + answer(rtnl.RTM_NEWLINK, seq, link_body(2, "eth0"), multi))
        return [first, answer(rtnl.RTM_NEWLINK, seq, link_body(3, "br"), multi), done(seq)]

    with FakeKernel(reply) as kernel:
        links = kernel.nl.links()
    assert [(link.index, link.ifname) for link in links] == [(1, "lo"), (2, "eth0"), (3, "br")]
    ((kind, flags, _),) = kernel.requests
    assert (kind, flags) == (rtnl.RTM_GETLINK, rtnl.NLM_F_REQUEST | rtnl.NLM_F_DUMP)


def test_a_dump_that_ends_in_an_error_raises():
    failed = lambda seq: [answer(rtnl.NLMSG_DONE, seq, struct.pack("=i", -errno.EINTR))]  # noqa: E731
    with FakeKernel(failed) as kernel:
        with pytest.raises(rtnl.NetlinkError) as err:
            kernel.nl.addrs()
    assert err.value.errno == errno.EINTR


def test_each_request_gets_the_next_sequence_number():
    seqs = []

    def reply(seq):
        seqs.append(seq)
        return [ack(seq)]

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with ours, theirs:
        nl = rtnl.Rtnl.of(ours)          # borrowed: closing it leaves ours open
        for _ in range(2):
            kernel = threading.Thread(target=lambda: [
                theirs.send(d) for d in reply(rtnl.NLMSGHDR.unpack_from(theirs.recv(4096))[3])])
            kernel.start()
            nl.set_link(1, up=True)
            kernel.join(5)
        nl.close()
        assert ours.fileno() != -1
    assert seqs[1] == seqs[0] + 1
