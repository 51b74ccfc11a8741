"""hostPort: a port of the host that leads to a pod, by kernel NAT (nftables).

`ports: [{containerPort: 80, hostPort: 8080}]` in a manifest means traffic
to port 8080 of the host reaches port 80 of the pod. Like the CNI portmap
plugin (which Kubernetes runs for hostPort), minipod does it with DNAT
rules, so the kernel forwards the packets and no process copies them. The
rules live in one nftables table that minipod owns, `ip minipod`; nothing
else's rules are touched and `nft delete table ip minipod` removes it all:

    table ip minipod {
        set pod_subnets { type ipv4_addr; flags interval; }   # add_network()
        set bridges { type ifname; }                           # add_network()

        # to a local address (fib ... type local), from outside and from the host
        chain prerouting { type nat hook prerouting priority dstnat;
            fib daddr type local jump hostports }
        chain output { type nat hook output priority -100;
            fib daddr type local jump hostports }

        # one rule per hostPort, tagged with its owner and its pod's uid: add_rules()
        chain hostports {
            tcp dport 8080 dnat to 10.89.0.2:80 comment "minipod-1a2b3c4d pod:0f8fad5b-..."
            ip daddr 192.168.1.5 udp dport 5353 dnat to 10.89.0.3:53 comment "minipod-1a2b3c4d pod:..."
        }

        chain postrouting { type nat hook postrouting priority srcnat;
            # 127.0.0.1 -> hostPort: the pod would answer 127.0.0.1, its own lo
            ct status dnat ip saddr 127.0.0.0/8 ip daddr @pod_subnets masquerade
            # a pod -> a hostPort (its own, or another pod's on the bridge): the
            # answer would go straight over the bridge, past the host's NAT
            ct status dnat ip saddr @pod_subnets ip daddr @pod_subnets masquerade
            # pods -> beyond the host, when the host forwards (ip_forward=1)
            ip saddr @pod_subnets ip daddr != @pod_subnets masquerade
        }

        # route_localnet's hole, closed: see below
        chain guard { type filter hook prerouting priority raw;
            iifname @bridges ip daddr 127.0.0.0/8 drop }
    }

What the plain rules would not do, and how portmap handles it:
  * From the host itself: locally made packets skip PREROUTING, hence the
    same jump in OUTPUT (portmap: `-m addrtype --dst-type LOCAL` in both).
  * From 127.0.0.1: after DNAT a packet with source 127.0.0.1 would leave
    through the bridge, which the kernel refuses (a "martian") unless
    net.ipv4.conf.BRIDGE.route_localnet=1. portmap sets it on the bridge and
    masquerades such packets so the pod answers the bridge's address; so
    does add_network() (on minipod's bridge only, never `all`). The setting
    has a known hole (CVE-2020-8558): the host would also accept packets a
    pod sends *to* 127.0.0.1 over the bridge, reaching services bound to the
    host's loopback. The guard chain drops those before routing, at raw
    priority, i.e. before conntrack undoes our masquerade on replies (a
    reply comes back to the bridge's address, not 127.0.0.1), so replies
    pass. kube-proxy closes the same hole with a similar DROP rule.
  * Hairpin: a pod reaching a hostPort, its own or another pod's: the reply
    would go pod to pod over the bridge and never be un-NATed, so these are
    masqueraded too (portmap marks only the pod's own IP and needs
    br_netfilter for the rest; masquerading covers both without it).
    Where br_netfilter is on (net.bridge.bridge-nf-call-iptables=1, as on
    every Kubernetes node and wherever Docker runs), the bridge itself does
    the DNAT of bridged frames ("bridged DNAT") and sends a pod's packet to
    its own hostPort back out of the port it came in by, which a bridge
    refuses unless the port is in hairpin mode: add_rules(host_ifname=...)
    turns it on for the pod's veth, as the CNI bridge plugin's hairpinMode
    does (`ip link set dev VETH type bridge_slave hairpin on`).
  * From other machines: the host must forward (net.ipv4.ip_forward=1) and
    its firewall must let it through. minipod never changes ip_forward.

Why nftables and not iptables: Debian 12's `iptables` is itself a front end
to nf_tables; `nft -f` applies a whole batch atomically (all or nothing),
and a table of our own cannot collide with anyone's chains. Every write
below re-declares the table skeleton and re-creates its fixed rules in the
same batch, so the table converges to the right shape whatever state it
was left in, and the variable parts live in sets and in the hostports
chain. Per-pod rules are found by their comment and deleted by handle
(`nft -a list chain ...`).

Owners. The table is one per network namespace, and two minipods (two
state roots) may share a network namespace. Each rule's comment starts with
its owner, the identity of the state root that made it ("minipod-1a2b3c4d",
runtime/paths.py), and owned() lists only rules of the owner it is given:
one minipod's gc (runtime/owners/network.py HostPorts) never removes
another's rules. Rules made before owners existed say only "pod:UID"; they
count as the owner's when legacy=True.

Claims (netns/portclaims.py): the scheduler's check that no two pods hold
one hostPort. claim(), release(), claims(), Mapping and the errors are
imported here too, so a caller needs this one module.

Equivalent shell, for one pod (uid U) with 8080 -> 80:
    nft add rule ip minipod hostports tcp dport 8080 dnat to 10.89.0.2:80 \
        comment '"minipod-1a2b3c4d pod:U"'
    nft -a list chain ip minipod hostports      # find handles by comment
    nft delete rule ip minipod hostports handle H
"""
from __future__ import annotations

