"""The pod network: one Linux bridge, one veth pair per pod.

Every pod gets its own IP on a flat layer-2 network. The bridge is the
switch and holds the gateway address; each pod's veth pair is a cable with
one end (mpXXXXXXXXXX) plugged into the bridge and the other end (eth0)
inside the pod's network namespace. In `ip` commands, for the pod web with
IP 10.89.0.2:

    # ensure_bridge(): once per host
    ip link add minipod0 address 0a:58:0a:59:00:01 type bridge
    ip addr add 10.89.0.1/16 brd + dev minipod0
    ip link set minipod0 up

    # attach_pod(): per pod
    ip link add mp1a2b3c4d5e type veth \\
        peer name eth0 address 0a:58:0a:59:00:02 netns /run/netns/minipod-web
    ip link set mp1a2b3c4d5e addrgenmode none master minipod0
    ip -n minipod-web addr add 10.89.0.2/16 brd + dev eth0
    ip -n minipod-web link set eth0 up
    ip -n minipod-web link set lo up
    ip -n minipod-web route add default via 10.89.0.1 dev eth0
    ip link set mp1a2b3c4d5e up

    # detach_pod(): deleting one end of a veth deletes the other
    ip link del mp1a2b3c4d5e

All of it is netlink (rtnetlink, man 7 rtnetlink) through minipod.netns.rtnl:
one request per line above, no `ip` process per step. The host-side
requests go through the netlink socket the caller keeps open (an rtnl.Rtnl,
or any NETLINK_ROUTE socket with a fileno(), e.g. a pyroute2 IPRoute); the
pod-side ones through one made inside the pod's namespace
(minipod.netns.podnetlink).

MAC addresses are not left to chance:
  * The bridge gets 0a:58 + its gateway IP. A bridge without an address
    set by hand takes the lowest MAC of its ports and changes it as pods
    come and go, and every change makes the neighbours' ARP entries for
    the gateway stale; a MAC set at creation never changes.
  * Each pod's eth0 gets 0a:58 + its IP (the scheme OVN-Kubernetes uses),
    so when an IP is reused by a new pod, ARP caches elsewhere still hold
    the right MAC. 0x0a = locally administered, unicast.
IPv6: the host end gets `addrgenmode none` so it has no link-local
address, and so sends no DAD, router solicitations or MLD reports: it is a
switch port and needs no address. The pod's own eth0 is left as a normal
Linux interface would be.

No sysctl is changed: host<->pod and pod<->pod traffic stays on the bridge
and needs no net.ipv4.ip_forward. One thing outside minipod can still
block it: with the br_netfilter module loaded and
net.bridge.bridge-nf-call-iptables=1, bridged IPv4 frames go through
iptables' FORWARD chain, and a DROP policy there (Docker sets one) drops
pod<->pod traffic.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import ipaddress
import os
import re
import socket
from dataclasses import dataclass

from minipod.linux import explain
from minipod.netns.podnetlink import POD_IFNAME, NetworkError, ipr_in, open_netns
from minipod.netns.rtnl import NetlinkError, Rtnl

# NetworkError is defined beside the pod-side netlink code; it is the error of every call here.
__all__ = [
    "NetworkConfig", "NetworkError", "PodLink", "attach_pod", "delete_bridge",
    "detach_pod", "ensure_bridge", "host_ifname", "mac_for_ip", "pod_links",
]

IFNAMSIZ = 16                    # including the trailing NUL
LOOPBACK_INDEX = 1               # lo is the first device of every netns
_HOST_IFNAME = re.compile(r"mp[0-9a-f]{10}\Z")


@dataclass
class NetworkConfig:
    bridge: str = "minipod0"
    subnet: str = "10.89.0.0/16"


@dataclass
class PodLink:
    host_ifname: str      # the bridge-side end, in the host's netns
    pod_ifname: str       # the pod-side end: always "eth0"
    ip: str
    prefixlen: int
    gateway: str
    mac: str              # of the pod's eth0


def host_ifname(pod_uid: str) -> str:
    """The host-side veth name of a pod: "mp" + 10 hex chars of sha256(uid).

    Interface names hold at most 15 bytes (IFNAMSIZ 16 with the NUL), far
    too few for a pod name, so a hash it is (40 bits: collisions are out of
    reach for the pods of one host). The same uid always gives the same
    name, so an agent restarted after a crash finds the pod's veth."""
    return "mp" + hashlib.sha256(pod_uid.encode()).hexdigest()[:10]


def mac_for_ip(ip: str) -> str:
    """0a:58 followed by the four bytes of an IPv4 address."""
    return "0a:58:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ip).packed)


