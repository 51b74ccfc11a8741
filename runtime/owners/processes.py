"""The processes a pod owns (its containers, its pause process) and the
cgroups that hold them.

Created by the agent (runtime/container.py, sandbox.start_pause), which
records each pid with its start time. Removed here by SIGKILL, and only if
the pid still has the start time listed: a reused pid is a stranger.

Recognised as this root's by the kernel's word, the same in every mount
namespace: /proc/PID/cgroup puts a container in /minipod-ID/pod<UID>/<name>,
a pause in /minipod-ID/pod<UID>/_pause. Besides those, any process inside
an orphaned pinned netns of ours (`ip netns exec` into a gone pod) is one.

A pod's cgroup is /minipod-ID/pod<UID> (minipod.cgroups): created with the
pod, removed (rmdir, deepest first) once its processes are gone.
"""
from __future__ import annotations

import os
import signal
import time

from minipod.linux import proc
from minipod.runtime.api.record import ContainerState, PodRecord
from minipod.runtime.owners.base import Keep, Listing, Node, Orphan, Owner, Proc, listdir
from minipod.runtime.paths import Paths, record_key

PAUSE_COMM = "minipod-pause"
KILL_WAIT = 2.0


class Processes(Owner):
    kinds = ("process",)

    def scan(self, node: Node, listing: Listing) -> None:
        listing.procs = scan_processes(node.paths)

    def orphans(self, paths: Paths, keep: Keep, listing: Listing) -> list[Orphan]:
        """Containers of gone pods, untracked containers of live ones,
        anything in an orphaned netns, pauses nobody records."""
        from minipod.runtime.owners.pins import pin_owner
        out = []
        orphan_netns = {ino for path, ino in listing.netns_inodes.items()
                        if pin_owner(paths, path) not in keep.names}
        by_pid = {p.pid: p for p in listing.procs}
        for p in listing.procs:
            start = str(p.start)
            if p.container is not None:
                uid, cname = p.container
                record = next((r for r in keep.live.values() if r.uid == uid), None)
                if record is not None:
                    if p.mntns != _tracked_mntns(record, cname, by_pid):
                        out.append(Orphan("process", str(p.pid), (
                            f"an untracked process of container {cname} of pod "
                            f"{record_key(record)} (not the pid its record names)"),
                            owner=start))
                elif uid not in keep.uids:
                    pod = next((n for n, r in keep.gone.items() if r.uid == uid), None)
                    out.append(keep.by_uid("process", str(p.pid), (
                        f"container {cname} of pod {pod} (uid {uid}), which is gone" if pod
                        else f"container {cname} of pod uid {uid}, which no live pod owns"),
                        owner=start))
            elif p.netns in orphan_netns:
                out.append(Orphan("process", str(p.pid), "runs in the network namespace of "
                                  "a pod that is gone", owner=start))
            elif p.pause and (p.pid, p.start) not in keep.pauses:
                out.append(keep.by_uid("process", str(p.pid), "a pause process no live pod "
                                       "records", owner=start))
        return out

    def collect(self, node: Node, orphans: list[Orphan], step) -> None:
        """SIGKILL all, then wait until each has released its namespaces:
        the mounts and links after them can then go."""
        killed = []
        for o in orphans:
            step(o, lambda o=o: killed.append(kill(int(o.name), o.owner)))
        _wait_dead([k for k in killed if k])


class Cgroups(Owner):
    """Pod cgroups under this root's parent (Driver.pod_names)."""
    kinds = ("cgroup",)

    def scan(self, node: Node, listing: Listing) -> None:
        from minipod.cgroups.driver import POD_PREFIX
        if node.cgroups is None:
            return
        try:
            listing.cgroups = [n[len(POD_PREFIX):] for n in node.cgroups.pod_names()]
        except Exception as e:   # as the rest of gc goes on without them
            listing.errors.append(f"cgroup gc: {e}")

    def orphans(self, paths: Paths, keep: Keep, listing: Listing) -> list[Orphan]:
        from minipod.cgroups.driver import POD_PREFIX
        parent = "/" + paths.cgroup_parent.strip("/")
        return [keep.by_uid("cgroup", f"{parent}/{POD_PREFIX}{uid}", f"cgroup of pod uid "
                            f"{uid}, which no live pod owns", owner=uid)
                for uid in sorted(listing.cgroups) if uid not in keep.uids]

    def remove_orphan(self, node: Node, orphan: Orphan) -> None:
        node.cgroups.remove(node.cgroups.pod_cgroup(orphan.owner))


