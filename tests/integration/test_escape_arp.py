"""A hostile pod on the bridge cannot pose as another pod (issue 16, item 4).

Every container has CAP_NET_RAW (containerd's default set, and minipod's),
so it can open an AF_PACKET socket on its eth0 and write any Ethernet frame
it likes: an ARP reply saying "10.89.0.V is at MY MAC" moves the host's
neighbour entry for the victim to the attacker, and the host's traffic for
the victim goes to the attacker; an IPv4 packet with the victim's source
address passes for the victim's; a frame with the victim's MAC as source
teaches the bridge that the victim lives on the attacker's port.

The attacks run for real, from inside the attacker pod's network namespace:
  * a raw AF_PACKET socket made there (by a forked child that setns's into
    the pod's netns and hands the socket back, the way test_network.py
    makes sockets in pods): exactly what a process with NET_RAW in the pod
    can open. The pod's own processes have no python to write frames with.
  * busybox `arping` run by the attacker container itself. busybox binds a
    UDP socket to the sender address first, so without NET_ADMIN it cannot
    claim another pod's IP; the attacker pod here gets NET_ADMIN (a manifest
    may ask for it), puts the victim's IP on its own eth0 and announces it.
The canary is the victim pod: the host's neighbour entry for it (`ip neigh
show VICTIM dev minipod0`), the bridge's forwarding entry for its MAC, and
an HTTP server in it that must still answer the host.
"""
from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from podhelpers import BUSYBOX_IMAGE, http_get_when_up, socket_in

pytestmark = pytest.mark.integration

BRIDGE = "minipod0"


def _victim(name: str) -> str:
    return f"""apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: web
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", "mkdir /www; echo victim > /www/index.html; exec httpd -f -p 8080 -h /www"]
"""


def _attacker(name: str, command: str = "exec sleep 3600", caps: str = "") -> str:
    sc = f"    securityContext: {{capabilities: {{add: [{caps}]}}}}\n" if caps else ""
    return f"""apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", {json.dumps(command)}]
{sc}"""


# -- what the host sees -----------------------------------------------------------

def neighbour_mac(ip: str) -> str | None:
    """The host's neighbour entry for ip on the bridge (its MAC), if any."""
    out = subprocess.run(["ip", "-j", "neigh", "show", ip, "dev", BRIDGE],
                         capture_output=True, text=True, check=True).stdout
    entries = json.loads(out or "[]")
    return entries[0].get("lladdr") if entries else None


def fdb_port(mac: str) -> str | None:
    """The bridge port the bridge's forwarding table puts mac behind."""
    out = subprocess.run(["bridge", "-j", "fdb", "show", "br", BRIDGE],
                         capture_output=True, text=True, check=True).stdout
    for e in json.loads(out or "[]"):
        if e.get("mac") == mac and "permanent" not in e.get("state", ""):
            return e.get("ifname")
    return None


def pod_net(minipod, name: str) -> dict:
    """ip, mac, netns path and bridge port (host veth) of a running pod."""
    from minipod.runtime.paths import Paths
    pod = minipod.pod(name)
    ip = pod["status"]["podIP"]
    netns = Paths(str(minipod.root)).netns_name(name)
    link = json.loads(subprocess.run(["ip", "-n", netns, "-j", "link", "show", "eth0"],
                                     capture_output=True, text=True, check=True).stdout)[0]
    from minipod.netns.bridge import host_ifname
    return {"ip": ip, "mac": link["address"], "netns": f"/run/netns/{netns}",
            "port": host_ifname(pod["metadata"]["uid"])}


def bridge_addr() -> tuple[str, str]:
    """(MAC, IPv4) of the bridge: the pods' gateway."""
    # (not /sys/class/net: the sysfs mounted is the one of the host's netns)
    link = json.loads(subprocess.run(["ip", "-j", "link", "show", "dev", BRIDGE],
                                     capture_output=True, text=True, check=True).stdout)
    addr = json.loads(subprocess.run(["ip", "-j", "-4", "addr", "show", "dev", BRIDGE],
                                     capture_output=True, text=True, check=True).stdout)
    return link[0]["address"], addr[0]["addr_info"][0]["local"]


def locktime() -> float:
    """Seconds during which the kernel ignores a new MAC for a fresh
    neighbour entry (net.ipv4.neigh.DEV.locktime, in USER_HZ)."""
    return int(Path(f"/proc/sys/net/ipv4/neigh/{BRIDGE}/locktime").read_text()) / 100


# -- frames, as a process with NET_RAW in the pod writes them -------------------

