"""Local storage limits, the kubelet's way: measure, and evict the pod.

A disk-backed emptyDir is a plain directory on the node's file system, and
a container's writable layer is the upper dir of its overlay: nothing in
the kernel caps either (a size-capped file system per volume would need a
loop device, which VMs and containers often lack; a tmpfs changes the
medium). So, like the kubelet's eviction manager (pkg/kubelet/eviction,
localStorageEviction), the agent measures every EVICTION_PERIOD seconds
and evicts a pod over one of its limits, checked in the kubelet's order:

    emptyDir sizeLimit     the volume's usage
                           'Usage of EmptyDir volume "x" exceeds the limit "1Mi".'
    pod, sum of the        every container's writable layer and logs, and
    containers' limits     the pod's disk-backed emptyDirs
    .ephemeral-storage     'Pod ephemeral local storage usage exceeds the
                           total limit of containers 10Mi.'
    container limits       its writable layer and its logs
    .ephemeral-storage     'Container c exceeded its local ephemeral storage
                           limit "10Mi".'

Eviction (the agent's `_evict`): the pod's phase becomes Failed with
reason Evicted and that message, a Warning event "Evicted" is recorded,
every container gets SIGTERM and SIGKILL after EVICTION_GRACE (the
kubelet's immediateEvictionGracePeriodSeconds, 1 s), nothing restarts;
the pod object stays until it is deleted. The data stays too (as it does
until a kubelet cleans the terminated pod's volumes); `delete` frees it.

The measuring runs in a forked child (`fork_measure`), never in the loop:
like `du -x`, it counts allocated blocks (st_blocks), each inode once, does
not follow symlinks and does not cross into other mounts. The walk goes by
directory fds (openat with O_NOFOLLOW|O_DIRECTORY), so a container that
swaps a directory for a symlink mid-walk cannot lead it out of the volume;
it stops as soon as a limit is passed. A tree deeper than MAX_DEPTH levels
counts as over every limit (the walk holds one fd per level).
"""
from __future__ import annotations

import os
import resource
import stat
from dataclasses import dataclass

EVICTION_PERIOD = float(os.environ.get("MINIPOD_EVICTION_PERIOD", "10"))  # the kubelet's 10s
EVICTION_GRACE = 1       # seconds: the kubelet's immediateEvictionGracePeriodSeconds
MAX_DEPTH = 1000         # directory levels the walk descends
MAX_REPORTED = 100       # violations one measuring child reports (one a pod)
REASON = "Evicted"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class TooDeep(Exception):
    """The tree has more levels than the walk descends."""


@dataclass
class Check:
    """One limit of one pod: the paths whose usage it caps."""
    pod: str
    uid: str
    paths: list[str]
    limit: int          # bytes
    message: str        # the kubelet's eviction message, should it be passed


