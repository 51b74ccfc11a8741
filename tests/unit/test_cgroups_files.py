"""The cgroup drivers' file writes, against a temporary directory root.

A plain directory differs from cgroupfs in two ways only: the kernel fills a
new cgroup with its interface files, and removes them on rmdir. The drivers
keep both in _mkdir/_rmdir; the small imitation below replaces them (and
refuses rmdir while cgroup.procs lists a pid, as the kernel does). What the
drivers write is then read back from the files.
"""
import errno
import os
from types import SimpleNamespace

import pytest
from ownergc import owner_gc

from minipod import cgroups
from minipod.cgroups import driver as drv
from minipod.cgroups.v1 import DEVICE_RULES, V1Driver
from minipod.cgroups.v2 import V2Driver, device_program
from minipod.runtime.owners import Node
from minipod.runtime.owners.processes import Cgroups

Mi = 1 << 20

V1_FILES = {
    "cpu": ["cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us"],
    "cpuacct": ["cpuacct.usage"],
    "memory": ["memory.limit_in_bytes", "memory.usage_in_bytes", "memory.stat",
               "memory.oom_control", "memory.failcnt"],
    "pids": ["pids.max"],
    "devices": ["devices.allow", "devices.deny"],
}
V2_FILES = ["cgroup.controllers", "cgroup.subtree_control", "cpu.max", "cpu.weight",
            "cpu.stat", "memory.max", "memory.swap.max", "memory.oom.group",
            "memory.current", "memory.stat", "memory.events", "pids.max"]


def _rmdir_like_kernel(path):
    procs = os.path.join(path, "cgroup.procs")
    if os.path.exists(procs) and open(procs).read().split():
        raise OSError(errno.EBUSY, "Device or resource busy", path)
    for name in os.listdir(path):
        if not os.path.isdir(os.path.join(path, name)):
            os.unlink(os.path.join(path, name))
    os.rmdir(path)


def _populate(path, names):
    for name in ["cgroup.procs"] + names:
        p = os.path.join(path, name)
        if not os.path.exists(p):
            open(p, "w").close()


class FakeV1(V1Driver):
    REMOVE_WAIT = 0   # the kernel would wait for exiting processes; nothing exits here

    def _mkdir(self, path):
        super()._mkdir(path)
        controller = os.path.relpath(path, self.root).split(os.sep)[0]
        _populate(path, V1_FILES[controller])

    def _rmdir(self, path):
        _rmdir_like_kernel(path)


class FakeV2(V2Driver):
    REMOVE_WAIT = 0

    def _mkdir(self, path):
        super()._mkdir(path)
        _populate(path, V2_FILES)
        with open(os.path.join(path, "cgroup.controllers"), "w") as f:
            f.write("cpu memory pids\n")

    def _attach_program(self, path, program):
        with open(os.path.join(path, "devices.bpf"), "wb") as f:   # what would be attached
            f.write(program)

    def _rmdir(self, path):
        _rmdir_like_kernel(path)


@pytest.fixture
def v1(tmp_path):
    for c in V1_FILES:
        (tmp_path / c).mkdir()
        _populate(tmp_path / c, [])
    return FakeV1(str(tmp_path), parent="minipod")


@pytest.fixture
def v2(tmp_path):
    _populate(tmp_path, ["cgroup.controllers", "cgroup.subtree_control"])
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma\n")
    return FakeV2(str(tmp_path), parent="minipod")


def read(path):
    return open(path).read()


LIMITS = cgroups.Limits(cpu_limit_milli=250, cpu_request_milli=250, memory_limit=64 * Mi)


# ---- conversions ------------------------------------------------------------

def test_kubernetes_conversions():
    assert cgroups.cpu_quota_us(250) == 25000
    assert cgroups.cpu_quota_us(1) == 1000, "the kernel's minimum quota is 1 ms"
    assert cgroups.cpu_shares(None) == 2 and cgroups.cpu_shares(1) == 2
    assert cgroups.cpu_shares(250) == 256 and cgroups.cpu_shares(1000) == 1024
    assert cgroups.cpu_shares(10**9) == 262144
    assert [cgroups.cpu_weight(s) for s in (2, 256, 1024, 262144)] == [1, 10, 39, 10000]


def test_pod_limits_follow_the_kubelet():
    a = cgroups.Limits(cpu_limit_milli=200, cpu_request_milli=100, memory_limit=10 * Mi)
    b = cgroups.Limits(cpu_limit_milli=300, cpu_request_milli=50, memory_limit=20 * Mi)
    assert cgroups.pod_limits([a, b], pids_max=99) == cgroups.Limits(
        cpu_limit_milli=500, cpu_request_milli=150, memory_limit=30 * Mi, pids_max=99)
    # one container without limits makes the pod unlimited
    p = cgroups.pod_limits([a, cgroups.Limits()], pids_max=99)
    assert p.cpu_limit_milli is None and p.memory_limit is None and p.cpu_request_milli == 100


