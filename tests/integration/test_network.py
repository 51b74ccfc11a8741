"""The pod network on a real kernel: bridge, veth pairs, addresses, TCP.

Needs root. Meant to run inside a private network namespace (the suite
runs under `unshare --net`), but it only creates things with names unique
to this run, so it works in any netns where it may create a bridge: one
bridge mpt<RUN>..., pod namespaces /run/netns/mptest-<RUN>-N, and the
veths attach_pod makes. Each test removes what it made; the last test
checks that nothing is left.

Connectivity is checked with TCP, no ping binary needed: a socket created
inside a pod's netns (by a forked child that setns's there and passes the
fd back over a unix socket) keeps that netns for its whole life, so this
process can listen "in pod B" and connect "from pod A" without entering
either namespace itself.
"""
from __future__ import annotations

import ipaddress
import multiprocessing
import os
import shutil
import socket
import subprocess
import uuid

import pytest

from podhelpers import socket_in

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0,
                       reason="needs root: creates bridges, veths and network namespaces"),
    pytest.mark.skipif(shutil.which("ip") is None,
                       reason="needs iproute2's `ip` to create test network namespaces"),
]

from pyroute2 import IPRoute  # noqa: E402  (after the skips: still importable as user)

from minipod.netns.bridge import (  # noqa: E402
    NetworkConfig, NetworkError, attach_pod, delete_bridge, detach_pod,
    ensure_bridge, host_ifname, mac_for_ip, pod_links,
)

RUN = uuid.uuid4().hex[:6]
SUBNET = ipaddress.IPv4Network("10.250.77.0/24")
GATEWAY = str(SUBNET.network_address + 1)
PREFIX = SUBNET.prefixlen
_made_links: set[str] = set()       # every link name this run may have created
_made_netns: set[str] = set()


def ip_of(n: int) -> str:
    return str(SUBNET.network_address + n)


def own_netns_inode() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


# -- fixtures -------------------------------------------------------------------

@pytest.fixture
def ipr():
    with IPRoute() as ipr:
        yield ipr


_bridges = iter(range(1000))


@pytest.fixture
def cfg(ipr):
    """A bridge name unique to this run and test ("mpt" + 6 + up to 3 < 16)."""
    cfg = NetworkConfig(bridge=f"mpt{RUN}{next(_bridges)}", subnet=str(SUBNET))
    _made_links.add(cfg.bridge)
    yield cfg
    delete_bridge(ipr, cfg)


@pytest.fixture
def bridge(ipr, cfg):
    ensure_bridge(ipr, cfg, GATEWAY, PREFIX)
    return cfg


_pods = iter(range(1000))


@pytest.fixture
def make_pod(ipr):
    """make_pod() -> (netns path, host ifname): an empty netns, like the
    sandbox code makes one; deleted (with anything in it) at teardown."""
    made = []

    def make():
        name = f"mptest-{RUN}-{next(_pods)}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        _made_netns.add(name)
        veth = host_ifname(name)
        _made_links.add(veth)
        made.append((name, veth))
        return f"/run/netns/{name}", veth

    yield make
    for name, veth in made:
        detach_pod(ipr, veth)
        subprocess.run(["ip", "netns", "del", name], check=True)


# -- helpers: sockets made in another netns -----------------------------------

def ipr_in(netns_path: str) -> IPRoute:
    """An IPRoute that queries netns_path (its socket was made there)."""
    sock = socket_in(netns_path, socket.AF_NETLINK, socket.SOCK_DGRAM, socket.NETLINK_ROUTE)
    return IPRoute(fileno=sock.detach(), groups=0)


def listen(sock: socket.socket, addr: str) -> tuple[socket.socket, int]:
    sock.settimeout(5)
    sock.bind((addr, 0))
    sock.listen()
    return sock, sock.getsockname()[1]


def talk(client: socket.socket, server: socket.socket, addr: str, port: int) -> str:
    """Connect client to addr:port, round-trip bytes; the client IP the server saw."""
    client.settimeout(5)
    with client:
        client.connect((addr, port))
        conn, peer = server.accept()
        with conn:
            client.sendall(b"ping")
            assert conn.recv(4) == b"ping"
            conn.sendall(b"pong")
            assert client.recv(4) == b"pong"
    return peer[0]


