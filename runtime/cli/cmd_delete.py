"""`minipod delete pod NAME [-n NS]` / `delete -f FILE` / `delete ns NAME`:
stop gracefully, remove all.

The agent sends SIGTERM, waits the grace period, sends SIGKILL, then
removes the veth, the IP, the pinned namespaces, the container dirs, the
logs and the state. The command returns when all of that is done. A
namespace goes Terminating, its pods are deleted so, then it is gone.
"""
from __future__ import annotations

import sys

from minipod.runtime.cli.cmdutil import (CommandError, add_namespace, namespace_of, require_root,
                                     server_error)


def register(sub) -> None:
    p = sub.add_parser("delete", help="delete pods (SIGTERM, grace period, SIGKILL)",
                       description="Like `kubectl delete pod NAME` or `kubectl delete -f FILE`.")
    p.add_argument("kind", nargs="?", metavar="pod|pods|pod/NAME|ns")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("-f", "--filename", metavar="FILE", help="delete the pods a manifest names")
    p.add_argument("--grace-period", type=int, default=None, metavar="SECONDS",
                   help="override terminationGracePeriodSeconds (0: SIGKILL at once)")
    p.add_argument("--now", action="store_true", help="same as --grace-period=1")
    p.add_argument("--ignore-not-found", action="store_true")
    p.add_argument("--explain", action="store_true",
                   help="print each kernel step as the shell command that does the same")
    p.add_argument("--timings", action="store_true",
                   help="print each step of the delete with how long it took")
    add_namespace(p)
    p.set_defaults(func=run)


def run(args, paths) -> int:
    from minipod.runtime import client
    from minipod.runtime.cli.cmd_get import NAMESPACE_KINDS, resource_names
    from minipod.runtime.paths import pod_key
    objects: list = []
    if args.filename:
        from minipod.runtime.cli.cmd_run import load, placed
        namespace = args.namespace and namespace_of(args)
        names = [(pod.name, (obj.get("metadata") or {}).get("namespace") or "default")
                 for pod, obj, _ in placed(load(args.filename, objects), namespace)]
        for obj in objects:     # a ConfigMap or Secret without a namespace: -n's
            if namespace and not obj.namespaced:
                obj.namespace = namespace
    elif args.kind and args.kind.partition("/")[0] in NAMESPACE_KINDS:
        return delete_namespaces(args, paths)
    elif args.kind:
        from minipod.runtime.cli import cmd_objects
        other = cmd_objects.resource_of(args.kind)  # configmaps, secrets
        if other:
            return cmd_objects.delete(args, paths, *other)
        names = [(n, namespace_of(args)) for n in resource_names(args.kind, args.names)]
    else:
        raise CommandError("say what to delete: minipod delete pod NAME, or -f FILE", 2)
    if not names and not objects:
        raise CommandError("resource(s) were provided, but no name was specified", 2)
    require_root("delete")
    grace = 1 if args.now else args.grace_period
    status = 0
    for name, ns in names:
        if not paths.pod_dir(pod_key(ns, name)).exists():
            if not args.ignore_not_found:
                print(f'Error from server (NotFound): pods "{name}" not found', file=sys.stderr)
                status = 1
            continue
        if args.timings:
            from minipod.runtime import timings
            timings.start()
            timings.mark("CLI: start")
        try:
            answer = client.request(paths, {"op": "delete", "name": name, "namespace": ns,
                                            "grace": grace, "explain": args.explain,
                                            "timings": args.timings})
        except client.AgentError as e:
            if e.code == "NotFound" and args.ignore_not_found:
                continue
            raise server_error(e)
        if args.explain:
            from minipod.linux import explain
            print(explain.render(answer.get("explain", [])) + "\n")
        print(f'pod "{name}" deleted')
        if args.timings:
            timings.mark("CLI: the agent's answer arrives")
            timings.add(answer.get("timings"))
            print(timings.render(timings.stop(), title=f"pod/{name}: where the delete went"))
    for obj in objects:     # after the pods that use them, as the file lists them
        try:
            client.request(paths, {"op": "delete_object", "resource": obj.resource,
                                   "namespace": obj.namespace, "name": obj.name})
        except client.AgentError as e:
            if e.code == "NotFound":
                if not args.ignore_not_found:
                    print(f'Error from server (NotFound): {obj.resource} "{obj.name}" '
                          f"not found", file=sys.stderr)
                    status = 1
                continue
            raise server_error(e)
        print(f'{obj.kind.lower()} "{obj.name}" deleted')
    return status


def delete_namespaces(args, paths) -> int:
    """`delete ns NAME…`: the agent deletes each one's pods; return once it is gone."""
    import time

    from minipod.runtime import client, namespaces
    one = args.kind.partition("/")[2]
    names = ([one] if one else []) + args.names
    if not names:
        raise CommandError("resource(s) were provided, but no name was specified", 2)
    require_root("delete")
    status = 0
    for name in names:
        try:
            client.request(paths, {"op": "namespace_delete", "name": name})
        except client.AgentError as e:
            if e.code == "NotFound" and args.ignore_not_found:
                continue
            print(f"Error from server ({e.code}): {e}", file=sys.stderr)
            status = 1
            continue
        pinged = time.monotonic()
        while namespaces.read(paths, name) is not None:
            time.sleep(0.05)
            if time.monotonic() - pinged > 2:   # an agent that died meanwhile is started
                pinged = time.monotonic()       # again, and finishes the deletion
                try:
                    client.request(paths, {"op": "ping"})
                except client.AgentError:
                    pass
        print(f'namespace "{name}" deleted')
    return status