def test_pids_limit_default_is_configurable(monkeypatch):
    monkeypatch.delenv("MINIPOD_PIDS_LIMIT", raising=False)
    assert cgroups.pod_limits([]).pids_max == 4096
    monkeypatch.setenv("MINIPOD_PIDS_LIMIT", "128")
    assert cgroups.pod_limits([]).pids_max == 128


# ---- detect -------------------------------------------------------------------

def test_detect_v2_when_root_is_cgroup2(v2):
    assert isinstance(cgroups.detect(v2.root), V2Driver)


def test_detect_v1_on_a_hybrid_layout(tmp_path):
    for c in ("cpu", "memory", "unified"):
        (tmp_path / c).mkdir()
    (tmp_path / "unified" / "cgroup.controllers").write_text("hugetlb\n")
    d = cgroups.detect(str(tmp_path), parent="x")
    assert isinstance(d, V1Driver) and d.parent == "/x"


def test_detect_without_cgroups_names_the_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="no cgroup hierarchy") as e:
        cgroups.detect(str(tmp_path))
    assert e.value.filename == str(tmp_path)


def test_parent_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIPOD_CGROUP_PARENT", "minipod-it-1")
    assert V1Driver(str(tmp_path)).parent == "/minipod-it-1"


# ---- v1 ---------------------------------------------------------------------------

def test_v1_container_limits_in_each_hierarchy(v1):
    pod = v1.create_pod("u1", cgroups.pod_limits([LIMITS], pids_max=100))
    assert pod == "/minipod/podu1"
    cg = v1.create_container(pod, "web", LIMITS)
    assert cg == "/minipod/podu1/web"
    r = v1.root
    assert read(f"{r}/cpu{cg}/cpu.cfs_period_us") == "100000"
    assert read(f"{r}/cpu{cg}/cpu.cfs_quota_us") == "25000"
    assert read(f"{r}/cpu{cg}/cpu.shares") == "256"
    assert read(f"{r}/memory{cg}/memory.limit_in_bytes") == str(64 * Mi)
    assert read(f"{r}/pids{pod}/pids.max") == "100"
    assert read(f"{r}/cpu{pod}/cpu.cfs_quota_us") == "25000"
    # the devices file keeps only the last write; the rules go one by one
    assert read(f"{r}/devices{cg}/devices.deny") == "a"
    assert read(f"{r}/devices{cg}/devices.allow") == DEVICE_RULES[-1]
    assert v1.join_paths(cg) == [f"{r}/{c}{cg}/cgroup.procs" for c in V1_FILES]


def test_v1_best_effort_gets_two_shares_and_no_quota(v1):
    cg = v1.create_container(v1.create_pod("u2"), "c", cgroups.Limits())
    assert read(f"{v1.root}/cpu{cg}/cpu.shares") == "2"
    assert read(f"{v1.root}/cpu{cg}/cpu.cfs_quota_us") == ""
    assert read(f"{v1.root}/memory{cg}/memory.limit_in_bytes") == ""


def test_v1_privileged_container_keeps_every_device(v1):
    cg = v1.create_container(v1.create_pod("u3"), "c", cgroups.Limits(), privileged=True)
    assert read(f"{v1.root}/devices{cg}/devices.deny") == ""


def test_v1_comounted_cpu_cpuacct_is_one_hierarchy(tmp_path):
    (tmp_path / "cpu,cpuacct").mkdir()
    os.symlink("cpu,cpuacct", tmp_path / "cpu")
    os.symlink("cpu,cpuacct", tmp_path / "cpuacct")
    (tmp_path / "memory").mkdir()
    d = V1Driver(str(tmp_path), parent="m")
    assert d.dirs("/m/p") == [f"{tmp_path}/cpu/m/p", f"{tmp_path}/memory/m/p"]


