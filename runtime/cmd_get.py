"""`minipod get pods [NAME] [-o wide|yaml|json|name]`: read the state files.

No agent and no netlink: reading state must stay cheap. A container the
record calls running is checked against the kernel (pid + start time), so
a stale record is never shown as running.
"""
from __future__ import annotations

import sys

from minipod.runtime import podstatus
from minipod.runtime.cmdutil import CommandError, print_table


def register(sub) -> None:
    p = sub.add_parser("get", help="list pods or show one",
                       description="Like `kubectl get pods` / `kubectl get pod NAME -o yaml`.")
    p.add_argument("kind", metavar="pods|pod|po[/NAME]")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("-o", "--output", choices=["wide", "yaml", "json", "name"])
    p.add_argument("-w", "--watch", action="store_true",
                   help="after listing, print a row whenever a pod changes")
    p.set_defaults(func=run)


def resource_names(kind: str, names: list[str]) -> list[str]:
    """Accept kubectl's forms: `pods`, `pod NAME`, `po/NAME`, `pod/NAME`."""
    base, _, name = kind.partition("/")
    if base not in ("pods", "pod", "po"):
        raise CommandError(f'the server doesn\'t have a resource type "{base}"; '
                           f"minipod knows pods only")
    return ([name] if name else []) + [n.removeprefix("pod/") for n in names]


def refreshed(record: dict) -> dict:
    """A running container whose process is gone (while the agent was away)."""
    from minipod.runtime import state
    for cs in record.get("initContainers", []) + record.get("containers", []):
        if cs.get("state") == "running" and not state.alive(cs.get("pid"), cs.get("pidStart")):
            cs.update(state="terminated", reason="Unknown", exitCode=None,
                      message="the process is gone and the agent has not seen it end")
    return record


def load(paths, names: list[str]) -> list[dict]:
    from minipod.runtime import state
    if names:
        out = []
        for n in names:
            try:
                out.append(refreshed(state.read(paths.pod_dir(n))))
            except FileNotFoundError:
                raise CommandError(f'Error from server (NotFound): pods "{n}" not found')
            except state.StateError as e:
                raise CommandError(str(e))
        return out
    records, errors = state.read_all(paths.pods)
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    return [refreshed(r) for r in records]


def run(args, paths) -> int:
    from minipod.runtime import cmd_objects
    other = cmd_objects.resource_of(args.kind)      # configmaps, secrets
    if other:
        return cmd_objects.get(args, paths, *other)
    names = resource_names(args.kind, args.names)
    records = load(paths, names)
    if args.output in ("yaml", "json"):
        objects = [podstatus.pod_object(r) for r in records]
        obj = objects[0] if len(names) == 1 else {
            "apiVersion": "v1", "kind": "List", "items": objects, "metadata": {}}
        if args.output == "json":
            import json
            print(json.dumps(obj, indent=4))
        else:
            import yaml
            sys.stdout.write(yaml.safe_dump(obj, sort_keys=False, default_flow_style=False))
        return 0
    if args.output == "name":
        for r in records:
            print(f"pod/{r['name']}")
        return 0
    if not records and not args.watch:
        print("No resources found in default namespace.", file=sys.stderr)
        return 0
    header = ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    if args.output == "wide":
        header += ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
    wide = args.output == "wide"
    if records:
        print_table(header, [row(r, wide) for r in records])
    sys.stdout.flush()
    if args.watch:
        watch(paths, names, wide, {r["name"]: row(r, wide)[:4] for r in records})
    return 0


def row(r: dict, wide: bool) -> list[str]:
    ready, status, restarts = podstatus.print_pod(podstatus.pod_object(r))
    cells = [r["name"], ready, status, restarts, podstatus.age(r.get("creationTimestamp"))]
    if wide:
        cells += [r.get("podIP") or "<none>", r.get("nodeName") or "<none>", "<none>", "<none>"]
    return cells


def watch(paths, names: list[str], wide: bool, shown: dict) -> None:
    """Like `kubectl get pods -w`: a new row whenever READY, STATUS or
    RESTARTS of a pod changes, until Ctrl-C. Reads the state files."""
    import time

    from minipod.runtime import state
    while True:
        time.sleep(0.2)
        records, _ = state.read_all(paths.pods)
        if names:
            records = [r for r in records if r["name"] in names]
        current = {}
        for r in records:
            cells = row(refreshed(r), wide)
            current[r["name"]] = cells[:4]
            if shown.get(r["name"]) != cells[:4]:
                print("   ".join(cells), flush=True)
        for gone in set(shown) - set(current):
            print(f"{gone}   0/0   Deleted", flush=True)
        shown = current
