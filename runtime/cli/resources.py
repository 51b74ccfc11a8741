"""What the verbs name and read: kubectl's resource words, the pod records
a verb lists, the pods and objects of a manifest file.

    resource_names("po/web", ["db"])   -> ["web", "db"]    (pods only)
    resource_of("cm/settings")         -> ("configmaps", ["settings"])
    pod_records(paths, names, ns, every)  records from the state files, refreshed
    load_manifest(path, objects)       the pods of FILE, validated (file:line errors)
    placed(pods, namespace)            each pod with the namespace it goes to

Shared by get, describe, top, delete, inspect, run: no verb imports another.
"""
from __future__ import annotations

import sys

from minipod.runtime.cli.cmdutil import CommandError, find_pod

NAMESPACE_KINDS = ("namespaces", "namespace", "ns")
OBJECT_ALIASES = {"configmaps": "configmaps", "configmap": "configmaps", "cm": "configmaps",
                  "secrets": "secrets", "secret": "secrets"}


def resource_names(kind: str, names: list[str]) -> list[str]:
    """Accept kubectl's forms: `pods`, `pod NAME`, `po/NAME`, `pod/NAME`."""
    base, _, name = kind.partition("/")
    if base not in ("pods", "pod", "po"):
        raise CommandError(f'the server doesn\'t have a resource type "{base}"; '
                           f"minipod knows pods only")
    return ([name] if name else []) + [n.removeprefix("pod/") for n in names]


def resource_of(kind: str) -> tuple[str, list[str]] | None:
    """("configmaps"|"secrets", [NAME]) for kubectl's forms, or None."""
    base, _, name = kind.partition("/")
    if base not in OBJECT_ALIASES:
        return None
    return OBJECT_ALIASES[base], [name] if name else []


def object_names(resource: str, names: list[str]) -> list[str]:
    """NAME, or `configmap/NAME`, `configmaps/NAME` (secret alike) -> NAME."""
    singular = resource[:-1]
    return [n.split("/", 1)[1] if n.startswith((singular + "/", resource + "/")) else n
            for n in names]


def pod_records(paths, names: list[str], namespace: str = "default",
                all_namespaces: bool = False) -> list:
    """The records (PodRecord) of pods NAMES in NAMESPACE; no names: every pod there
    (all_namespaces: every pod), ordered by namespace, then name; each
    refreshed from the kernel (state.refreshed)."""
    from minipod.runtime import state
    if names and all_namespaces:
        raise CommandError("a resource cannot be retrieved by name across all namespaces")
    if names:
        return [state.refreshed(find_pod(paths, namespace, n)) for n in names]
    records, errors = state.read_records(paths.string("pods"))
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    records = [r for r in records if all_namespaces or (r.namespace or "default") == namespace]
    records.sort(key=lambda r: (r.namespace or "default", r.name))
    return [state.refreshed(r) for r in records]


def load_manifest(path: str, objects: list | None = None, data: bytes | None = None):
    """Parse and validate; warnings go to stderr like kubectl's. ConfigMaps
    and Secrets are appended to `objects` (refused when it is None). `data`:
    the file's bytes, if the caller read them already (stdin reads once)."""
    from minipod.runtime.api import manifest
    try:
        pods, warnings = manifest.load_file(path, objects, data)
    except manifest.ManifestError as e:
        raise CommandError(manifest.invalid_message(path, e))
    for w in warnings:
        print(f"Warning: {w}", file=sys.stderr)
    if not pods and not objects:
        raise CommandError(f"{path}: no objects to create")
    return pods


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

