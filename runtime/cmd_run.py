"""`minipod run FILE` and `minipod create -f FILE`: validate, then ask the agent.

The manifest is checked here, with file and line in every message, before
the agent is even contacted: bad input creates nothing. A file may hold
ConfigMaps and Secrets beside its Pods (any other kind is refused, and then
nothing in the file is created); they are stored first, so the pods find them.
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
    p.set_defaults(func=run, create=False)
    c = sub.add_parser("create", help="create the pods of a manifest (fails if one exists)",
                       description="Like `kubectl create -f FILE`: AlreadyExists if a pod "
                                   "of that name exists.")
    c.add_argument("-f", "--filename", dest="file", metavar="FILE", required=True)
    c.set_defaults(func=run, create=True, explain=False)


def load(path: str, objects: list | None = None):
    """Parse and validate; warnings go to stderr like kubectl's. ConfigMaps
    and Secrets are appended to `objects` (refused when it is None)."""
    from minipod.runtime import manifest
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


def put_objects(paths, objects: list, create: bool) -> None:
    """Store the file's ConfigMaps and Secrets (`configmap/x created`,
    `configured`, `unchanged`, as kubectl apply says)."""
    from minipod.runtime import client, configobjects
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


def run(args, paths) -> int:
    objects: list = []
    pods = load(args.file, objects)
    require_root("run" if not args.create else "create")
    from minipod.runtime import client, state
    put_objects(paths, objects, args.create)
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
        try:
            answer = client.request(paths, {"op": "run", "object": pod.raw,
                                            "source": pod.source, "explain": args.explain})
        except client.AgentError as e:
            raise server_error(e)
        if args.explain:
            from minipod import explain
            print(explain.render(answer.get("explain", [])) + "\n")
        print(f"pod/{pod.name} created")
        record = wait_for_images(paths, pod.name, answer["pod"])
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
            elif cs.get("configWait"):   # not a failure: it starts once the object exists
                sys.stdout.flush()          # after "pod/x created", as it happened
                print(f"waiting: pod {pod.name}: container {cs['name']}: {cs['reason']}: "
                      f"{cs.get('message')}", file=sys.stderr)
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
              and not c.get("configWait")    # waits for a ConfigMap or Secret: no end known
              for c in record.get("initContainers", []) + record["containers"]):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
        try:
            record = state.read(paths.pod_dir(name))
        except FileNotFoundError:
            break
    return record
