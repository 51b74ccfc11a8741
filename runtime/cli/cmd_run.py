"""`minipod run FILE` and `minipod create -f FILE`: the file to the agent, its answers printed.

The agent checks the file, with file and line in every message, before it
makes anything: bad input creates nothing (agent/server.py op_apply; the
agent has the checks imported, which would cost this command ~35 ms). A
file may hold ConfigMaps and Secrets beside its Pods (any other kind is
refused, and then nothing in the file is created); they are stored first,
so the pods find them.
"""
from __future__ import annotations

import os
import sys

from minipod.runtime.cli.cmdutil import (CommandError, add_namespace, add_step_flags, namespace_of,
                                         require_root, server_error)
from minipod.runtime.cli.resources import load_manifest, placed


def register(sub) -> None:
    p = sub.add_parser("run", help="create the pods of a manifest and start them",
                       description="Create every Pod in FILE (YAML, several documents "
                                   "allowed, or JSON; - reads stdin) and wait until its "
                                   "containers run. A pod that already exists with the "
                                   "same manifest is left unchanged.")
    p.add_argument("file", metavar="FILE")
    add_step_flags(p, "start")
    add_namespace(p)
    p.set_defaults(func=run, create=False)
    c = sub.add_parser("create", help="create the pods of a manifest (fails if one exists)",
                       description="Like `kubectl create -f FILE`: AlreadyExists if a pod "
                                   "of that name exists; `create namespace NAME` makes a "
                                   "namespace.")
    c.add_argument("what", nargs="*", metavar="namespace NAME")
    c.add_argument("-f", "--filename", dest="file", metavar="FILE")
    add_namespace(c)
    c.set_defaults(func=create, create=True, explain=False, timings=False)


def create(args, paths) -> int:
    """`create -f FILE` (the pods of a file), or `create namespace NAME`."""
    if args.what and args.what[0] in ("namespace", "namespaces", "ns") and not args.file:
        if len(args.what) != 2:
            raise CommandError("say one name: minipod create namespace NAME", 2)
        require_root("create")
        from minipod.runtime import client
        try:
            client.request(paths, {"op": "namespace_create", "name": args.what[1]})
        except client.AgentError as e:
            raise server_error(e)
        print(f"namespace/{args.what[1]} created")
        return 0
    if args.what or not args.file:
        raise CommandError("say what to create: minipod create -f FILE, or "
                           "minipod create namespace NAME", 2)
    return run(args, paths)


def run(args, paths) -> int:
    """Send the file's text to the agent, which checks it and makes what it
    holds (agent/server.py op_apply), then print each result as kubectl does
    and wait for image pulls. Checked here first when the agent is not
    running or we are not root: bad input then starts no agent, and reads
    its errors before "needs root"."""
    if args.timings:
        from minipod.runtime import timings
        timings.start()
        timings.mark("CLI: start")     # only sets the origin: Python's start is before us
    namespace = args.namespace and namespace_of(args)
    data = _read(args.file)
    text = _utf8(data)
    from minipod.runtime import client
    checked_here = text is None or os.geteuid() != 0 or not client.agent_running(paths)
    if checked_here:        # its warnings said here: the agent's are the same
        placed(load_manifest(args.file, [], data), namespace)
        require_root("run" if not args.create else "create")
    if args.timings:
        timings.mark("CLI: read the manifest")
    try:
        answer = client.request(paths, {"op": "apply", "path": args.file, "text": text,
                                        "namespace": namespace, "create": args.create,
                                        "explain": args.explain, "timings": args.timings})
    except client.AgentError as e:
        if e.code == "ManifestInvalid":     # the file: said as the CLI says it, no server
            raise CommandError(str(e)) from None
        raise server_error(e)
    if args.timings:
        timings.mark("CLI: the agent's answer arrives")
    for w in [] if checked_here else answer["warnings"]:
        print(f"Warning: {w}", file=sys.stderr)
    failed = False
    for result in answer["results"]:
        if "pod" not in result:
            print(f"{result['what']} {result['change']}")
            continue
        failed |= _started(args, paths, result)
    if answer["error"]:
        raise server_error(client.AgentError(answer["error"]["code"],
                                             answer["error"]["message"]))
    return 1 if failed else 0


def _read(path: str) -> bytes | None:
    """The file's bytes ("-": stdin's), None if it cannot be read."""
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        with open(path, "rb") as f:
            return f.read()
    except (OSError, AttributeError):
        return None


def _utf8(data: bytes | None) -> str | None:
    try:
        return data.decode("utf-8") if data is not None else None
    except UnicodeDecodeError:
        return None


def _started(args, paths, result: dict) -> bool:
    """Print one pod's result; wait for its images; True if a container failed."""
    name = result["what"].partition("/")[2]
    if args.explain:
        from minipod.linux import explain
        print(explain.render(result.get("explain", [])) + "\n")
    print(f"{result['what']} {result['change']}")
    if result["change"] == "unchanged":
        return False
    if args.timings:
        from minipod.runtime import timings
        timings.add(result.get("timings"))
    record = wait_for_images(paths, result["key"], result["pod"])
    if args.timings:
        timings.mark("CLI: wait for image pulls")
        print(timings.render(timings.stop(), title=f"{result['what']}: where the start went"))
        timings.start()
        timings.mark("CLI: start")      # the next pod's origin
    failed = False
    for cs in record.all_containers():
        last = cs.last_state
        last_reason = last.reason if last else None
        if cs.reason == "StartError" or last_reason == "StartError":
            # the cause is the StartError's own message; a back-off's says only "back-off"
            msg = cs.message if cs.reason == "StartError" else last.message
            print(f"error: pod {name}: container {cs.name} failed to start: {msg}",
                  file=sys.stderr)
            failed = True
        elif cs.reason in PULL_ERRORS:
            print(f"error: pod {name}: container {cs.name}: {cs.reason}: "
                  f"{cs.message}", file=sys.stderr)
            failed = True
        elif cs.config_wait:   # not a failure: it starts once the object exists
            sys.stdout.flush()          # after "pod/x created", as it happened
            print(f"waiting: pod {name}: container {cs.name}: {cs.reason}: "
                  f"{cs.message}", file=sys.stderr)
    return failed


PULL_ERRORS = ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull")


def wait_for_images(paths, key: str, record, timeout: float = 600):
    """While images are pulled the containers wait in ContainerCreating;
    return the PodRecord once none does (pulled and started, or failed),
    like `run` promises. `record` is the agent's answer (the stored JSON);
    reads the state file after it: the agent is not kept busy."""
    import time
    from minipod.runtime.api.record import as_pod
    record = as_pod(record)
    deadline = time.monotonic() + timeout
    while any(c.state == "waiting" and c.reason == "ContainerCreating"
              and not c.config_wait    # waits for a ConfigMap or Secret: no end known
              for c in record.all_containers()):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
        from minipod.runtime import state     # only when it waits: most starts do not
        try:
            record = state.read_record(paths.pod_dir(key))
        except FileNotFoundError:
            break
    return record