def ensure_bridge(ipr, cfg: NetworkConfig, gateway: str, prefixlen: int) -> None:
    """Create the bridge if missing, give it gateway/prefixlen, bring it up.

    Idempotent, and safe when two processes run it at once: every step
    tolerates EEXIST, which is what the loser of a race gets. A bridge that
    exists with another address keeps it and gets ours as well."""
    _check_ifname(cfg.bridge)
    ipr = Rtnl.of(ipr)
    # 1. ip link add minipod0 address 0a:58:.. type bridge
    try:
        ipr.new_bridge(cfg.bridge, mac_for_ip(gateway))
        explain.step(f"ip link add {cfg.bridge} address {mac_for_ip(gateway)} type bridge && "
                     f"ip addr add {gateway}/{prefixlen} dev {cfg.bridge} && "
                     f"ip link set {cfg.bridge} up",
                     "the first pod: create the bridge all pods plug into (a virtual switch); "
                     "its address is the pods' gateway")
    except NetlinkError as e:
        if e.errno != errno.EEXIST:
            raise _error(e, f"create bridge {cfg.bridge}") from None
    # 2. a link of that name may exist and be something else
    index, kind = _link_index_kind(ipr, cfg.bridge, "look up bridge")
    if kind != "bridge":
        raise NetworkError(errno.EEXIST,
                           f"create bridge {cfg.bridge}: a link of that name exists "
                           f"and is a {kind or 'device'}, not a bridge")
    # 3. ip addr add GATEWAY/PREFIX brd + dev minipod0
    net = ipaddress.IPv4Network(f"{gateway}/{prefixlen}", strict=False)
    try:
        ipr.add_addr(index, gateway, prefixlen, str(net.broadcast_address))
    except NetlinkError as e:
        if e.errno != errno.EEXIST:
            raise _error(e, f"add address {gateway}/{prefixlen} to bridge {cfg.bridge}") from None
    # 4. ip link set minipod0 up
    try:
        ipr.set_link(index, up=True)
    except NetlinkError as e:
        raise _error(e, f"bring bridge {cfg.bridge} up") from None


def attach_pod(ipr, cfg: NetworkConfig, netns_path: str, host_ifname: str,
               ip: str, prefixlen: int, gateway: str, alias: str | None = None) -> PodLink:
    """Plug the pod whose netns is pinned at netns_path into the bridge.

    alias, the owner's mark (its state root's identity, "minipod-1a2b3c4d"),
    becomes the host end's ifalias (`ip link set HOST alias ALIAS`), so a gc
    can tell its own veths from another minipod's by asking the kernel.

    The steps (see the module docstring for the `ip` commands):
      1. create the veth pair: host_ifname here, eth0 created directly in
         the pod's netns with the MAC 0a:58+IP; the host end gets no IPv6
         link-local address and joins the bridge (still down)
      2. in the pod's netns: ip/prefixlen on eth0, eth0 up, lo up, default
         route via gateway
      3. the host end up: traffic flows
    On a failure the veth is deleted (the pod's end goes with it) and a
    NetworkError names the step, the object and errno. The calling thread
    is back in its own network namespace when this returns or raises."""
    _check_ifname(host_ifname)
    ipr = Rtnl.of(ipr)
    mac = mac_for_ip(ip)                 # also checks ip is an IPv4 address
    ipaddress.IPv4Address(gateway)
    net = ipaddress.IPv4Network(f"{ip}/{prefixlen}", strict=False)
    try:
        # An ioctl, cheaper than a netlink round trip.
        # That it is a bridge, ensure_bridge checked; if not, joining fails.
        bridge_index = socket.if_nametoindex(cfg.bridge)
    except OSError as e:
        raise NetworkError(e.errno, f"look up bridge {cfg.bridge}: {e.strerror} "
                           "(ensure_bridge creates it)") from None
    with open_netns(netns_path) as ns_fd, contextlib.ExitStack() as undo:
        # 1. ip link add HOST type veth peer name eth0 address MAC netns PATH
        step = (f"step 1/3: create veth {host_ifname} with peer {POD_IFNAME} "
                f"in {netns_path}")
        try:
            ipr.new_veth(host_ifname, POD_IFNAME, mac, ns_fd)
        except NetlinkError as e:
            if e.errno == errno.EEXIST:
                step += (f" ({host_ifname} already exists on the host)"
                         if _link_index(ipr, host_ifname) is not None else
                         f" ({netns_path} already has an {POD_IFNAME})")
            raise _error(e, step) from None
        # Registered at once, so every later failure deletes the pair.
        undo.push(_undo_veth(ipr, host_ifname))
        ns = os.path.basename(netns_path)
        explain.step(f"ip link add {host_ifname} type veth peer name {POD_IFNAME} address {mac} "
                     f"netns {ns}",
                     "a veth pair is a cable: one end stays on the host, the other is the "
                     "pod's eth0")
        try:
            # Before the link comes up: an interface that comes up with a
            # carrier gets its IPv6 link-local address (and DAD) at once.
            ipr.set_link(host_ifname, master=bridge_index, alias=alias or None,
                         addrgenmode_none=True)
        except NetlinkError as e:
            raise _error(e, f"step 1/3: join {host_ifname} to bridge {cfg.bridge}") from None

        # 2. inside the pod's netns
        with ipr_in(ns_fd, netns_path) as (pod, eth0):
            where = f"{POD_IFNAME} in {netns_path}"
            try:
                step = f"step 2/3: add address {ip}/{prefixlen} to {where}"
                pod.add_addr(eth0, ip, prefixlen, str(net.broadcast_address))
                step = f"step 2/3: bring {where} up"
                pod.set_link(eth0, up=True)
                step = f"step 2/3: bring lo in {netns_path} up"
                pod.set_link(LOOPBACK_INDEX, up=True)
                step = f"step 2/3: add default route via {gateway} to {where}"
                pod.add_default_route(gateway, eth0)
            except NetlinkError as e:
                raise _error(e, step) from None
        explain.step(f"ip -n {ns} addr add {ip}/{prefixlen} dev {POD_IFNAME} && "
                     f"ip -n {ns} link set {POD_IFNAME} up && ip -n {ns} link set lo up && "
                     f"ip -n {ns} route add default via {gateway} proto static",
                     "inside the pod's network namespace: its own IP, loopback, and the "
                     "bridge as its router")

        # 3. ip link set HOST up
        try:
            ipr.set_link(host_ifname, up=True)
        except NetlinkError as e:
            raise _error(e, f"step 3/3: bring {host_ifname} up") from None
        explain.step(f"ip link set {host_ifname} master {cfg.bridge} up",
                     "plug the host end into the bridge: the host and other pods now reach "
                     f"{ip}")
        undo.pop_all()            # success: keep the veth
    return PodLink(host_ifname=host_ifname, pod_ifname=POD_IFNAME, ip=ip,
                   prefixlen=prefixlen, gateway=gateway, mac=mac)