def test_v1_stats_and_oom_count(v1):
    cg = v1.create_container(v1.create_pod("u4"), "c", LIMITS)
    r = v1.root
    open(f"{r}/cpuacct{cg}/cpuacct.usage", "w").write("123456789\n")
    open(f"{r}/memory{cg}/memory.usage_in_bytes", "w").write(str(10 * Mi))
    open(f"{r}/memory{cg}/memory.stat", "w").write(f"cache 0\ntotal_inactive_file {2 * Mi}\n")
    open(f"{r}/memory{cg}/memory.oom_control", "w").write(
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert v1.stats(cg) == cgroups.Stats(123456789, 8 * Mi)
    assert v1.oom_killed(cg) == 2
    # an older kernel without oom_kill: a hit limit is the hint
    open(f"{r}/memory{cg}/memory.oom_control", "w").write("oom_kill_disable 0\nunder_oom 0\n")
    open(f"{r}/memory{cg}/memory.failcnt", "w").write("5\n")
    assert v1.oom_killed(cg) == 1


def test_v1_missing_controller_is_named(tmp_path):
    (tmp_path / "memory").mkdir()
    d = V1Driver(str(tmp_path), parent="m")
    with pytest.raises(FileNotFoundError, match="cpu cgroup controller is not mounted"):
        d.create_container("/m/p", "c", LIMITS)
    d.remove("/m")


# ---- v2 ---------------------------------------------------------------------------

def test_v2_delegates_controllers_and_writes_limits(v2):
    pod = v2.create_pod("u1", cgroups.pod_limits([LIMITS], pids_max=100))
    cg = v2.create_container(pod, "web", LIMITS)
    r = v2.root
    # every level hands cpu, memory, pids to its children, one write each
    assert read(f"{r}/cgroup.subtree_control") == "+pids"
    assert read(f"{r}/minipod/cgroup.subtree_control") == "+pids"
    assert read(f"{r}{pod}/cgroup.subtree_control") == "+pids"
    assert read(f"{r}{cg}/cpu.max") == "25000 100000"
    assert read(f"{r}{cg}/cpu.weight") == "10"
    assert read(f"{r}{cg}/memory.max") == str(64 * Mi)
    assert read(f"{r}{cg}/memory.swap.max") == "0"
    assert read(f"{r}{cg}/memory.oom.group") == "1"
    assert read(f"{r}{pod}/pids.max") == "100"
    assert read(f"{r}{pod}/memory.oom.group") == "", "oom.group is per container"
    assert v2.join_paths(cg) == [f"{r}{cg}/cgroup.procs"]


def test_v2_container_gets_the_device_program_unless_privileged(v2):
    pod = v2.create_pod("dev")
    cg = v2.create_container(pod, "c", cgroups.Limits())
    assert open(f"{v2.root}{cg}/devices.bpf", "rb").read() == device_program(DEVICE_RULES)
    free = v2.create_container(pod, "p", cgroups.Limits(), privileged=True)
    assert not os.path.exists(f"{v2.root}{free}/devices.bpf")


def run_bpf(program: bytes, ctx: tuple[int, int, int]) -> int:
    """A tiny eBPF interpreter for the opcodes device_program uses."""
    import struct
    insns = [struct.unpack("<BBhi", program[i:i + 8]) for i in range(0, len(program), 8)]
    mem = struct.pack("<III", *ctx)
    r = [0] * 11
    pc = 0
    while True:
        code, regs, off, imm = insns[pc]
        dst, src = regs & 0xF, regs >> 4
        pc += 1
        if code == 0x61:
            r[dst] = struct.unpack_from("<I", mem, r[src] + off)[0]
        elif code == 0x54:
            r[dst] &= imm & 0xFFFFFFFF
        elif code == 0x74:
            r[dst] = (r[dst] & 0xFFFFFFFF) >> imm
        elif code == 0xBC:
            r[dst] = r[src] & 0xFFFFFFFF
        elif code == 0xB7:
            r[dst] = imm
        elif code == 0x55:
            pc += off if r[dst] != imm else 0
        elif code == 0x5D:
            pc += off if r[dst] != r[src] else 0
        elif code == 0x95:
            return r[0]
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


CHAR, BLOCK, MKNOD, READ, WRITE = 2, 1, 1, 2, 4


@pytest.mark.parametrize("kind, major, minor, access, allowed", [
    (CHAR, 1, 3, READ | WRITE, True),      # /dev/null
    (CHAR, 1, 9, READ, True),              # /dev/urandom
    (CHAR, 136, 7, READ | WRITE, True),    # /dev/pts/7
    (BLOCK, 8, 0, MKNOD, True),            # mknod of anything is allowed…
    (BLOCK, 8, 0, READ, False),            # …opening the host's disk is not
    (BLOCK, 7, 0, READ | WRITE, False),    # a loop device
    (CHAR, 1, 1, READ, False),             # /dev/mem
    (CHAR, 10, 200, READ, False),          # /dev/net/tun: not in the defaults
    (CHAR, 1, 3, READ | MKNOD, True),
])
def test_device_program_allows_only_the_default_devices(kind, major, minor, access, allowed):
    assert run_bpf(device_program(DEVICE_RULES), ((access << 16) | kind, major, minor)) \
        == int(allowed)


def test_v2_no_swap_accounting_is_fine(v2):
    class NoSwap(FakeV2):
        def _mkdir(self, path):
            os.makedirs(path, exist_ok=True)
            _populate(path, [f for f in V2_FILES if f != "memory.swap.max"])
    d = NoSwap(v2.root, parent="minipod")
    cg = d.create_container(d.create_pod("u2"), "c", LIMITS)
    assert read(f"{d.root}{cg}/memory.max") == str(64 * Mi)
    assert not os.path.exists(f"{d.root}{cg}/memory.swap.max")


def test_v2_missing_controller_names_file_and_controller(v2):
    class NoCpu(FakeV2):
        def _mkdir(self, path):
            os.makedirs(path, exist_ok=True)
            _populate(path, [f for f in V2_FILES if not f.startswith("cpu.")])
    d = NoCpu(v2.root, parent="minipod")
    with pytest.raises(FileNotFoundError, match="the cpu controller is not enabled") as e:
        d.create_container(d.create_pod("u3"), "c", LIMITS)
    assert e.value.filename.endswith("/minipod/podu3/c/cpu.weight")


def test_v2_stats_and_oom_count(v2):
    cg = v2.create_container(v2.create_pod("u4"), "c", LIMITS)
    r = v2.root
    open(f"{r}{cg}/cpu.stat", "w").write("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
    open(f"{r}{cg}/memory.current", "w").write(str(10 * Mi))
    open(f"{r}{cg}/memory.stat", "w").write(f"anon 1\ninactive_file {Mi}\n")
    open(f"{r}{cg}/memory.events", "w").write("low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n")
    assert v2.stats(cg) == cgroups.Stats(1_500_000, 9 * Mi)
    assert v2.oom_killed(cg) == 1


# ---- shared: removal, busy cgroups, gc, join -----------------------------------------

@pytest.fixture(params=["v1", "v2"])
def driver(request, v1, v2):
    return v1 if request.param == "v1" else v2


def test_remove_is_recursive_and_idempotent(driver):
    pod = driver.create_pod("u5")
    driver.create_container(pod, "a", cgroups.Limits())
    driver.create_container(pod, "b", cgroups.Limits())
    driver.remove(pod)
    assert all(not os.path.exists(d) for d in driver.dirs(pod))
    driver.remove(pod)   # again: nothing to do


def test_remove_refuses_a_busy_cgroup_and_names_the_pids(driver):
    pod = driver.create_pod("u6")
    cg = driver.create_container(pod, "a", cgroups.Limits())
    procs = driver.join_paths(cg)[0]
    open(procs, "w").write("4242\n")
    with pytest.raises(cgroups.CgroupBusy) as e:
        driver.remove(pod)
    assert e.value.pids == [4242] and e.value.errno == errno.EBUSY
    assert "4242" in str(e.value) and e.value.filename == os.path.dirname(procs)
    open(procs, "w").close()
    driver.remove(pod)


def test_a_restart_gets_a_fresh_container_cgroup(driver):
    pod = driver.create_pod("u7")
    cg = driver.create_container(pod, "a", LIMITS)
    marker = os.path.join(driver.dirs(cg)[0], "leftover")
    open(marker, "w").close()
    assert driver.create_container(pod, "a", LIMITS) == cg
    assert not os.path.exists(marker)


def test_gc_removes_only_pods_not_alive(driver):
    for uid in ("live", "dead1", "dead2"):
        driver.create_pod(uid)
    busy = driver.create_pod("busy")
    open(driver.join_paths(busy)[0], "w").write("77\n")
    removed, errors = owner_gc(Cgroups(), Node(None, cgroups=driver),
                               SimpleNamespace(cgroup_parent=driver.parent), {"live"})
    assert sorted(removed) == ["/minipod/poddead1", "/minipod/poddead2"]
    assert len(errors) == 1 and "/minipod/podbusy" in errors[0] and "77" in errors[0]
    assert driver.pod_names() == ["podbusy", "podlive"]


def test_join_writes_zero_to_every_procs_file(driver, tmp_path):
    cg = driver.create_container(driver.create_pod("u8"), "a", cgroups.Limits())
    paths = driver.join_paths(cg)
    cgroups.join(paths)
    assert all(read(p) == "0" for p in paths)


def test_join_error_names_the_file(tmp_path):
    missing = str(tmp_path / "nope" / "cgroup.procs")
    with pytest.raises(FileNotFoundError) as e:
        cgroups.join([missing])
    assert e.value.filename == missing


def test_write_error_names_file_value_and_errno(tmp_path):
    with pytest.raises(OSError) as e:
        drv.write_file(str(tmp_path / "absent"), "42")
    assert e.value.errno == errno.ENOENT and "'42'" in str(e.value)
    assert e.value.filename == str(tmp_path / "absent")
