"""What the kernel holds for a pod, read from /proc and the pod's pins:
`minipod inspect pod NAME` prints it, `inspect --check` proves the notes'
claims with it (runtime/checks.py).

    ls -l /proc/PID/ns            namespace inodes (the same inode: the same namespace)
    cat /proc/PID/status          NSpid: the pid as the container sees it
    cat /proc/PID/mountinfo       the overlay root and every mount
    cat /proc/PID/net/route       the routes of the pod's network namespace

Nothing is taken from minipod's memory but which pids and pins to look at
(the record), so a learner can check every figure by hand. A process that
ends while it is read gives None or empty values, never an error.
"""
from __future__ import annotations

import os

NAMESPACES = ("net", "ipc", "uts", "mnt", "pid", "cgroup")


def _pid_inside(pid: int) -> int | None:
    """The pid as the container sees it: the last NSpid of /proc/PID/status."""
    from minipod.linux import proc
    try:
        return int(proc.status(pid)["NSpid"][-1])
    except (OSError, KeyError, IndexError, ValueError):
        return None


def _overlay(pid: int) -> dict:
    """The container's root mount, from its own mountinfo."""
    from minipod.linux import proc
    try:
        mounts = proc.mountinfo(pid)
    except OSError:
        return {}
    for m in mounts:
        if m.mount_point == "/" and m.fstype == "overlay":
            parts = dict(o.split("=", 1) for o in m.super_options.split(",") if "=" in o)
            return {"lowerdir": parts.get("lowerdir", "").split(":"),
                    "upperdir": parts.get("upperdir"), "workdir": parts.get("workdir")}
    return {}


def _mounts(pid: int) -> list[str]:
    from minipod.linux import proc
    try:
        return [f"{m.mount_point} ({m.fstype})" for m in proc.mountinfo(pid)]
    except OSError:
        return []


def _routes(pid: int) -> list[str]:
    import socket
    import struct
    """The pod's IPv4 routes, as the pod's network namespace sees them."""
    out = []
    try:
        with open(f"/proc/{pid}/net/route") as f:
            next(f)
            for line in f:
                iface, dest, gw, _flags, _, _, _, mask = line.split()[:8]
                d = socket.inet_ntoa(struct.pack("<L", int(dest, 16)))
                g = socket.inet_ntoa(struct.pack("<L", int(gw, 16)))
                bits = bin(int(mask, 16)).count("1")
                out.append(("default" if bits == 0 else f"{d}/{bits}") +
                           (f" via {g}" if g != "0.0.0.0" else "") + f" dev {iface}")
    except OSError:
        pass
    return out


def inspect(record, paths) -> dict:
    """What the kernel says of PodRecord `record`: the report `minipod
    inspect` prints."""
    from minipod.linux import proc
    containers = []
    first_pid = None
    for cs in record.containers:
        pid = cs.pid if proc.alive(cs.pid, cs.pid_start) else None
        entry = {"name": cs.name, "state": cs.state.value, "hostPID": pid}
        if pid:
            first_pid = first_pid or pid
            entry["pidInside"] = _pid_inside(pid)
            entry["namespaces"] = {ns: proc.ns_inode(pid, ns) for ns in NAMESPACES}
            entry["overlay"] = _overlay(pid)
            entry["mounts"] = _mounts(pid)
            entry["cgroup"] = cs.cgroup
        containers.append(entry)
    live = [c for c in containers if c.get("namespaces")]
    for c in live:
        c["shared"] = {ns: sum(1 for o in live if o["namespaces"][ns] == c["namespaces"][ns]) > 1
                       for ns in NAMESPACES}
    from minipod.runtime.paths import record_key   # here: --help lists inspect
    pod_dir = paths.pod_dir(record_key(record))
    pins = {}
    for ns in ("net", "ipc", "uts"):
        try:
            pins[ns] = {"file": str(pod_dir / "ns" / ns),
                        "inode": os.stat(pod_dir / "ns" / ns).st_ino}
        except OSError:
            pass
    host = os.getpid()
    return {
        "name": record.name, "uid": record.uid, "podIP": record.pod_ip,
        "netns": record.netns, "netnsPath": str(paths.netns_path(record_key(record))),
        "bridge": record.bridge,
        "veth": {"host": record.host_ifname, "pod": "eth0"},
        "routes": _routes(first_pid) if first_pid else [],
        "pinnedNamespaces": pins,
        "hostNamespaces": {ns: proc.ns_inode(host, ns) for ns in NAMESPACES},
        "containers": containers,
    }


def check_claims(record, report: dict, paths) -> list[tuple[str, bool, str]]:
    """(claim, holds, the kernel's evidence) for each claim of the notes,
    proved inside the real pod (runtime/checks.py) from REPORT (inspect's)
    of PodRecord `record`, a pod with at least one running container. A
    check that cannot run (an OSError) is a claim not shown to hold, with
    the error as evidence."""
    from minipod.runtime import checks, state
    from minipod.runtime.api import manifest
    report["live"] = [c for c in report["containers"] if c.get("namespaces")]
    pod = manifest.load_object(record.manifest, record.source or "<state>")
    mounts: dict[str, list[tuple[str, str]]] = {}
    for c in pod.init_containers + pod.containers:
        for vm in c.volume_mounts:
            if not vm.sub_path:
                mounts.setdefault(vm.name, []).append((c.name, vm.mount_path))
    others, _ = state.read_records(paths.pods)
    other = next((inspect(o, paths) for o in others
                  if o.uid != record.uid and o.pod_ip), None)
    report["gateway"] = _gateway(report)
    results = [
        ("all containers share one IP and one port space", checks.check_port_space, (report,)),
        ("IPC and hostname (UTS) are shared", checks.check_ipc_uts, (report,)),
        ("files are not shared, except on volumes", checks.check_files, (report, mounts)),
        ("each container's process is PID 1 of its own tree", checks.check_pid1,
         (report, pod.share_process_namespace)),
        ("pods reach each other (and the host) by IP, no NAT", checks.check_flat_network,
         (report, other)),
    ]
    out = []
    for claim, check, check_args in results:
        try:
            ok, evidence = check(*check_args)
        except OSError as e:
            ok, evidence = False, f"check failed: {e}"
        out.append((claim, ok, evidence))
    return out


def _gateway(report: dict) -> str | None:
    for route in report["routes"]:
        if route.startswith("default via "):
            return route.split()[2]
    return None
