"""What a pod holds of the network: its veth, its anti-spoofing filter, its
IP lease, its hostPort rules and claims (all in minipod.netns).

    Veth       mpXXXXXXXXXX on the bridge (netns.bridge.host_ifname(uid)),
               ours by its ifalias minipod-ID; ip link del takes both ends
    Filter     anti-spoofing set elements, ours by their comment
               "minipod-ID pod:UID" (netns.antispoof)
    Lease      paths.ipam/IP holding the pod uid (netns.ipam)
    HostPorts  nft DNAT rules commented "minipod-ID pod:UID" and the claims
               in paths.hostports (netns.hostport)

Links and nftables are the whole machine's: each is recognised by this
root's identity (paths.identity.tag), never by a name alone. A legacy root
(made before identities) also counts untagged veths and rules as its own.
"""
from __future__ import annotations

import contextlib
import re

from minipod.runtime.owners.base import Keep, Listing, Node, Orphan, Owner
from minipod.runtime.paths import Paths

_VETH = re.compile(r"mp[0-9a-f]{10}\Z")


# ---- the pod's side: create_pod and teardown ----------------------------------------------

def remove_veth(ipr, ifname: str) -> None:
    """ip link del IFNAME (idempotent): the pod's end goes with it."""
    from minipod.netns import bridge
    bridge.detach_pod(ipr, ifname)


def add_filter(paths: Paths, uid: str, ifname: str, mac: str, ip: str,
               wait: bool = True) -> None:
    """The anti-spoofing filter of the pod's veth: only its MAC and IP pass.
    wait=False: nft applies it while the caller goes on; filter_in_place(uid)
    waits (and raises its error)."""
    from minipod.netns import antispoof
    antispoof.add(uid, ifname, mac, ip, instance=paths.identity.tag, wait=wait)


def filter_in_place(uid: str) -> None:
    """Wait for the filter add_filter(wait=False) started."""
    from minipod.netns import antispoof
    antispoof.settle(uid)


def remove_filter(paths: Paths, uid: str, known=None) -> None:
    """Delete the pod's filter elements (idempotent); `known`, the
    antispoof.Filter add() was given, saves the nft listing."""
    from minipod.netns import antispoof
    antispoof.remove(uid, instance=paths.identity.tag, known=known)


def remove_hostports(paths: Paths, uid: str, rules: bool = True) -> None:
    """Drop the pod's hostPort rules (rules=False: none were made) and
    claims (idempotent)."""
    from minipod.netns import hostport
    if rules:
        hostport.remove(paths.hostports, uid, paths.identity.tag)
    else:
        hostport.release(paths.hostports, uid)


def remove_hostport_rules(paths: Paths, uid: str) -> None:
    from minipod.netns import hostport
    hostport.remove_rules(uid, paths.identity.tag)


# ---- gc -----------------------------------------------------------------------------------

class Veth(Owner):
    kinds = ("veth",)

    def scan(self, node: Node, listing: Listing) -> None:
        if node.ipr is None or not node.bridge:
            return   # no netlink: no veths
        from minipod.netns import bridge
        ident = node.paths.identity
        listing.veths = [n for n in bridge.pod_links(node.ipr, bridge.NetworkConfig(node.bridge),
                                                     alias=ident.tag, untagged=ident.legacy)
                         if _VETH.match(n)]

    def orphans(self, paths: Paths, keep: Keep, listing: Listing) -> list[Orphan]:
        return [keep.by_uid("veth", name, "host end of a pod's veth; no live pod uses it")
                for name in sorted(listing.veths) if name not in keep.veths]

    def remove_orphan(self, node: Node, orphan: Orphan) -> None:
        remove_veth(node.ipr, orphan.name)


class Filter(Owner):
    kinds = ("filter",)

    def scan(self, node: Node, listing: Listing) -> None:
        from minipod.netns import antispoof
        with contextlib.suppress(antispoof.FilterError):   # an nft that cannot list: none
            listing.filters = {f.pod_uid: f.ifname
                               for f in antispoof.filters(node.paths.identity.tag)}

    def orphans(self, paths: Paths, keep: Keep, listing: Listing) -> list[Orphan]:
        return [keep.by_uid("filter", uid, f"anti-spoofing filter of veth {veth}; no live "
                            "pod owns it")
                for uid, veth in sorted(listing.filters.items()) if uid not in keep.uids]

    def remove_orphan(self, node: Node, orphan: Orphan) -> None:
        remove_filter(node.paths, orphan.name)


class Lease(Owner):
    kinds = ("lease",)

    def scan(self, node: Node, listing: Listing) -> None:
        from minipod.netns.ipam import IPAM
        listing.leases = IPAM(node.paths.ipam).leases()

    def orphans(self, paths: Paths, keep: Keep, listing: Listing) -> list[Orphan]:
        return [keep.by_uid("lease", ip, f"leased to pod uid {owner}, which no live pod "
                            "owns", owner=owner)
                for ip, owner in sorted(listing.leases.items()) if owner not in keep.uids]

    def remove_orphan(self, node: Node, orphan: Orphan) -> None:
        from minipod.netns.ipam import IPAM
        IPAM(node.paths.ipam).release(orphan.owner)


class HostPorts(Owner):
    """Rules and claims of pods that are gone (netns.hostport.owned)."""
    kinds = ("hostport",)

    def scan(self, node: Node, listing: Listing) -> None:
        from minipod.netns import hostport
        ident = node.paths.identity
        try:
            listing.hostports = hostport.owned(node.paths.hostports, owner=ident.tag,
                                               legacy=ident.legacy)
        except Exception as e:
            listing.errors.append(f"hostport gc: {e}")

    def orphans(self, paths: Paths, keep: Keep, listing: Listing) -> list[Orphan]:
        return [keep.by_uid("hostport", uid, f"hostPort rules and claims of pod uid {uid}, "
                            "which no live pod owns")
                for uid in sorted(listing.hostports) if uid not in keep.uids]

    def remove_orphan(self, node: Node, orphan: Orphan) -> None:
        remove_hostports(node.paths, orphan.name)
