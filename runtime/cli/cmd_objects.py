"""`minipod get configmaps|secrets [NAME] [-o yaml|json|name]` and
`minipod delete configmap|secret NAME`: the ConfigMaps and Secrets the
agent stores (runtime/configobjects.py), in kubectl's words.

`get` reads the files (root only: their directories are 0700); `delete`
asks the agent, the only writer. A Secret is shown as the API shows it:
base64 `data`, which `-o yaml` prints and the table only counts.
"""
from __future__ import annotations

import sys

from minipod.runtime.cli.cmdutil import (CommandError, namespace_of, print_objects, print_table,
                                     require_root)

ALIASES = {"configmaps": "configmaps", "configmap": "configmaps", "cm": "configmaps",
           "secrets": "secrets", "secret": "secrets"}


def resource_of(kind: str) -> tuple[str, list[str]] | None:
    """("configmaps"|"secrets", [NAME]) for kubectl's forms, or None."""
    base, _, name = kind.partition("/")
    if base not in ALIASES:
        return None
    return ALIASES[base], [name] if name else []


def _strip(resource: str, names: list[str]) -> list[str]:
    singular = resource[:-1]
    return [n.split("/", 1)[1] if n.startswith((singular + "/", resource + "/")) else n
            for n in names]


def get(args, paths, resource: str, names: list[str]) -> int:
    from minipod.runtime import configobjects
    from minipod.runtime.api import podstatus
    require_root("get " + resource)
    names = names + _strip(resource, args.names)
    namespace = namespace_of(args)
    every = getattr(args, "all_namespaces", False)
    if every and names:
        raise CommandError("a resource cannot be retrieved by name across all namespaces")
    if names:
        found = []
        for n in names:
            obj = configobjects.read(paths, resource, namespace, n)
            if obj is None:
                raise CommandError(f'Error from server (NotFound): {resource} "{n}" not found')
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


def delete(args, paths, resource: str, names: list[str]) -> int:
    from minipod.runtime import client
    from minipod.runtime.cli.cmdutil import server_error
    names = names + _strip(resource, args.names)
    if not names:
        raise CommandError("resource(s) were provided, but no name was specified", 2)
    require_root("delete")
    namespace = namespace_of(args)
    status = 0
    for n in names:
        try:
            client.request(paths, {"op": "delete_object", "resource": resource,
                                   "namespace": namespace, "name": n})
        except client.AgentError as e:
            if e.code == "NotFound":
                if not args.ignore_not_found:
                    print(f'Error from server (NotFound): {resource} "{n}" not found',
                          file=sys.stderr)
                    status = 1
                continue
            raise server_error(e)
        print(f'{resource[:-1]} "{n}" deleted')
    return status
