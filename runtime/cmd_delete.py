"""`minipod delete pod NAME` / `delete -f FILE`: stop gracefully, remove all.

The agent sends SIGTERM, waits the grace period, sends SIGKILL, then
removes the veth, the IP, the pinned namespaces, the container dirs, the
logs and the state. The command returns when all of that is done.
"""
from __future__ import annotations

import sys

from minipod.runtime.cmdutil import CommandError, require_root, server_error


def register(sub) -> None:
    p = sub.add_parser("delete", help="delete pods (SIGTERM, grace period, SIGKILL)",
                       description="Like `kubectl delete pod NAME` or `kubectl delete -f FILE`.")
    p.add_argument("kind", nargs="?", metavar="pod|pods|pod/NAME")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("-f", "--filename", metavar="FILE", help="delete the pods a manifest names")
    p.add_argument("--grace-period", type=int, default=None, metavar="SECONDS",
                   help="override terminationGracePeriodSeconds (0: SIGKILL at once)")
    p.add_argument("--now", action="store_true", help="same as --grace-period=1")
    p.add_argument("--ignore-not-found", action="store_true")
    p.add_argument("--explain", action="store_true",
                   help="print each kernel step as the shell command that does the same")
    p.set_defaults(func=run)


def run(args, paths) -> int:
    from minipod.runtime import client
    from minipod.runtime.cmd_get import resource_names
    objects: list = []
    if args.filename:
        from minipod.runtime.cmd_run import load
        names = [p.name for p in load(args.filename, objects)]
    elif args.kind:
        from minipod.runtime import cmd_objects
        other = cmd_objects.resource_of(args.kind)  # configmaps, secrets
        if other:
            return cmd_objects.delete(args, paths, *other)
        names = resource_names(args.kind, args.names)
    else:
        raise CommandError("say what to delete: minipod delete pod NAME, or -f FILE", 2)
    if not names and not objects:
        raise CommandError("resource(s) were provided, but no name was specified", 2)
    require_root("delete")
    grace = 1 if args.now else args.grace_period
    status = 0
    for name in names:
        if not paths.pod_dir(name).exists():
            if not args.ignore_not_found:
                print(f'Error from server (NotFound): pods "{name}" not found', file=sys.stderr)
                status = 1
            continue
        try:
            answer = client.request(paths, {"op": "delete", "name": name, "grace": grace,
                                            "explain": args.explain})
        except client.AgentError as e:
            if e.code == "NotFound" and args.ignore_not_found:
                continue
            raise server_error(e)
        if args.explain:
            from minipod import explain
            print(explain.render(answer.get("explain", [])) + "\n")
        print(f'pod "{name}" deleted')
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
