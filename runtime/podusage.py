"""CPU and memory use of a pod's running containers, read from the cgroups
the agent made: `minipod top` and the API server's metrics.k8s.io both
sample through here.

CPU is a rate: two readings of a cgroup's CPU time some time apart (man 7
cgroups: cpu.stat usage_usec on v2, cpuacct.usage on v1); memory is the
working set (usage minus the inactive file cache), what kubectl shows.
By hand, on cgroup v2:

    cat /sys/fs/cgroup/minipod/pod<uid>/<container>/cpu.stat      # usage_usec
    sleep 0.5; cat …/cpu.stat                                      # again: the rate
    cat …/memory.current …/memory.stat                             # minus inactive_file
"""
from __future__ import annotations

import time


def millicores(before_ns: int, after_ns: int, seconds: float) -> int:
    """CPU time used over a wall-clock interval, in thousandths of a CPU."""
    return max(0, round((after_ns - before_ns) / (seconds * 1e6)))


def running(record) -> list:
    """The ContainerRecords of PodRecord `record` that run, in a cgroup."""
    return [c for c in record.all_containers() if c.state == "running" and c.cgroup]


def sample(driver, targets: list[tuple]) -> dict:
    """{(pod key, container): its cgroup's stats} of each running container."""
    from minipod.runtime.paths import record_key
    out = {}
    for record, cs in targets:
        try:
            out[(record_key(record), cs.name)] = driver.stats(cs.cgroup)
        except OSError:
            pass   # ended between the state read and now
    return out


def measure(driver, targets: list[tuple], seconds: float) -> tuple[dict, dict, float]:
    """Two samples of TARGETS (PodRecord, ContainerRecord) SECONDS apart:
    (first, second, the seconds that really passed between them)."""
    first = sample(driver, targets)
    t1 = time.monotonic()
    time.sleep(seconds)
    second = sample(driver, targets)
    return first, second, time.monotonic() - t1
