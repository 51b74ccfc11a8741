"""cgroup v1: one hierarchy per controller, the same cgroup path in each.

Each controller is its own tree under /sys/fs/cgroup/<controller> (cpu and
cpuacct are often mounted together as "cpu,cpuacct", with symlinks; the
driver follows them and writes each directory once). A container is
limited by making the same path in every hierarchy and joining them all:

    for c in cpu cpuacct memory pids devices; do
        mkdir -p /sys/fs/cgroup/$c/minipod/pod1234/web
    done
    echo 100000 > /sys/fs/cgroup/cpu/minipod/pod1234/web/cpu.cfs_period_us
    echo 25000  > /sys/fs/cgroup/cpu/minipod/pod1234/web/cpu.cfs_quota_us   # 250m
    echo 256    > /sys/fs/cgroup/cpu/minipod/pod1234/web/cpu.shares         # request 250m
    echo 67108864 > /sys/fs/cgroup/memory/minipod/pod1234/web/memory.limit_in_bytes
    echo 4096   > /sys/fs/cgroup/pids/minipod/pod1234/web/pids.max
    echo a      > /sys/fs/cgroup/devices/minipod/pod1234/web/devices.deny
    echo 'c 1:3 rwm' > /sys/fs/cgroup/devices/minipod/pod1234/web/devices.allow   # /dev/null …
    for c in cpu cpuacct memory pids devices; do
        echo 0 > /sys/fs/cgroup/$c/minipod/pod1234/web/cgroup.procs
    done

The cpuset controller is left alone: a new cpuset cgroup has empty
cpuset.cpus and refuses every process until they are copied in.
"""
from __future__ import annotations

import errno
import os

from minipod.cgroups.driver import (QUOTA_PERIOD_US, Driver, Limits, Stats, cpu_quota_us,
                                    cpu_shares, read_file, read_keyed, write_file)

CONTROLLERS = ("cpu", "cpuacct", "memory", "pids", "devices")

# The devices a container may use: runc's defaults (libcontainer/specconv
# AllowedDevices), also what containerd allows. mknod of any node is allowed,
# opening one is not: the deny-all comes first.
DEVICE_RULES = [
    "c *:* m", "b *:* m",          # mknod anything; using it is another matter
    "c 1:3 rwm", "c 1:5 rwm",      # /dev/null, /dev/zero
    "c 1:7 rwm", "c 1:8 rwm",      # /dev/full, /dev/random
    "c 1:9 rwm", "c 5:0 rwm",      # /dev/urandom, /dev/tty
    "c 5:1 rwm", "c 5:2 rwm",      # /dev/console, /dev/ptmx
    "c 136:* rwm",                 # /dev/pts/*
]


class V1Driver(Driver):
    version = 1

    def __init__(self, root: str = "/sys/fs/cgroup", parent: str | None = None):
        super().__init__(root, parent)
        # Controllers mounted here, each hierarchy once (cpu,cpuacct mounted
        # together shows up as two names for one directory).
        self.controllers = {c: os.path.join(self.root, c) for c in CONTROLLERS
                            if os.path.isdir(os.path.join(self.root, c))}
        self._bases: list[str] = []
        seen: set[str] = set()
        for base in self.controllers.values():
            real = os.path.realpath(base)
            if real not in seen:
                seen.add(real)
                self._bases.append(base)

    def path(self, controller: str, cg: str) -> str:
        """The directory of cgroup `cg` in one controller's hierarchy."""
        try:
            base = self.controllers[controller]
        except KeyError:
            raise OSError(errno.ENOENT, f"the {controller} cgroup controller is not mounted",
                          os.path.join(self.root, controller)) from None
        return base + cg

    def dirs(self, cg: str) -> list[str]:
        return [base + cg for base in self._bases]

    def _set_limits(self, cg: str, limits: Limits) -> None:
        cpu = self.path("cpu", cg)
        write_file(f"{cpu}/cpu.shares", str(cpu_shares(limits.cpu_request_milli)))
        if limits.cpu_limit_milli is not None:
            write_file(f"{cpu}/cpu.cfs_period_us", str(QUOTA_PERIOD_US))
            write_file(f"{cpu}/cpu.cfs_quota_us", str(cpu_quota_us(limits.cpu_limit_milli)))
        if limits.memory_limit is not None:
            write_file(f"{self.path('memory', cg)}/memory.limit_in_bytes",
                       str(limits.memory_limit))
        if limits.pids_max is not None:
            write_file(f"{self.path('pids', cg)}/pids.max", str(limits.pids_max))

    def _restrict_devices(self, cg: str) -> None:
        if "devices" not in self.controllers:
            return
        d = self.path("devices", cg)
        write_file(f"{d}/devices.deny", "a")
        for rule in DEVICE_RULES:
            write_file(f"{d}/devices.allow", rule)

    def stats(self, cg: str) -> Stats:
        usage_ns = int(read_file(f"{self.path('cpuacct', cg)}/cpuacct.usage"))
        mem = self.path("memory", cg)
        usage = int(read_file(f"{mem}/memory.usage_in_bytes"))
        inactive = read_keyed(f"{mem}/memory.stat").get("total_inactive_file", 0)
        # cAdvisor's working set: usage minus the file cache the kernel can drop
        return Stats(usage_ns, usage - inactive if inactive < usage else 0)

    def oom_killed(self, cg: str) -> int:
        """memory.oom_control's oom_kill (Linux 4.13+); older kernels lack
        it, and memory.failcnt (times the limit was hit) is the best hint."""
        mem = self.path("memory", cg)
        control = read_keyed(f"{mem}/memory.oom_control")
        if "oom_kill" in control:
            return control["oom_kill"]
        return 1 if int(read_file(f"{mem}/memory.failcnt")) > 0 else 0
