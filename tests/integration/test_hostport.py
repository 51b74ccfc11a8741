"""hostPort on a real kernel: nftables DNAT and masquerade, claims, cleanup.

The pods are built here (a netns, a veth on a test bridge, an IP), not by
the agent; servers run inside them with `ip netns exec`. "The host" is the
network namespace the suite runs in; an "outside" namespace on a veth of
its own plays another machine. Every packet stays between namespaces this
test made. These tests change the firewall (nft) and, for the forwarded
cases, ip_forward of the suite's namespace (restored after), so they refuse
to run in the machine's own network namespace: run them with tests/run.
"""
from __future__ import annotations

import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import uuid

import pytest


def _in_private_netns() -> bool:
    """Not the machine's own network namespace: not PID 1's, or, where that
    cannot be read, one without a default route (tests/run's has none)."""
    try:
        return os.stat("/proc/1/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino
    except OSError:
        pass
    if shutil.which("ip") is None:
        return False
    routes = [subprocess.run(["ip", family, "route", "show", "default"], capture_output=True,
                             text=True).stdout.strip() for family in ("-4", "-6")]
    return not any(routes)


pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: nft, namespaces, veths"),
    pytest.mark.skipif(shutil.which("nft") is None,
                       reason="needs nft (Debian package nftables)"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2's `ip`"),
    pytest.mark.skipif(not _in_private_netns(),
                       reason="changes the firewall: run inside a private network "
                              "namespace (sudo tests/run)"),
]

from minipod.netns import hostport  # noqa: E402
from minipod.netns.hostport import HostPortConflict, HostPortError, Mapping  # noqa: E402

RUN = uuid.uuid4().hex[:6]
SUBNET, GATEWAY, PREFIX = "10.251.42.0/24", "10.251.42.1", 24
OUT_HOST, OUT_PEER = "10.251.43.1", "10.251.43.2"      # the host's "uplink", a machine on it
TIMEOUT = 10

# In a pod: `tcp PORT` answers one line naming the address it was reached
# at and the client it saw; `udp PORT` answers each datagram the same way.
POD_SERVER = r"""
import socket, sys, threading
kind, port = sys.argv[1], int(sys.argv[2])
if kind == "tcp":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(64)
    print("ready", flush=True)
    while True:
        c, peer = s.accept()
        with c:
            c.sendall(f"reached {c.getsockname()[0]} from {peer[0]}\n".encode())
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", port))
    print("ready", flush=True)
    while True:
        data, peer = s.recvfrom(100)
        s.sendto(f"udp {data.decode()} from {peer[0]}\n".encode(), peer)
"""

# A TCP client run inside a namespace: prints what the server said.
CLIENT = r"""
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as c:
        print(c.makefile().read(), end="")
except OSError as e:
    print(f"error: {e}")
"""


def ns_exec(ns: str, *args: str, check=True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, *args], check=check, text=True,
                          capture_output=True, timeout=30, **kw)


def tcp(addr: str, port: int, ns: str | None = None) -> str:
    """The server's line, from here or from inside namespace ns."""
    if ns:
        return ns_exec(ns, sys.executable, "-c", CLIENT, addr, str(port)).stdout
    try:
        with socket.create_connection((addr, port), timeout=TIMEOUT) as c:
            return c.makefile().read()
    except OSError as e:
        return f"error: {e}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- fixtures --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def network():
    """A bridge for the pods, with add_network's table; an "outside" netns
    on a veth (the host's end is OUT_HOST, one more address of the host)."""
    from pyroute2 import IPRoute

    from minipod.netns.bridge import NetworkConfig, delete_bridge, ensure_bridge
    cfg = NetworkConfig(bridge=f"mph{RUN}", subnet=SUBNET)
    outside, uplink = f"mphout-{RUN}", f"mpo{RUN}"
    with IPRoute() as ipr:
        ensure_bridge(ipr, cfg, GATEWAY, PREFIX)
        try:
            subprocess.run(["ip", "netns", "add", outside], check=True)
            subprocess.run(["ip", "link", "add", uplink, "type", "veth", "peer", "name",
                            "eth0", "netns", outside], check=True)
            subprocess.run(["ip", "addr", "add", f"{OUT_HOST}/24", "dev", uplink], check=True)
            subprocess.run(["ip", "link", "set", uplink, "up"], check=True)
            for cmd in (["addr", "add", f"{OUT_PEER}/24", "dev", "eth0"],
                        ["link", "set", "eth0", "up"], ["link", "set", "lo", "up"],
                        ["route", "add", "default", "via", OUT_HOST]):
                subprocess.run(["ip", "-n", outside, *cmd], check=True)
            hostport.add_network(cfg.bridge, SUBNET)
            yield cfg, outside
        finally:
            hostport.remove_network(cfg.bridge, SUBNET)
            subprocess.run(["ip", "link", "del", uplink], check=False)
            subprocess.run(["ip", "netns", "del", outside], check=False)
            delete_bridge(ipr, cfg)