def packet_socket_in(netns_path: str) -> socket.socket:
    """An AF_PACKET socket of the pod at netns_path, bound to its eth0 (made
    inside the netns, so the name is looked up there)."""
    s = socket_in(netns_path, socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.bind(("eth0", 0))
    return s


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def arp_reply(src_mac: str, sender_mac: str, sender_ip: str, dst_mac: str,
              target_ip: str) -> bytes:
    """Ethernet + ARP reply: "sender_ip is at sender_mac"."""
    eth = _mac(dst_mac) + _mac(src_mac) + struct.pack("!H", 0x0806)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + _mac(sender_mac) + \
        socket.inet_aton(sender_ip) + _mac(dst_mac) + socket.inet_aton(target_ip)
    return eth + arp


def udp_frame(src_mac: str, dst_mac: str, src_ip: str, dst_ip: str, dport: int,
              payload: bytes) -> bytes:
    """Ethernet + IPv4 + UDP (no UDP checksum: 0 means none, RFC 768)."""
    udp = struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0) + payload
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                      socket.inet_aton(src_ip), socket.inet_aton(dst_ip))
    total = sum(struct.unpack("!10H", hdr))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    hdr = hdr[:10] + struct.pack("!H", ~total & 0xFFFF) + hdr[12:]
    return _mac(dst_mac) + _mac(src_mac) + struct.pack("!H", 0x0800) + hdr + udp


# -- the tests ------------------------------------------------------------------

@pytest.fixture
def two_pods(minipod, tmp_path):
    """A victim serving HTTP and an attacker, both on the bridge; deleted after."""
    made = []

    def make(attacker_command: str = "exec sleep 3600", caps: str = "", victim=None):
        if victim is None:
            minipod.run_manifest(_victim("arp-victim"), tmp_path)
            made.append("arp-victim")
            minipod.wait_for("arp-victim", lambda p: p["status"]["phase"] == "Running")
            victim = pod_net(minipod, "arp-victim")
        minipod.run_manifest(_attacker("arp-attacker", attacker_command.format(**victim),
                                       caps), tmp_path)
        made.append("arp-attacker")
        minipod.wait_for("arp-attacker", lambda p: p["status"]["phase"] == "Running")
        return victim, pod_net(minipod, "arp-attacker")

    yield make
    for name in made:
        minipod("delete", "pod", name, "--grace-period", "0", check=False)


def _victim_answers(victim: dict) -> None:
    assert http_get_when_up(f"http://{victim['ip']}:8080/") == "victim\n"


def test_forged_arp_reply_does_not_move_the_hosts_neighbour_entry(minipod, two_pods):
    victim, attacker = two_pods()
    _victim_answers(victim)                    # the host now has a neighbour entry
    assert neighbour_mac(victim["ip"]) == victim["mac"]
    gw_mac, gw_ip = bridge_addr()
    forged = arp_reply(attacker["mac"], attacker["mac"], victim["ip"], gw_mac, gw_ip)
    with packet_socket_in(attacker["netns"]) as s:
        # Repeated past the neighbour locktime, as arpspoof does: a MAC
        # seen within it is not replaced.
        end = time.monotonic() + locktime() + 1.0
        while time.monotonic() < end:
            s.send(forged)
            time.sleep(0.1)
    assert neighbour_mac(victim["ip"]) == victim["mac"], \
        "the forged ARP reply moved the host's entry for the victim to the attacker"
    _victim_answers(victim)


def test_busybox_arping_from_the_pod_cannot_claim_another_pods_ip(minipod, two_pods):
    # The attacker container itself: the victim's IP on its own eth0 (needs
    # NET_ADMIN), then gratuitous ARP for it, over and over.
    victim, attacker = two_pods(
        "ip addr add {ip}/32 dev eth0 && "
        "while true; do arping -U -c 1 -I eth0 -s {ip} {ip}; sleep 0.1; done",
        caps="NET_ADMIN")
    _victim_answers(victim)
    time.sleep(locktime() + 1.0)               # the attack runs meanwhile
    assert neighbour_mac(victim["ip"]) == victim["mac"], \
        "busybox arping in the attacker pod moved the host's entry for the victim"
    _victim_answers(victim)