import ipaddress
import os
import re
import subprocess
from pathlib import Path

from minipod.netns import nft
from minipod.netns.portclaims import (PROTOCOLS, HostPortConflict, HostPortError, Mapping,
                                      check_mapping, check_uid, claim, claims, release,
                                      specific)

__all__ = [
    "HostPortConflict", "HostPortError", "Mapping", "TABLE", "add_network", "add_rules",
    "claim", "claims", "owned", "release", "remove", "remove_network", "remove_rules", "rules",
]

TABLE = "minipod"
_OWNER = re.compile(r"minipod-[0-9a-f]{8}\Z")
_RULE = re.compile(r'^\s*(?P<rule>.*comment "(?:(?P<owner>minipod-[0-9a-f]{8}) )?'
                   r'pod:(?P<uid>[^"]+)")\s*# handle (?P<handle>\d+)\s*$')

# The table, declared (a no-op for what exists), its fixed chains emptied and
# filled again: one batch, applied atomically, whatever state it finds.
_SKELETON = f"""\
table ip {TABLE} {{
    set pod_subnets {{ type ipv4_addr; flags interval; }}
    set bridges {{ type ifname; }}
    chain prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}
    chain output {{ type nat hook output priority -100; policy accept; }}
    chain hostports {{ }}
    chain postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
    chain guard {{ type filter hook prerouting priority raw; policy accept; }}
}}
flush chain ip {TABLE} prerouting
flush chain ip {TABLE} output
flush chain ip {TABLE} postrouting
flush chain ip {TABLE} guard
table ip {TABLE} {{
    chain prerouting {{ fib daddr type local jump hostports; }}
    chain output {{ fib daddr type local jump hostports; }}
    chain postrouting {{
        ct status dnat ip saddr 127.0.0.0/8 ip daddr @pod_subnets masquerade
        ct status dnat ip saddr @pod_subnets ip daddr @pod_subnets masquerade
        ip saddr @pod_subnets ip daddr != @pod_subnets masquerade
    }}
    chain guard {{ iifname @bridges ip daddr 127.0.0.0/8 drop; }}
}}
"""


# -- the network: table, masquerade, localhost ------------------------------------

def add_network(bridge: str, subnet: str) -> None:
    """Set up the table for a pod network (idempotent): masquerade for its
    pods (hairpin, 127.0.0.1, outbound), the guard on its bridge, and
    route_localnet=1 on the bridge, which must exist."""
    finish_network(start_network(bridge, subnet))