class Pod:
    _ips = iter(range(2, 250))
    made: set[str] = set()          # uids, for the last test

    def __init__(self, cfg, subnet_prefix: str = "10.251.42", gateway: str = GATEWAY):
        from pyroute2 import IPRoute

        from minipod.netns.bridge import attach_pod, host_ifname
        self.uid = str(uuid.uuid4())
        Pod.made.add(self.uid)
        self.name = f"hp-{self.uid[:8]}"
        self.ns = f"mphp-{RUN}-{self.uid[:8]}"
        self.ip = f"{subnet_prefix}.{next(self._ips)}"
        self.veth = host_ifname(self.uid)
        self.servers: list[subprocess.Popen] = []
        subprocess.run(["ip", "netns", "add", self.ns], check=True)
        with IPRoute() as ipr:
            attach_pod(ipr, cfg, f"/run/netns/{self.ns}", self.veth, self.ip, PREFIX, gateway)

    def serve(self, kind: str, port: int) -> None:
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns, sys.executable, "-c",
                                 POD_SERVER, kind, str(port)], stdout=subprocess.PIPE, text=True)
        self.servers.append(proc)
        assert proc.stdout.readline().strip() == "ready"

    def delete(self) -> None:
        for proc in self.servers:
            proc.kill()                          # by pid: started by this test
            proc.wait()
        from pyroute2 import IPRoute

        from minipod.netns.bridge import detach_pod
        with IPRoute() as ipr:
            detach_pod(ipr, self.veth)
        subprocess.run(["ip", "netns", "del", self.ns], check=True)


@pytest.fixture
def make_pod(network):
    cfg, _ = network
    made: list[Pod] = []

    def make() -> Pod:
        made.append(Pod(cfg))
        return made[-1]
    yield make
    for pod in made:
        hostport.remove_rules(pod.uid)
        pod.delete()


@pytest.fixture
def state_dir(tmp_path):
    return tmp_path / "hostports"


@pytest.fixture
def forwarding():
    """ip_forward=1 in the suite's private namespace, for traffic routed
    between two links of "the host" (from outside, hairpin); restored after."""
    path = "/proc/sys/net/ipv4/ip_forward"
    with open(path) as f:
        old = f.read().strip()
    with open(path, "w") as f:
        f.write("1")
    yield
    with open(path, "w") as f:
        f.write(old)


def publish(pod: Pod, state_dir, *mappings: Mapping) -> None:
    """What the agent does for a pod with hostPorts."""
    hostport.claim(state_dir, pod.uid, pod.name, list(mappings))
    hostport.add_rules(pod.uid, pod.ip, list(mappings))


# -- traffic ---------------------------------------------------------------------------

def test_the_host_reaches_the_pod_by_localhost_and_its_own_addresses(make_pod, state_dir):
    pod = make_pod()
    pod.serve("tcp", 80)
    port = free_port()
    assert tcp("127.0.0.1", port).startswith("error: [Errno 111]")   # nothing there yet
    publish(pod, state_dir, Mapping(port, 80))
    # 127.0.0.1: DNAT, then masquerade (the pod cannot answer 127.0.0.1)
    assert tcp("127.0.0.1", port) == f"reached {pod.ip} from {GATEWAY}\n"
    # the host's own addresses: DNAT only, the source stays the host's
    assert tcp(GATEWAY, port) == f"reached {pod.ip} from {GATEWAY}\n"
    assert tcp(OUT_HOST, port) == f"reached {pod.ip} from {OUT_HOST}\n"


