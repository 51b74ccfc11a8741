"""minipod.cgroups: a cgroup per pod and per container, on cgroup v2 or v1.

    from minipod import cgroups
    driver = cgroups.detect()                  # V2Driver or V1Driver for this host
    pod_cg = driver.create_pod(uid, cgroups.pod_limits([limits]))
    cg = driver.create_container(pod_cg, "web", limits)
    procs = driver.join_paths(cg)              # in the agent
    cgroups.join(procs)                        # in the container's init, before exec
    cgroups.move(cgroups.open_procs(procs), pid)   # or its parent moves it
    driver.stats(cg), driver.oom_killed(cg)
    driver.remove(pod_cg)                      # once every process has exited

This package imports nothing from the rest of minipod but the floor,
minipod.linux (the BPF device program of v2, the /proc readers): plain
values in, plain values out, and the drivers only read and write files.

Rules that bite: a cgroup can be removed only when no process is left in
it (CgroupBusy); on a hybrid host the v2 hierarchy may have no controller
(they are bound to v1), so detect() picks v1 there; pids.max counts
threads as well as processes.

Check by hand: `cat /proc/PID/cgroup`, then under /sys/fs/cgroup the
pod's directory: `memory.max`, `cpu.max`, `pids.max` (v2) or
`memory.limit_in_bytes`, `cpu.cfs_quota_us` (v1).
"""
from minipod.cgroups.driver import (CgroupBusy, Driver, Limits, Stats, cpu_quota_us,
                                    cpu_shares, cpu_weight, default_pids_limit, detect,
                                    join, move, open_procs, pod_limits)

__all__ = ["CgroupBusy", "Driver", "Limits", "Stats", "cpu_quota_us", "cpu_shares",
           "cpu_weight", "default_pids_limit", "detect", "join", "move", "open_procs", "pod_limits"]
