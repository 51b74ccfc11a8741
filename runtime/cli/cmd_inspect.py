"""`minipod inspect pod NAME [-o json]`: what the kernel holds for a pod.

Everything shown is read from the kernel (runtime/inspection.py), not
from minipod's memory, so a learner can check it by hand: namespace inodes
(`ls -l /proc/PID/ns`), mounts (`cat /proc/PID/mountinfo`), routes (`ip -n
NETNS route`), the veth pair (`ip link show`). Namespaces with the same
inode are the same namespace: net, ipc and uts are shared by the pod's
containers; mnt and pid are each container's own. This module prints.
"""
from __future__ import annotations

from minipod.runtime.cli.cmdutil import (CommandError, add_names, add_namespace, find_pod,
                                         namespace_of)


def register(sub) -> None:
    p = sub.add_parser("inspect", help="a pod's namespaces, mounts, veth and routes, "
                                       "read from the kernel")
    add_names(p, "pod|pod/NAME")
    p.add_argument("-o", "--output", choices=["text", "json"], default="text")
    p.add_argument("--check", action="store_true",
                   help="prove, inside the real pod, each claim of the notes (shared network, "
                        "IPC and hostname; private files; own PID 1; a flat network)")
    add_namespace(p)
    p.set_defaults(func=run)


def run(args, paths) -> int:
    import json

    from minipod.runtime import inspection
    from minipod.runtime.cli.resources import resource_names
    names = resource_names(args.kind, args.names)
    if len(names) != 1:
        raise CommandError("say which pod: minipod inspect pod NAME", 2)
    record = find_pod(paths, namespace_of(args), names[0])
    report = inspection.inspect(record, paths)
    if args.check:
        return run_checks(record, report, paths)
    if args.output == "json":
        print(json.dumps(report, indent=2))
    else:
        print(render(report))
    return 0


def run_checks(record, report: dict, paths) -> int:
    """✓/✗ per claim, with the kernel's evidence; exit 1 if any fails."""
    from minipod.runtime import inspection
    if not any(c.get("namespaces") for c in report["containers"]):
        raise CommandError(f"pod {record.name} has no running container to check")
    failed = 0
    for claim, ok, evidence in inspection.check_claims(record, report, paths):
        failed += not ok
        print(render_check(claim, ok, evidence))
    return 1 if failed else 0


def render_check(claim: str, ok: bool, evidence: str) -> str:
    return f"{'✓' if ok else '✗'} {claim}\n    {evidence}"


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