def link_names(ipr) -> set[str]:
    return {link.get("ifname") for link in ipr.link("dump")}


def ipv4_addrs(ipr, ifname: str) -> set[str]:
    index = ipr.link_lookup(ifname=ifname)[0]
    return {f"{a.get('address')}/{a['prefixlen']}"
            for a in ipr.addr("dump", index=index, family=socket.AF_INET)}


# -- ensure_bridge ---------------------------------------------------------------

def test_ensure_bridge_is_idempotent(ipr, cfg):
    ensure_bridge(ipr, cfg, GATEWAY, PREFIX)
    ensure_bridge(ipr, cfg, GATEWAY, PREFIX)
    (link,) = ipr.link("get", ifname=cfg.bridge)
    assert link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") == "bridge"
    assert link.get("operstate") in ("UP", "UNKNOWN", "DOWN")   # DOWN: no port yet
    assert link["flags"] & 1, "IFF_UP"
    assert link.get("address") == mac_for_ip(GATEWAY) == "0a:58:0a:fa:4d:01"
    assert ipv4_addrs(ipr, cfg.bridge) == {f"{GATEWAY}/{PREFIX}"}


def test_ensure_bridge_adds_our_address_to_a_bridge_with_another(ipr, cfg):
    ipr.link("add", ifname=cfg.bridge, kind="bridge")
    index = ipr.link_lookup(ifname=cfg.bridge)[0]
    ipr.addr("add", index=index, address="10.251.0.1", prefixlen=24)
    ensure_bridge(ipr, cfg, GATEWAY, PREFIX)
    assert ipv4_addrs(ipr, cfg.bridge) == {"10.251.0.1/24", f"{GATEWAY}/{PREFIX}"}


def test_ensure_bridge_refuses_a_link_that_is_not_a_bridge(ipr, cfg):
    # (veth, not dummy: some kernels here are built without the dummy driver)
    peer = cfg.bridge + "p"
    _made_links.add(peer)
    ipr.link("add", ifname=cfg.bridge, kind="veth", peer=peer)
    with pytest.raises(NetworkError, match=f"{cfg.bridge}.*is a veth, not a bridge"):
        ensure_bridge(ipr, cfg, GATEWAY, PREFIX)


def _ensure_in_child(bridge, start, results):
    start.wait()
    try:
        with IPRoute() as ipr:
            ensure_bridge(ipr, NetworkConfig(bridge=bridge), GATEWAY, PREFIX)
        results.put("ok")
    except BaseException as e:
        results.put(repr(e))