def remove_cgroup(driver, uid: str) -> None:
    """rmdir the pod's cgroup (idempotent), by the uid: a record saved
    before the cgroup was made must not leak it."""
    driver.remove(driver.pod_cgroup(uid))


def stop_pause(record: PodRecord) -> None:
    """SIGKILL the pod's pause process, if the record names one that still runs."""
    pause = record.pause
    if pause and proc.alive(pause.pid, pause.pid_start):
        os.kill(pause.pid, signal.SIGKILL)


def kill(pid: int, start: str) -> int | None:
    """SIGKILL pid if it is still the process listed (same start time)."""
    if str(proc.start_time(pid)) != start:
        return None   # gone already, or the pid was reused
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return None
    return pid


def _wait_dead(pids: list[int]) -> None:
    """Until each killed process has released its namespaces (a zombie has)."""
    deadline = time.monotonic() + KILL_WAIT
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if proc.ns_inode(p, "net") is not None]
        if pids:
            time.sleep(0.01)


def _tracked_mntns(record: PodRecord, cname: str, by_pid: dict[int, Proc]) -> int | None:
    """The mount namespace of the process the record names for a container."""
    for cs in record.all_containers():
        if cs.name == cname and cs.state == ContainerState.RUNNING and cs.pid:
            p = by_pid.get(cs.pid)
            if p is not None and (cs.pid_start is None or p.start == cs.pid_start):
                return p.mntns
    return None


def scan_processes(paths: Paths) -> list[Proc]:
    """Processes that may be this root's: every process (for the netns
    check), with its container named when /proc/PID/cgroup puts it under
    this root's cgroup parent (/minipod-ID/pod<UID>/<container>), and pause
    processes (/minipod-ID/pod<UID>/_pause) marked.

    The cgroup is the kernel's word, the same in every mount namespace: a
    container of another minipod whose overlay paths are the very same
    strings as ours is in another parent, hence never ours. Cheap: two
    readlinks and one small read per process."""
    from pathlib import Path

    parent = "/" + paths.cgroup_parent.strip("/") + "/"
    legacy_marker = None
    if paths.identity.legacy:
        # pauses of a legacy root were started before they had a cgroup
        legacy_marker = f"MINIPOD_ROOT={paths.root}".encode() if paths.root else b""
    own_net, own_mnt = proc.ns_inode("self", "net"), proc.ns_inode("self", "mnt")
    procs = []
    me = os.getpid()
    for entry in listdir(Path("/proc")):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        net, mnt = proc.ns_inode(entry, "net"), proc.ns_inode(entry, "mnt")
        if net is None or mnt is None:
            continue   # gone, or a zombie (its namespaces are released)
        container, pause = pod_cgroup(proc.cgroup_paths(pid), parent)
        if (legacy_marker is not None and not pause and container is None
                and mnt == own_mnt and net == own_net):
            pause = _is_legacy_pause(entry, legacy_marker)
        procs.append(Proc(pid, proc.start_time(pid), net, mnt, container, pause))
    return procs


def pod_cgroup(cgs: list[str], parent: str) -> tuple[tuple[str, str] | None, bool]:
    """((pod uid, container), is-pause) of a process in cgroups `cgs`, from
    the first path under `parent` ("/minipod-ID/"): ("/minipod-ID/pod<UID>/web"
    is container web of pod UID, ".../pod<UID>/_pause" its pause)."""
    from minipod.cgroups.driver import PAUSE_CGROUP, POD_PREFIX
    for cg in cgs:
        if not cg.startswith(parent + POD_PREFIX):
            continue
        parts = cg[len(parent):].split("/")
        if len(parts) < 2 or not parts[1]:
            continue
        uid = parts[0][len(POD_PREFIX):]
        if parts[1] == PAUSE_CGROUP:
            return None, True
        return (uid, parts[1]), False
    return None, False


def _is_legacy_pause(pid: str, marker: bytes) -> bool:
    """A pause of a legacy root: comm minipod-pause, MINIPOD_ROOT as ours."""
    if proc.comm(pid) != PAUSE_COMM:
        return False
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read().split(b"\0")
    except OSError:
        return False
    if marker:
        return marker in env
    return not any(v.startswith(b"MINIPOD_ROOT=") and v != b"MINIPOD_ROOT=" for v in env)