def detach_pod(ipr, host_ifname: str) -> None:
    """ip link del HOST: the pod's eth0 goes with it. A missing link is fine.

    The pod's end also disappears by itself when the pod's netns dies."""
    try:
        Rtnl.of(ipr).del_link(host_ifname)
        explain.step(f"ip link del {host_ifname}",
                     "unplug the pod: deleting one end of a veth pair deletes both")
    except NetlinkError as e:
        if e.errno != errno.ENODEV:
            raise _error(e, f"delete veth {host_ifname}") from None


def pod_links(ipr, cfg: NetworkConfig, alias: str | None = None,
              untagged: bool = True) -> list[str]:
    """Names of minipod's veths on the bridge, for garbage collection.

    Only links named like host_ifname() count: a veth someone else plugged
    into the bridge is not ours to delete. With alias, only those whose
    ifalias is alias (or, untagged=True, that have none: made before
    identities) count: another minipod's veths are not ours either."""
    ipr = Rtnl.of(ipr)
    index = _link_index(ipr, cfg.bridge)
    if index is None:
        return []
    names = []
    for link in ipr.links():
        if (link.master == index and link.kind == "veth"
                and _HOST_IFNAME.match(link.ifname or "")):
            if alias is None or link.alias == alias or (untagged and not link.alias):
                names.append(link.ifname)
    return sorted(names)


def delete_bridge(ipr, cfg: NetworkConfig) -> None:
    """ip link del minipod0; a missing bridge is fine. Its ports (pod veths)
    are released, not deleted."""
    try:
        Rtnl.of(ipr).del_link(cfg.bridge)
    except NetlinkError as e:
        if e.errno != errno.ENODEV:
            raise _error(e, f"delete bridge {cfg.bridge}") from None


# -- helpers ------------------------------------------------------------------
def _undo_veth(ipr, name: str):
    """An ExitStack exit callback deleting the veth name on failure.

    A failing cleanup does not replace the error being raised: it becomes a
    note on it (str(error) stays the first failure)."""
    def undo(exc_type, exc, tb):
        try:
            detach_pod(ipr, name)
        except OSError as e:
            if exc is None:
                raise
            exc.add_note(f"cleanup: could not delete veth {name}: {e}")
        return False
    return undo


def _link_index(ipr: Rtnl, name: str) -> int | None:
    try:
        return ipr.get_link(name).index
    except NetlinkError as e:
        if e.errno == errno.ENODEV:
            return None
        raise _error(e, f"look up link {name}") from None


def _link_index_kind(ipr: Rtnl, name: str, step: str) -> tuple[int, str | None]:
    try:
        link = ipr.get_link(name)
    except NetlinkError as e:
        if e.errno == errno.ENODEV:
            raise NetworkError(e.errno, f"{step} {name}: no such device "
                               "(ensure_bridge creates it)") from None
        raise _error(e, f"{step} {name}") from None
    return link.index, link.kind


def _check_ifname(name: str) -> None:
    if not name or len(name.encode()) >= IFNAMSIZ or "/" in name or name.strip() != name:
        raise NetworkError(errno.EINVAL, f"bad interface name {name!r}: "
                           f"1 to {IFNAMSIZ - 1} bytes, no '/' or spaces")


def _error(e: NetlinkError, step: str) -> NetworkError:
    code = e.errno or errno.EIO
    return NetworkError(code, f"{step}: {os.strerror(code)}")