def quantity(n: int) -> str:
    """Bytes as Kubernetes prints a quantity: 1Mi, 10Gi, 500M, 1234."""
    if n == 0:
        return "0"
    for base, suffixes in ((1024, ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei")),
                           (1000, ("k", "M", "G", "T", "P", "E"))):
        suffix = ""
        value = n
        for s in suffixes:
            if value % base:
                break
            value //= base
            suffix = s
        if suffix:
            return f"{value}{suffix}"
    return str(n)


def plan(pod, uid: str, volume_paths: dict[str, str], upper_dirs: dict[str, str],
         log_dirs: dict[str, str]) -> list[Check]:
    """The checks of one pod, in the kubelet's order (pure).

    `pod` is the parsed manifest; `volume_paths` {volume: host dir},
    `upper_dirs` and `log_dirs` {container: host dir} for every container
    of the pod that has been started."""
    checks = []
    for v in pod.volumes:
        # a memory-backed emptyDir is a tmpfs of that size: the kernel caps it
        if v.kind == "emptyDir" and v.size_limit and v.medium != "Memory" \
                and v.name in volume_paths:
            checks.append(Check(pod.name, uid, [volume_paths[v.name]], v.size_limit,
                                f'Usage of EmptyDir volume "{v.name}" exceeds the limit '
                                f'"{quantity(v.size_limit)}".'))
    running = pod.containers + [c for c in pod.init_containers if c.restart_policy == "Always"]
    limits = [c.resources.ephemeral_storage_limit for c in running]
    if any(limits):
        # resourcehelper.PodLimits: the sum of the containers' limits (those
        # that set one), at least any regular init container's
        total = sum(n or 0 for n in limits)
        for c in pod.init_containers:
            if c.restart_policy != "Always":
                total = max(total, c.resources.ephemeral_storage_limit or 0)
        names = [c.name for c in pod.init_containers + pod.containers]
        paths = [d for n in names for d in (upper_dirs.get(n), log_dirs.get(n)) if d]
        paths += [volume_paths[v.name] for v in pod.volumes
                  if v.kind == "emptyDir" and v.medium != "Memory" and v.name in volume_paths]
        checks.append(Check(pod.name, uid, paths, total,
                            "Pod ephemeral local storage usage exceeds the total limit of "
                            f"containers {quantity(total)}."))
    for c in pod.containers:
        limit = c.resources.ephemeral_storage_limit
        if limit:
            paths = [d for d in (upper_dirs.get(c.name), log_dirs.get(c.name)) if d]
            checks.append(Check(pod.name, uid, paths, limit,
                                f"Container {c.name} exceeded its local ephemeral storage "
                                f'limit "{quantity(limit)}".'))
    return checks


def disk_usage(path: str, stop_above: int | None = None) -> int:
    """Bytes allocated under `path`, like `du -sx --bytes` counts blocks:
    symlinks not followed, other mounts not entered, hard links once.
    Stops early once the total is above `stop_above`. 0 if it is gone."""
    try:
        top = os.open(path, _DIR_FLAGS)
    except FileNotFoundError:
        return 0
    except (NotADirectoryError, OSError):
        try:
            return os.lstat(path).st_blocks * 512
        except FileNotFoundError:
            return 0
    st = os.fstat(top)
    dev, total, seen = st.st_dev, st.st_blocks * 512, set()

    def room() -> int | None:
        return None if stop_above is None else stop_above - total
    stack = [(top, _scan(top, dev, seen, room()))]   # one open directory per level
    try:
        while stack:
            fd, (used, subdirs) = stack[-1]
            total += used
            stack[-1] = (fd, (0, subdirs))
            if stop_above is not None and total > stop_above:
                break
            if not subdirs:
                os.close(fd)
                stack.pop()
                continue
            name = subdirs.pop()
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError:
                continue   # gone, or swapped for a symlink: O_NOFOLLOW refused it
            cst = os.fstat(child)
            if cst.st_dev != dev:
                os.close(child)
                continue
            total += cst.st_blocks * 512
            if len(stack) >= MAX_DEPTH:
                os.close(child)
                raise TooDeep(f"{path}: more than {MAX_DEPTH} directory levels")
            stack.append((child, _scan(child, dev, seen, room())))
    finally:
        for fd, _ in stack:
            os.close(fd)
    return total


def _scan(fd: int, dev: int, seen: set, room: int | None) -> tuple[int, list[str]]:
    """Blocks of the non-directories in one directory, and its subdirectories
    (hard-linked inodes in `seen` are counted once); stops once past `room`."""
    used, subdirs = 0, []
    try:
        with os.scandir(fd) as entries:  # scandir works on a dup of fd
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    if st.st_dev == dev:
                        subdirs.append(entry.name)
                    continue
                if st.st_nlink > 1:
                    if (st.st_dev, st.st_ino) in seen:
                        continue
                    seen.add((st.st_dev, st.st_ino))
                used += st.st_blocks * 512
                if room is not None and used > room:
                    break
    except OSError:
        pass
    return used, subdirs


def violations(checks: list[Check]) -> list[tuple[int, int]]:
    """(index, usage) of the first check each pod is over."""
    found, done = [], set()
    for i, c in enumerate(checks):
        if c.uid in done:
            continue
        used = 0
        try:
            for p in c.paths:
                used += disk_usage(p, c.limit - used)
                if used > c.limit:
                    break
        except TooDeep:
            used = c.limit + 1
        if used > c.limit:
            found.append((i, used))
            done.add(c.uid)
            if len(found) >= MAX_REPORTED:
                break
    return found


def fork_measure(checks: list[Check]) -> tuple[int, int]:
    """Fork a child that measures `checks` and writes one line "INDEX USAGE"
    per violation to a pipe; returns (pid, read end). The child runs at a
    low priority and exits 0; the agent reaps it like a probe check."""
    from minipod.linux import fork

    def measure() -> tuple[int, str]:
        os.nice(10)
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = MAX_DEPTH + 4096 if hard == resource.RLIM_INFINITY else hard
        try:  # the walk holds one fd per level, beside the agent's own
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, MAX_DEPTH + 4096), hard))
        except (ValueError, OSError):
            pass
        return 0, "".join(f"{i} {used}\n" for i, used in violations(checks))

    child = fork.spawn(measure)   # MAX_REPORTED lines fit in its message
    return child.pid, child.fd


def parse_report(text: str) -> list[tuple[int, int]]:
    """The child's lines back into (index, usage)."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
            out.append((int(parts[0]), int(parts[1])))
    return out
