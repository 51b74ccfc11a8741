"""What the verb modules share: the one-line error, the NotFound sentence,
root check, -n, tables and -o yaml|json, the pod record a verb names."""
from __future__ import annotations

import os
import sys


class CommandError(Exception):
    """One line for the user, and the exit code."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def not_found(resource: str, name: str) -> CommandError:
    """kubectl's sentence for a missing object, the one place it is spelled:
    Error from server (NotFound): pods "web" not found. Raise it, or print
    it where a verb goes on with the next name (delete)."""
    return CommandError(f'Error from server (NotFound): {resource} "{name}" not found')


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise CommandError(f"minipod {what} needs root (namespaces, mounts, network links): "
                           f"run it with sudo: sudo minipod {what} …", 3)


def server_error(e) -> CommandError:
    """An agent refusal, worded like kubectl's: Error from server (NotFound): …"""
    return CommandError(f"Error from server ({e.code}): {e}")


def print_table(header: list[str], rows: list[list[str]], out=None) -> None:
    """kubectl's layout: columns padded to their widest cell plus three."""
    out = out or sys.stdout
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    for r in [header] + rows:
        cells = [str(c).ljust(w + 3) for c, w in zip(r[:-1], widths)] + [str(r[-1])]
        out.write("".join(cells).rstrip() + "\n")


def print_objects(objects: list[dict], output: str, single: bool) -> None:
    """`-o yaml|json` as kubectl prints it: the object itself when one was
    named (`single`), else a v1 List of them."""
    obj = objects[0] if single else {"apiVersion": "v1", "kind": "List", "items": objects,
                                     "metadata": {}}
    if output == "json":
        import json
        print(json.dumps(obj, indent=4))
    else:
        import yaml
        sys.stdout.write(yaml.safe_dump(obj, sort_keys=False, default_flow_style=False))


def add_namespace(p, all_namespaces: bool = False) -> None:
    """kubectl's -n/--namespace (and, for listing verbs, -A/--all-namespaces)."""
    p.add_argument("-n", "--namespace", metavar="NS", default=None,
                   help="the pod's namespace (default: default)")
    if all_namespaces:
        p.add_argument("-A", "--all-namespaces", action="store_true",
                       help="pods of every namespace (with a NAMESPACE column)")


def add_names(p, kinds: str, optional: bool = False) -> None:
    """KIND [NAME…], as kubectl's get, describe, delete take them (`pods`,
    `pod web`, `po/web`): the resources.py functions read them."""
    p.add_argument("kind", nargs="?" if optional else None, metavar=kinds)
    p.add_argument("names", nargs="*", metavar="NAME")


def add_step_flags(p, what: str) -> None:
    """--explain and --timings of the verbs the agent acts for (run, delete)."""
    p.add_argument("--explain", action="store_true",
                   help="print each kernel step as the shell command that does the same")
    p.add_argument("--timings", action="store_true",
                   help=f"print each step of the {what} with how long it took")


def add_daemon_action(p) -> None:
    """The ACTION of `agent` and `serve`: run (in the foreground, the
    default), start (in the background), stop, status."""
    p.add_argument("action", nargs="?", choices=["run", "start", "stop", "status"],
                   default="run")


def namespace_of(args) -> str:
    """The namespace a verb's -n names: default without one; a name no
    namespace can have is a usage error."""
    ns = getattr(args, "namespace", None)
    if not ns:
        return "default"
    from minipod.runtime.namespaces import invalid_name
    why = invalid_name(ns)
    if why:
        raise CommandError(f'invalid namespace "{ns}": {why.split(": ", 2)[-1]}', 2)
    return ns


def pod_key_of(args, name: str) -> str:
    """The key (runtime/paths.py pod_key) of pod NAME in the namespace -n names."""
    from minipod.runtime.paths import pod_key
    return pod_key(namespace_of(args), name)


def read_pod(paths, namespace: str, name: str):
    """The state record (PodRecord) of pod NAMESPACE/NAME; FileNotFoundError if there is
    none. The record must be that pod's: "a_web" in default is no name of
    pod web in namespace a, though it is that pod's key."""
    from minipod.runtime import state
    from minipod.runtime.paths import pod_key
    record = state.read_record(os.path.join(paths.string("pods"), pod_key(namespace, name)))
    if record.name != name or (record.namespace or "default") != namespace:
        raise FileNotFoundError(f"no pod {namespace}/{name}")
    return record


def find_pod(paths, namespace: str, name: str):
    """read_pod (a PodRecord), with kubectl's NotFound when there is no such pod, and a
    record that cannot be read (state.StateError) as its one line."""
    from minipod.runtime import state
    try:
        return read_pod(paths, namespace, name)
    except FileNotFoundError:
        raise not_found("pods", name) from None
    except state.StateError as e:
        raise CommandError(str(e)) from None