def test_from_another_machine_the_client_address_is_kept(make_pod, state_dir, network,
                                                         forwarding):
    _, outside = network
    pod = make_pod()
    pod.serve("tcp", 8080)
    port = free_port()
    publish(pod, state_dir, Mapping(port, 8080))
    # PREROUTING: no masquerade, the pod sees who called (as with portmap)
    assert tcp(OUT_HOST, port, ns=outside) == f"reached {pod.ip} from {OUT_PEER}\n"


def test_hairpin_a_pod_reaches_its_own_and_another_pods_host_port(make_pod, state_dir,
                                                                  forwarding):
    a, b = make_pod(), make_pod()
    a.serve("tcp", 80)
    port = free_port()
    hostport.claim(state_dir, a.uid, a.name, [Mapping(port, 80)])
    # host_ifname: hairpin mode on a's bridge port (needed with br_netfilter)
    hostport.add_rules(a.uid, a.ip, [Mapping(port, 80)], host_ifname=a.veth)
    # masqueraded: otherwise the answer would go pod to pod over the bridge,
    # past the host's conntrack, and the caller would drop it
    assert tcp(OUT_HOST, port, ns=a.ns) == f"reached {a.ip} from {GATEWAY}\n"
    assert tcp(OUT_HOST, port, ns=b.ns) == f"reached {a.ip} from {GATEWAY}\n"


