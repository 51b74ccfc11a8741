"""`minipod get pods [NAME] [-n NS | -A] [-o wide|yaml|json|name]`, `get ns`,
`get configmaps|secrets`: read the state files.

No agent and no netlink: reading state must stay cheap. A container the
record calls running is checked against the kernel (pid + start time), so
a stale record is never shown as running.
"""
from __future__ import annotations

import sys

from minipod.runtime.cli.cmdutil import (CommandError, add_names, add_namespace, namespace_of,
                                         not_found, print_objects, print_table, require_root)
from minipod.runtime.cli.resources import (NAMESPACE_KINDS, object_names, pod_records,
                                           resource_names, resource_of)


def register(sub) -> None:
    p = sub.add_parser("get", help="list pods or show one",
                       description="Like `kubectl get pods` / `kubectl get pod NAME -o yaml`.")
    add_names(p, "pods|pod|po[/NAME]|ns")
    p.add_argument("-o", "--output", choices=["wide", "yaml", "json", "name"])
    p.add_argument("-w", "--watch", action="store_true",
                   help="after listing, print a row whenever a pod changes")
    add_namespace(p, all_namespaces=True)
    p.set_defaults(func=run)


def run(args, paths) -> int:
    from minipod.runtime.api import podstatus  # here: --help registers every verb
    if args.kind.partition("/")[0] in NAMESPACE_KINDS:
        return get_namespaces(args, paths)
    other = resource_of(args.kind)      # configmaps, secrets
    if other:
        return get_objects(args, paths, *other)
    names = resource_names(args.kind, args.names)
    every = args.all_namespaces
    records = pod_records(paths, names, namespace_of(args), every)
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
    from minipod.runtime.api import podstatus
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
            cells = row(state.refreshed(r), wide, every)
            current[record_key(r)] = cells[:4 + every]
            if shown.get(record_key(r)) != cells[:4 + every]:
                print("   ".join(cells), flush=True)
        for gone in set(shown) - set(current):
            print("   ".join(shown[gone][:1 + every]) + "   0/0   Deleted", flush=True)
        shown = current


def get_namespaces(args, paths) -> int:
    """`minipod get ns [NAME…] [-o yaml|json|name]`: NAME STATUS AGE, as kubectl."""
    from minipod.runtime import namespaces
    from minipod.runtime.api import podstatus
    one = args.kind.partition("/")[2]
    names = ([one] if one else []) + [n.split("/", 1)[-1] for n in args.names]
    records = namespaces.read_all(paths)
    if names:
        found = {r["name"]: r for r in records}
        missing = [n for n in names if n not in found]
        if missing:
            raise not_found("namespaces", missing[0])
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


def get_objects(args, paths, resource: str, names: list[str]) -> int:
    """`get configmaps|secrets [NAME…]`: read from the files the agent stores
    (runtime/configobjects.py; root only: their directories are 0700). A
    Secret is shown as the API shows it: base64 `data`, which `-o yaml`
    prints and the table only counts."""
    from minipod.runtime import configobjects
    from minipod.runtime.api import podstatus
    require_root("get " + resource)
    names = names + object_names(resource, args.names)
    namespace = namespace_of(args)
    every = getattr(args, "all_namespaces", False)
    if every and names:
        raise CommandError("a resource cannot be retrieved by name across all namespaces")
    if names:
        found = []
        for n in names:
            obj = configobjects.read(paths, resource, namespace, n)
            if obj is None:
                raise not_found(resource, n)
            found.append(obj)
    else:
        found = [configobjects.read(paths, r, ns, n)
                 for r, ns, n, _ in configobjects.scan(paths)
                 if r == resource and (every or ns == namespace)]
        found = [o for o in found if o is not None]
    if args.output in ("yaml", "json"):
        print_objects(found, args.output, len(names) == 1)
        return 0
    singular = resource[:-1]
    if args.output == "name":
        for o in found:
            print(f"{singular}/{o['metadata']['name']}")
        return 0
    if not found:
        print("No resources found" if every else f"No resources found in {namespace} namespace.",
              file=sys.stderr)
        return 0
    rows = []
    for o in found:
        count = str(len(o.get("data") or {}) + len(o.get("binaryData") or {}))
        age = podstatus.age(o["metadata"].get("creationTimestamp"))
        rows.append(([o["metadata"]["namespace"]] if every else []) + [o["metadata"]["name"]]
                    + ([o.get("type", "Opaque")] if resource == "secrets" else []) + [count, age])
    print_table((["NAMESPACE"] if every else []) + ["NAME"]
                + (["TYPE"] if resource == "secrets" else []) + ["DATA", "AGE"], rows)
    return 0
