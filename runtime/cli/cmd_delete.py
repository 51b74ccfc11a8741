"""`minipod delete pod NAME [-n NS]` / `delete -f FILE` / `delete ns NAME`:
stop gracefully, remove all.

The agent sends SIGTERM, waits the grace period, sends SIGKILL, then
removes the veth, the IP, the pinned namespaces, the container dirs, the
logs and the state. The command returns when all of that is done. A
namespace goes Terminating, its pods are deleted so, then it is gone.
"""
from __future__ import annotations

import sys

from minipod.runtime.cli.cmdutil import (CommandError, add_names, add_namespace, add_step_flags,
                                         namespace_of, not_found, require_root, server_error)
from minipod.runtime.cli.resources import (NAMESPACE_KINDS, load_manifest, object_names, placed,
                                           resource_names, resource_of)


def register(sub) -> None:
    p = sub.add_parser("delete", help="delete pods (SIGTERM, grace period, SIGKILL)",
                       description="Like `kubectl delete pod NAME` or `kubectl delete -f FILE`.")
    add_names(p, "pod|pods|pod/NAME|ns", optional=True)
    p.add_argument("-f", "--filename", metavar="FILE", help="delete the pods a manifest names")
    p.add_argument("--grace-period", type=int, default=None, metavar="SECONDS",
                   help="override terminationGracePeriodSeconds (0: SIGKILL at once)")
    p.add_argument("--now", action="store_true", help="same as --grace-period=1")
    p.add_argument("--ignore-not-found", action="store_true")
    add_step_flags(p, "delete")
    add_namespace(p)
    p.set_defaults(func=run)


def run(args, paths) -> int:
    from minipod.runtime import client
    from minipod.runtime.paths import pod_key
    objects: list = []
    if args.filename:
        namespace = args.namespace and namespace_of(args)
        names = [(pod.name, (obj.get("metadata") or {}).get("namespace") or "default")
                 for pod, obj, _ in placed(load_manifest(args.filename, objects), namespace)]
        for obj in objects:     # a ConfigMap or Secret without a namespace: -n's
            if namespace and not obj.namespaced:
                obj.namespace = namespace
    elif args.kind and args.kind.partition("/")[0] in NAMESPACE_KINDS:
        return delete_namespaces(args, paths)
    elif args.kind:
        other = resource_of(args.kind)  # configmaps, secrets
        if other:
            return delete_objects(args, paths, *other)
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
                print(not_found("pods", name), file=sys.stderr)
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
        status |= _delete_object(args, paths, obj.resource, obj.namespace, obj.name)
    return status


def delete_objects(args, paths, resource: str, names: list[str]) -> int:
    """`delete configmap|secret NAME…` (cm/NAME, secret/NAME) in -n's namespace."""
    names = names + object_names(resource, args.names)
    if not names:
        raise CommandError("resource(s) were provided, but no name was specified", 2)
    require_root("delete")
    namespace = namespace_of(args)
    status = 0
    for n in names:
        status |= _delete_object(args, paths, resource, namespace, n)
    return status


def _delete_object(args, paths, resource: str, namespace: str, name: str) -> int:
    """Ask the agent to delete one ConfigMap or Secret; 1 if it was not found
    (and --ignore-not-found was not given), else 0."""
    from minipod.runtime import client
    try:
        client.request(paths, {"op": "delete_object", "resource": resource,
                               "namespace": namespace, "name": name})
    except client.AgentError as e:
        if e.code != "NotFound":
            raise server_error(e)
        if args.ignore_not_found:
            return 0
        print(not_found(resource, name), file=sys.stderr)
        return 1
    print(f'{resource[:-1]} "{name}" deleted')
    return 0


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
            print(server_error(e), file=sys.stderr)
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
