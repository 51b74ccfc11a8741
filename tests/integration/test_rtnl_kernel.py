"""minipod.netns.rtnl on a real kernel, checked by iproute2 (`ip -j`).

Needs root; runs in the suite's private network namespace. Every link is
named for this run (mr<RUN>...) and each test deletes what it made; the
pod's netns is /run/netns/mprtnl-<RUN>-N, deleted with `ip netns del`.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import uuid

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: creates bridges, veths, netns"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2's `ip` as the check"),
]

from minipod.netns import rtnl  # noqa: E402
from minipod.netns.podnetlink import ipr_in  # noqa: E402

RUN = uuid.uuid4().hex[:6]
_names = iter(range(1000))


def ip_json(*args: str) -> list[dict]:
    out = subprocess.run(["ip", "-j", *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out or "[]")


def exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


@pytest.fixture
def nl():
    with rtnl.Rtnl() as nl:
        yield nl


@pytest.fixture
def names():
    """names() -> a fresh link name of this run ("mr" + 6 + up to 3 < 16);
    whatever of them still exists is deleted at teardown."""
    made = []

    def name() -> str:
        made.append(f"mr{RUN}{next(_names)}")
        return made[-1]

    yield name
    for n in made:
        subprocess.run(["ip", "link", "del", n], capture_output=True)
    assert not [n for n in made if exists(n)]


@pytest.fixture
def netns():
    name = f"mprtnl-{RUN}-{next(_names)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


def test_bridge_address_up_and_delete(nl, names):
    br = names()
    nl.new_bridge(br, "0a:58:0a:fb:01:01")
    link = nl.get_link(br)
    assert (link.ifname, link.kind, link.mac) == (br, "bridge", "0a:58:0a:fb:01:01")
    assert nl.get_link(link.index) == link
    nl.add_addr(link.index, "10.251.1.1", 24, "10.251.1.255")
    nl.set_link(link.index, up=True)

    (shown,) = ip_json("-d", "link", "show", br)
    assert shown["linkinfo"]["info_kind"] == "bridge"
    assert shown["address"] == "0a:58:0a:fb:01:01" and "UP" in shown["flags"]
    (addr,) = ip_json("-4", "addr", "show", br)[0]["addr_info"]
    assert (addr["local"], addr["prefixlen"], addr["broadcast"]) == ("10.251.1.1", 24,
                                                                     "10.251.1.255")
    assert nl.get_link(br).flags & rtnl.IFF_UP
    mine = [a for a in nl.addrs(socket.AF_INET) if a.index == link.index]
    assert [(a.address, a.prefixlen, a.label) for a in mine] == [("10.251.1.1", 24, br)]

    nl.del_link(br)
    assert not exists(br)


def test_refusals_carry_errno(nl, names):
    br = names()
    with pytest.raises(rtnl.NetlinkError) as err:
        nl.get_link(br)
    assert err.value.errno == errno.ENODEV
    with pytest.raises(rtnl.NetlinkError) as err:
        nl.del_link(br)
    assert err.value.errno == errno.ENODEV
    nl.new_bridge(br, "0a:58:0a:fb:01:02")
    with pytest.raises(rtnl.NetlinkError) as err:
        nl.new_bridge(br, "0a:58:0a:fb:01:02")
    assert err.value.errno == errno.EEXIST
    index = nl.get_link(br).index
    nl.add_addr(index, "10.251.2.1", 24)
    with pytest.raises(rtnl.NetlinkError) as err:
        nl.add_addr(index, "10.251.2.1", 24)
    assert err.value.errno == errno.EEXIST


def test_veth_with_its_peer_in_a_netns(nl, names, netns):
    br, host = names(), names()
    nl.new_bridge(br, "0a:58:0a:fb:03:01")
    bridge_index = nl.get_link(br).index
    fd = os.open(f"/run/netns/{netns}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        nl.new_veth(host, "eth0", "0a:58:0a:fb:03:02", fd)
        nl.set_link(host, master=bridge_index, alias=f"minipod-{RUN}", addrgenmode_none=True)
        nl.set_link(host, up=True)
        with ipr_in(fd, f"/run/netns/{netns}") as (pod, eth0):
            pod.add_addr(eth0, "10.251.3.2", 24, "10.251.3.255")
            pod.set_link(eth0, up=True)
            pod.set_link(1, up=True)
            pod.add_default_route("10.251.3.1", eth0)
            assert {link.ifname for link in pod.links()} == {"lo", "eth0"}
    finally:
        os.close(fd)

    (shown,) = ip_json("-d", "link", "show", host)
    assert shown["master"] == br and shown["ifalias"] == f"minipod-{RUN}"
    assert shown["inet6_addr_gen_mode"] == "none" and "UP" in shown["flags"]
    link = nl.get_link(host)
    assert (link.kind, link.master, link.alias) == ("veth", bridge_index, f"minipod-{RUN}")
    (eth0,) = ip_json("-n", netns, "link", "show", "eth0")
    assert eth0["address"] == "0a:58:0a:fb:03:02" and "UP" in eth0["flags"]
    (route,) = ip_json("-n", netns, "-4", "route", "show", "default")
    assert (route["gateway"], route["dev"], route["protocol"]) == ("10.251.3.1", "eth0", "static")

    nl.del_link(host)            # deleting one end deletes the other
    assert not exists(host)
    assert [link["ifname"] for link in ip_json("-n", netns, "link", "show")] == ["lo"]


def test_a_dump_longer_than_one_datagram(nl, names, monkeypatch):
    """60 bridges: more than the 32 KiB one dump datagram holds."""
    made = {names() for _ in range(60)}
    for n, br in enumerate(sorted(made)):
        nl.new_bridge(br, f"0a:58:0a:fb:04:{n:02x}")
    reads, read = [], os.read

    def counted(fd: int, size: int) -> bytes:
        reads.append(fd)
        return read(fd, size)

    monkeypatch.setattr(os, "read", counted)
    dumped = {link.ifname for link in nl.links()}
    monkeypatch.undo()
    assert reads.count(nl.fileno()) > 2
    assert made <= dumped
    assert dumped == {link["ifname"] for link in ip_json("link", "show")}
