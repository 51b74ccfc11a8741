"""Anti-spoofing: a pod speaks on the bridge only as itself (nftables).

Every container has CAP_NET_RAW (containerd's default set, and minipod's),
so it can write any Ethernet frame on its eth0: an ARP reply saying "the
victim's IP is at my MAC" moves the host's neighbour entry, and the host's
traffic for the victim goes to the attacker; an IPv4 packet with another
pod's source address passes for that pod's; a frame with another pod's MAC
as source teaches the bridge that the victim lives behind the attacker's
port. What a bridge port may send is fixed when the pod is plugged in, so
minipod filters each pod's veth where its frames enter the bridge, as the
CNI bridge plugin's macspoofchk does for the MAC and libvirt's
clean-traffic filter does for all three:

  * Ethernet source: the pod's own MAC;
  * ARP (Ethernet/IPv4 only): sender MAC = the pod's MAC and sender IP =
    the pod's IP (what it asks for is its business);
  * IPv4: source = the pod's IP. 0.0.0.0 too is dropped: no pod here needs
    DHCP, its address is set from outside;
  * everything else is dropped, IPv6 included. The pod network is IPv4
    only; a pod's IPv6 can only be link-local (fe80::, which the pod's eth0
    makes up from its MAC), which nothing in minipod uses, and letting it
    through would need a second filter for neighbour discovery (the same
    attack as ARP, in ICMPv6 with options at variable offsets). So is any
    VLAN-tagged frame (nft sees its outer type, 802.1Q) and STP, LLDP or
    other link-layer protocol.

The table is minipod's own, in the bridge family (the hook every frame
takes when it enters a bridge, before it is forwarded or delivered to the
host, and before the bridge learns the source MAC), and per-pod data lives
in two sets; `nft delete table bridge minipod` removes it all:

    table bridge minipod {
        set ports { type ifname; }                          # pods' veths
        set pods { type ifname . ether_addr . ipv4_addr; }  # veth . MAC . IP
        chain prerouting { type filter hook prerouting priority -300;
            iifname @ports jump antispoof }                 # anything else: accept
        chain antispoof {
            arp htype 1 arp ptype ip arp hlen 6 arp plen 4
                iifname . ether saddr . arp saddr ip @pods
                iifname . arp saddr ether . arp saddr ip @pods accept
            iifname . ether saddr . ip saddr @pods accept
            drop
        }
    }

Frames from other interfaces (anything on another bridge) jump nowhere;
the host's own frames on the bridge take the output hook, not this one.
Priority -300 runs before br_netfilter (0), which would otherwise pass a
spoofed packet to iptables and conntrack first.

Not fail-closed: a port of minipod's bridge whose elements went missing
(the table deleted by hand, a pod started by a minipod without filters)
sends unfiltered. Dropping whatever a port of our bridge sends unless it
has a filter needs `meta ibrname` (CONFIG_NFT_BRIDGE_META), which the
kernel this was written on lacks, and matching veths by name would hit
other bridges' ports. Instead the agent writes the filter of every pod it
adopts again when it starts, so the next agent start sets it right.

Each set element carries its owner in its comment, "pod:UID" (the style
of netns/hostport.py's rules; with an instance identity, "INSTANCE
pod:UID"), and every function here touches only elements of its own
instance: two minipods in one netns share the table and its fixed chains,
never each other's elements. The first add of a process (the agent's
first pod) re-declares the table and re-fills its fixed chains in the same
atomic batch (`nft -f`), so it converges to the right shape whatever state
it finds; later adds write only their elements (and the whole again if the
table is gone). An element is deleted by adding it and deleting it in one
batch, which cannot fail if someone else deleted it first.

Equivalent shell, for a pod with uid U, veth mp1a2b3c4d5e, IP 10.89.0.2:

    nft add element bridge minipod ports { "mp1a2b3c4d5e" comment "pod:U" }
    nft add element bridge minipod pods { "mp1a2b3c4d5e" . 0a:58:0a:59:00:02 \\
        . 10.89.0.2 comment "pod:U" }
    nft delete element bridge minipod pods { "mp1a2b3c4d5e" . 0a:58:0a:59:00:02 \\
        . 10.89.0.2 }
    nft delete element bridge minipod ports { "mp1a2b3c4d5e" }
"""
from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import subprocess
from dataclasses import dataclass

from minipod.linux import explain
from minipod.netns import nft

__all__ = ["Filter", "FilterError", "TABLE", "add", "filters", "owner_tag", "parse",
           "remove", "settle"]

TABLE = "minipod"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")       # a uid, an instance
_TAG = re.compile(r"(?:(?P<instance>[A-Za-z0-9][A-Za-z0-9._-]{0,63}) )?"
                  r"pod:(?P<uid>[A-Za-z0-9][A-Za-z0-9._-]{0,99})\Z")