def test_pods_reach_beyond_the_host_masqueraded(make_pod, network, forwarding):
    _, outside = network
    pod = make_pod()
    server = subprocess.Popen(["ip", "netns", "exec", outside, sys.executable, "-c",
                               POD_SERVER, "tcp", "9000"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        # the other machine sees the host's address, not the pod's: masquerade
        assert tcp(OUT_PEER, 9000, ns=pod.ns) == f"reached {OUT_PEER} from {OUT_HOST}\n"
    finally:
        server.kill()
        server.wait()


def test_host_ip_limits_the_address(make_pod, state_dir):
    pod = make_pod()
    pod.serve("tcp", 80)
    port = free_port()
    publish(pod, state_dir, Mapping(port, 80, host_ip="127.0.0.1"))
    assert tcp("127.0.0.1", port) == f"reached {pod.ip} from {GATEWAY}\n"
    assert tcp(GATEWAY, port).startswith("error: [Errno 111]")


def test_udp(make_pod, state_dir):
    pod = make_pod()
    pod.serve("udp", 53)
    port = free_port()
    publish(pod, state_dir, Mapping(port, 53, protocol="UDP"))
    for addr, source in (("127.0.0.1", GATEWAY), (GATEWAY, GATEWAY)):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(TIMEOUT)
            s.sendto(b"hi", (addr, port))
            assert s.recv(100) == f"udp hi from {source}\n".encode()


def test_pods_cannot_use_route_localnet_to_reach_the_hosts_loopback(tmp_path):
    """route_localnet=1 on a bridge lets the host accept packets a pod sends
    to 127.0.0.1 (CVE-2020-8558). Shown on a bridge without the guard, then
    blocked once add_network has put the bridge in the guard's set."""
    from pyroute2 import IPRoute

    from minipod.netns.bridge import NetworkConfig, delete_bridge, ensure_bridge
    cfg = NetworkConfig(bridge=f"mpg{RUN}", subnet="10.251.44.0/24")
    with IPRoute() as ipr, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as host_lo:
        ensure_bridge(ipr, cfg, "10.251.44.1", 24)
        pod = None
        try:
            pod = Pod(cfg, "10.251.44", "10.251.44.1")
            host_lo.bind(("127.0.0.1", 0))     # a service bound to the host's loopback
            host_lo.settimeout(1)
            port = host_lo.getsockname()[1]
            # the pod (root in its netns) routes 127.0.0.1 to the host
            for cmd in (["sysctl", "-qw", "net.ipv4.conf.eth0.route_localnet=1"],
                        ["ip", "route", "del", "local", "127.0.0.0/8", "table", "local"],
                        ["ip", "route", "del", "local", "127.0.0.1", "table", "local"],
                        ["ip", "route", "add", "127.0.0.1/32", "via", "10.251.44.1"]):
                ns_exec(pod.ns, *cmd)
            send = ("import socket, sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
                    ".sendto(sys.argv[1].encode(), ('127.0.0.1', int(sys.argv[2])))")
            with open(f"/proc/sys/net/ipv4/conf/{cfg.bridge}/route_localnet", "w") as f:
                f.write("1")                   # what add_network sets, without the guard
            ns_exec(pod.ns, sys.executable, "-c", send, "unguarded", str(port))
            data, peer = host_lo.recvfrom(100)
            assert (data, peer[0]) == (b"unguarded", pod.ip)    # the hole is real
            hostport.add_network(cfg.bridge, cfg.subnet)
            try:
                ns_exec(pod.ns, sys.executable, "-c", send, "guarded", str(port))
                with pytest.raises(socket.timeout):
                    host_lo.recvfrom(100)
            finally:
                hostport.remove_network(cfg.bridge, cfg.subnet)
        finally:
            if pod:
                pod.delete()
            delete_bridge(ipr, cfg)


# -- claims ------------------------------------------------------------------------------

def test_a_second_claim_is_rejected_naming_the_holder(state_dir):
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    hostport.claim(state_dir, a, "web", [Mapping(8080, 80)])
    hostport.claim(state_dir, a, "web", [Mapping(8080, 80)])     # again: fine
    with pytest.raises(HostPortConflict) as err:
        hostport.claim(state_dir, b, "api", [Mapping(9090, 90), Mapping(8080, 8080)])
    assert str(err.value) == ("hostPort 8080/TCP of pod api is already used by pod web "
                              "(hostPort 8080/TCP); use another hostPort, or delete pod web")
    assert (err.value.holder_uid, err.value.holder_name) == (a, "web")
    # all or nothing: api's 9090 was not claimed either
    assert [(uid, m.host_port) for uid, _, m in hostport.claims(state_dir)] == [(a, 8080)]


@pytest.mark.parametrize("held, wanted, clash", [
    (Mapping(80, 80), Mapping(80, 81, "UDP"), False),                       # other protocol
    (Mapping(80, 80), Mapping(81, 80), False),                              # other port
    (Mapping(80, 80, host_ip="10.0.0.1"), Mapping(80, 80, host_ip="10.0.0.2"), False),
    (Mapping(80, 80, host_ip="10.0.0.1"), Mapping(80, 80, host_ip="10.0.0.1"), True),
    (Mapping(80, 80), Mapping(80, 80, host_ip="10.0.0.1"), True),           # all vs one
    (Mapping(80, 80, host_ip="10.0.0.1"), Mapping(80, 80), True),
    (Mapping(80, 80, host_ip="0.0.0.0"), Mapping(80, 80, host_ip="10.0.0.1"), True),
    (Mapping(80, 80, "SCTP"), Mapping(80, 90, "SCTP"), True),
])
def test_what_clashes(state_dir, held, wanted, clash):
    hostport.claim(state_dir, "uid-a", "a", [held])
    if clash:
        with pytest.raises(HostPortConflict):
            hostport.claim(state_dir, "uid-b", "b", [wanted])
    else:
        hostport.claim(state_dir, "uid-b", "b", [wanted])


def _claim_in_child(state_dir, uid, start, results):
    start.wait()
    try:
        hostport.claim(state_dir, uid, uid, [Mapping(7000, 80)])
        results.put("won")
    except HostPortConflict:
        results.put("lost")
    except BaseException as e:
        results.put(repr(e))


def test_concurrent_claims_exactly_one_wins(state_dir):
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_claim_in_child, args=(state_dir, f"uid-{i}", start, results))
             for i in range(8)]
    for p in procs:
        p.start()
    start.set()
    got = sorted(results.get(timeout=30) for _ in procs)
    for p in procs:
        p.join(30)
    assert got == ["lost"] * 7 + ["won"]
    assert len(hostport.claims(state_dir)) == 1


