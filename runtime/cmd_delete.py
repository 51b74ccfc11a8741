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
    p.add_argument("--timings", action="store_true",
                   help="print each step of the delete with how long it took")
    p.set_defaults(func=run)


def run(args, paths) -> int:
    from minipod.runtime import client
    from minipod.runtime.cmd_get import resource_names
    if args.filename:
        from minipod.runtime.cmd_run import load
        names = [p.name for p in load(args.filename)]
    elif args.kind:
        names = resource_names(args.kind, args.names)
    else:
        raise CommandError("say what to delete: minipod delete pod NAME, or -f FILE", 2)
    if not names:
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
        if args.timings:
            from minipod import timings
            timings.start()
            timings.mark("CLI: start")
        try:
            answer = client.request(paths, {"op": "delete", "name": name, "grace": grace,
                                            "explain": args.explain, "timings": args.timings})
        except client.AgentError as e:
            if e.code == "NotFound" and args.ignore_not_found:
                continue
            raise server_error(e)
        if args.explain:
            from minipod import explain
            print(explain.render(answer.get("explain", [])) + "\n")
        print(f'pod "{name}" deleted')
        if args.timings:
            timings.mark("CLI: the agent's answer arrives")
            timings.add(answer.get("timings"))
            print(timings.render(timings.stop(), title=f"pod/{name}: where the delete went"))
    return status
