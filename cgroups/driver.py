"""The cgroup driver interface, the Kubernetes conversions, and detect().

A pod gets one cgroup, each container one below it, all under a parent
(like the kubelet's `kubepods`; the agent names it after its state root's
identity, `minipod-1a2b3c4d`, so two minipods never share one; `minipod`
when no parent is given):

    /sys/fs/cgroup/minipod/pod<uid>/<container>             cgroup v2
    /sys/fs/cgroup/{cpu,cpuacct,memory,pids,devices}/minipod/pod<uid>/<container>
                                                            cgroup v1

A cgroup is named by its path inside the hierarchy ("/minipod/pod<uid>/web"),
the same string on every v1 controller and on v2, which is what the state
record keeps. The driver turns it into files under its `root` (the seam: a
temporary directory in the unit tests, /sys/fs/cgroup for real).

By hand, a container with 250m of CPU and 64Mi of memory on cgroup v2:

    mkdir /sys/fs/cgroup/minipod/pod1234/web
    echo "25000 100000" > /sys/fs/cgroup/minipod/pod1234/web/cpu.max
    echo 67108864 > /sys/fs/cgroup/minipod/pod1234/web/memory.max
    echo 0 > /sys/fs/cgroup/minipod/pod1234/web/cgroup.procs     # join (the shell itself)

The numbers follow the kubelet (pkg/kubelet/cm/helpers_linux.go): CPU
limits become a CFS quota per 100 ms period, CPU requests become v1
cpu.shares (1024 per CPU) or v2 cpu.weight (runc's conversion from shares).
Nothing here kills a process: `remove` only removes empty cgroups and says
which pids are still inside one.
"""
from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass

DEFAULT_ROOT = "/sys/fs/cgroup"
DEFAULT_PARENT = "minipod"   # MINIPOD_CGROUP_PARENT overrides it
DEFAULT_PIDS_LIMIT = 4096

# pkg/kubelet/cm/helpers_linux.go
QUOTA_PERIOD_US = 100_000   # the CFS period: 100 ms
MIN_QUOTA_US = 1_000        # the kernel refuses a quota under 1 ms
MIN_SHARES = 2
MAX_SHARES = 262_144
SHARES_PER_CPU = 1024

POD_PREFIX = "pod"
PAUSE_CGROUP = "_pause"     # not a DNS label: no container can be called that


@dataclass(frozen=True)
class Limits:
    """A container's (or a pod's) resources, in kernel units; None = unset."""
    cpu_limit_milli: int | None = None     # resources.limits.cpu, millicores
    cpu_request_milli: int | None = None   # resources.requests.cpu, millicores
    memory_limit: int | None = None        # resources.limits.memory, bytes
    pids_max: int | None = None            # tasks allowed in the cgroup


@dataclass(frozen=True)
class Stats:
    """What `top` shows: CPU time used so far and the memory working set."""
    cpu_usage_ns: int
    memory_bytes: int   # usage minus inactive file cache, as kubectl top shows


class CgroupBusy(OSError):
    """A cgroup still holds processes; `pids` says which."""

    def __init__(self, path: str, pids: list[int]):
        super().__init__(errno.EBUSY, f"cgroup still has processes {pids}: "
                         f"stop them first (nothing is killed here)", path)
        self.pids = pids


# ---- Kubernetes' conversions (pure) -----------------------------------------