def test_ensure_bridge_races(ipr, cfg):
    """Several processes at once: all succeed (EEXIST is tolerated)."""
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_ensure_in_child, args=(cfg.bridge, start, results))
             for _ in range(6)]
    for p in procs:
        p.start()
    start.set()
    got = [results.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert got == ["ok"] * len(procs)
    assert ipv4_addrs(ipr, cfg.bridge) == {f"{GATEWAY}/{PREFIX}"}


# -- attach / detach ---------------------------------------------------------------

def test_two_pods_talk_tcp_and_the_host_reaches_them(ipr, bridge, make_pod):
    ns_a, veth_a = make_pod()
    ns_b, veth_b = make_pod()
    before = own_netns_inode()
    a = attach_pod(ipr, bridge, ns_a, veth_a, ip_of(2), PREFIX, GATEWAY)
    b = attach_pod(ipr, bridge, ns_b, veth_b, ip_of(3), PREFIX, GATEWAY)
    assert own_netns_inode() == before, "attach_pod must leave us in our own netns"
    assert (a.host_ifname, a.pod_ifname, a.ip, a.prefixlen, a.gateway, a.mac) == \
        (veth_a, "eth0", ip_of(2), PREFIX, GATEWAY, mac_for_ip(ip_of(2)))

    server, port = listen(socket_in(ns_b), b.ip)
    with server:
        # pod A -> pod B: the server sees A's own IP, no NAT on a flat network
        assert talk(socket_in(ns_a), server, b.ip, port) == a.ip
        # host -> pod B: the host's source address is the gateway on the bridge
        assert talk(socket.socket(), server, b.ip, port) == GATEWAY
    # pod A -> host (the gateway address): the pod's default route works
    host_server, host_port = listen(socket.socket(), GATEWAY)
    with host_server:
        assert talk(socket_in(ns_a), host_server, GATEWAY, host_port) == a.ip
    # pod B -> its own IP over lo
    local, lport = listen(socket_in(ns_b), "127.0.0.1")
    with local:
        assert talk(socket_in(ns_b), local, "127.0.0.1", lport) == "127.0.0.1"


def test_pod_side_is_configured(ipr, bridge, make_pod):
    ns, veth = make_pod()
    link = attach_pod(ipr, bridge, ns, veth, ip_of(4), PREFIX, GATEWAY)
    with ipr_in(ns) as pod:
        (eth0,) = pod.link("get", ifname="eth0")
        assert eth0.get("address") == link.mac == "0a:58:0a:fa:4d:04"
        assert eth0["flags"] & 1
        (lo,) = pod.link("get", index=1)
        assert lo.get("ifname") == "lo" and lo["flags"] & 1
        assert ipv4_addrs(pod, "eth0") == {f"{ip_of(4)}/{PREFIX}"}
        defaults = [r for r in pod.route("dump", family=socket.AF_INET)
                    if r["dst_len"] == 0 and r.get("table") == 254]
        assert [r.get("gateway") for r in defaults] == [GATEWAY]
    (host_end,) = ipr.link("get", ifname=veth)
    assert host_end.get("master") == ipr.link_lookup(ifname=bridge.bridge)[0]
    assert host_end["flags"] & 1
    # addrgenmode none: the switch port has no IPv6 address, sends no DAD
    assert ipr.addr("dump", index=host_end["index"], family=socket.AF_INET6) == ()


def test_bridge_mac_does_not_follow_its_ports(ipr, bridge, make_pod):
    mac = ipr.link("get", ifname=bridge.bridge)[0].get("address")
    pods = [make_pod() for _ in range(3)]
    for n, (ns, veth) in enumerate(pods):
        attach_pod(ipr, bridge, ns, veth, ip_of(10 + n), PREFIX, GATEWAY)
        assert ipr.link("get", ifname=bridge.bridge)[0].get("address") == mac
    for _, veth in pods:
        detach_pod(ipr, veth)
        assert ipr.link("get", ifname=bridge.bridge)[0].get("address") == mac


def test_detach_removes_both_ends_and_is_idempotent(ipr, bridge, make_pod):
    ns, veth = make_pod()
    attach_pod(ipr, bridge, ns, veth, ip_of(5), PREFIX, GATEWAY)
    assert pod_links(ipr, bridge) == [veth]
    detach_pod(ipr, veth)
    detach_pod(ipr, veth)
    assert veth not in link_names(ipr)
    assert pod_links(ipr, bridge) == []
    with ipr_in(ns) as pod:
        assert link_names(pod) == {"lo"}


def test_pod_links_lists_only_minipod_veths(ipr, bridge, make_pod):
    pods = [make_pod() for _ in range(2)]
    for n, (ns, veth) in enumerate(pods):
        attach_pod(ipr, bridge, ns, veth, ip_of(20 + n), PREFIX, GATEWAY)
    # someone else's veth on our bridge is not ours to collect
    other = f"xv{RUN}"
    _made_links.add(other)
    ipr.link("add", ifname=other, kind="veth", peer=f"{other}p")
    try:
        ipr.link("set", ifname=other, master=ipr.link_lookup(ifname=bridge.bridge)[0])
        assert pod_links(ipr, bridge) == sorted(veth for _, veth in pods)
    finally:
        ipr.link("del", ifname=other)


def test_pod_links_without_bridge(ipr, cfg):
    assert pod_links(ipr, cfg) == []


def test_delete_bridge_is_idempotent(ipr, bridge):
    delete_bridge(ipr, bridge)
    delete_bridge(ipr, bridge)
    assert bridge.bridge not in link_names(ipr)


# -- failures: named step, errno, nothing left behind --------------------------

def test_missing_netns_is_named(ipr, bridge):
    veth = host_ifname(f"{RUN}-missing")
    _made_links.add(veth)
    with pytest.raises(NetworkError) as err:
        attach_pod(ipr, bridge, f"/run/netns/mptest-{RUN}-nope", veth, ip_of(6), PREFIX, GATEWAY)
    assert err.value.errno == 2
    assert f"open pod network namespace /run/netns/mptest-{RUN}-nope" in str(err.value)
    assert veth not in link_names(ipr)


def test_missing_bridge_is_named(ipr, cfg, make_pod):
    ns, veth = make_pod()
    with pytest.raises(NetworkError, match=f"look up bridge {cfg.bridge}.*ensure_bridge"):
        attach_pod(ipr, cfg, ns, veth, ip_of(6), PREFIX, GATEWAY)


def test_a_file_that_is_not_a_netns(ipr, bridge, tmp_path):
    veth = host_ifname(f"{RUN}-notns")
    _made_links.add(veth)
    (tmp_path / "netns").write_text("")
    with pytest.raises(NetworkError, match=r"step 1/3: create veth .*: Invalid argument"):
        attach_pod(ipr, bridge, str(tmp_path / "netns"), veth, ip_of(6), PREFIX, GATEWAY)
    assert veth not in link_names(ipr)


def test_pod_side_socket_reports_a_missing_eth0_and_comes_home(make_pod):
    from minipod.netns.podnetlink import ipr_in
    ns, _ = make_pod()
    before = own_netns_inode()
    fd = os.open(ns, os.O_RDONLY)
    try:
        with pytest.raises(NetworkError, match=f"step 2/3: find eth0 in {ns}: No such device"):
            with ipr_in(fd, ns):
                pass
    finally:
        os.close(fd)
    assert own_netns_inode() == before


def test_failure_in_the_pod_undoes_the_veth(ipr, bridge, make_pod):
    """A gateway outside the pod's subnet: the route step fails (ENETUNREACH)
    after the veth exists; attach_pod deletes it again."""
    ns, veth = make_pod()
    before = own_netns_inode()
    with pytest.raises(NetworkError) as err:
        attach_pod(ipr, bridge, ns, veth, ip_of(7), PREFIX, "10.99.0.1")
    assert err.value.errno == 101                               # ENETUNREACH
    assert "step 2/3: add default route via 10.99.0.1 to eth0 in " + ns in str(err.value)
    assert own_netns_inode() == before
    assert veth not in link_names(ipr)
    with ipr_in(ns) as pod:
        assert link_names(pod) == {"lo"}


def test_same_host_ifname_twice_keeps_the_first(ipr, bridge, make_pod):
    ns_a, veth = make_pod()
    ns_b, _ = make_pod()
    attach_pod(ipr, bridge, ns_a, veth, ip_of(8), PREFIX, GATEWAY)
    with pytest.raises(NetworkError) as err:
        attach_pod(ipr, bridge, ns_b, veth, ip_of(9), PREFIX, GATEWAY)
    assert err.value.errno == 17
    assert f"step 1/3: create veth {veth}" in str(err.value)
    assert "already exists on the host" in str(err.value)
    assert pod_links(ipr, bridge) == [veth]      # the failed call did not delete it


def test_netns_with_an_eth0_already(ipr, bridge, make_pod):
    ns, veth = make_pod()
    with ipr_in(ns) as pod:
        pod.link("add", ifname="eth0", kind="veth", peer="eth0p")
    with pytest.raises(NetworkError, match="already has an eth0.*File exists"):
        attach_pod(ipr, bridge, ns, veth, ip_of(9), PREFIX, GATEWAY)
    assert veth not in link_names(ipr)


def test_host_ifname():
    name = host_ifname("0f8fad5b-d9cb-469f-a165-70867728950e")
    assert name.startswith("mp") and len(name) == 12 and len(name) < 16
    int(name[2:], 16)
    assert name == host_ifname("0f8fad5b-d9cb-469f-a165-70867728950e")
    assert name != host_ifname("0f8fad5b-d9cb-469f-a165-70867728950f")


# -- last: nothing left ------------------------------------------------------------

def test_zz_nothing_left_behind(ipr):
    """Runs last in this module (pytest keeps file order)."""
    assert link_names(ipr) & _made_links == set()
    assert _made_netns, "the tests above made pod namespaces"
    left = {n for n in os.listdir("/run/netns") if n.startswith(f"mptest-{RUN}")} \
        if os.path.isdir("/run/netns") else set()
    assert left == set()