def start_network(bridge: str, subnet: str):
    """add_network's nft run, started: it takes 15-30 ms here (the kernel
    waits for RCU grace periods as it commits base chains), which the
    caller spends on other work; finish_network(what this returns) waits."""
    net = _subnet(subnet)
    _check_ifname(bridge)
    step = f"set up NAT for pod network {net} on bridge {bridge}"
    return (nft.start(_SKELETON + f"add element ip {TABLE} pod_subnets {{ {net} }}\n"
                                  f'add element ip {TABLE} bridges {{ "{bridge}" }}\n',
                      step, HostPortError), step, bridge)


def finish_network(started) -> None:
    """Wait for start_network's nft; then route_localnet=1 on the bridge."""
    proc, step, bridge = started
    nft.finish(proc, step, HostPortError)
    _route_localnet(bridge, 1)          # after the guard is in place


def remove_network(bridge: str, subnet: str) -> None:
    """Undo add_network (idempotent); pods' rules are left alone."""
    net = _subnet(subnet)
    _check_ifname(bridge)
    # route_localnet off first, then the guard: never the one without the other
    if os.path.exists(f"/proc/sys/net/ipv4/conf/{bridge}"):
        _route_localnet(bridge, 0)
    for element in (f"pod_subnets {{ {net} }}", f'bridges {{ "{bridge}" }}'):
        try:
            _nft(f"delete element ip {TABLE} {element}\n",
                 f"remove pod network {net} / bridge {bridge} from table {TABLE}")
        except HostPortError as e:
            if not _absent(e):
                raise


# -- rules --------------------------------------------------------------------------

def add_rules(pod_uid: str, pod_ip: str, mappings: list[Mapping],
              host_ifname: str | None = None, owner: str | None = None) -> None:
    """DNAT each mapping to pod_ip:containerPort, in one atomic batch.
    Replaces any rules the pod had, so calling it twice is harmless.
    owner ("minipod-1a2b3c4d") starts each rule's comment.

    host_ifname, the pod's veth on the bridge, gets hairpin mode, so the
    pod can reach its own hostPort where bridged traffic goes through
    netfilter (br_netfilter): see the module docstring."""
    check_uid(pod_uid)
    tag = _owner_tag(owner)
    try:
        ip = ipaddress.IPv4Address(pod_ip)
    except ValueError as e:
        raise HostPortError(f"add hostPort rules for pod {pod_uid}: bad pod IP: {e}") from None
    adds = []
    for m in mappings:
        check_mapping(m)
        match = f"ip daddr {m.host_ip} " if specific(m.host_ip) else ""
        adds.append(f"add rule ip {TABLE} hostports {match}{PROTOCOLS[m.protocol]} dport "
                    f"{m.host_port} dnat to {ip}:{m.container_port} "
                    f'comment "{tag}pod:{pod_uid}"\n')
    step = (f"add hostPort rules for pod {pod_uid} ({pod_ip}): "
            + ", ".join(m.label() for m in mappings))
    if host_ifname:
        _hairpin(host_ifname)
    for attempt in range(3):
        deletes = [f"delete rule ip {TABLE} hostports handle {h}\n"
                   for h in _handles(pod_uid, owner)]
        try:
            _nft(_SKELETON + "".join(deletes + adds), step)
            return
        except HostPortError as e:
            # An old rule deleted by someone else between list and batch: again.
            if not (deletes and _absent(e)) or attempt == 2:
                raise


def remove_rules(pod_uid: str, owner: str | None = None) -> None:
    """Delete the pod's rules (idempotent): with owner, only the rules of
    that owner (and untagged ones)."""
    check_uid(pod_uid)
    _owner_tag(owner)
    for attempt in range(3):
        handles = _handles(pod_uid, owner)
        if not handles:
            return
        try:
            _nft("".join(f"delete rule ip {TABLE} hostports handle {h}\n" for h in handles),
                 f"remove hostPort rules of pod {pod_uid}")
            return
        except HostPortError as e:
            # Another process deleted one between our list and delete: again.
            if not _absent(e) or attempt == 2:
                raise


