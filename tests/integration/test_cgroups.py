"""The cgroup drivers against the real kernel: files, then behaviour.

Every driver this host offers is tested: v1 where the controllers are v1
hierarchies (this CI machine), v2 where a cgroup2 hierarchy is mounted
(/sys/fs/cgroup on current distributions; /sys/fs/cgroup/unified, without
controllers, on a hybrid host like this one). A test that needs a
controller the hierarchy lacks is skipped and says so.

Each test uses its own parent (minipod-test-PID-N) and removes it, so
nothing is left in /sys/fs/cgroup. Processes a test starts are killed by
pid, and the fork bomb runs in its own PID namespace so that killing its
PID 1 ends every copy.
"""
from __future__ import annotations

import itertools
import os
import signal
import subprocess
import time
from types import SimpleNamespace

import pytest
from ownergc import owner_gc

from minipod import cgroups
from minipod.linux import namespaces
from minipod.cgroups.v1 import V1Driver
from minipod.cgroups.v2 import V2Driver
from minipod.runtime.owners import Node
from minipod.runtime.owners.processes import Cgroups

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root (cgroupfs)")]

Mi = 1 << 20
_seq = itertools.count()


def _cgroup2_mount() -> str | None:
    for line in open("/proc/self/mountinfo"):
        fields = line.split()
        fstype = fields[fields.index("-") + 1]
        if fstype == "cgroup2":
            return fields[4]
    return None


@pytest.fixture(params=["v1", "v2"])
def driver(request):
    parent = f"minipod-test-{os.getpid()}-{next(_seq)}"
    if request.param == "v1":
        d = cgroups.detect("/sys/fs/cgroup", parent)
        if not isinstance(d, V1Driver):
            pytest.skip("this host has no cgroup v1 hierarchies")
    else:
        mount = _cgroup2_mount()
        if mount is None:
            pytest.skip("no cgroup2 hierarchy is mounted on this host")
        d = V2Driver(mount, parent)
    yield d
    d.remove(d.parent)
    assert not any(os.path.exists(x) for x in d.dirs(d.parent)), "cgroups left behind"


def require(d: cgroups.Driver, *controllers: str) -> None:
    """Skip unless the hierarchy has these controllers (with the reason)."""
    controllers = tuple(dict.fromkeys(controllers))
    if isinstance(d, V1Driver):
        missing = [c for c in controllers if c not in d.controllers]
    else:
        have = open(os.path.join(d.root, "cgroup.controllers")).read().split()
        missing = [c for c in controllers if c not in have]
    if missing:
        where = "bound to v1 hierarchies on this hybrid host" if isinstance(d, V2Driver) \
            else "not mounted"
        pytest.skip(f"the cgroup{d.version} hierarchy at {d.root} has no {', '.join(missing)} "
                    f"controller ({where})")


def cfile(d: cgroups.Driver, controller: str, cg: str, name: str) -> str:
    """Path of a controller's file for cgroup cg."""
    base = d.path(controller, cg) if isinstance(d, V1Driver) else d.path(cg)
    return os.path.join(base, name)


def keyed(path: str) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in open(path)) if v.isdigit()}


def start_in(d: cgroups.Driver, cg: str, argv: list[str], new_pid_ns: bool = False) -> int:
    """Fork a process that joins cg, then execs argv. With new_pid_ns, the
    process is PID 1 of its own PID namespace (the returned pid kills all)."""
    procs = d.join_paths(cg)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            cgroups.join(procs)
            if new_pid_ns:
                namespaces.unshare(namespaces.CLONE_NEWPID)
                child = os.fork()
                if child:
                    os.write(w, f"{child}\n".encode())
                    os._exit(0)
            os.close(w)
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    os.close(w)
    data = os.read(r, 64)
    os.close(r)
    if new_pid_ns:
        os.waitpid(pid, 0)
        return int(data)
    return pid


