"""rtnetlink: the nine requests minipod sends to the kernel (man 7 netlink, man 7 rtnetlink).

Why not pyroute2: importing it costs ~170 ms (its package imports ipdb,
ndb, conntrack, asyncio, ...), most of a cold `minipod run`, for a handful
of messages that fit in this file. The requests, as `ip` spells them:

    new_bridge(name, mac)          ip link add NAME address MAC type bridge
    new_veth(name, peer, mac, fd)  ip link add NAME type veth peer name PEER address MAC netns FD
    set_link(dev, ...)             ip link set DEV [master M] [alias A] [addrgenmode none] [up]
    del_link(name)                 ip link del NAME
    get_link(dev)                  ip link show DEV
    links()                        ip link show
    add_addr(index, ip, plen, brd) ip addr add IP/PLEN brd BRD dev INDEX
    addrs(family)                  ip -4 addr show
    add_default_route(gw, oif)     ip route add default via GW dev OIF proto static

A message is a header, a fixed struct of its family, then attributes:

    struct nlmsghdr   len u32 | type u16 | flags u16 | seq u32 | pid u32      (16 bytes)
    struct ifinfomsg  family u8 | pad | type u16 | index i32 | flags u32 | change u32  (links)
    struct ifaddrmsg  family u8 | prefixlen u8 | flags u8 | scope u8 | index u32      (addrs)
    struct rtmsg      family | dst_len | src_len | tos | table | protocol | scope | type
                      (u8 each) | flags u32                                         (routes)
    struct nlattr     len u16 | type u16 | payload, padded to 4 bytes; a nested
                      attribute's payload is more attributes

A request carries NLM_F_REQUEST|NLM_F_ACK and is answered by NLMSG_ERROR:
error 0 is the ACK, -errno a refusal, raised as NetlinkError (an OSError:
.errno, .strerror). A request with NLM_F_DUMP is answered by messages
flagged NLM_F_MULTI, possibly over several datagrams, up to NLMSG_DONE (it
needs no ACK: DONE is its end). Each request gets the next sequence number;
an answer with another one is a late answer to a request abandoned
half-way (an exception mid-dump) and is skipped. Byte order is the host's
(struct "="), as netlink's is.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import time
from dataclasses import dataclass

# <linux/netlink.h>
NLMSG_ERROR, NLMSG_DONE, NLMSG_MIN_TYPE = 2, 3, 0x10     # below MIN_TYPE: control
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP = 0x300                                    # NLM_F_ROOT | NLM_F_MATCH
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400               # for NEW requests
NLA_TYPE_MASK = 0x3FFF                                # without NLA_F_NESTED, NLA_F_NET_BYTEORDER
# <linux/rtnetlink.h>
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_GETADDR, RTM_NEWROUTE = 20, 22, 24
RT_TABLE_MAIN, RTPROT_STATIC, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 4, 0, 1
RTEXT_FILTER_SKIP_STATS = 1 << 3
# <linux/if_link.h>, <linux/veth.h>
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MASTER, IFLA_LINKINFO = 1, 3, 10, 18
IFLA_IFALIAS, IFLA_AF_SPEC, IFLA_NET_NS_FD, IFLA_EXT_MASK = 20, 26, 28, 29
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFLA_INET6_ADDR_GEN_MODE, IN6_ADDR_GEN_MODE_NONE = 8, 1
# <linux/if_addr.h>, <linux/rtnetlink.h> route attributes
IFA_ADDRESS, IFA_LOCAL, IFA_LABEL, IFA_BROADCAST = 1, 2, 3, 4
RTA_OIF, RTA_GATEWAY = 4, 5
IFF_UP = 0x1

NLMSGHDR = struct.Struct("=IHHII")
IFINFOMSG = struct.Struct("=BxHiII")
IFADDRMSG = struct.Struct("=BBBBI")
RTMSG = struct.Struct("=BBBBBBBBI")
NLATTR = struct.Struct("=HH")
ERRNO = struct.Struct("=i")
# A dump datagram is at most 32 KiB (the kernel's cap); an error echoes the request.
RECV_SIZE = 1 << 16


class NetlinkError(OSError):
    """The kernel refused a request: .errno, .strerror (`[Errno 17] File exists`)."""


@dataclass(frozen=True)
class Link:
    """One RTM_NEWLINK answer: what minipod reads of a network device."""
    index: int
    ifname: str | None
    flags: int                   # IFF_UP, ...
    mac: str | None              # IFLA_ADDRESS, "0a:58:0a:59:00:01"
    master: int | None           # IFLA_MASTER: the bridge's index
    kind: str | None             # IFLA_LINKINFO / IFLA_INFO_KIND: "bridge", "veth", ...
    alias: str | None            # IFLA_IFALIAS


@dataclass(frozen=True)
class Addr:
    """One RTM_NEWADDR answer."""
    index: int
    family: int
    prefixlen: int
    address: str | None          # IFA_ADDRESS
    label: str | None            # IFA_LABEL: the device's name (IPv4)


# -- encoding: pure functions, bytes out ------------------------------------

def attr(kind: int, payload: bytes) -> bytes:
    """One struct nlattr: its header, the payload, zeros up to 4 bytes."""
    size = NLATTR.size + len(payload)
    return NLATTR.pack(size, kind) + payload + b"\0" * (-size % 4)


def attr_str(kind: int, value: str) -> bytes:
    return attr(kind, value.encode() + b"\0")         # NLA_STRING: NUL-terminated


def attr_u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def message(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    """A whole request: nlmsghdr + body (pid 0: the kernel knows who sent it)."""
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), kind, flags, seq, 0) + body


def ifinfomsg(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, flags, change)


def dev_body(dev: int | str, flags: int = 0, change: int = 0) -> bytes:
    """ifinfomsg for a device by index, or index 0 + IFLA_IFNAME: the kernel
    looks the name up itself (one request, not a lookup then a request)."""
    if isinstance(dev, int):
        return ifinfomsg(dev, flags, change)
    return ifinfomsg(0, flags, change) + attr_str(IFLA_IFNAME, dev)


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def new_bridge_body(name: str, mac: str) -> bytes:
    return (ifinfomsg() + attr_str(IFLA_IFNAME, name) + attr(IFLA_ADDRESS, mac_bytes(mac))
            + attr(IFLA_LINKINFO, attr_str(IFLA_INFO_KIND, "bridge")))


def new_veth_body(name: str, peer: str, peer_mac: str, peer_netns_fd: int) -> bytes:
    """The peer is described by its own ifinfomsg + attributes inside
    IFLA_LINKINFO / IFLA_INFO_DATA / VETH_INFO_PEER; IFLA_NET_NS_FD there
    creates it straight in that namespace (no move afterwards)."""
    peer_msg = (ifinfomsg() + attr_str(IFLA_IFNAME, peer) + attr(IFLA_ADDRESS, mac_bytes(peer_mac))
                + attr_u32(IFLA_NET_NS_FD, peer_netns_fd))
    info = attr_str(IFLA_INFO_KIND, "veth") + attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer_msg))
    return ifinfomsg() + attr_str(IFLA_IFNAME, name) + attr(IFLA_LINKINFO, info)


def set_link_body(dev: int | str, up: bool = False, master: int | None = None,
                  alias: str | None = None, addrgenmode_none: bool = False) -> bytes:
    """RTM_NEWLINK without NLM_F_CREATE changes an existing device. up sets
    IFF_UP in flags and in change (the mask of flags to change). The kernel
    applies flags before IFLA_AF_SPEC (do_setlink), so a link that must come
    up without an IPv6 link-local address needs two requests."""
    body = dev_body(dev, IFF_UP if up else 0, IFF_UP if up else 0)
    if master is not None:
        body += attr_u32(IFLA_MASTER, master)
    if alias is not None:
        body += attr_str(IFLA_IFALIAS, alias)
    if addrgenmode_none:      # IFLA_AF_SPEC / AF_INET6 / IFLA_INET6_ADDR_GEN_MODE (u8)
        mode = attr(IFLA_INET6_ADDR_GEN_MODE, bytes([IN6_ADDR_GEN_MODE_NONE]))
        body += attr(IFLA_AF_SPEC, attr(socket.AF_INET6, mode))
    return body


def get_link_body(dev: int | str | None = None) -> bytes:
    """A device (or, None, the dump's empty ifinfomsg), without its statistics:
    they are most of an answer's bytes and nobody here reads them."""
    return (dev_body(dev) if dev is not None else ifinfomsg()) + attr_u32(
        IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)


def add_addr_body(index: int, ip: str, prefixlen: int, broadcast: str | None = None) -> bytes:
    """IPv4: IFA_LOCAL is the interface's own address, IFA_ADDRESS the same
    unless point-to-point (what `ip addr add` sends)."""
    packed = socket.inet_aton(ip)
    body = (IFADDRMSG.pack(socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
            + attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed))
    if broadcast is not None:
        body += attr(IFA_BROADCAST, socket.inet_aton(broadcast))
    return body


def get_addr_body(family: int) -> bytes:
    return IFADDRMSG.pack(family, 0, 0, 0, 0)


def default_route_body(gateway: str, oif: int) -> bytes:
    """0.0.0.0/0 (dst_len 0, no RTA_DST) in the main table, via gateway out of oif."""
    return (RTMSG.pack(socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC,
                       RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
            + attr(RTA_GATEWAY, socket.inet_aton(gateway)) + attr_u32(RTA_OIF, oif))


# -- decoding: pure functions, bytes in ----------------------------------------

def split(data: bytes):
    """The messages of one datagram: (type, flags, seq, body) each."""
    offset = 0
    while offset + NLMSGHDR.size <= len(data):
        size, kind, flags, seq, _pid = NLMSGHDR.unpack_from(data, offset)
        if size < NLMSGHDR.size or offset + size > len(data):
            raise NetlinkError(errno.EBADMSG, f"malformed netlink message: length {size} at {offset}")
        yield kind, flags, seq, data[offset + NLMSGHDR.size:offset + size]
        offset += (size + 3) & ~3


def attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    """The attributes from offset on: {type: payload}."""
    out = {}
    while offset + NLATTR.size <= len(data):
        size, kind = NLATTR.unpack_from(data, offset)
        if size < NLATTR.size:
            break
        out[kind & NLA_TYPE_MASK] = data[offset + NLATTR.size:offset + size]
        offset += (size + 3) & ~3
    return out


def _str(payload: bytes | None) -> str | None:
    return None if payload is None else payload.split(b"\0", 1)[0].decode(errors="replace")


def _u32(payload: bytes | None) -> int | None:
    return None if payload is None else struct.unpack("=I", payload[:4])[0]


def decode_link(body: bytes) -> Link:
    _family, _type, index, flags, _change = IFINFOMSG.unpack_from(body)
    a = attrs(body, IFINFOMSG.size)
    mac = a.get(IFLA_ADDRESS)
    info = attrs(a.get(IFLA_LINKINFO, b""))
    return Link(index=index, ifname=_str(a.get(IFLA_IFNAME)), flags=flags,
                mac=":".join(f"{b:02x}" for b in mac) if mac is not None else None,
                master=_u32(a.get(IFLA_MASTER)), kind=_str(info.get(IFLA_INFO_KIND)),
                alias=_str(a.get(IFLA_IFALIAS)))


def decode_addr(body: bytes) -> Addr:
    family, prefixlen, _flags, _scope, index = IFADDRMSG.unpack_from(body)
    a = attrs(body, IFADDRMSG.size)
    address = a.get(IFA_ADDRESS)
    return Addr(index=index, family=family, prefixlen=prefixlen,
                address=socket.inet_ntop(family, address) if address is not None else None,
                label=_str(a.get(IFA_LABEL)))


# -- the socket ------------------------------------------------------------------

class Rtnl:
    """A NETLINK_ROUTE socket that sends the requests above, one at a time.

    Rtnl() makes its own socket in the caller's network namespace; Rtnl(sock)
    takes one made elsewhere (minipod.netns.podnetlink makes it inside a
    pod's) and closes it on close(). Not for two threads at once."""

    def __init__(self, sock: socket.socket | None = None, *, fileno: int | None = None):
        if fileno is not None:         # borrowed (Rtnl.of): never closed here
            self._sock, self._fd = None, fileno
        else:
            self._sock = sock or socket.socket(socket.AF_NETLINK,
                                               socket.SOCK_DGRAM | socket.SOCK_CLOEXEC,
                                               socket.NETLINK_ROUTE)
            self._fd = self._sock.fileno()
        # Starting from the clock, as iproute2 does: two sockets' numbers differ.
        self._seq = int(time.time()) & 0x7FFFFFFF

    @classmethod
    def of(cls, sock) -> Rtnl:
        """sock if an Rtnl, else one speaking through sock.fileno(): any
        NETLINK_ROUTE socket (a pyroute2 IPRoute the tests hold) as long as
        its owner is not reading it at the same time."""
        return sock if isinstance(sock, cls) else cls(fileno=sock.fileno())

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the requests (module docstring) --
    def new_bridge(self, name: str, mac: str) -> None:
        self.request(RTM_NEWLINK, new_bridge_body(name, mac), NLM_F_CREATE | NLM_F_EXCL)

    def new_veth(self, name: str, peer: str, peer_mac: str, peer_netns_fd: int) -> None:
        self.request(RTM_NEWLINK, new_veth_body(name, peer, peer_mac, peer_netns_fd),
                     NLM_F_CREATE | NLM_F_EXCL)

    def set_link(self, dev: int | str, *, up: bool = False, master: int | None = None,
                 alias: str | None = None, addrgenmode_none: bool = False) -> None:
        self.request(RTM_NEWLINK, set_link_body(dev, up, master, alias, addrgenmode_none))

    def del_link(self, name: str) -> None:
        self.request(RTM_DELLINK, dev_body(name))

    def get_link(self, dev: int | str) -> Link:
        """The device by index or name; NetlinkError ENODEV if there is none."""
        (answer,) = self.request(RTM_GETLINK, get_link_body(dev))
        return decode_link(answer)

    def links(self) -> list[Link]:
        return [decode_link(b) for b in self.dump(RTM_GETLINK, get_link_body())]

    def add_addr(self, index: int, ip: str, prefixlen: int, broadcast: str | None = None) -> None:
        self.request(RTM_NEWADDR, add_addr_body(index, ip, prefixlen, broadcast),
                     NLM_F_CREATE | NLM_F_EXCL)

    def addrs(self, family: int = socket.AF_INET) -> list[Addr]:
        return [decode_addr(b) for b in self.dump(RTM_GETADDR, get_addr_body(family))]

    def add_default_route(self, gateway: str, oif: int) -> None:
        self.request(RTM_NEWROUTE, default_route_body(gateway, oif), NLM_F_CREATE | NLM_F_EXCL)

    # -- the exchange --
    def request(self, kind: int, body: bytes, flags: int = 0) -> list[bytes]:
        """Send one request with NLM_F_ACK; the bodies answered before the ACK."""
        return self._exchange(kind, body, NLM_F_REQUEST | NLM_F_ACK | flags)

    def dump(self, kind: int, body: bytes) -> list[bytes]:
        """Send one NLM_F_DUMP request; the bodies of its answer up to NLMSG_DONE."""
        return self._exchange(kind, body, NLM_F_REQUEST | NLM_F_DUMP)

    def _exchange(self, kind: int, body: bytes, flags: int) -> list[bytes]:
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        seq = self._seq
        os.write(self._fd, message(kind, flags, seq, body))
        answers = []
        while True:
            for mtype, _mflags, mseq, mbody in split(os.read(self._fd, RECV_SIZE)):
                if mseq != seq:
                    continue              # a late answer to an abandoned request
                if mtype == NLMSG_ERROR:  # struct nlmsgerr: -errno, then our request
                    _raise_if_error(mbody)
                    return answers        # error 0: the ACK
                if mtype == NLMSG_DONE:   # a dump's end; since Linux 4.x its body is an int
                    if len(mbody) >= ERRNO.size:
                        _raise_if_error(mbody)
                    return answers
                if mtype >= NLMSG_MIN_TYPE:
                    answers.append(mbody)


def _raise_if_error(body: bytes) -> None:
    (code,) = ERRNO.unpack_from(body)
    if code < 0:
        raise NetlinkError(-code, os.strerror(-code))