_IFNAME = re.compile(r"[A-Za-z0-9_.-]{1,15}\Z")
_MAC = re.compile(r"(?:[0-9a-f]{2}:){5}[0-9a-f]{2}\Z")

# The table, declared (a no-op for what exists), its fixed chains emptied and
# filled again: one batch, applied atomically, whatever state it finds. It
# costs 8-16 ms here (measured; a batch of two set elements: 2 ms), so each
# process writes it with its first add only (_converged), and again when the
# table is gone.
_converged = False
_SKELETON = f"""\
table bridge {TABLE} {{
    set ports {{ type ifname; }}
    set pods {{ type ifname . ether_addr . ipv4_addr; }}
    chain prerouting {{ type filter hook prerouting priority -300; policy accept; }}
    chain antispoof {{ }}
}}
flush chain bridge {TABLE} prerouting
flush chain bridge {TABLE} antispoof
table bridge {TABLE} {{
    chain prerouting {{ iifname @ports jump antispoof; }}
    chain antispoof {{
        arp htype 1 arp ptype ip arp hlen 6 arp plen 4 iifname . ether saddr . arp saddr ip @pods iifname . arp saddr ether . arp saddr ip @pods accept
        ether type ip iifname . ether saddr . ip saddr @pods accept
        drop
    }}
}}
"""


class FilterError(Exception):
    """An anti-spoofing step failed; str() names the step, the pod and why."""


@dataclass(frozen=True)
class Filter:
    """One pod's filter: what its veth may send."""
    pod_uid: str
    ifname: str        # the pod's veth on the bridge (host end)
    mac: str = ""      # "" for a veth listed in ports only (half removed)
    ip: str = ""


def owner_tag(pod_uid: str, instance: str = "") -> str:
    """The comment each element of the pod carries: "pod:UID", or
    "INSTANCE pod:UID" when the state root has an identity."""
    # Both go into an nft comment: no quotes, no spaces, short.
    if not isinstance(pod_uid, str) or not _NAME.match(pod_uid):
        raise FilterError(f"bad pod uid {pod_uid!r}: letters, digits, '.', '_', '-' only, "
                          "at most 64")
    if instance and not (isinstance(instance, str) and _NAME.match(instance)):
        raise FilterError(f"bad instance identity {instance!r}: letters, digits, '.', '_', "
                          "'-' only, at most 64")
    return f"{instance} pod:{pod_uid}" if instance else f"pod:{pod_uid}"


_pending: dict = {}     # pod uid -> the nft run of add(wait=False), until settle()


def add(pod_uid: str, ifname: str, mac: str, ip: str, instance: str = "",
        wait: bool = True) -> None:
    """Let the veth ifname send only as MAC and IP (see the module
    docstring), in one atomic batch. Idempotent. It must be in place before
    any process of the pod runs: until then nothing in the pod can send.
    wait=False: nft runs while the caller goes on, and settle(pod_uid)
    waits for it (and raises its error); remove() settles first."""
    global _converged
    tag = owner_tag(pod_uid, instance)
    step = f"add anti-spoofing filter for pod {pod_uid} on {ifname} ({mac}, {ip})"
    new = _checked(Filter(pod_uid, ifname, mac, ip), step)
    key = _pods_key(new)
    elements = (f'add element bridge {TABLE} pods {{ {key} comment "{tag}" }}\n'
                f'add element bridge {TABLE} ports {{ "{ifname}" comment "{tag}" }}\n')
    script = elements if _converged else _SKELETON + elements
    # only the elements, sent to a table deleted meanwhile, are worth a retry
    _pending[pod_uid] = (nft.start(script, step, FilterError), step, elements, key, ifname,
                         _converged)
    _converged = True
    if wait:
        settle(pod_uid)


def settle(pod_uid: str) -> None:
    """Wait for the nft run add() started for the pod (if one is pending);
    FilterError if it failed."""
    if pod_uid not in _pending:
        return
    proc, step, elements, key, ifname, retry = _pending.pop(pod_uid)
    try:
        nft.finish(proc, step, FilterError)
    except FilterError as e:
        if not (retry and _absent(e)):
            raise
        nft.run(_SKELETON + elements, step, FilterError)   # the table went away meanwhile
    explain.step(f'nft add element bridge {TABLE} pods {{ {key} }} && '
                 f'nft add element bridge {TABLE} ports {{ "{ifname}" }}',
                 f"anti-spoofing: frames from {ifname} may carry only the pod's MAC and IP "
                 "(ARP and IPv4; the rest is dropped), so it cannot pose as another pod")


