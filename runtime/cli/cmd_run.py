"""`minipod run FILE` and `minipod create -f FILE`: validate, then ask the agent.

The manifest is checked here, with file and line in every message, before
the agent is even contacted: bad input creates nothing. A file may hold
ConfigMaps and Secrets beside its Pods (any other kind is refused, and then
nothing in the file is created); they are stored first, so the pods find them.
"""
from __future__ import annotations

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


def put_objects(paths, objects: list, create: bool, namespace: str | None = None) -> None:
    """Store the file's ConfigMaps and Secrets (`configmap/x created`,
    `configured`, `unchanged`, as kubectl apply says), each in the namespace
    its metadata names, else in -n's."""
    from minipod.runtime import client, configobjects, namespaces
    from minipod.runtime.api import podchange
    for obj in objects:     # all placed before any is stored: nothing half-made
        if namespace and obj.namespaced and obj.namespace != namespace:
            raise CommandError(namespaces.mismatch(obj.namespace, namespace))
        if namespace and not obj.namespaced:
            obj.namespace = obj.obj["metadata"]["namespace"] = namespace
    for obj in objects:
        what = f"{obj.kind.lower()}/{obj.name}"
        old = configobjects.read(paths, obj.resource, obj.namespace, obj.name)
        change = podchange.object_change(old, obj.obj)
        if change != podchange.CREATE and create:
            raise CommandError(f'Error from server (AlreadyExists): {obj.resource} '
                               f'"{obj.name}" already exists')
        if change == podchange.UNCHANGED:
            print(f"{what} unchanged")
            continue
        try:
            client.request(paths, {"op": "put_object", "object": obj.obj,
                                   "source": obj.source})
        except client.AgentError as e:
            raise server_error(e)
        print(f"{what} {'created' if change == podchange.CREATE else 'configured'}")


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
    if args.timings:
        from minipod.runtime import timings
        timings.start()
        timings.mark("CLI: start")     # only sets the origin: Python's start is before us
    objects: list = []
    namespace = args.namespace and namespace_of(args)
    pods = placed(load_manifest(args.file, objects), namespace)
    require_root("run" if not args.create else "create")
    from minipod.runtime import client, state
    from minipod.runtime.api import podchange
    put_objects(paths, objects, args.create, namespace)
    failed = False
    for pod, obj, key in pods:
        if not args.create:
            try:
                existing = state.read_record(paths.pod_dir(key))
            except FileNotFoundError:
                existing = None
            change = podchange.pod_change(existing, obj)
            if change == podchange.UNCHANGED:
                print(f"pod/{pod.name} unchanged")
                continue
            if change == podchange.CONFLICT:
                ns = (obj.get("metadata") or {}).get("namespace")
                flag = f" -n {ns}" if ns and ns != "default" else ""
                raise CommandError(f'Error from server (AlreadyExists): pods "{pod.name}" '
                                   f"already exists with another manifest; delete it first: "
                                   f"minipod delete pod {pod.name}{flag}")
        if args.timings:
            timings.mark("CLI: read and validate the manifest")
        try:
            answer = client.request(paths, {"op": "run", "object": obj,
                                            "source": pod.source, "explain": args.explain,
                                            "timings": args.timings})
        except client.AgentError as e:
            raise server_error(e)
        if args.timings:
            timings.mark("CLI: the agent's answer arrives")
            timings.add(answer.get("timings"))
        if args.explain:
            from minipod.linux import explain
            print(explain.render(answer.get("explain", [])) + "\n")
        print(f"pod/{pod.name} created")
        record = wait_for_images(paths, key, answer["pod"])
        if args.timings:
            timings.mark("CLI: wait for image pulls")
            print(timings.render(timings.stop(), title=f"pod/{pod.name}: where the start went"))
            timings.start()
            timings.mark("CLI: start")      # the next pod's origin
        for cs in record.all_containers():
            last = cs.last_state
            last_reason = last.reason if last else None
            if cs.reason == "StartError" or last_reason == "StartError":
                # the cause is the StartError's own message; a back-off's says only "back-off"
                msg = cs.message if cs.reason == "StartError" else last.message
                print(f"error: pod {pod.name}: container {cs.name} failed to start: {msg}",
                      file=sys.stderr)
                failed = True
            elif cs.reason in PULL_ERRORS:
                print(f"error: pod {pod.name}: container {cs.name}: {cs.reason}: "
                      f"{cs.message}", file=sys.stderr)
                failed = True
            elif cs.config_wait:   # not a failure: it starts once the object exists
                sys.stdout.flush()          # after "pod/x created", as it happened
                print(f"waiting: pod {pod.name}: container {cs.name}: {cs.reason}: "
                      f"{cs.message}", file=sys.stderr)
    return 1 if failed else 0


PULL_ERRORS = ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull")


def wait_for_images(paths, key: str, record, timeout: float = 600):
    """While images are pulled the containers wait in ContainerCreating;
    return the PodRecord once none does (pulled and started, or failed),
    like `run` promises. `record` is the agent's answer (the stored JSON);
    reads the state file after it: the agent is not kept busy."""
    import time
    from minipod.runtime import state
    from minipod.runtime.api.record import as_pod
    record = as_pod(record)
    deadline = time.monotonic() + timeout
    while any(c.state == "waiting" and c.reason == "ContainerCreating"
              and not c.config_wait    # waits for a ConfigMap or Secret: no end known
              for c in record.all_containers()):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
        try:
            record = state.read_record(paths.pod_dir(key))
        except FileNotFoundError:
            break
    return record
