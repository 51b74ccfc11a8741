"""`minipod inspect pod NAME [-o json]`: what the kernel holds for a pod.

Everything here is read from the kernel, not from minipod's memory, so a
learner can check it by hand: namespace inodes (`ls -l /proc/PID/ns`),
mounts (`cat /proc/PID/mountinfo`), routes (`ip -n NETNS route`), the veth
pair (`ip link show`). Namespaces with the same inode are the same
namespace: net, ipc and uts are shared by the pod's containers; mnt and pid
are each container's own.
"""
from __future__ import annotations

import os

from minipod.runtime.cli.cmdutil import CommandError, add_namespace, namespace_of, read_pod

NAMESPACES = ("net", "ipc", "uts", "mnt", "pid", "cgroup")


def register(sub) -> None:
    p = sub.add_parser("inspect", help="a pod's namespaces, mounts, veth and routes, "
                                       "read from the kernel")
    p.add_argument("kind", metavar="pod|pod/NAME")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("-o", "--output", choices=["text", "json"], default="text")
    p.add_argument("--check", action="store_true",
                   help="prove, inside the real pod, each claim of the notes (shared network, "
                        "IPC and hostname; private files; own PID 1; a flat network)")
    add_namespace(p)
    p.set_defaults(func=run)


def run(args, paths) -> int:
    import json

    from minipod.runtime.cli.cmd_get import resource_names
    names = resource_names(args.kind, args.names)
    if len(names) != 1:
        raise CommandError("say which pod: minipod inspect pod NAME", 2)
    try:
        record = read_pod(paths, namespace_of(args), names[0])
    except FileNotFoundError:
        raise CommandError(f'Error from server (NotFound): pods "{names[0]}" not found')
    report = inspect(record, paths)
    if args.check:
        return run_checks(record, report, paths)
    if args.output == "json":
        print(json.dumps(report, indent=2))
    else:
        print(render(report))
    return 0


def _ns_inode(pid: int, ns: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/{ns}").st_ino
    except OSError:
        return None


def _pid_inside(pid: int) -> int | None:
    """The pid as the container sees it: the last NSpid of /proc/PID/status."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except OSError:
        pass
    return None


def _overlay(pid: int) -> dict:
    """The container's root mount, from its own mountinfo."""
    try:
        with open(f"/proc/{pid}/mountinfo") as f:
            for line in f:
                fields = line.split()
                if fields[4] == "/" and " - overlay " in line:
                    opts = line.split(" - ")[1].split()[2]
                    parts = dict(o.split("=", 1) for o in opts.split(",") if "=" in o)
                    return {"lowerdir": parts.get("lowerdir", "").split(":"),
                            "upperdir": parts.get("upperdir"), "workdir": parts.get("workdir")}
    except OSError:
        pass
    return {}


def _mounts(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/mountinfo") as f:
            return [f"{line.split()[4]} ({line.split(' - ')[1].split()[0]})" for line in f]
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
    """What the kernel says of PodRecord `record`: the report render() prints."""
    from minipod.runtime import state
    containers = []
    first_pid = None
    for cs in record.containers:
        pid = cs.pid if state.alive(cs.pid, cs.pid_start) else None
        entry = {"name": cs.name, "state": cs.state.value, "hostPID": pid}
        if pid:
            first_pid = first_pid or pid
            entry["pidInside"] = _pid_inside(pid)
            entry["namespaces"] = {ns: _ns_inode(pid, ns) for ns in NAMESPACES}
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
        "hostNamespaces": {ns: _ns_inode(host, ns) for ns in NAMESPACES},
        "containers": containers,
    }


def run_checks(record, report: dict, paths) -> int:
    """✓/✗ per claim, with the kernel's evidence; exit 1 if any fails."""
    from minipod.runtime import checks, state
    from minipod.runtime.api import manifest
    report["live"] = [c for c in report["containers"] if c.get("namespaces")]
    if not report["live"]:
        raise CommandError(f"pod {record.name} has no running container to check")
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
    failed = 0
    for claim, check, check_args in results:
        try:
            ok, evidence = check(*check_args)
        except OSError as e:
            ok, evidence = False, f"check failed: {e}"
        failed += not ok
        print(render_check(claim, ok, evidence))
    return 1 if failed else 0


def render_check(claim: str, ok: bool, evidence: str) -> str:
    return f"{'✓' if ok else '✗'} {claim}\n    {evidence}"


def _gateway(report: dict) -> str | None:
    for route in report["routes"]:
        if route.startswith("default via "):
            return route.split()[2]
    return None


def render(r: dict) -> str:
    out = [f"Pod {r['name']}  (uid {r['uid']})",
           f"  IP:        {r['podIP']}  on bridge {r['bridge']}",
           f"  veth:      {r['veth']['host']} (host, on {r['bridge']})  <->  eth0 (in the pod)",
           f"  netns:     {r['netns']}   # ip netns exec {r['netns']} ip addr",
           "  routes:    " + ("\n             ".join(r["routes"]) or "<none: no running container>"),
           "  pinned:    " + ", ".join(f"{ns} {p['inode']} ({p['file']})"
                                       for ns, p in r["pinnedNamespaces"].items())]
    for c in r["containers"]:
        out.append(f"  container {c['name']}: {c['state']}")
        if not c.get("hostPID"):
            continue
        out.append(f"    PID:       {c['hostPID']} on the host, {c['pidInside']} inside")
        out.append("    namespaces (inode; shared = same as another container of the pod):")
        for ns, ino in c["namespaces"].items():
            if ino == r["hostNamespaces"][ns]:
                whose = "the host's"
            elif ns in ("net", "ipc", "uts"):
                whose = "the pod's" + (", shared" if c["shared"][ns] else "")
            else:
                whose = "shared" if c["shared"][ns] else "its own"
            out.append(f"      {ns:<7} {ino}  {whose}")
        ov = c.get("overlay") or {}
        if ov:
            out.append(f"    root:      overlay, upper {ov['upperdir']}")
            out += [f"               lower {layer}" for layer in ov["lowerdir"]]
        out.append("    mounts:    " + ", ".join(c["mounts"]))
    return "\n".join(out)
