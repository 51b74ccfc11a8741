"""`minipod top pod [NAME…] [--containers] [--sort-by cpu|memory]`.

Like `kubectl top pod --containers`, read straight from the cgroups the
agent made (no metrics-server): CPU as a rate in millicores, from two
readings of the cgroup's CPU time SAMPLE_SECONDS apart, and memory as the
working set (usage minus the inactive file cache, what kubectl shows), in
Mi. A pod's line is the sum of its running containers. By hand, on cgroup v2:

    cat /sys/fs/cgroup/minipod/pod<uid>/<container>/cpu.stat      # usage_usec
    sleep 0.5; cat …/cpu.stat                                      # again: the rate
    cat …/memory.current …/memory.stat                             # minus inactive_file
"""
from __future__ import annotations

import sys
import time

from minipod.runtime.api import podstatus
from minipod.runtime.cli.cmdutil import CommandError, add_namespace, namespace_of, print_table

SAMPLE_SECONDS = 0.5


def register(sub) -> None:
    p = sub.add_parser("top", help="CPU and memory use of pods and containers",
                       description="Like `kubectl top pod [NAME] --containers`, "
                                   "read from the pods' cgroups.")
    p.add_argument("kind", metavar="pod|pods[/NAME]")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--containers", action="store_true",
                   help="one line per container instead of per pod")
    p.add_argument("--sort-by", choices=["cpu", "memory"],
                   help="largest first (default: by name)")
    add_namespace(p, all_namespaces=True)
    p.set_defaults(func=run)


def millicores(before_ns: int, after_ns: int, seconds: float) -> int:
    """CPU time used over a wall-clock interval, in thousandths of a CPU."""
    return max(0, round((after_ns - before_ns) / (seconds * 1e6)))


def cpu_column(milli: int) -> str:
    return f"{milli}m"


def memory_column(nbytes: int) -> str:
    """kubectl prints whole mebibytes, rounded down."""
    return f"{nbytes // (1 << 20)}Mi"


def _running(record) -> list:
    """The ContainerRecords of PodRecord `record` that run, in a cgroup."""
    return [c for c in record.all_containers() if c.state == "running" and c.cgroup]


def _sample(driver, targets: list[tuple]) -> dict:
    """{(pod key, container): its cgroup's stats} of each running container."""
    from minipod.runtime.paths import record_key
    out = {}
    for record, cs in targets:
        try:
            out[(record_key(record), cs.name)] = driver.stats(cs.cgroup)
        except OSError:
            pass   # ended between the state read and now
    return out


def run(args, paths) -> int:
    from minipod import cgroups
    from minipod.runtime.cli.cmd_get import load, resource_names
    from minipod.runtime.paths import record_key
    if args.kind.partition("/")[0] in ("node", "nodes", "no"):
        raise CommandError("minipod runs on one machine: `top node` would be this host; "
                           "use `top pod`")
    names = resource_names(args.kind, args.names)
    every = args.all_namespaces
    records = load(paths, names, namespace_of(args), every)
    if not records:
        print("No resources found" + ("" if every else f" in {namespace_of(args)} namespace")
              + ".", file=sys.stderr)
        return 0
    try:
        driver = cgroups.detect()
    except OSError as e:
        raise CommandError(f"cannot read cgroups: {e}")
    targets = [(r, cs) for r in records for cs in _running(r)]
    first = _sample(driver, targets)
    t1 = time.monotonic()
    time.sleep(SAMPLE_SECONDS)
    second = _sample(driver, targets)
    elapsed = time.monotonic() - t1

    rows = []   # (pod, container or None, millicores, bytes)
    for r in records:
        usage = [(cs.name, millicores(first[k].cpu_usage_ns, second[k].cpu_usage_ns, elapsed),
                  second[k].memory_bytes)
                 for cs in _running(r) for k in [(record_key(r), cs.name)]
                 if k in first and k in second]
        if not usage:
            if names:
                raise CommandError(f"Metrics not available for pod "
                                   f"{r.namespace}/{r.name}, "
                                   f"age: {podstatus.age(r.creation_timestamp)}")
            continue
        ns = [r.namespace or "default"] if every else []
        if args.containers:
            rows += [(ns + [r.name], c, cpu, mem) for c, cpu, mem in usage]
        else:
            rows.append((ns + [r.name], None, sum(u[1] for u in usage),
                         sum(u[2] for u in usage)))
    if not rows:
        raise CommandError("Metrics not available: no running pod has a cgroup "
                           "(pods started before cgroup support have none)")
    if args.sort_by:
        rows.sort(key=lambda row: row[2] if args.sort_by == "cpu" else row[3], reverse=True)
    first = ["NAMESPACE"] if every else []
    if args.containers:
        print_table(first + ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"],
                    [p + [c, cpu_column(cpu), memory_column(m)] for p, c, cpu, m in rows])
    else:
        print_table(first + ["NAME", "CPU(cores)", "MEMORY(bytes)"],
                    [p + [cpu_column(cpu), memory_column(m)] for p, _, cpu, m in rows])
    return 0