def rules(owner: str | None = None) -> list[str]:
    """minipod's per-pod rules, as nft prints them (with owner: that owner's
    only): empty when no pod has a hostPort (the leak check of the test
    suite asserts that)."""
    return [m.group("rule") for m in _listed() if owner is None or m.group("owner") == owner]


# -- both ---------------------------------------------------------------------------

def remove(state_dir: Path, pod_uid: str, owner: str | None = None) -> None:
    """A pod is gone: its rules, then its claims (idempotent)."""
    remove_rules(pod_uid, owner)
    release(state_dir, pod_uid)


def owned(state_dir: Path, owner: str | None = None, legacy: bool = True) -> list[str]:
    """The pod uids that have rules or claims, sorted (runtime/owners'
    HostPorts finds the orphans among them).

    With owner, only rules whose comment names that owner count, plus, with
    legacy, untagged rules (made before owners): the rules of another
    minipod sharing the table are never touched. Claims live in state_dir,
    which is the owner's own."""
    _owner_tag(owner)
    found = {m.group("uid") for m in _listed()
             if owner is None or m.group("owner") == owner
             or (legacy and m.group("owner") is None)}
    found |= {uid for uid, _, _ in claims(state_dir)}
    return sorted(found)


# -- helpers ------------------------------------------------------------------------

def _nft(script: str, step: str) -> str:
    return nft.run(script, step, HostPortError)


def _listed() -> list[re.Match]:
    """The hostports chain's rules with handles; [] if there is no table (or no nft)."""
    try:
        proc = subprocess.run(["nft", "-a", "list", "chain", "ip", TABLE, "hostports"],
                              capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        return []                 # no nft: nobody can have added rules
    if proc.returncode != 0:
        if "No such file or directory" in proc.stderr:
            return []             # no table yet
        raise HostPortError(f"list the rules of table {TABLE}: nft: {proc.stderr.strip()}")
    return [m for m in map(_RULE.match, proc.stdout.splitlines()) if m]


def _absent(e: HostPortError) -> bool:
    """nft's words for "what you delete is not there"."""
    return "No such file or directory" in str(e) or "does not exist" in str(e)


def _handles(pod_uid: str, owner: str | None = None) -> list[str]:
    """Handles of the pod's rules: with owner, that owner's and untagged ones."""
    return [m.group("handle") for m in _listed() if m.group("uid") == pod_uid
            and (owner is None or m.group("owner") in (owner, None))]


def _owner_tag(owner: str | None) -> str:
    """The comment's start for owner ("minipod-1a2b3c4d "), checked: it goes
    into an nft comment."""
    if owner is None:
        return ""
    if not _OWNER.match(owner):
        raise HostPortError(f"bad rule owner {owner!r}: expected minipod- and 8 hex digits")
    return owner + " "


def _hairpin(ifname: str) -> None:
    """ip link set dev IFNAME type bridge_slave hairpin on"""
    _check_ifname(ifname)
    try:
        proc = subprocess.run(["ip", "link", "set", "dev", ifname, "type", "bridge_slave",
                               "hairpin", "on"], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise HostPortError(f"set hairpin mode on {ifname}: the ip command is missing "
                            "(Debian package iproute2)") from None
    if proc.returncode != 0:
        raise HostPortError(f"set hairpin mode on bridge port {ifname}: "
                            f"{proc.stderr.strip()}")


def _route_localnet(bridge: str, value: int) -> None:
    path = f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet"
    try:
        with open(path, "w") as f:
            f.write(str(value))
    except OSError as e:
        raise HostPortError(f"set route_localnet={value} on bridge {bridge} ({path}): "
                            f"{e.strerror}" + (" (does the bridge exist?)"
                                               if isinstance(e, FileNotFoundError) else "")
                            ) from None


def _subnet(subnet: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(subnet)
    except ValueError as e:
        raise HostPortError(f"bad pod subnet {subnet!r}: {e}") from None


def _check_ifname(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", name or ""):
        raise HostPortError(f"bad bridge name {name!r}")
