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
another's rules. Rules made before owners
existed say only "pod:UID"; they count as the owner's when legacy=True.

Claims: Kubernetes' scheduler refuses a pod whose hostPort/protocol/hostIP
another pod on the node already holds (hostIP 0.0.0.0 overlaps every
address). claim() does the same with one file per claimed port under a
state directory, checked and written under flock(2), so two pods claiming
8080/TCP at once: exactly one wins, the other gets HostPortConflict naming
the holder. A port some host process listens on is not checked (nor does
portmap); the DNAT simply takes precedence over it.

Equivalent shell, for one pod (uid U) with 8080 -> 80:
    nft add rule ip minipod hostports tcp dport 8080 dnat to 10.89.0.2:80 \
        comment '"minipod-1a2b3c4d pod:U"'
    nft -a list chain ip minipod hostports      # find handles by comment
    nft delete rule ip minipod hostports handle H
"""
from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from minipod.linux import files
from minipod.netns import nft

__all__ = [
    "HostPortConflict", "HostPortError", "Mapping", "TABLE", "add_network", "add_rules",
    "claim", "claims", "owned", "release", "remove", "remove_network", "remove_rules", "rules",
]

TABLE = "minipod"
PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}
_LOCK = "lock"
_UID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")
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


class HostPortError(Exception):
    """A hostPort step failed; str() names the step, the object and why."""


class HostPortConflict(HostPortError):
    """The port is held by another pod (holder_uid, holder_name)."""

    def __init__(self, message: str, holder_uid: str, holder_name: str):
        super().__init__(message)
        self.holder_uid, self.holder_name = holder_uid, holder_name


@dataclass(frozen=True)
class Mapping:
    """hostIP:hostPort/protocol on the host -> containerPort of the pod.
    host_ip "" (or 0.0.0.0) means every address of the host."""
    host_port: int
    container_port: int
    protocol: str = "TCP"
    host_ip: str = ""

    def label(self) -> str:
        ip = f"[{self.host_ip}]" if ":" in self.host_ip else self.host_ip
        where = f"{ip}:" if self.host_ip else ""
        return f"hostPort {where}{self.host_port}/{self.protocol}"


# -- the network: table, masquerade, localhost ------------------------------------

def add_network(bridge: str, subnet: str) -> None:
    """Set up the table for a pod network (idempotent): masquerade for its
    pods (hairpin, 127.0.0.1, outbound), the guard on its bridge, and
    route_localnet=1 on the bridge, which must exist."""
    net = _subnet(subnet)
    _check_ifname(bridge)
    _nft(_SKELETON + f"add element ip {TABLE} pod_subnets {{ {net} }}\n"
                     f'add element ip {TABLE} bridges {{ "{bridge}" }}\n',
         f"set up NAT for pod network {net} on bridge {bridge}")
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


# -- claims -------------------------------------------------------------------------

def claim(state_dir: Path, pod_uid: str, pod_name: str, mappings: list[Mapping]) -> None:
    """Claim every mapping's hostPort for the pod, or none of them.

    Raises HostPortConflict if another pod holds one (same protocol and
    port, and the same hostIP or either one 0.0.0.0). Claiming again what
    the pod holds already is fine."""
    _check_uid(pod_uid)
    for m in mappings:
        _check_mapping(m)
    state_dir = Path(state_dir)
    with _locked(state_dir):
        held = _read_claims(state_dir)
        for m in mappings:
            for (uid, name, other) in held:
                if uid != pod_uid and _overlap(m, other):
                    raise HostPortConflict(
                        f"{m.label()} of pod {pod_name} is already used by pod {name} "
                        f"({other.label()}); use another hostPort, or delete pod {name}",
                        uid, name)
        for m in mappings:
            record = {"uid": pod_uid, "pod": pod_name, **asdict(m)}
            path = state_dir / _claim_name(m)
            files.replace_file(path, json.dumps(record).encode(), durable=False,
                               tmp=state_dir / f".{path.name}.tmp")


def release(state_dir: Path, pod_uid: str) -> None:
    """Drop every claim of the pod (idempotent)."""
    state_dir = Path(state_dir)
    if not state_dir.is_dir():
        return
    with _locked(state_dir):
        for path in state_dir.iterdir():
            if _is_claim(path) and _claim_uid(path) == pod_uid:
                _unlink(path)


def claims(state_dir: Path) -> list[tuple[str, str, Mapping]]:
    """Every claim: (pod uid, pod name, mapping)."""
    return _read_claims(Path(state_dir))


# -- rules --------------------------------------------------------------------------

def add_rules(pod_uid: str, pod_ip: str, mappings: list[Mapping],
              host_ifname: str | None = None, owner: str | None = None) -> None:
    """DNAT each mapping to pod_ip:containerPort, in one atomic batch.
    Replaces any rules the pod had, so calling it twice is harmless.
    owner ("minipod-1a2b3c4d") starts each rule's comment.

    host_ifname, the pod's veth on the bridge, gets hairpin mode, so the
    pod can reach its own hostPort where bridged traffic goes through
    netfilter (br_netfilter): see the module docstring."""
    _check_uid(pod_uid)
    tag = _owner_tag(owner)
    try:
        ip = ipaddress.IPv4Address(pod_ip)
    except ValueError as e:
        raise HostPortError(f"add hostPort rules for pod {pod_uid}: bad pod IP: {e}") from None
    adds = []
    for m in mappings:
        _check_mapping(m)
        match = f"ip daddr {m.host_ip} " if _specific(m.host_ip) else ""
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
    _check_uid(pod_uid)
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
    found |= {uid for uid, _, _ in _read_claims(Path(state_dir))}
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


def _check_mapping(m: Mapping) -> None:
    if m.protocol not in PROTOCOLS:
        raise HostPortError(f"{m.label()}: protocol must be one of {', '.join(PROTOCOLS)}")
    for what, port in (("hostPort", m.host_port), ("containerPort", m.container_port)):
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise HostPortError(f"{m.label()}: {what} {port!r} is not a port (1-65535)")
    if m.host_ip:
        try:
            ip = ipaddress.ip_address(m.host_ip)
        except ValueError:
            raise HostPortError(f"{m.label()}: hostIP {m.host_ip!r} is not an IP address") \
                from None
        if ip.version != 4:
            raise HostPortError(f"{m.label()}: hostIP {m.host_ip} is IPv6, and the pod "
                                "network is IPv4 only: use an IPv4 hostIP or none")


def _specific(host_ip: str) -> bool:
    return bool(host_ip) and host_ip != "0.0.0.0"


def _overlap(a: Mapping, b: Mapping) -> bool:
    return (a.protocol == b.protocol and a.host_port == b.host_port
            and (not _specific(a.host_ip) or not _specific(b.host_ip)
                 or a.host_ip == b.host_ip))


def _claim_name(m: Mapping) -> str:
    return f"{m.protocol}-{m.host_port}-{m.host_ip if _specific(m.host_ip) else '0.0.0.0'}"


def _is_claim(path: Path) -> bool:
    return path.name[:1] != "." and path.name != _LOCK and path.is_file()


def _claim_uid(path: Path) -> str | None:
    try:
        return json.loads(path.read_text()).get("uid")
    except (OSError, ValueError):
        return None


def _read_claims(state_dir: Path) -> list[tuple[str, str, Mapping]]:
    out = []
    try:
        paths = sorted(state_dir.iterdir())
    except FileNotFoundError:
        return []
    for path in paths:
        if not _is_claim(path):
            continue
        try:
            r = json.loads(path.read_text())
            out.append((r["uid"], r["pod"], Mapping(r["host_port"], r["container_port"],
                                                    r["protocol"], r["host_ip"])))
        except FileNotFoundError:
            continue                        # released while we listed
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise HostPortError(f"read hostPort claim {path}: {e}") from None
    return out


@contextlib.contextmanager
def _locked(state_dir: Path):
    """flock(2) on STATE_DIR/lock: claims are checked and written by one at a time."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / _LOCK
    try:
        fd = files.lock(path, mode=0o644)
    except OSError as e:
        raise HostPortError(f"open hostPort claims lock {path}: "
                            f"{os.strerror(e.errno)}") from None
    try:
        yield
    finally:
        os.close(fd)


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _subnet(subnet: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(subnet)
    except ValueError as e:
        raise HostPortError(f"bad pod subnet {subnet!r}: {e}") from None


def _check_uid(uid: str) -> None:
    # It goes into an nft comment and a file: no quotes, no slashes.
    if not isinstance(uid, str) or not _UID.match(uid):
        raise HostPortError(f"bad pod uid {uid!r}: letters, digits, '.', '_', '-' only")


def _check_ifname(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", name or ""):
        raise HostPortError(f"bad bridge name {name!r}")
