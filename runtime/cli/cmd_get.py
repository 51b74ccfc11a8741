"""`minipod get pods [NAME] [-n NS | -A] [-o wide|yaml|json|name]`, `get ns`:
read the state files.

No agent and no netlink: reading state must stay cheap. A container the
record calls running is checked against the kernel (pid + start time), so
a stale record is never shown as running.
"""
from __future__ import annotations

import sys

from minipod.runtime.api import podstatus
from minipod.runtime.cli.cmdutil import (CommandError, add_namespace, namespace_of, print_objects,
                                     print_table)

NAMESPACE_KINDS = ("namespaces", "namespace", "ns")


def register(sub) -> None:
    p = sub.add_parser("get", help="list pods or show one",
                       description="Like `kubectl get pods` / `kubectl get pod NAME -o yaml`.")
    p.add_argument("kind", metavar="pods|pod|po[/NAME]|ns")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("-o", "--output", choices=["wide", "yaml", "json", "name"])
    p.add_argument("-w", "--watch", action="store_true",
                   help="after listing, print a row whenever a pod changes")
    add_namespace(p, all_namespaces=True)
    p.set_defaults(func=run)


def resource_names(kind: str, names: list[str]) -> list[str]:
    """Accept kubectl's forms: `pods`, `pod NAME`, `po/NAME`, `pod/NAME`."""
    base, _, name = kind.partition("/")
    if base not in ("pods", "pod", "po"):
        raise CommandError(f'the server doesn\'t have a resource type "{base}"; '
                           f"minipod knows pods only")
    return ([name] if name else []) + [n.removeprefix("pod/") for n in names]


def refreshed(record):
    """The PodRecord, with a running container whose process is gone (while
    the agent was away) terminated, its exit unknown."""
    from minipod.runtime import state
    from minipod.runtime.api.record import ContainerState
    for cs in record.all_containers():
        if cs.state == ContainerState.RUNNING and not state.alive(cs.pid, cs.pid_start):
            cs.state, cs.reason, cs.exit_code = ContainerState.TERMINATED, "Unknown", None
            cs.message = "the process is gone and the agent has not seen it end"
    return record


def load(paths, names: list[str], namespace: str = "default",
         all_namespaces: bool = False) -> list:
    """The records (PodRecord) of pods NAMES in NAMESPACE; no names: every pod there
    (all_namespaces: every pod), ordered by namespace, then name."""
    from minipod.runtime import state
    from minipod.runtime.cli.cmdutil import read_pod
    if names and all_namespaces:
        raise CommandError("a resource cannot be retrieved by name across all namespaces")
    if names:
        out = []
        for n in names:
            try:
                out.append(refreshed(read_pod(paths, namespace, n)))
            except FileNotFoundError:
                raise CommandError(f'Error from server (NotFound): pods "{n}" not found')
            except state.StateError as e:
                raise CommandError(str(e))
        return out
    records, errors = state.read_records(paths.pods)
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    records = [r for r in records if all_namespaces or (r.namespace or "default") == namespace]
    records.sort(key=lambda r: (r.namespace or "default", r.name))
    return [refreshed(r) for r in records]


def run(args, paths) -> int:
    if args.kind.partition("/")[0] in NAMESPACE_KINDS:
        return get_namespaces(args, paths)
    from minipod.runtime.cli import cmd_objects
    other = cmd_objects.resource_of(args.kind)      # configmaps, secrets
    if other:
        return cmd_objects.get(args, paths, *other)
    names = resource_names(args.kind, args.names)
    every = args.all_namespaces
    records = load(paths, names, namespace_of(args), every)
    if args.output in ("yaml", "json"):
        print_objects([podstatus.pod_object(r) for r in records], args.output, len(names) == 1)
        return 0
    if args.output == "name":
        for r in records:
            print(f"pod/{r.name}")
        return 0
    if not records and not args.watch:
        print("No resources found" + ("" if every else f" in {namespace_of(args)} namespace")
              + ".", file=sys.stderr)
        return 0
    header = (["NAMESPACE"] if every else []) + ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    if args.output == "wide":
        header += ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
    wide = args.output == "wide"
    if records:
        print_table(header, [row(r, wide, every) for r in records])
    sys.stdout.flush()
    if args.watch:
        from minipod.runtime.paths import record_key
        keep = None if every else namespace_of(args)
        watch(paths, names, wide, {record_key(r): row(r, wide, every)[:4 + every]
                                   for r in records}, keep)
    return 0


def row(r, wide: bool, namespace: bool = False) -> list[str]:
    """One line of the table of PodRecord r; namespace: with the NAMESPACE column first (-A)."""
    ready, status, restarts = podstatus.print_pod(podstatus.pod_object(r))
    cells = ([r.namespace or "default"] if namespace else []) + [
        r.name, ready, status, restarts, podstatus.age(r.creation_timestamp)]
    if wide:
        cells += [r.pod_ip or "<none>", r.node_name or "<none>", "<none>", "<none>"]
    return cells


def watch(paths, names: list[str], wide: bool, shown: dict, namespace: str | None) -> None:
    """Like `kubectl get pods -w`: a new row whenever READY, STATUS or
    RESTARTS of a pod changes, until Ctrl-C. Reads the state files.
    namespace None: pods of every namespace (-A), shown with theirs."""
    import time

    from minipod.runtime import state
    from minipod.runtime.paths import record_key
    every = namespace is None
    while True:
        time.sleep(0.2)
        records, _ = state.read_records(paths.pods)
        if not every:
            records = [r for r in records if (r.namespace or "default") == namespace]
        if names:
            records = [r for r in records if r.name in names]
        current = {}
        for r in records:
            cells = row(refreshed(r), wide, every)
            current[record_key(r)] = cells[:4 + every]
            if shown.get(record_key(r)) != cells[:4 + every]:
                print("   ".join(cells), flush=True)
        for gone in set(shown) - set(current):
            print("   ".join(shown[gone][:1 + every]) + "   0/0   Deleted", flush=True)
        shown = current


def get_namespaces(args, paths) -> int:
    """`minipod get ns [NAME…] [-o yaml|json|name]`: NAME STATUS AGE, as kubectl."""
    from minipod.runtime import namespaces
    one = args.kind.partition("/")[2]
    names = ([one] if one else []) + [n.split("/", 1)[-1] for n in args.names]
    records = namespaces.read_all(paths)
    if names:
        found = {r["name"]: r for r in records}
        missing = [n for n in names if n not in found]
        if missing:
            raise CommandError(f'Error from server (NotFound): namespaces "{missing[0]}" '
                               f"not found")
        records = [found[n] for n in names]
    if args.output in ("yaml", "json"):
        print_objects([namespaces.to_object(r) for r in records], args.output,
                      len(names) == 1)
        return 0
    if args.output == "name":
        for r in records:
            print(f"namespace/{r['name']}")
        return 0
    print_table(["NAME", "STATUS", "AGE"],
                [[r["name"], r.get("phase", "Active"), podstatus.age(r.get("creationTimestamp"))]
                 for r in records])
    return 0