@pytest.mark.parametrize("mapping, words", [
    (Mapping(80, 80, host_ip="::1"), "hostIP ::1 is IPv6, and the pod network is IPv4 only"),
    (Mapping(80, 80, "ICMP"), "protocol must be one of TCP, UDP, SCTP"),
    (Mapping(0, 80), "hostPort 0 is not a port"),
    (Mapping(80, 70000), "containerPort 70000 is not a port"),
    (Mapping(80, 80, host_ip="nope"), "hostIP 'nope' is not an IP address"),
])
def test_bad_mappings_are_refused_before_anything_changes(state_dir, mapping, words):
    for call in (lambda: hostport.claim(state_dir, "uid-x", "x", [mapping]),
                 lambda: hostport.add_rules("uid-x", "10.251.42.9", [mapping])):
        with pytest.raises(HostPortError, match=words.replace(".", r"\.")):
            call()
    assert hostport.claims(state_dir) == []
    assert not [r for r in hostport.rules() if "uid-x" in r]


# -- rules and cleanup ---------------------------------------------------------------

def test_rules_are_listed_and_replaced_not_duplicated(make_pod):
    pod = make_pod()
    hostport.add_rules(pod.uid, pod.ip, [Mapping(18080, 80), Mapping(15353, 53, "UDP",
                                                                     "127.0.0.1")])
    hostport.add_rules(pod.uid, pod.ip, [Mapping(18080, 80), Mapping(15353, 53, "UDP",
                                                                     "127.0.0.1")])
    mine = [r for r in hostport.rules() if pod.uid in r]
    assert mine == [f'tcp dport 18080 dnat to {pod.ip}:80 comment "pod:{pod.uid}"',
                    f'ip daddr 127.0.0.1 udp dport 15353 dnat to {pod.ip}:53 '
                    f'comment "pod:{pod.uid}"']


def test_remove_takes_rules_and_claims_away(make_pod, state_dir):
    pod = make_pod()
    pod.serve("tcp", 80)
    port = free_port()
    publish(pod, state_dir, Mapping(port, 80))
    assert tcp("127.0.0.1", port).startswith("reached")
    hostport.remove(state_dir, pod.uid)
    hostport.remove(state_dir, pod.uid)                      # idempotent
    assert not [r for r in hostport.rules() if pod.uid in r]
    assert hostport.claims(state_dir) == []
    assert tcp("127.0.0.1", port).startswith("error: [Errno 111]")
    hostport.claim(state_dir, "someone-else", "next", [Mapping(port, 80)])   # free again


def test_gc_removes_what_dead_pods_left(make_pod, tmp_path):
    """Through the HostPorts owner (runtime/owners/network.py), as `minipod
    gc` runs it: a legacy root counts these untagged rules as its own."""
    from minipod.runtime.owners import Node
    from minipod.runtime.owners.network import HostPorts
    from minipod.runtime.paths import Identity, Paths
    from ownergc import owner_gc
    paths = Paths(str(tmp_path), identity=Identity("1a2b3c4d", legacy=True))
    state_dir = paths.hostports
    live, dead = make_pod(), make_pod()
    publish(live, state_dir, Mapping(free_port(), 80))
    publish(dead, state_dir, Mapping(free_port(), 80))
    hostport.claim(state_dir, "claim-only", "crashed", [Mapping(free_port(), 80)])
    stale, errors = owner_gc(HostPorts(), Node(paths), paths, [live.uid])
    assert stale == sorted([dead.uid, "claim-only"]) and errors == []
    assert [uid for uid, _, _ in hostport.claims(state_dir)] == [live.uid]
    assert [r for r in hostport.rules() if live.uid in r]            # kept
    assert not [r for r in hostport.rules() if dead.uid in r]
    assert owner_gc(HostPorts(), Node(paths), paths, [live.uid]) == ([], [])


def test_zz_no_rules_left(network):
    """Last in this file: every test removed its pods' rules."""
    left = [r for r in hostport.rules() if any(uid in r for uid in Pod.made)]
    assert Pod.made and left == [], f"rules left behind: {left}"
