"""`minipod run FILE` and `minipod create -f FILE`: validate, then ask the agent.

The manifest is checked here, with file and line in every message, before
the agent is even contacted: bad input creates nothing. A file may hold
ConfigMaps and Secrets beside its Pods (any other kind is refused, and then
nothing in the file is created); they are stored first, so the pods find them.
"""
from __future__ import annotations

import sys

from minipod.runtime.cli.cmdutil import (CommandError, add_namespace, namespace_of, require_root,
                                     server_error)


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


def load(path: str, objects: list | None = None):
    """Parse and validate; warnings go to stderr like kubectl's. ConfigMaps
    and Secrets are appended to `objects` (refused when it is None)."""
    from minipod.runtime.api import manifest
    try:
        pods, warnings = manifest.load_file(path, objects)
    except manifest.ManifestError as e:
        raise CommandError(f"{path} is not a valid Pod manifest:\n" +
                           "\n".join(f"  {p}" for p in e.problems))
    for w in warnings:
        print(f"Warning: {w}", file=sys.stderr)
    if not pods and not objects:
        raise CommandError(f"{path}: no objects to create")
    return pods


def put_objects(paths, objects: list, create: bool, namespace: str | None = None) -> None:
    """Store the file's ConfigMaps and Secrets (`configmap/x created`,
    `configured`, `unchanged`, as kubectl apply says), each in the namespace
    its metadata names, else in -n's."""
    from minipod.runtime import client, configobjects, namespaces
    for obj in objects:     # all placed before any is stored: nothing half-made
        if namespace and obj.namespaced and obj.namespace != namespace:
            raise CommandError(namespaces.mismatch(obj.namespace, namespace))
        if namespace and not obj.namespaced:
            obj.namespace = obj.obj["metadata"]["namespace"] = namespace
    for obj in objects:
        what = f"{obj.kind.lower()}/{obj.name}"
        old = configobjects.read(paths, obj.resource, obj.namespace, obj.name)
        if old is not None:
            if create:
                raise CommandError(f'Error from server (AlreadyExists): {obj.resource} '
                                   f'"{obj.name}" already exists')
            same = {k: v for k, v in old.items() if k != "metadata"} == \
                {k: v for k, v in obj.obj.items() if k != "metadata"} and all(
                    old["metadata"].get(k) == obj.obj["metadata"].get(k)
                    for k in ("labels", "annotations"))
            if same:
                print(f"{what} unchanged")
                continue
        try:
            client.request(paths, {"op": "put_object", "object": obj.obj,
                                   "source": obj.source})
        except client.AgentError as e:
            raise server_error(e)
        print(f"{what} {'created' if old is None else 'configured'}")


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


def placed(pods, namespace: str | None) -> list[tuple[object, dict, str]]:
    """(pod, the object to send, its key) for each pod: in the namespace its
    metadata names, else in -n's, else in default. A -n that contradicts
    the file is kubectl's error, before anything is made."""
    from minipod.runtime import namespaces
    from minipod.runtime.paths import pod_key
    out = []
    for pod in pods:
        meta = pod.raw.get("metadata") or {}
        own = meta.get("namespace")
        if namespace and own and own != namespace:
            raise CommandError(namespaces.mismatch(own, namespace))
        obj = pod.raw
        if namespace and not own:
            obj = dict(pod.raw, metadata=dict(meta, namespace=namespace))
        out.append((pod, obj, pod_key(own or namespace, pod.name)))
    return out


def _same(a: dict | None, b: dict) -> bool:
    """One manifest, whether or not its namespace is written out (the key has it)."""
    def bare(m):
        meta = {k: v for k, v in (m.get("metadata") or {}).items() if k != "namespace"}
        return dict(m, metadata=meta)
    return isinstance(a, dict) and bare(a) == bare(b)


def run(args, paths) -> int:
    if args.timings:
        from minipod import timings
        timings.start()
        timings.mark("CLI: start")     # only sets the origin: Python's start is before us
    objects: list = []
    namespace = args.namespace and namespace_of(args)
    pods = placed(load(args.file, objects), namespace)
    require_root("run" if not args.create else "create")
    from minipod.runtime import client, state
    put_objects(paths, objects, args.create, namespace)
    failed = False
    for pod, obj, key in pods:
        if not args.create:
            try:
                existing = state.read_record(paths.pod_dir(key))
            except FileNotFoundError:
                existing = None
            if existing is not None:
                if _same(existing.manifest, obj):
                    print(f"pod/{pod.name} unchanged")
                    continue
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
            from minipod import explain
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