def cpu_quota_us(milli: int) -> int:
    """CFS quota for a CPU limit: 250m -> 25000 µs per 100000 µs (MilliCPUToQuota)."""
    return max(milli * QUOTA_PERIOD_US // 1000, MIN_QUOTA_US)


def cpu_shares(milli: int | None) -> int:
    """v1 cpu.shares for a CPU request: 1024 per CPU, at least 2 (MilliCPUToShares)."""
    if not milli:
        return MIN_SHARES
    return min(max(milli * SHARES_PER_CPU // 1000, MIN_SHARES), MAX_SHARES)


def cpu_weight(shares: int) -> int:
    """v2 cpu.weight (1..10000) for v1 shares (2..262144), runc's linear map
    (libcontainer/cgroups/utils.go ConvertCPUSharesToCgroupV2Value)."""
    return 1 + ((shares - 2) * 9999) // 262142


def pod_limits(containers: list[Limits], pids_max: int | None = None) -> Limits:
    """The pod cgroup's limits from its containers' (kubelet ResourceConfigForPod):
    shares from the sum of requests; a quota and a memory limit only when
    every container declares one (else one unlimited container makes the pod
    unlimited); the pids limit is per pod (kubelet --pod-max-pids)."""
    cpu_limits = [c.cpu_limit_milli for c in containers]
    mem_limits = [c.memory_limit for c in containers]
    return Limits(
        cpu_request_milli=sum(c.cpu_request_milli or 0 for c in containers),
        cpu_limit_milli=sum(cpu_limits) if containers and None not in cpu_limits else None,
        memory_limit=sum(mem_limits) if containers and None not in mem_limits else None,
        pids_max=pids_max if pids_max is not None else default_pids_limit())


def default_parent() -> str:
    """MINIPOD_CGROUP_PARENT, else "minipod" (a test session picks its own)."""
    return os.environ.get("MINIPOD_CGROUP_PARENT") or DEFAULT_PARENT


def default_pids_limit() -> int:
    """MINIPOD_PIDS_LIMIT, else 4096 tasks per pod."""
    value = os.environ.get("MINIPOD_PIDS_LIMIT", "")
    return int(value) if value.isdigit() else DEFAULT_PIDS_LIMIT


# ---- file helpers: every failure names the file and errno -------------------

def write_file(path: str, value: str) -> None:
    """Write one value to a cgroup file, as `echo VALUE > PATH` does."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except OSError as e:
        raise OSError(e.errno, f"cannot open cgroup file to write {value!r}: "
                      f"{e.strerror}", path) from None
    try:
        os.write(fd, value.encode())
    except OSError as e:
        raise OSError(e.errno, f"cannot write {value!r} to cgroup file: {e.strerror}",
                      path) from None
    finally:
        os.close(fd)


def read_file(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        raise OSError(e.errno, f"cannot read cgroup file: {e.strerror}", path) from None


def read_keyed(path: str) -> dict[str, int]:
    """A flat keyed file ("oom_kill 3\\nmax 0\\n") as a dict."""
    out = {}
    for line in read_file(path).splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def join(procs_files: list[str]) -> None:
    """Move the calling process into a cgroup: write "0" (meaning "me") to
    each cgroup.procs file of `Driver.join_paths(cg)`.

    Only open/write/close, so it is safe in a freshly forked child, e.g. the
    container's init before exec. It must run while the host's
    /sys/fs/cgroup is still visible: before pivot_root."""
    move(open_procs(procs_files), 0)


def open_procs(procs_files: list[str]) -> list[tuple[str, int]]:
    """[(path, fd)] of the cgroup.procs files, opened for writing, for
    move() later: an open fd keeps working after the opener's mount
    namespace has pivoted away from /sys/fs/cgroup."""
    opened = []
    try:
        for path in procs_files:
            try:
                opened.append((path, os.open(path, os.O_WRONLY | os.O_CLOEXEC)))
            except OSError as e:
                raise OSError(e.errno, f"cannot join cgroup: {e.strerror}", path) from None
    except OSError:
        for _, fd in opened:
            os.close(fd)
        raise
    return opened


def move(opened: list[tuple[str, int]], pid: int) -> None:
    """Write pid (0: the caller) to each opened cgroup.procs, closing them.

    The first move after a quiet moment costs an RCU grace period (the
    kernel's cgroup_threadgroup_rwsem taken for writing): ~10 ms here, so a
    container start has its parent move it while it mounts its root."""
    try:
        for path, fd in opened:
            try:
                os.write(fd, str(pid).encode())
            except OSError as e:
                raise OSError(e.errno, f"cannot join cgroup: {e.strerror}", path) from None
    finally:
        for _, fd in opened:
            os.close(fd)


# ---- the interface ----------------------------------------------------------

class Driver:
    """What the agent and `top` need from cgroups, v1 or v2 alike.

    Subclasses say where a cgroup's files live (`dirs`) and how limits are
    written; creation, joining, removal and garbage collection are shared."""

    version = 0

    def __init__(self, root: str = DEFAULT_ROOT, parent: str | None = None):
        self.root = root.rstrip("/") or "/"
        self.parent = "/" + (parent or default_parent()).strip("/")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={self.root!r}, parent={self.parent!r})"

    # -- paths
    def dirs(self, cg: str) -> list[str]:
        """The directories that make up cgroup `cg` (one per v1 hierarchy)."""
        raise NotImplementedError

    def pod_cgroup(self, pod_uid: str) -> str:
        return f"{self.parent}/{POD_PREFIX}{pod_uid}"

    def join_paths(self, cg: str) -> list[str]:
        """The cgroup.procs files a process writes "0" to, to join `cg`."""
        return [os.path.join(d, "cgroup.procs") for d in self.dirs(cg)]

    # -- lifecycle
    def create_pod(self, pod_uid: str, limits: Limits | None = None) -> str:
        """mkdir the pod's cgroup (and the parent if missing); returns its path."""
        self._ensure_parent()
        cg = self.pod_cgroup(pod_uid)
        self._make(cg)
        if limits is not None:
            self.set_pod_limits(cg, limits)
        return cg

    def create_container(self, pod_cg: str, name: str, limits: Limits,
                         privileged: bool = False) -> str:
        """A fresh cgroup for one start of a container, with its limits.

        A leftover cgroup of the previous start is removed first, so counters
        such as oom_kill start at zero for this run."""
        cg = f"{pod_cg}/{name}"
        self.remove(cg)
        self._make(cg)
        self._set_limits(cg, limits)
        if not privileged:
            self._restrict_devices(cg)
        return cg

    def adopt_pause(self, pod_cg: str, pid: int) -> str:
        """Move a pod's pause process (shareProcessNamespace) into a cgroup
        of its own below the pod's, as containerd does with the sandbox:
        then it carries the pod's cgroup, i.e. this root's identity. v2
        allows no process in a cgroup whose children have controllers, hence
        not the pod cgroup itself."""
        cg = f"{pod_cg}/{PAUSE_CGROUP}"
        self._make(cg)
        for path in self.join_paths(cg):
            write_file(path, str(pid))
        return cg

    def set_pod_limits(self, pod_cg: str, limits: Limits) -> None:
        self._set_limits(pod_cg, limits)

    def remove(self, cg: str) -> None:
        """rmdir the cgroup and the cgroups below it, deepest first.

        Idempotent (a missing cgroup is fine). Raises CgroupBusy naming the
        pids if a process is still inside; kills nothing."""
        for d in self.dirs(cg):
            self._remove_tree(d)

    def pod_names(self) -> list[str]:
        """pod<uid> entries under the parent, in any hierarchy."""
        names: set[str] = set()
        for d in self.dirs(self.parent):
            try:
                names.update(n for n in os.listdir(d) if n.startswith(POD_PREFIX)
                             and os.path.isdir(os.path.join(d, n)))
            except FileNotFoundError:
                pass
        return sorted(names)

    def procs(self, cg: str) -> list[int]:
        """Pids in the cgroup itself (not below it)."""
        pids: set[int] = set()
        for d in self.dirs(cg):
            pids.update(_pids_in(d))
        return sorted(pids)

    # -- readings
    def stats(self, cg: str) -> Stats:
        raise NotImplementedError

    def oom_killed(self, cg: str) -> int:
        """How many processes the kernel's OOM killer killed in this cgroup."""
        raise NotImplementedError

    # -- what subclasses provide
    def _ensure_parent(self) -> None:
        self._make(self.parent)

    def _make(self, cg: str) -> None:
        for d in self.dirs(cg):
            os.makedirs(os.path.dirname(d), exist_ok=True)
            self._mkdir(d)

    def _set_limits(self, cg: str, limits: Limits) -> None:
        raise NotImplementedError

    def _restrict_devices(self, cg: str) -> None:
        """Let the container use only the default devices (v1: devices.allow,
        v2: an eBPF program). Privileged containers skip this."""

    # Two primitives where cgroupfs differs from a plain directory; the unit
    # tests replace them with a small imitation of the kernel.
    def _mkdir(self, path: str) -> None:
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            pass
        except OSError as e:
            raise OSError(e.errno, f"cannot create cgroup: {e.strerror}", path) from None

    def _rmdir(self, path: str) -> None:
        os.rmdir(path)

    # How long remove() waits for a cgroup to empty: a process just killed,
    # or just exited, can keep it busy for a moment (runc retries too).
    REMOVE_WAIT = 0.5

    def _remove_tree(self, d: str) -> None:
        try:
            children = [os.path.join(d, n) for n in os.listdir(d)
                        if os.path.isdir(os.path.join(d, n))]
        except FileNotFoundError:
            return
        for child in children:
            self._remove_tree(child)
        deadline = time.monotonic() + self.REMOVE_WAIT
        delay = 0.005
        while True:
            try:
                self._rmdir(d)
                return
            except FileNotFoundError:
                return
            except OSError as e:
                if e.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                    raise OSError(e.errno, f"cannot remove cgroup: {e.strerror}", d) from None
                if time.monotonic() >= deadline:
                    pids = _pids_in(d)
                    if pids:
                        raise CgroupBusy(d, pids) from None
                    raise OSError(e.errno, f"cannot remove cgroup: {e.strerror} "
                                  f"(no process left in it)", d) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)


def _pids_in(d: str) -> list[int]:
    try:
        with open(os.path.join(d, "cgroup.procs")) as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def detect(root: str = DEFAULT_ROOT, parent: str | None = None) -> Driver:
    """The driver for this host's cgroups.

    cgroup v2 when `root` itself is a cgroup2 mount (it has
    cgroup.controllers: `stat -fc %T /sys/fs/cgroup` says cgroup2fs); v1
    when it holds per-controller hierarchies (/sys/fs/cgroup/memory, …).
    A hybrid host (v1 controllers plus an empty cgroup2 at
    /sys/fs/cgroup/unified) is v1: that is where its controllers are."""
    from minipod.cgroups import v1, v2
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        return v2.V2Driver(root, parent)
    if any(os.path.isdir(os.path.join(root, c)) for c in v1.CONTROLLERS):
        return v1.V1Driver(root, parent)
    raise OSError(errno.ENOENT, "no cgroup hierarchy found (neither cgroup2 nor v1 "
                  "controllers): is cgroupfs mounted?", root)
