"""`minipod logs POD [-c CONTAINER] [-f] [-p] [--tail N] [--timestamps]`.

Reads the CRI log files the agent writes (no agent needed). With -f it
follows the file, moves on to the next file when the container restarts,
and stops when the container has ended for good or the pod is deleted.
"""
from __future__ import annotations

import sys
import time

from minipod.runtime import logs, state
from minipod.runtime.cmdutil import CommandError

FOLLOW_POLL = 0.05  # seconds between looks at a followed file


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
    p.add_argument("--timestamps", action="store_true")
    p.set_defaults(func=run)


def pick_container(record: dict, wanted: str | None) -> dict:
    names = [c["name"] for c in record["containers"]]
    if wanted is None:
        if len(names) == 1:
            return record["containers"][0]
        raise CommandError(f"a container name must be specified for pod {record['name']}, "
                           f"choose one of: [{' '.join(names)}]")
    for c in record["containers"]:
        if c["name"] == wanted:
            return c
    raise CommandError(f"container {wanted} is not valid for pod {record['name']}")


def _record(paths, name: str) -> dict | None:
    try:
        return state.read(paths.pod_dir(name))
    except FileNotFoundError:
        return None


def run(args, paths) -> int:
    name = args.pod.removeprefix("pod/")
    record = _record(paths, name)
    if record is None:
        raise CommandError(f'Error from server (NotFound): pods "{name}" not found')
    cs = pick_container(record, args.container or args.container_arg)
    restart = cs.get("restartCount", 0)
    if args.previous:
        if restart == 0:
            raise CommandError(f'previous terminated container "{cs["name"]}" in pod '
                               f'"{name}" not found')
        restart -= 1
    path = paths.log_path(name, cs["name"], restart)
    out = sys.stdout.buffer
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        if cs["state"] == "waiting" and restart == 0:
            raise CommandError(f'container "{cs["name"]}" in pod "{name}" is waiting to '
                               f"start: {cs.get('reason') or 'ContainerCreating'}")
        raise CommandError(f"no log file for container {cs['name']} of pod {name} ({path})")
    with f:
        lines = f.readlines()
        if args.tail >= 0:
            lines = lines[-args.tail:] if args.tail else []
        for line in lines:
            out.write(logs.render(line, args.timestamps))
        out.flush()
        if args.follow and not args.previous:
            follow(paths, name, cs["name"], restart, f, args.timestamps, out)
    return 0


def follow(paths, pod: str, container: str, restart: int, f, timestamps: bool, out) -> None:
    pending = b""
    while True:
        chunk = f.read()
        if chunk:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                out.write(logs.render(line + b"\n", timestamps))
            out.flush()
            continue
        record = _record(paths, pod)
        if record is None:
            return  # pod deleted
        cs = next((c for c in record["containers"] if c["name"] == container), None)
        if cs is None:
            return
        if cs.get("restartCount", 0) > restart:
            restart = cs["restartCount"]
            f.close()
            f = _wait_open(paths.log_path(pod, container, restart))
            if f is None:
                return
            continue
        if cs["state"] == "terminated" and not _will_restart(record, cs):
            if not f.read():
                return
        time.sleep(FOLLOW_POLL)


def _will_restart(record: dict, cs: dict) -> bool:
    policy = record.get("restartPolicy", "Always")
    return policy == "Always" or (policy == "OnFailure" and cs.get("exitCode") != 0)


def _wait_open(path, timeout: float = 600.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return open(path, "rb")
        except FileNotFoundError:
            time.sleep(FOLLOW_POLL)
    return None
