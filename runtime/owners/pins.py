"""The namespaces a pod holds open, and the mounts under this root's dirs.

A pod's net, ipc and uts namespaces live while something holds them: bind
mounts of their /proc files at paths.pods/KEY/ns/X (runtime/sandbox.py),
and the netns also at /run/netns/minipod-ID-KEY, so `ip netns list` shows
it. Two owners here:

    Mounts      kind "mount": bind mounts under paths.pods/KEY (pins) and
                tmpfs emptyDirs under paths.containers/UID, as our
                mountinfo lists them; removed by umount -l, deepest first
    NetnsPins   kind "netns": /run/netns/PREFIX+KEY, PREFIX being this
                root's (Paths.netns_prefix); removed by sandbox.unpin

/run/netns is the whole machine's: a pin is ours by its prefix, which
carries this root's identity, never by a path under our dirs.
"""
from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from minipod.runtime.owners.base import (Keep, Listing, Node, Orphan, Owner, listdir,
                                         mount_points, umount, under)
from minipod.runtime.paths import Paths

_OTHER_ROOT_NETNS = re.compile(r"minipod-([0-9a-f]{6}|[0-9a-f]{8})-")


def create(paths: Paths, key: str, hostname: str) -> dict[str, str]:
    """New net, ipc and uts namespaces for pod KEY, pinned (sandbox.create)."""
    from minipod.runtime import sandbox
    return sandbox.create(paths.pod_dir(key), paths.netns_path(key), hostname)


def remove(paths: Paths, key: str) -> None:
    """Release every pin of pod KEY (idempotent); the kernel frees a
    namespace once nothing holds it."""
    from minipod.runtime import sandbox
    sandbox.destroy(paths.pod_dir(key), paths.netns_path(key))


class Mounts(Owner):
    kinds = ("mount",)

    def scan(self, node: Node, listing: Listing) -> None:
        paths = node.paths
        listing.mounts = [m for m in mount_points()
                          if under(m, paths.pods) or under(m, paths.containers)]
        for m in listing.mounts:
            if under(m, paths.pods) and Path(m).parent.name == "ns":
                _add_inode(listing, m)

    def orphans(self, paths: Paths, keep: Keep, listing: Listing) -> list[Orphan]:
        """Pinned ns files of gone pod dirs, tmpfs of gone container dirs;
        deepest first, so an inner mount goes before the one it is in."""
        out = []
        for m in sorted(listing.mounts, key=lambda m: -m.count("/")):
            owner = _mount_owner(paths, m)
            if owner is None:
                continue
            kind, key = owner
            if kind == "pod" and key not in keep.names:
                out.append(Orphan("mount", m, f"pinned namespace of pod {key}, which is gone"))
            elif kind == "uid" and key not in keep.uids:
                out.append(keep.by_uid("mount", m, f"mount of pod uid {key}, which no live "
                                       "pod owns"))
        return out

    def remove_orphan(self, node: Node, orphan: Orphan) -> None:
        umount(orphan.name)


class NetnsPins(Owner):
    kinds = ("netns",)

    def scan(self, node: Node, listing: Listing) -> None:
        for name in listdir(Path("/run/netns")):
            pod = netns_pod(node.paths, name)
            if pod is not None:
                listing.netns.append(pod)
        for pod in listing.netns:
            _add_inode(listing, str(node.paths.netns_path(pod)))

    def orphans(self, paths: Paths, keep: Keep, listing: Listing) -> list[Orphan]:
        return [Orphan("netns", f"/run/netns/{paths.netns_name(pod)}",
                       f"pinned network namespace of pod {pod}, which is gone")
                for pod in sorted(listing.netns) if pod not in keep.names]

    def remove_orphan(self, node: Node, orphan: Orphan) -> None:
        from minipod.runtime import sandbox
        sandbox.unpin(orphan.name)


def netns_pod(paths: Paths, name: str) -> str | None:
    """The pod whose netns /run/netns/NAME is, if it is this root's: its
    name starts with minipod-ID-.

    A legacy default root's prefix "minipod-" also starts every other
    root's "minipod-1a2b3c4d-": it leaves names of that shape alone."""
    if not name.startswith(paths.netns_prefix):
        return None
    if paths.netns_prefix == "minipod-" and _OTHER_ROOT_NETNS.match(name):
        return None
    return name[len(paths.netns_prefix):] or None


def pin_owner(paths: Paths, path: str) -> str | None:
    """The pod a namespace pin belongs to: /run/netns/PREFIX+POD or PODS/POD/ns/X."""
    p = Path(path)
    if p.parent == Path("/run/netns") and p.name.startswith(paths.netns_prefix):
        return p.name[len(paths.netns_prefix):]
    if p.parent.parent.parent == paths.pods:
        return p.parent.parent.name
    return None


def _mount_owner(paths: Paths, mount: str) -> tuple[str, str] | None:
    """("pod", NAME) for a mount under paths.pods/NAME, ("uid", UID) under
    paths.containers/UID; None for anything else (e.g. /run/netns pins,
    handled as netns)."""
    for base, kind in ((paths.pods, "pod"), (paths.containers, "uid")):
        try:
            rel = Path(mount).relative_to(base)
        except ValueError:
            continue
        if rel.parts:
            return kind, rel.parts[0]
    return None


def _add_inode(listing: Listing, path: str) -> None:
    with contextlib.suppress(OSError):
        listing.netns_inodes[path] = os.stat(path).st_ino
