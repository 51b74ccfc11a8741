"""What every owner shares: the Orphan it reports, the Listing it fills,
the Keep set it decides by, and the Owner contract itself.

An owner (runtime/owners/__init__.py lists them) is one kind of thing a pod
holds on the machine. It has three faces:

    create / acquire   create_pod calls it, and registers its remove at once
    remove(...)        teardown and create_pod's undo call it; idempotent
    scan + orphans     gc: scan(node, listing) reads the kernel into its part
                       of the Listing; orphans(paths, keep, listing) is pure
                       and says which of them no live pod refers to;
                       collect(node, orphans, step) removes those
"""
from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from minipod.runtime.api.record import PodRecord
from minipod.runtime.paths import Paths, record_key


@dataclass(frozen=True)
class PodDir:
    """One entry of paths.pods: its record, or why there is none."""
    name: str
    record: PodRecord | None = None   # pod.json, if it could be read; of an
    error: str | None = None     # unreadable one only the uid it still shows.
                                 # error: why pod.json could not be read; None: there is none


@dataclass(frozen=True)
class Proc:
    """One process, as far as gc cares."""
    pid: int
    start: int | None            # start time (ticks): a reused pid is not the same process
    netns: int                   # inode of /proc/PID/ns/net
    mntns: int                   # inode of /proc/PID/ns/mnt
    container: tuple[str, str] | None = None   # (pod uid, container) by its cgroup
    pause: bool = False          # a pause process of this root (by its cgroup)


@dataclass
class Listing:
    """Everything of one root that exists right now (each owner's scan fills its part)."""
    pod_dirs: list[PodDir] = field(default_factory=list)
    netns: list[str] = field(default_factory=list)         # pod names pinned in /run/netns
    netns_inodes: dict[str, int] = field(default_factory=dict)  # pin path -> nsfs inode
    mounts: list[str] = field(default_factory=list)        # mount points under the root
    veths: list[str] = field(default_factory=list)
    filters: dict[str, str] = field(default_factory=dict)  # pod uid -> veth (netns.antispoof)
    leases: dict[str, str] = field(default_factory=dict)   # ip -> owner (pod uid)
    hostports: list[str] = field(default_factory=list)     # pod uids with rules or claims
    cgroups: list[str] = field(default_factory=list)       # pod uids with a pod cgroup
    container_dirs: list[str] = field(default_factory=list)  # pod uids
    log_dirs: list[str] = field(default_factory=list)      # pod names
    procs: list[Proc] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)        # what a scan could not read


@dataclass(frozen=True)
class Orphan:
    """One thing to remove (or, remove=False, only to report)."""
    kind: str          # one of owners.KINDS
    name: str          # the object: a path, a link name, an IP, a pid
    reason: str        # why it is an orphan, for the user
    owner: str = ""    # a lease's owner; a process's start time
    remove: bool = True

    def __str__(self) -> str:
        return f"{self.kind} {self.name}: {self.reason}"


@dataclass
class Node:
    """What gc acts with: the root, a netlink socket (None: no veths), the
    bridge, the cgroup driver (None: cgroups are left alone)."""
    paths: Paths
    ipr: object = None
    bridge: str | None = None
    cgroups: object = None


@dataclass
class Keep:
    """What the live records (and the unreadable pod dirs) protect."""
    live: dict[str, PodRecord]     # key -> live record
    names: set[str]                # pod keys
    uids: set[str]
    veths: set[str]
    pauses: set[tuple]             # (pid, start) of recorded pause processes
    gone: dict[str, PodRecord]     # readable records the agent does not manage
    unsure: list[str]              # unreadable pod dirs whose uid is unknown

    @classmethod
    def of(cls, live_records: list[PodRecord], pod_dirs: list[PodDir]) -> Keep:
        from minipod.netns.bridge import host_ifname
        live = {record_key(r): r for r in live_records}
        keep = cls(live, set(live), {r.uid for r in live.values()},
                   {r.host_ifname or host_ifname(r.uid) for r in live.values()},
                   {(r.pause.pid, r.pause.pid_start) for r in live.values() if r.pause},
                   {}, [])
        for d in pod_dirs:
            if d.name in live:
                continue
            if d.error is not None:
                keep.names.add(d.name)
                uid = uid_of(d)
                if uid:
                    keep.uids.add(uid)
                    keep.veths.add(host_ifname(uid))
                else:
                    keep.unsure.append(d.name)
            elif d.record is not None:
                keep.gone[d.name] = d.record
        return keep

    def by_uid(self, kind: str, name: str, reason: str, owner: str = "") -> Orphan:
        """Things known by uid alone: kept while an unreadable pod may own them."""
        if self.unsure:
            return Orphan(kind, name, (f"kept: pod state of {', '.join(sorted(self.unsure))} "
                                       "cannot be read and may own it"), owner=owner,
                          remove=False)
        return Orphan(kind, name, reason, owner=owner)


class Owner:
    """One kind of resource (see the module docstring). `kinds`: the Orphan
    kinds it reports, in removal order."""
    kinds: tuple[str, ...] = ()

    def scan(self, node: Node, listing: Listing) -> None:
        """Read what exists of this kind into `listing`."""

    def orphans(self, paths: Paths, keep: Keep, listing: Listing) -> list[Orphan]:
        """Which of them no live pod refers to (pure)."""
        return []

    def collect(self, node: Node, orphans: list[Orphan], step) -> None:
        """Remove each orphan; step(orphan, fn) runs fn and records the outcome."""
        for o in orphans:
            step(o, lambda o=o: self.remove_orphan(node, o))

    def remove_orphan(self, node: Node, orphan: Orphan) -> None:
        raise NotImplementedError(orphan.kind)


def uid_of(d: PodDir) -> str | None:
    """The uid an unreadable record still shows, if any (set by the scan)."""
    return (d.record.uid or None) if d.record is not None else None


# ---- small readers and removers the owners share ---------------------------------------

def listdir(d: Path) -> list[str]:
    try:
        return sorted(os.listdir(d))
    except (FileNotFoundError, NotADirectoryError):
        return []


def subdirs(d: Path) -> list[str]:
    return [n for n in listdir(d) if (d / n).is_dir()]


def mount_points() -> list[str]:
    """Mount points of our mount namespace (mountinfo's field 5, unescaped)."""
    from minipod.linux import proc
    return [m.mount_point for m in proc.mountinfo("self")]


def under(path: str, base: Path) -> bool:
    return path.startswith(str(base) + "/")


def umount(target: str) -> None:
    """umount -l; a target that is gone or no mount (any more) is fine."""
    import errno
    from minipod.linux import mount
    try:
        mount.umount(target, mount.MNT_DETACH)
    except OSError as e:
        if e.errno not in (errno.ENOENT, errno.EINVAL):
            raise


def rmtree(path: str, ignore_errors: bool = False) -> None:
    """rm -rf, after unmounting whatever is still mounted below it; a
    missing path is fine. ignore_errors: an undo step, which must not
    hide the error that made it run."""
    try:
        for m in sorted((m for m in mount_points() if under(m, Path(path))),
                        key=lambda m: -m.count("/")):
            umount(m)
    except OSError:
        if not ignore_errors:
            raise
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path, ignore_errors)
