"""Namespaces: one JSON file each, RUN/namespaces/NAME.json, written by the agent.

    default kube-node-lease kube-public kube-system    always there (BUILTIN)
    anything else                                       made and deleted by users

A record is {"name", "uid", "creationTimestamp", "labels", "annotations",
"phase"} and, once its deletion began, "deletionTimestamp" with phase
Terminating: the agent then deletes every pod in it (each with its grace
period) and removes the file when the last one is gone (the namespace
controller's order). A built-in namespace whose file is missing (no agent
has run yet) is still there, as a record made up here; the agent writes
those files when it starts. The agent is the only writer (files.replace_file:
a reader sees the old file or the new one); the CLI and the API server read.

By hand:   cat /run/minipod/namespaces/team-a.json
"""
from __future__ import annotations

import json
import os
import re
import time
import uuid

from minipod.linux import files
from minipod.runtime import state
from minipod.runtime.api.timestamps import rfc3339

DEFAULT = "default"
BUILTIN = ("default", "kube-node-lease", "kube-public", "kube-system")
SCHEMA_VERSION = 1
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")


class NamespaceError(Exception):
    """A refusal with its Kubernetes reason: NotFound, AlreadyExists, Forbidden, Invalid."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def display(namespace: str | None, name: str) -> str:
    """How messages name a pod: NAME in default, NAMESPACE/NAME elsewhere."""
    ns = namespace or DEFAULT
    return name if ns == DEFAULT else f"{ns}/{name}"


def mismatch(file_ns: str, flag_ns: str) -> str:
    """kubectl's words when -n says another namespace than the object."""
    return (f"the namespace from the provided object \"{file_ns}\" does not match the "
            f"namespace \"{flag_ns}\". You must pass '--namespace={file_ns}' to perform "
            f"this operation.")


def invalid_name(name: str) -> str | None:
    """Why NAME cannot name a namespace (a DNS-1123 label), or None; the apiserver's words."""
    if not isinstance(name, str) or not name:
        return "metadata.name: Required value: name or generateName is required"
    problems = []
    if len(name) > 63:
        problems.append("must be no more than 63 characters")
    if not _LABEL.match(name):
        problems.append("a lowercase RFC 1123 label must consist of lower case alphanumeric "
                        "characters or '-', and must start and end with an alphanumeric "
                        "character (e.g. 'my-name',  or '123-abc', regex used for validation "
                        "is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
    if not problems:
        return None
    return f'metadata.name: Invalid value: "{name}": ' + ", ".join(problems)


def _builtin_record(paths, name: str) -> dict:
    """A built-in namespace as it is before the agent writes it: created
    when this state root was (its identity file), uid fixed by its name."""
    try:
        created = os.stat(paths.identity_file).st_mtime
    except OSError:
        created = time.time()
    return {"name": name, "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"minipod:ns:{name}")),
            "creationTimestamp": rfc3339(created),
            "labels": {}, "annotations": {}, "phase": "Active", "version": SCHEMA_VERSION}


def read(paths, name: str | None) -> dict | None:
    """Namespace NAME's record, None if there is no such namespace."""
    name = name or DEFAULT
    if invalid_name(name):
        return None           # not a file name we would ever have written ("../x")
    try:
        record = json.loads(paths.namespace_file(name).read_bytes())
    except FileNotFoundError:
        return _builtin_record(paths, name) if name in BUILTIN else None
    except (OSError, ValueError) as e:
        raise state.StateError(f"cannot read namespace {paths.namespace_file(name)}: {e}")
    return record if isinstance(record, dict) and record.get("name") == name else None


def read_all(paths) -> list[dict]:
    """Every namespace, sorted by name (unreadable files are skipped)."""
    try:
        names = {f[:-5] for f in os.listdir(paths.namespaces)
                 if f.endswith(".json") and not f.startswith(".")}
    except FileNotFoundError:
        names = set()
    out = []
    for name in sorted(names | set(BUILTIN)):
        try:
            record = read(paths, name)
        except state.StateError:
            continue
        if record is not None:
            out.append(record)
    return out


def _write(paths, record: dict) -> None:
    paths.namespaces.mkdir(parents=True, exist_ok=True)
    files.replace_file(paths.namespace_file(record["name"]),
                       json.dumps(record, indent=1, sort_keys=True).encode())


def ensure_builtin(paths) -> None:
    """Write the built-in namespaces' files if missing (agent start)."""
    for name in BUILTIN:
        if not paths.namespace_file(name).exists():
            _write(paths, _builtin_record(paths, name))


def create(paths, name: str, labels: dict | None = None,
           annotations: dict | None = None) -> dict:
    """Make namespace NAME; NamespaceError(AlreadyExists|Invalid) if it cannot be."""
    why = invalid_name(name)
    if why:
        raise NamespaceError("Invalid", f'Namespace "{name}" is invalid: {why}')
    if read(paths, name) is not None:
        raise NamespaceError("AlreadyExists", f'namespaces "{name}" already exists')
    record = {"name": name, "uid": str(uuid.uuid4()),
              "creationTimestamp": rfc3339(),
              "labels": dict(labels or {}), "annotations": dict(annotations or {}),
              "phase": "Active", "version": SCHEMA_VERSION}
    _write(paths, record)
    return record


def update(paths, name: str, labels: dict, annotations: dict) -> dict:
    """Set NAME's labels and annotations (what may change in a namespace)."""
    record = read(paths, name)
    if record is None:
        raise NamespaceError("NotFound", f'namespaces "{name}" not found')
    record.update(labels=dict(labels or {}), annotations=dict(annotations or {}))
    _write(paths, record)
    return record


def mark_terminating(paths, name: str, now: str) -> dict:
    """Begin deleting NAME: phase Terminating (again: unchanged). Built-ins refuse."""
    if name in BUILTIN:
        raise NamespaceError("Forbidden", f'namespaces "{name}" is forbidden: this namespace '
                                          f"may not be deleted")
    record = read(paths, name)
    if record is None:
        raise NamespaceError("NotFound", f'namespaces "{name}" not found')
    if not record.get("deletionTimestamp"):
        record.update(phase="Terminating", deletionTimestamp=now)
        _write(paths, record)
    return record


def remove_if_terminating(paths, name: str) -> bool:
    """Remove NAME's file if its deletion began; True if it is gone now."""
    record = read(paths, name)
    if record is None:
        return True
    if not record.get("deletionTimestamp"):
        return False
    try:
        os.unlink(paths.namespace_file(name))
    except FileNotFoundError:
        pass
    return True


def to_object(record: dict, rv: str = "") -> dict:
    """The v1 Namespace object of a record."""
    meta = {"name": record["name"], "uid": record.get("uid"),
            "creationTimestamp": record.get("creationTimestamp"),
            "labels": dict(record.get("labels") or {},
                           **{"kubernetes.io/metadata.name": record["name"]})}
    if rv:
        meta["resourceVersion"] = rv
    if record.get("annotations"):
        meta["annotations"] = dict(record["annotations"])
    if record.get("deletionTimestamp"):
        meta["deletionTimestamp"] = record["deletionTimestamp"]
    status = {"phase": record.get("phase", "Active")}
    return {"kind": "Namespace", "apiVersion": "v1", "metadata": meta,
            "spec": {"finalizers": ["kubernetes"]}, "status": status}
