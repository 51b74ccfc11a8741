"""Garbage collection: find what no pod owns any more, and remove it.

A pod is many things spread over the machine: a state dir, pinned
namespaces, a veth, an IP lease, container dirs, logs, tmpfs mounts,
processes. create_pod and teardown make and remove them in order, but an
agent killed between two steps (kill -9, OOM, power cut) leaves the ones
already made. Those are orphans: things of this MINIPOD_ROOT that no live
pod record refers to. `minipod gc` (the agent's op "gc") finds and removes
them, in the three steps every part of minipod follows:

    scan(paths, ipr, bridge)            what exists       (reads the kernel)
    find_orphans(paths, live, listing)  what is orphaned  (pure: unit tested)
    collect(paths, ipr, orphans)        remove them       (each step idempotent)

What counts, and how each is recognised as this root's. A path names a
directory only in one mount namespace, and another minipod may use the
same paths in another one (runtime/paths.py, "Identity"), so what the
whole machine shares (processes, cgroups, /run/netns, links, nftables) is
recognised by this root's identity as the kernel shows it, never by a path
string; what lies under the root's own dirs or in our own mount table is
ours by its place:

    pod state dir    paths.pods/KEY             no live pod of that KEY
    pinned netns     /run/netns/PREFIX+KEY      PREFIX is minipod-ID- (Paths.netns_prefix)
    pinned ns file   paths.pods/KEY/ns/X        a bind mount in our mountinfo
    tmpfs mount      paths.containers/UID/...   an emptyDir of medium Memory
    veth             mpXXXXXXXXXX on the bridge  netns.bridge.host_ifname(uid), with
                                                ifalias minipod-ID
    filter           anti-spoofing set elements  comment "minipod-ID pod:UID" (netns.antispoof)
    IP lease         paths.ipam/IP, content UID netns.ipam leases()
    container dir    paths.containers/UID
    log dir          paths.pod_logs/KEY
    process          a container's: /proc/PID/cgroup puts it in
                     /minipod-ID/pod<UID>/<container>; a pause process: in
                     /minipod-ID/pod<UID>/_pause; or any process inside an
                     orphaned pinned netns of ours

KEY is the pod's key (runtime/paths.py pod_key): NAME for a pod in namespace
default, NAMESPACE_NAME elsewhere; every name here is compared by key.

A container process of a *live* pod that is not the one its record names
(an agent killed between starting it and saving its pid, then a second
start) is an orphan too: it runs unmanaged, unlogged, forever.

Never removed, only reported: a pod dir whose pod.json cannot be read
(issue 7, item 6). Its name (and, when the text still shows it, its uid)
protect what it may own; when its uid cannot be found, the things known by
uid alone (veths, leases, container dirs) are reported, not removed.

One assumption, the same the IPAM makes: one MINIPOD_ROOT per bridge (two
roots on one bridge would hand out the same IPs); two roots in one network
namespace need two bridges and subnets (MINIPOD_BRIDGE, MINIPOD_SUBNET). A
legacy root (made before identities, runtime/paths.py) also counts untagged
veths and rules as its own, and the legacy default prefix "minipod-"
leaves the names of other roots ("minipod-1a2b3c4d-web") alone.

By hand, for one orphaned pod web with uid U and IP 10.89.0.7:

    kill -9 $(cat /sys/fs/cgroup/minipod-ID/podU/*/cgroup.procs)
    umount -l /var/lib/minipod/containers/U/volumes/cache
    ip link del mp$(printf %s U | sha256sum | cut -c1-10)
    rm /run/minipod/ipam/10.89.0.7
    umount /run/netns/minipod-ID-web && rm /run/netns/minipod-ID-web
    rm -rf /var/lib/minipod/containers/U /var/log/minipod/pods/web /run/minipod/pods/web

hostPort NAT rules and cgroups have their own gc (netns/hostport.gc,
cgroups Driver.gc, both given the live uids); `run` calls them when they
are there.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from minipod.runtime.paths import Paths, record_key

# The order collect() works in: processes first (they hold namespaces and
# mounts), then mounts, links and leases, the dirs last.
KINDS = ("process", "mount", "veth", "filter", "lease", "netns", "container-dir", "log-dir",
         "pod-dir", "state")
PAUSE_COMM = "minipod-pause"
KILL_WAIT = 2.0
_VETH = re.compile(r"mp[0-9a-f]{10}\Z")
_OTHER_ROOT_NETNS = re.compile(r"minipod-([0-9a-f]{6}|[0-9a-f]{8})-")
_UID_IN_TEXT = re.compile(rb'"uid"\s*:\s*"([0-9a-f-]{36})"')


# ---- what exists --------------------------------------------------------------------

@dataclass(frozen=True)
class PodDir:
    """One entry of paths.pods: its record, or why there is none."""
    name: str
    record: dict | None = None   # pod.json, if it could be read
    error: str | None = None     # why pod.json could not be read; None: there is none


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
    """Everything of one root that exists right now (scan() fills it)."""
    pod_dirs: list[PodDir] = field(default_factory=list)
    netns: list[str] = field(default_factory=list)         # pod names pinned in /run/netns
    netns_inodes: dict[str, int] = field(default_factory=dict)  # pin path -> nsfs inode
    mounts: list[str] = field(default_factory=list)        # mount points under the root
    veths: list[str] = field(default_factory=list)
    filters: dict[str, str] = field(default_factory=dict)  # pod uid -> veth (netns.antispoof)
    leases: dict[str, str] = field(default_factory=dict)   # ip -> owner (pod uid)
    container_dirs: list[str] = field(default_factory=list)  # pod uids
    log_dirs: list[str] = field(default_factory=list)      # pod names
    procs: list[Proc] = field(default_factory=list)


@dataclass(frozen=True)
class Orphan:
    """One thing to remove (or, remove=False, only to report)."""
    kind: str          # one of KINDS
    name: str          # the object: a path, a link name, an IP, a pid
    reason: str        # why it is an orphan, for the user
    owner: str = ""    # a lease's owner; a process's start time
    remove: bool = True

    def __str__(self) -> str:
        return f"{self.kind} {self.name}: {self.reason}"


# ---- plan: pure -----------------------------------------------------------------------

def find_orphans(paths: Paths, live_records, listing: Listing) -> list[Orphan]:
    """What in `listing` no live pod record refers to, in removal order.

    `live_records` are the agent's records (dicts with name, uid, and
    hostIfname, netns, containers[].pid/pidStart, pause when present)."""
    from minipod.netns.bridge import host_ifname
    live = {record_key(r): r for r in live_records}
    keep_names = set(live)
    keep_uids = {r["uid"] for r in live.values()}
    keep_veths = {r.get("hostIfname") or host_ifname(r["uid"]) for r in live.values()}
    keep_pauses = {(r["pause"]["pid"], r["pause"].get("pidStart"))
                   for r in live.values() if r.get("pause")}
    out: list[Orphan] = []
    unsure = []      # unreadable pod dirs whose uid is unknown
    gone: dict[str, dict] = {}   # readable records the agent does not manage
    for d in listing.pod_dirs:
        if d.name in live:
            continue
        if d.error is not None:
            keep_names.add(d.name)
            uid = _uid_of(d)
            if uid:
                keep_uids.add(uid)
                keep_veths.add(host_ifname(uid))
            else:
                unsure.append(d.name)
            out.append(Orphan("state", str(paths.pod_dir(d.name)),
                              f"kept, not removed: {d.error}; fix or remove it by hand",
                              remove=False))
        elif d.record is not None:
            gone[d.name] = d.record
            out.append(Orphan("pod-dir", str(paths.pod_dir(d.name)),
                              "pod record the agent does not manage (half-created or "
                              "half-deleted pod)"))
        else:
            out.append(Orphan("pod-dir", str(paths.pod_dir(d.name)),
                              "pod dir without pod.json (killed before its first save, "
                              "or during removal)"))
    unsure_why = (f"kept: pod state of {', '.join(sorted(unsure))} cannot be read "
                  "and may own it") if unsure else ""

    def by_uid(kind: str, name: str, reason: str, owner: str = "") -> Orphan:
        """Things known by uid alone: kept while an unreadable pod may own them."""
        if unsure:
            return Orphan(kind, name, unsure_why, owner=owner, remove=False)
        return Orphan(kind, name, reason, owner=owner)

    # processes: containers of gone pods, untracked containers of live ones,
    # anything in an orphaned netns, pauses nobody records
    orphan_netns = {ino for path, ino in listing.netns_inodes.items()
                    if _pin_owner(paths, path) not in keep_names}
    by_pid = {p.pid: p for p in listing.procs}
    for p in listing.procs:
        start = str(p.start)
        if p.container is not None:
            uid, cname = p.container
            record = next((r for r in live.values() if r["uid"] == uid), None)
            if record is not None:
                if p.mntns != _tracked_mntns(record, cname, by_pid):
                    out.append(Orphan("process", str(p.pid), (
                        f"an untracked process of container {cname} of pod "
                        f"{record_key(record)} (not the pid its record names)"), owner=start))
            elif uid not in keep_uids:
                pod = next((n for n, r in gone.items() if r.get("uid") == uid), None)
                out.append(by_uid("process", str(p.pid), (
                    f"container {cname} of pod {pod} (uid {uid}), which is gone" if pod
                    else f"container {cname} of pod uid {uid}, which no live pod owns"),
                    owner=start))
        elif p.netns in orphan_netns:
            out.append(Orphan("process", str(p.pid), "runs in the network namespace of a pod "
                              "that is gone", owner=start))
        elif p.pause and (p.pid, p.start) not in keep_pauses:
            out.append(by_uid("process", str(p.pid), "a pause process no live pod records",
                              owner=start))

    # mounts: pinned ns files of gone pod dirs, tmpfs of gone container dirs
    for m in sorted(listing.mounts, key=lambda m: -m.count("/")):
        owner = _mount_owner(paths, m)
        if owner is None:
            continue
        kind, key = owner
        if kind == "pod" and key not in keep_names:
            out.append(Orphan("mount", m, f"pinned namespace of pod {key}, which is gone"))
        elif kind == "uid" and key not in keep_uids:
            out.append(by_uid("mount", m, f"mount of pod uid {key}, which no live pod owns"))
    for name in sorted(listing.veths):
        if name not in keep_veths:
            out.append(by_uid("veth", name, "host end of a pod's veth; no live pod uses it"))
    for uid, veth in sorted(listing.filters.items()):
        if uid not in keep_uids:
            out.append(by_uid("filter", uid, f"anti-spoofing filter of veth {veth}; no live "
                              "pod owns it"))
    for ip, owner in sorted(listing.leases.items()):
        if owner not in keep_uids:
            out.append(by_uid("lease", ip, f"leased to pod uid {owner}, which no live pod "
                              "owns", owner=owner))
    for pod in sorted(listing.netns):
        if pod not in keep_names:
            out.append(Orphan("netns", f"/run/netns/{paths.netns_name(pod)}",
                              f"pinned network namespace of pod {pod}, which is gone"))
    for uid in sorted(listing.container_dirs):
        if uid not in keep_uids:
            out.append(by_uid("container-dir", str(paths.containers / uid),
                              f"container dirs of pod uid {uid}, which no live pod owns"))
    for pod in sorted(listing.log_dirs):
        if pod not in keep_names:
            out.append(Orphan("log-dir", str(paths.pod_logs / pod),
                              f"logs of pod {pod}, which is gone"))
    out.sort(key=lambda o: KINDS.index(o.kind))   # stable: keeps the order within a kind
    return out


def _uid_of(d: PodDir) -> str | None:
    """The uid an unreadable record still shows, if any (set by scan())."""
    return (d.record or {}).get("uid")


def _tracked_mntns(record: dict, cname: str, by_pid: dict[int, Proc]) -> int | None:
    """The mount namespace of the process the record names for a container."""
    for cs in record.get("initContainers", []) + record.get("containers", []):
        if cs.get("name") == cname and cs.get("state") == "running" and cs.get("pid"):
            p = by_pid.get(cs["pid"])
            if p is not None and (cs.get("pidStart") is None or p.start == cs["pidStart"]):
                return p.mntns
    return None


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


def _pin_owner(paths: Paths, path: str) -> str | None:
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


# ---- what exists: reading the machine -------------------------------------------

def scan(paths: Paths, ipr=None, bridge_name: str | None = None) -> Listing:
    """Read what exists for this root. ipr=None: no veths (no netlink)."""
    from minipod.netns.ipam import IPAM
    from minipod.runtime import state
    listing = Listing()
    for name in _listdir(paths.pods):
        d = paths.pod_dir(name)
        if not d.is_dir():
            continue
        try:
            listing.pod_dirs.append(PodDir(name, record=state.read(d)))
        except FileNotFoundError:
            listing.pod_dirs.append(PodDir(name))
        except state.StateError as e:
            uid = _salvage_uid(d / state.RECORD)
            listing.pod_dirs.append(PodDir(name, record={"uid": uid} if uid else None,
                                           error=str(e)))
    for name in _listdir(Path("/run/netns")):
        pod = netns_pod(paths, name)
        if pod is not None:
            listing.netns.append(pod)
    listing.mounts = [m for m in _mount_points()
                      if _under(m, paths.pods) or _under(m, paths.containers)]
    for pod in listing.netns:
        _add_inode(listing, str(paths.netns_path(pod)))
    for m in listing.mounts:
        if _under(m, paths.pods) and Path(m).parent.name == "ns":
            _add_inode(listing, m)
    if ipr is not None and bridge_name:
        from minipod.netns import bridge
        ident = paths.identity
        listing.veths = [n for n in bridge.pod_links(ipr, bridge.NetworkConfig(bridge_name),
                                                     alias=ident.tag, untagged=ident.legacy)
                         if _VETH.match(n)]
    from minipod.netns import antispoof
    with contextlib.suppress(antispoof.FilterError):   # an nft that cannot list: none
        listing.filters = {f.pod_uid: f.ifname
                           for f in antispoof.filters(paths.identity.tag)}
    listing.leases = IPAM(paths.ipam).leases()
    listing.container_dirs = [n for n in _listdir(paths.containers)
                              if (paths.containers / n).is_dir()]
    listing.log_dirs = [n for n in _listdir(paths.pod_logs) if (paths.pod_logs / n).is_dir()]
    listing.procs = scan_processes(paths)
    return listing


def scan_processes(paths: Paths) -> list[Proc]:
    """Processes that may be this root's: every process (for the netns
    check), with its container named when /proc/PID/cgroup puts it under
    this root's cgroup parent (/minipod-ID/pod<UID>/<container>), and pause
    processes (/minipod-ID/pod<UID>/_pause) marked.

    The cgroup is the kernel's word, the same in every mount namespace: a
    container of another minipod whose overlay paths are the very same
    strings as ours is in another parent, hence never ours. Cheap: two
    readlinks and one small read per process."""
    from minipod.linux import proc
    parent = "/" + paths.cgroup_parent.strip("/") + "/"
    legacy_marker = None
    if paths.identity.legacy:
        # pauses of a legacy root were started before they had a cgroup
        legacy_marker = f"MINIPOD_ROOT={paths.root}".encode() if paths.root else b""
    own_net, own_mnt = proc.ns_inode("self", "net"), proc.ns_inode("self", "mnt")
    procs = []
    me = os.getpid()
    for entry in _listdir(Path("/proc")):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        net, mnt = proc.ns_inode(entry, "net"), proc.ns_inode(entry, "mnt")
        if net is None or mnt is None:
            continue   # gone, or a zombie (its namespaces are released)
        container, pause = _pod_cgroup(proc.cgroup_paths(pid), parent)
        if (legacy_marker is not None and not pause and container is None
                and mnt == own_mnt and net == own_net):
            pause = _is_legacy_pause(entry, legacy_marker)
        procs.append(Proc(pid, proc.start_time(pid), net, mnt, container, pause))
    return procs


def _pod_cgroup(cgs: list[str], parent: str) -> tuple[tuple[str, str] | None, bool]:
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
    from minipod.linux import proc
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


def _salvage_uid(path: Path) -> str | None:
    """The uid a damaged pod.json still shows (`"uid": "…"`), if any."""
    try:
        m = _UID_IN_TEXT.search(path.read_bytes())
    except OSError:
        return None
    return m.group(1).decode() if m else None


def _add_inode(listing: Listing, path: str) -> None:
    with contextlib.suppress(OSError):
        listing.netns_inodes[path] = os.stat(path).st_ino


def _mount_points() -> list[str]:
    """Mount points of our mount namespace (field 5 of mountinfo, unescaped)."""
    from minipod.linux import proc
    return [m.mount_point for m in proc.mountinfo("self")]


def _under(path: str, base: Path) -> bool:
    return path.startswith(str(base) + "/")


def _listdir(d: Path) -> list[str]:
    try:
        return sorted(os.listdir(d))
    except (FileNotFoundError, NotADirectoryError):
        return []


# ---- act -------------------------------------------------------------------------------

def collect(paths: Paths, ipr, orphans: list[Orphan], errors: list[str] | None = None
            ) -> list[str]:
    """Remove every orphan (remove=True), in the order given; returns what
    was removed, one line each. Each step tolerates "already gone"; a step
    that fails is recorded in `errors` (if given) and the others still run."""
    from minipod.linux import mount
    from minipod.runtime import sandbox
    errors = errors if errors is not None else []
    removed = []
    doomed = [o for o in orphans if o.remove]

    def step(o: Orphan, fn) -> None:
        try:
            fn()
            removed.append(str(o))
        except Exception as e:
            errors.append(f"cannot remove {o.kind} {o.name}: {e}")

    killed = []
    for o in doomed:
        if o.kind == "process":
            step(o, lambda o=o: killed.append(_kill(int(o.name), o.owner)))
    _wait_dead([k for k in killed if k])
    for o in doomed:
        if o.kind == "mount":
            step(o, lambda o=o: _umount(mount, o.name))
        elif o.kind == "veth":
            step(o, lambda o=o: _del_veth(ipr, o.name))
        elif o.kind == "filter":
            step(o, lambda o=o: _del_filter(o.name, paths.identity.tag))
        elif o.kind == "lease":
            step(o, lambda o=o: _release(paths, o.owner))
        elif o.kind == "netns":
            step(o, lambda o=o: sandbox.unpin(o.name))
        elif o.kind in ("container-dir", "log-dir"):
            step(o, lambda o=o: _rmtree(mount, o.name))
        elif o.kind == "pod-dir":
            step(o, lambda o=o: _remove_pod_dir(paths, sandbox, mount, o.name))
    return removed


def _kill(pid: int, start: str) -> int | None:
    """SIGKILL pid if it is still the process listed (same start time)."""
    from minipod.linux import proc
    if str(proc.start_time(pid)) != start:
        return None   # gone already, or the pid was reused
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return None
    return pid


def _wait_dead(pids: list[int]) -> None:
    """Until each killed process has released its namespaces (a zombie has)."""
    from minipod.linux import proc
    deadline = time.monotonic() + KILL_WAIT
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if proc.ns_inode(p, "net") is not None]
        if pids:
            time.sleep(0.01)


def _umount(mount, target: str) -> None:
    try:
        mount.umount(target, mount.MNT_DETACH)
    except OSError as e:
        if e.errno not in (errno.ENOENT, errno.EINVAL):   # gone; not a mount (any more)
            raise


def _del_veth(ipr, name: str) -> None:
    from minipod.netns import bridge
    bridge.detach_pod(ipr, name)


def _del_filter(pod_uid: str, instance: str) -> None:
    from minipod.netns import antispoof
    antispoof.remove(pod_uid, instance=instance)


def _release(paths: Paths, owner: str) -> None:
    from minipod.netns.ipam import IPAM
    IPAM(paths.ipam).release(owner)


def _rmtree(mount, path: str) -> None:
    """rm -rf, after unmounting whatever is still mounted below it."""
    for m in sorted((m for m in _mount_points() if _under(m, Path(path))),
                    key=lambda m: -m.count("/")):
        _umount(mount, m)
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)


def _remove_pod_dir(paths: Paths, sandbox, mount, path: str) -> None:
    d = Path(path)
    sandbox.destroy(d, paths.netns_path(d.name))
    _rmtree(mount, path)


# ---- the agent's op "gc" ---------------------------------------------------------------

def run(paths: Paths, ipr, bridge_name: str, records, dry_run: bool = False,
        cgroups=None) -> dict:
    """Scan, plan, collect; the agent's answer to {"op": "gc"}.

    Returns {"ok": True, "removed": [...], "kept": [...], "errors": [...]}
    (with dry_run, "removed" lists what would be). hostPort rules and
    cgroups of pods not in `records` are collected by their own modules,
    when present."""
    records = list(records)
    listing = scan(paths, ipr, bridge_name)
    orphans = find_orphans(paths, records, listing)
    kept = [str(o) for o in orphans if not o.remove]
    errors: list[str] = []
    if dry_run:
        removed = [str(o) for o in orphans if o.remove]
    else:
        removed = collect(paths, ipr, orphans, errors)
        # an unreadable pod keeps what its uid owns; without a uid, everything
        unreadable = [d for d in listing.pod_dirs if d.error is not None]
        if all(_uid_of(d) for d in unreadable):
            keep = {r["uid"] for r in records} | {_uid_of(d) for d in unreadable}
            removed += _extension_gc(paths, keep, cgroups, errors)
    return {"ok": True, "removed": removed, "kept": kept, "errors": errors}


def _extension_gc(paths: Paths, live: set[str], cgroups, errors: list[str]) -> list[str]:
    """hostPort rules and cgroups of gone pods, by the modules that own them."""
    removed = []
    try:
        from minipod.netns import hostport
    except ImportError:
        hostport = None
    state_dir = getattr(paths, "hostports", None)
    if hostport is not None and state_dir is not None:
        try:
            ident = paths.identity
            removed += [f"hostport rules of pod uid {u}" for u in hostport.gc(
                state_dir, live, owner=ident.tag, legacy=ident.legacy)]
        except Exception as e:
            errors.append(f"hostport gc: {e}")
    if cgroups is not None:
        try:
            gone, problems = cgroups.gc(live)
            removed += [f"cgroup {cg}" for cg in gone]
            errors += problems
        except Exception as e:
            errors.append(f"cgroup gc: {e}")
    return removed

