"""`minipod run FILE` and `minipod create -f FILE`: validate, then ask the agent.

The manifest is checked here, with file and line in every message, before
the agent is even contacted: bad input creates nothing.
"""
from __future__ import annotations

import sys

from minipod.runtime.cmdutil import CommandError, require_root, server_error


def register(sub) -> None:
    p = sub.add_parser("run", help="create the pods of a manifest and start them",
                       description="Create every Pod in FILE (YAML, several documents "
                                   "allowed, or JSON; - reads stdin) and wait until its "
                                   "containers run. A pod that already exists with the "
                                   "same manifest is left unchanged.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--explain", action="store_true",
                   help="print each kernel step as the shell command that does the same")
    p.add_argument("--timings", action="store_true",
                   help="print each step of the start with how long it took")
    p.set_defaults(func=run, create=False)
    c = sub.add_parser("create", help="create the pods of a manifest (fails if one exists)",
                       description="Like `kubectl create -f FILE`: AlreadyExists if a pod "
                                   "of that name exists.")
    c.add_argument("-f", "--filename", dest="file", metavar="FILE", required=True)
    c.set_defaults(func=run, create=True, explain=False, timings=False)


def load(path: str):
    """Parse and validate; warnings go to stderr like kubectl's."""
    from minipod.runtime import manifest
    try:
        pods, warnings = manifest.load_file(path)
    except manifest.ManifestError as e:
        raise CommandError(f"{path} is not a valid Pod manifest:\n" +
                           "\n".join(f"  {p}" for p in e.problems))
    for w in warnings:
        print(f"Warning: {w}", file=sys.stderr)
    if not pods:
        raise CommandError(f"{path}: no objects to create")
    return pods


def run(args, paths) -> int:
    if args.timings:
        from minipod import timings
        timings.start()
        timings.mark("CLI: start")     # only sets the origin: Python's start is before us
    pods = load(args.file)
    require_root("run" if not args.create else "create")
    from minipod.runtime import client, state
    failed = False
    for pod in pods:
        if not args.create:
            try:
                existing = state.read(paths.pod_dir(pod.name))
            except FileNotFoundError:
                existing = None
            if existing is not None:
                if existing.get("manifest") == pod.raw:
                    print(f"pod/{pod.name} unchanged")
                    continue
                raise CommandError(f'Error from server (AlreadyExists): pods "{pod.name}" '
                                   f"already exists with another manifest; delete it first: "
                                   f"minipod delete pod {pod.name}")
        if args.timings:
            timings.mark("CLI: read and validate the manifest")
        try:
            answer = client.request(paths, {"op": "run", "object": pod.raw,
                                            "source": pod.source, "explain": args.explain,
                                            "timings": args.timings})
        except client.AgentError as e:
            raise server_error(e)
        if args.timings:
            timings.mark("CLI: the agent's answer arrives")
            timings.add(answer.get("timings"))
        if args.explain:
            from minipod import explain
            print(explain.render(answer.get("explain", [])) + "\n")
        print(f"pod/{pod.name} created")
        record = wait_for_images(paths, pod.name, answer["pod"])
        if args.timings:
            timings.mark("CLI: wait for image pulls")
            print(timings.render(timings.stop(), title=f"pod/{pod.name}: where the start went"))
            timings.start()
            timings.mark("CLI: start")      # the next pod's origin
        for cs in record.get("initContainers", []) + record["containers"]:
            last = cs.get("lastState") or {}
            if cs.get("reason") == "StartError" or last.get("reason") == "StartError":
                # the cause is the StartError's own message; a back-off's says only "back-off"
                msg = cs.get("message") if cs.get("reason") == "StartError" else last.get("message")
                print(f"error: pod {pod.name}: container {cs['name']} failed to start: {msg}",
                      file=sys.stderr)
                failed = True
            elif cs.get("reason") in PULL_ERRORS:
                print(f"error: pod {pod.name}: container {cs['name']}: {cs['reason']}: "
                      f"{cs.get('message')}", file=sys.stderr)
                failed = True
    return 1 if failed else 0


PULL_ERRORS = ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull")


def wait_for_images(paths, name: str, record: dict, timeout: float = 600) -> dict:
    """While images are pulled the containers wait in ContainerCreating;
    return once none does (pulled and started, or failed), like `run`
    promises. Reads the state file: the agent is not kept busy."""
    import time
    from minipod.runtime import state
    deadline = time.monotonic() + timeout
    while any(c["state"] == "waiting" and c.get("reason") == "ContainerCreating"
              for c in record.get("initContainers", []) + record["containers"]):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
        try:
            record = state.read(paths.pod_dir(name))
        except FileNotFoundError:
            break
    return record