def test_spoofed_source_ip_and_mac_are_dropped(minipod, two_pods):
    victim, attacker = two_pods()
    _victim_answers(victim)
    gw_mac, gw_ip = bridge_addr()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind((gw_ip, 0))              # on the host, at the bridge's address
        listener.settimeout(10)
        port = listener.getsockname()[1]
        frames = [
            # the victim's IP, the attacker's MAC
            udp_frame(attacker["mac"], gw_mac, victim["ip"], gw_ip, port, b"spoofed-ip"),
            # the victim's IP and MAC: also teaches the bridge a false port
            udp_frame(victim["mac"], gw_mac, victim["ip"], gw_ip, port, b"spoofed-mac"),
            # a source address that is nobody's; and 0.0.0.0 (no DHCP here)
            udp_frame(attacker["mac"], gw_mac, "10.89.255.254", gw_ip, port, b"spoofed-other"),
            udp_frame(attacker["mac"], gw_mac, "0.0.0.0", gw_ip, port, b"spoofed-zero"),
            # last, the honest one: once it is here, the others had their chance
            udp_frame(attacker["mac"], gw_mac, attacker["ip"], gw_ip, port, b"honest"),
        ]
        with packet_socket_in(attacker["netns"]) as s:
            for f in frames:
                s.send(f)
        got = []
        while b"honest" not in [data for data, _ in got]:
            got.append(listener.recvfrom(100))
    assert got == [(b"honest", (attacker["ip"], 40000))], \
        f"spoofed packets reached the host: {got}"
    assert fdb_port(victim["mac"]) == victim["port"], \
        "a frame with the victim's MAC taught the bridge the attacker's port"
    _victim_answers(victim)


def test_the_filter_lives_and_dies_with_the_pod_and_gc_spares_other_instances(
        minipod, tmp_path):
    from minipod.netns import antispoof
    path = tmp_path / "filtered.yaml"
    path.write_text(_attacker("arp-filtered"))
    from minipod.runtime.paths import Paths
    tag = Paths(str(minipod.root)).identity.tag   # every element carries its instance
    explained = minipod("run", "--explain", str(path)).stdout
    try:
        minipod.wait_for("arp-filtered", lambda p: p["status"]["phase"] == "Running")
        net = pod_net(minipod, "arp-filtered")
        uid = minipod.pod("arp-filtered")["metadata"]["uid"]
        assert antispoof.Filter(uid, net["port"], net["mac"], net["ip"]) in antispoof.filters(tag)
        assert (f'nft add element bridge minipod pods {{ "{net["port"]}" . {net["mac"]} . '
                f'{net["ip"]} }}') in explained, explained
        # an orphan of this instance (as an agent killed right after the add
        # leaves it), and a filter of another instance sharing the table
        antispoof.add("orphan-uid", "mpdeadbeef00", "0a:58:0a:59:ff:fe", "10.89.255.254",
                      instance=tag)
        antispoof.add("other-uid", "mpdeadbeef01", "0a:58:0a:59:ff:fd", "10.89.255.253",
                      instance="other")
        out = minipod("gc").stdout
        assert "filter orphan-uid" in out, out
        assert [f.pod_uid for f in antispoof.filters(tag) if f.pod_uid in (uid, "orphan-uid")] \
            == [uid], "gc removes the orphan and keeps the live pod's filter"
        assert [f.pod_uid for f in antispoof.filters("other")] == ["other-uid"], \
            "gc leaves another instance's filter alone"
        minipod("delete", "pod", "arp-filtered", "--grace-period", "0")
        assert uid not in [f.pod_uid for f in antispoof.filters(tag)]
    finally:
        minipod("delete", "pod", "arp-filtered", "--grace-period", "0", check=False)
        antispoof.remove("orphan-uid", instance=tag)
        antispoof.remove("other-uid", instance="other")


def test_the_agent_writes_a_lost_filter_again_when_it_starts(minipod, two_pods):
    from minipod.netns import antispoof
    victim, attacker = two_pods()
    uid = minipod.pod("arp-attacker")["metadata"]["uid"]
    from minipod.runtime.paths import Paths
    tag = Paths(str(minipod.root)).identity.tag
    antispoof.remove(uid, instance=tag)   # lost: the table deleted by hand, an old minipod
    pid = minipod.agent_pid()
    minipod("agent", "stop")
    while os.path.exists(f"/proc/{pid}"):
        time.sleep(0.02)
    minipod("agent", "start")          # adopts the pods, writes their filters again
    assert antispoof.Filter(uid, attacker["port"], attacker["mac"], attacker["ip"]) \
        in antispoof.filters(tag)
    gw_mac, gw_ip = bridge_addr()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind((gw_ip, 0))
        listener.settimeout(10)
        port = listener.getsockname()[1]
        with packet_socket_in(attacker["netns"]) as s:
            s.send(udp_frame(attacker["mac"], gw_mac, victim["ip"], gw_ip, port, b"spoofed"))
            s.send(udp_frame(attacker["mac"], gw_mac, attacker["ip"], gw_ip, port, b"honest"))
        assert listener.recvfrom(100)[0] == b"honest"
