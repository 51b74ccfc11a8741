"""`minipod logs POD [-c C] [-f] [-p] [--tail N] [--since 5m] [--timestamps]
[--all-containers] [--prefix]`.

Reads the CRI log files the agent writes (no agent needed). With -f it
follows the file, moves on to the next file when the container restarts,
and stops when the container has ended for good or the pod is deleted.
The reading and following are runtime/logreader.py's (the API server's
…/log reads through it too); this module parses, finds the pod, prints.
"""
from __future__ import annotations

import re
import sys
import time

from minipod.runtime.cli.cmdutil import (CommandError, add_namespace, find_pod, namespace_of,
                                         pod_key_of)


def register(sub) -> None:
    p = sub.add_parser("logs", help="print a container's logs",
                       description="Like `kubectl logs POD [-c CONTAINER] [-f]`.")
    p.add_argument("pod", metavar="POD")
    p.add_argument("container_arg", nargs="?", metavar="CONTAINER")
    p.add_argument("-c", "--container")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-p", "--previous", action="store_true",
                   help="the previous instance of the container (before its last restart)")
    p.add_argument("--tail", type=int, default=-1, metavar="N")
    p.add_argument("--since", metavar="DURATION", help="only lines newer than 5s, 2m, 3h")
    p.add_argument("--timestamps", action="store_true")
    p.add_argument("--all-containers", action="store_true")
    p.add_argument("--prefix", action="store_true", help="start lines with [pod/POD/CONTAINER]")
    add_namespace(p)
    p.set_defaults(func=run)


def parse_duration(text: str) -> float:
    """Go's duration syntax as kubectl takes it: 1h30m, 5m, 10s, 250ms."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise CommandError(f'invalid duration "{text}": use e.g. 10s, 5m, 1h30m', 2)
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)


def run(args, paths) -> int:
    from minipod.runtime import logreader
    name = args.pod.removeprefix("pod/")
    key = pod_key_of(args, name)
    record = find_pod(paths, namespace_of(args), name)
    args.since_stamp = None
    if args.since:
        t = time.time() - parse_duration(args.since)
        args.since_stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
    try:
        streams = [logreader.Stream(paths, key, cs, args.previous, args, pod_name=name)
                   for cs in logreader.pick_containers(
                       record, args.container or args.container_arg, args.all_containers)]
    except logreader.LogError as e:
        raise CommandError(str(e))
    following = args.follow and not args.previous
    # the watches go in before the first read, so no write falls between
    waker = logreader.Waker([s.log_dir for s in streams] + [paths.pod_dir(key)]) \
        if following else None
    out = sys.stdout.buffer
    for s in streams:
        s.backlog(out, args.tail)
    out.flush()
    if waker:
        logreader.follow(streams, out, waker)
    return 0