def wait_empty(d: cgroups.Driver, cg: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while d.procs(cg):
        assert time.monotonic() < deadline, f"processes left in {cg}: {d.procs(cg)}"
        time.sleep(0.02)


def reap(pid: int) -> int:
    """waitpid a child; the exit code, or -signal."""
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


# ---- creation and the kernel's own files ------------------------------------------

def test_create_writes_limits_to_the_kernel(driver):
    require(driver, "cpu", "memory", "pids")
    limits = cgroups.Limits(cpu_limit_milli=250, cpu_request_milli=100, memory_limit=48 * Mi)
    pod = driver.create_pod("lim", cgroups.pod_limits([limits], pids_max=321))
    cg = driver.create_container(pod, "c", limits)
    read = lambda ctl, name, where=cg: open(cfile(driver, ctl, where, name)).read().split()
    if driver.version == 1:
        assert read("cpu", "cpu.cfs_quota_us") == ["25000"]
        assert read("cpu", "cpu.cfs_period_us") == ["100000"]
        assert read("cpu", "cpu.shares") == ["102"]
        assert read("memory", "memory.limit_in_bytes") == [str(48 * Mi)]
        devices = open(cfile(driver, "devices", cg, "devices.list")).read().splitlines()
        assert devices[:3] == ["c *:* m", "b *:* m", "c 1:3 rwm"]
    else:
        assert read("cpu", "cpu.max") == ["25000", "100000"]
        assert read("cpu", "cpu.weight") == ["4"]
        assert read("memory", "memory.max") == [str(48 * Mi)]
        assert read("memory", "memory.oom.group") == ["1"]
    assert read("pids", "pids.max", pod) == ["321"]
    driver.remove(pod)


def test_process_joins_and_removal_waits_for_it(driver):
    pod = driver.create_pod("join")
    cg = driver.create_container(pod, "c", cgroups.Limits())
    pid = start_in(driver, cg, ["/bin/busybox", "sleep", "30"])
    try:
        lines = open(f"/proc/{pid}/cgroup").read().splitlines()
        if driver.version == 1:
            for ctl in driver.controllers:
                assert any(line.split(":")[1].split(",").count(ctl) and
                           line.endswith(":" + cg) for line in lines), (ctl, lines)
        else:
            v2_line = next(line for line in lines if line.startswith("0::"))
            if _cgroup2_mount() == driver.root:
                assert v2_line == f"0::{cg}"
        assert driver.procs(cg) == [pid]
        with pytest.raises(cgroups.CgroupBusy) as e:
            driver.remove(pod)
        assert e.value.pids == [pid] and str(pid) in str(e.value)
    finally:
        os.kill(pid, signal.SIGKILL)
        reap(pid)
    wait_empty(driver, cg)
    driver.remove(pod)
    assert not any(os.path.exists(x) for x in driver.dirs(pod))
    driver.remove(pod)   # idempotent


def test_gc_removes_cgroups_of_pods_that_are_gone(driver):
    for uid in ("alive", "gone"):
        driver.create_container(driver.create_pod(uid), "c", cgroups.Limits())
    removed, errors = owner_gc(Cgroups(), Node(None, cgroups=driver),
                               SimpleNamespace(cgroup_parent=driver.parent), {"alive"})
    assert removed == [driver.pod_cgroup("gone")] and errors == []
    assert driver.pod_names() == ["podalive"]


# ---- behaviour ------------------------------------------------------------------

def test_cpu_hog_is_held_near_its_quota(driver):
    require(driver, "cpu", "cpuacct" if driver.version == 1 else "cpu")
    cg = driver.create_container(driver.create_pod("cpu"), "hog",
                                 cgroups.Limits(cpu_limit_milli=200))
    pid = start_in(driver, cg, ["/bin/busybox", "sh", "-c", "while :; do :; done"])
    try:
        time.sleep(0.3)
        s1, t1 = driver.stats(cg), time.monotonic()
        time.sleep(1.5)
        s2, t2 = driver.stats(cg), time.monotonic()
    finally:
        os.kill(pid, signal.SIGKILL)
        reap(pid)
    cores = (s2.cpu_usage_ns - s1.cpu_usage_ns) / ((t2 - t1) * 1e9)
    throttled = keyed(cfile(driver, "cpu", cg, "cpu.stat"))["nr_throttled"]
    print(f"cpu hog with a 200m limit used {cores * 1000:.0f}m, throttled {throttled} times")
    # at most the quota (plus one period's slack); a busy machine may give less
    assert 0.10 < cores < 0.23, cores
    assert throttled > 0
    wait_empty(driver, cg)


def test_allocation_past_the_limit_is_oom_killed(driver):
    require(driver, "memory")
    cg = driver.create_container(driver.create_pod("oom"), "c",
                                 cgroups.Limits(memory_limit=32 * Mi))
    assert driver.oom_killed(cg) == 0
    # 256 MiB, touched, against a 32 MiB limit (swap, if any, is not limited on v1)
    pid = start_in(driver, cg, ["/usr/bin/python3", "-c",
                                "b = b'x' * (256 << 20); print('survived')"])
    code = reap(pid)
    assert code == -signal.SIGKILL, f"exit {code}: the allocation was not killed"
    assert driver.oom_killed(cg) == 1
    wait_empty(driver, cg)


def test_pids_max_stops_a_fork_bomb_and_the_host_stays_responsive(driver):
    require(driver, "pids", "cpu")
    limit = 32
    pod = driver.create_pod("bomb", cgroups.Limits(pids_max=limit))
    cg = driver.create_container(pod, "c", cgroups.Limits(cpu_limit_milli=500))
    assert open(cfile(driver, "pids", pod, "pids.max")).read().strip() == str(limit), \
        "refusing to start a fork bomb without its limit in place"
    init = start_in(driver, cg, ["/bin/busybox", "sh", "-c",
                                        "exec 2>/dev/null; b() { b | b & }; b; sleep 30"],
                    new_pid_ns=True)
    peak, slowest = 0, 0.0
    try:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            peak = max(peak, int(open(cfile(driver, "pids", pod, "pids.current")).read()))
            t = time.monotonic()
            subprocess.run(["/bin/true"], check=True)   # the host can still fork and exec
            slowest = max(slowest, time.monotonic() - t)
            time.sleep(0.05)
        # counted where the fork failed (v1, older v2) or where the limit is (v2)
        refused = sum(keyed(cfile(driver, "pids", where, "pids.events")).get("max", 0)
                      for where in (pod, cg))
    finally:
        os.kill(init, signal.SIGKILL)   # PID 1 of the bomb's namespace: all copies die
    wait_empty(driver, cg)
    print(f"fork bomb: peak {peak} tasks (limit {limit}), {refused} forks refused, "
          f"slowest host fork+exec {slowest * 1000:.0f} ms")
    assert peak <= limit and refused > 0
    assert slowest < 1.0


# ---- top ----------------------------------------------------------------------------

def test_top_shows_a_busy_container(tmp_path, capsys):
    """`minipod top pod --containers` over a state record whose container
    runs in a real cgroup with a 300m limit and 20 MiB of memory."""
    from types import SimpleNamespace

    from minipod.linux import proc
    from minipod.runtime import state

    from minipod.runtime.cli import cmd_top
    from minipod.runtime.paths import Paths
    d = cgroups.detect(parent=f"minipod-test-{os.getpid()}-{next(_seq)}")
    try:
        require(d, "cpu", "memory")
        cg = d.create_container(d.create_pod("top"), "hog", cgroups.Limits(cpu_limit_milli=300))
        pid = start_in(d, cg, ["/usr/bin/python3", "-c",
                               "b = b'x' * (20 << 20)\nwhile True: pass"])
        try:
            time.sleep(0.5)
            paths = Paths(str(tmp_path))
            (paths.pods / "web").mkdir(parents=True)
            state.write(paths.pods / "web", {
                "name": "web", "namespace": "default", "uid": "top",
                "creationTimestamp": "2024-01-01T00:00:00Z", "cgroup": d.pod_cgroup("top"),
                "containers": [{"name": "hog", "state": "running", "pid": pid,
                                "pidStart": proc.start_time(pid), "cgroup": cg}]})
            args = SimpleNamespace(kind="pod", names=[], containers=True, sort_by=None,
                                   namespace=None, all_namespaces=False)
            assert cmd_top.run(args, paths) == 0
            out = capsys.readouterr().out.splitlines()
            args.containers = False
            cmd_top.run(args, paths)
            pod_line = capsys.readouterr().out.splitlines()[1].split()
        finally:
            os.kill(pid, signal.SIGKILL)
            reap(pid)
        print("\n".join(out))
        assert out[0].split() == ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
        pod, name, cpu, mem = out[1].split()
        assert (pod, name) == ("web", "hog")
        assert 200 <= int(cpu.rstrip("m")) <= 330, cpu
        assert 20 <= int(mem.rstrip("Mi")) <= 40, mem
        assert pod_line[0] == "web" and pod_line[2] == mem
        wait_empty(d, cg)
    finally:
        d.remove(d.parent)