def remove(pod_uid: str, instance: str = "", known: Filter | None = None) -> None:
    """Delete the pod's filter elements (idempotent). With `known` (the
    filter add() was given, which the caller kept), in one nft run instead
    of a listing first and a delete after; gc (runtime/owners/network.py
    Filter) catches what a changed filter would leave."""
    owner_tag(pod_uid, instance)
    with contextlib.suppress(FilterError):
        settle(pod_uid)          # an add still running would land after the delete
    if known is not None and known.pod_uid == pod_uid and known.mac and known.ip:
        _delete([known], f"remove anti-spoofing filter of pod {pod_uid}", instance)
        return
    mine = [f for f in filters(instance) if f.pod_uid == pod_uid]
    if mine:
        _delete(mine, f"remove anti-spoofing filter of pod {pod_uid}", instance)


def filters(instance: str = "") -> list[Filter]:
    """The filters of this instance, one per element found (a veth in
    ports but not in pods shows with mac and ip ""); [] when there is no
    table, or no nft (then nobody can have added any)."""
    try:
        proc = subprocess.run(["nft", "-j", "list", "table", "bridge", TABLE],
                              capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        return []
    if proc.returncode != 0:
        if "No such file or directory" in proc.stderr:
            return []
        raise FilterError(f"list the anti-spoofing filters (table bridge {TABLE}): "
                          f"nft: {proc.stderr.strip()}")
    try:
        return parse(json.loads(proc.stdout)["nftables"], instance)
    except (ValueError, KeyError, TypeError) as e:
        raise FilterError(f"list the anti-spoofing filters: cannot read nft -j output: "
                          f"{e}") from None


def parse(objects: list, instance: str = "") -> list[Filter]:
    """The filters of `instance` in `nft -j list table bridge minipod`'s
    list of objects (pure: unit tested)."""
    found: dict[tuple[str, str], Filter] = {}
    ports = []
    for o in objects:
        s = o.get("set") or {}
        for e in s.get("elem", []):
            e = e.get("elem") if isinstance(e, dict) and "elem" in e else None
            m = _TAG.match((e or {}).get("comment") or "")
            if not m or (m.group("instance") or "") != instance:
                continue                      # not ours, or not this instance's
            val = e["val"]
            if s.get("name") == "pods" and isinstance(val, dict) and \
                    len(val.get("concat", [])) == 3:
                ifname, mac, ip = val["concat"]
                found[(m.group("uid"), ifname)] = Filter(m.group("uid"), ifname, mac, ip)
            elif s.get("name") == "ports" and isinstance(val, str):
                ports.append((m.group("uid"), val))
    for key in ports:
        found.setdefault(key, Filter(*key))
    return sorted(found.values(), key=lambda f: (f.pod_uid, f.ifname))


# -- helpers ------------------------------------------------------------------------

def _delete(found: list[Filter], step: str, instance: str) -> None:
    """Delete elements: each one added (a no-op if it is there) and deleted in
    the same batch, so one deleted meanwhile by someone else is no error."""
    script = []
    for old in found:
        old = _checked(old, step)
        keys = ([("pods", _pods_key(old))] if old.mac else []) + [("ports", f'"{old.ifname}"')]
        for set_name, key in keys:
            script.append(f"add element bridge {TABLE} {set_name} {{ {key} }}\n"
                          f"delete element bridge {TABLE} {set_name} {{ {key} }}\n")
        explain.step(" && ".join(f"nft delete element bridge {TABLE} {set_name} {{ {key} }}"
                                 for set_name, key in keys),
                     f"remove the anti-spoofing filter of {old.ifname}")
    try:
        _nft("".join(script), step)
    except FilterError as e:
        # the table deleted meanwhile (by hand): then the elements went with it
        if not _absent(e) or any(f in found for f in filters(instance)):
            raise


def _pods_key(f: Filter) -> str:
    return f'"{f.ifname}" . {f.mac} . {f.ip}'


def _checked(f: Filter, step: str) -> Filter:
    """f with its parts checked (they go into an nft script) and normalised."""
    if not _IFNAME.match(f.ifname or ""):
        raise FilterError(f"{step}: bad interface name {f.ifname!r}")
    if not f.mac and not f.ip:
        return f
    mac = (f.mac or "").lower()
    if not _MAC.match(mac):
        raise FilterError(f"{step}: bad MAC address {f.mac!r}")
    try:
        ip = ipaddress.IPv4Address(f.ip)
    except ValueError as e:
        raise FilterError(f"{step}: bad pod IP: {e}") from None
    return Filter(f.pod_uid, f.ifname, mac, str(ip))


def _absent(e: FilterError) -> bool:
    """nft's words for "the table or set is not there"."""
    return "No such file or directory" in str(e) or "does not exist" in str(e)


def _nft(script: str, step: str) -> str:
    return nft.run(script, step, FilterError)
