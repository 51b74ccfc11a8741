"""ConfigMap and Secret objects: stored by the agent, read at container
start (what a valid one is, and its checks: runtime/api/configobject.py).

    RUN/objects/NAMESPACE/configmaps/NAME.json   0644   the API object
    RUN/objects/NAMESPACE/secrets/NAME.json      0600   the API object
    (every directory 0700: only root reads a Secret, and only root lists them)

The agent is the only writer (ops "put_object" and "delete_object",
runtime/agent/server.py), each file replaced whole
(minipod.linux.files.replace_file: temp file, fsync, rename), so
the API server and container starts read the old object or the new one.
A stored object is the API object as `kubectl get -o json` shows it, less
the resourceVersion (the API server's store numbers changes): a Secret's
values are base64 in `data`, its `stringData` already folded in, as
kube-apiserver does on write.

At container start the agent asks `container_env` for the variables a
container takes from these objects and from the pod (the downward API).
A missing object or key that is not optional raises ConfigError with the
kubelet's own message (`configmap "x" not found`); the container then
waits with reason CreateContainerConfigError until the object appears.
"""
from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path

from minipod.runtime.api.configobject import KINDS, values
from minipod.runtime.api.timestamps import rfc3339


class ConfigError(Exception):
    """A container cannot be configured yet: the kubelet's message."""


# ---------------------------------------------------------------------------
# Storage (the agent writes; anyone root reads)

def objects_dir(paths) -> Path:
    return paths.run / "objects"


def object_path(paths, resource: str, namespace: str, name: str) -> Path:
    """Where an object lives. The names were checked (DNS labels and
    subdomains); checked again here, as every caller's input becomes a path."""
    for part in (resource, namespace, name):
        if not part or "/" in part or part.startswith(".") or "\0" in part:
            raise ValueError(f"not a valid object name: {part!r}")
    return objects_dir(paths) / namespace / resource / f"{name}.json"


ROOT_CA = "kube-root-ca.crt"
ROOT_CA_DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters.")


def root_ca(paths, ns: str) -> dict | None:
    """NS's kube-root-ca.crt (None: no CA yet, or no namespace NS)."""
    import hashlib
    from minipod.runtime import namespaces
    from minipod.runtime import pki
    if namespaces.read(paths, ns) is None:
        return None
    crt = pki.files(paths).ca_crt
    try:
        pem = crt.read_text()
        made = os.stat(crt).st_mtime
    except OSError:
        return None
    h = hashlib.sha256(f"{ns}/{ROOT_CA}/{pem}".encode()).hexdigest()
    return {"kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": ROOT_CA, "namespace": ns,
                         "uid": f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}",
                         "resourceVersion": "1",     # it never changes
                         "creationTimestamp": rfc3339(made),
                         "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION}},
            "data": {"ca.crt": pem}}


def read(paths, resource: str, namespace: str, name: str) -> dict | None:
    """The stored object, or None when there is none (kube-root-ca.crt is
    made, not stored: root_ca)."""
    if resource == "configmaps" and name == ROOT_CA:
        return root_ca(paths, namespace)
    try:
        return json.loads(object_path(paths, resource, namespace, name).read_bytes())
    except FileNotFoundError:
        return None


def scan(paths):
    """(resource, namespace, name, path) of every stored object."""
    base = objects_dir(paths)
    try:
        namespaces = sorted(os.listdir(base))
    except FileNotFoundError:
        return
    for ns in namespaces:
        for resource in KINDS.values():
            try:
                files = sorted(os.listdir(base / ns / resource))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for f in files:
                if f.endswith(".json") and not f.startswith("."):
                    yield resource, ns, f[:-5], base / ns / resource / f


class Conflict(Exception):
    """The change is not allowed (immutable object, stale version)."""


def put(paths, obj: dict) -> tuple[dict, bool]:
    """Store a checked object (create or replace): (stored, created).
    Keeps uid and creationTimestamp of the object it replaces; an
    immutable object may not change its data (kube-apiserver's rule)."""
    from minipod.linux import files
    resource, meta = KINDS[obj["kind"]], obj["metadata"]
    path = object_path(paths, resource, meta["namespace"], meta["name"])
    old = read(paths, resource, meta["namespace"], meta["name"])
    new = json.loads(json.dumps(obj))
    new_meta = new["metadata"]
    for key in ("resourceVersion", "managedFields", "selfLink", "generation"):
        new_meta.pop(key, None)
    if old is not None:
        if old.get("immutable"):
            what = {k: old.get(k) for k in ("data", "binaryData", "immutable")}
            if what != {k: new.get(k) for k in what}:
                raise Conflict(f'{obj["kind"]} "{meta["name"]}" is invalid: data: Forbidden: '
                               f"field is immutable when `immutable` is set")
        new_meta["uid"] = old["metadata"]["uid"]
        new_meta["creationTimestamp"] = old["metadata"]["creationTimestamp"]
    else:
        new_meta["uid"] = str(uuid.uuid4())
        new_meta["creationTimestamp"] = rfc3339()
    for d in (objects_dir(paths), path.parent.parent, path.parent):
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(d, 0o700)
    mode = 0o600 if obj["kind"] == "Secret" else 0o644
    files.replace_file(path, json.dumps(new, sort_keys=True).encode(), mode)
    os.chmod(path, mode)
    return new, old is None


def remove(paths, resource: str, namespace: str, name: str) -> dict | None:
    """Delete a stored object; the object it was, or None if there was none."""
    old = read(paths, resource, namespace, name)
    if old is not None:
        object_path(paths, resource, namespace, name).unlink(missing_ok=True)
    return old


# ---------------------------------------------------------------------------
# What a container takes from them (and from its pod): env

def lookup(paths, kind: str, namespace: str, name: str, optional: bool) -> dict | None:
    """The object's values, None when missing and optional; ConfigError
    (the kubelet's words) when missing and required."""
    obj = read(paths, KINDS[kind], namespace, name)
    if obj is None:
        if optional:
            return None
        raise ConfigError(f'{kind.lower()} "{name}" not found')
    return values(obj)


def field_value(record, pod, path: str) -> str:
    """A downward API fieldPath of the pod (env, or a downwardAPI file);
    `record` is its PodRecord."""
    from minipod.runtime.api import configrefs
    sub = configrefs.SUBSCRIPTED.fullmatch(path)
    if sub:
        source = pod.labels if sub.group(1) == "labels" else pod.annotations
        return source.get(sub.group(2), "")
    if path in ("metadata.labels", "metadata.annotations"):
        source = pod.labels if path == "metadata.labels" else pod.annotations
        # the kubelet's format: one key="value" a line, sorted, Go-quoted
        return "\n".join(f"{k}={json.dumps(v)}" for k, v in sorted(source.items()))
    return {
        "metadata.name": pod.name,
        "metadata.namespace": pod.namespace,
        "metadata.uid": record.uid,
        "spec.nodeName": record.node_name or "",
        "spec.serviceAccountName": "default",
        "status.hostIP": record.host_ip or "",
        "status.hostIPs": record.host_ip or "",
        "status.podIP": record.pod_ip or "",
        "status.podIPs": record.pod_ip or "",
    }.get(path, "")


def resource_value(ref: dict, pod) -> str:
    """A resourceFieldRef's value (kubelet's ExtractResourceValueByContainerName):
    cpu rounded up to the divisor, memory and storage in divisor units; a
    limit the container does not set is the node's allocatable."""
    from minipod.runtime.api.podtypes import Resources
    from minipod.runtime.api.quantity import parse_quantity
    c = next((c for c in pod.init_containers + pod.containers
              if c.name == ref["containerName"]), None)
    r = c.resources if c is not None else Resources()
    divisor = parse_quantity(ref.get("divisor") or "1")
    resource = ref["resource"]
    if resource.endswith(".cpu"):
        milli = r.cpu_limit_milli if resource == "limits.cpu" else r.cpu_request_milli
        if milli is None:
            milli = (os.cpu_count() or 1) * 1000 if resource == "limits.cpu" else 0
        return str(math.ceil(milli / (float(divisor) * 1000)))
    if resource.endswith(".memory"):
        value = r.memory_limit if resource == "limits.memory" else r.memory_request
        if value is None:
            value = _mem_total() if resource == "limits.memory" else 0
    else:
        value = r.ephemeral_storage_limit if resource.startswith("limits") else None
        if value is None:
            value = _disk_total() if resource.startswith("limits") else 0
    return str(math.ceil(value / float(divisor)))


def _mem_total() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _disk_total() -> int:
    st = os.statvfs("/")
    return st.f_blocks * st.f_frsize


def container_env(paths, record, pod, c) -> tuple[list[tuple[str, str]], bool]:
    """The container's variables in Kubernetes' order (envFrom entries in
    order, then env, a later name winning), as (name, value) with values
    from objects escaped so that $(VAR) in them stays as written; and
    whether any value came from a Secret. ConfigError if a required
    object or key is missing."""
    from minipod.runtime.api.names import ENV_VAR_NAME
    out: list[tuple[str, str]] = []
    secret = False

    def text(b: bytes) -> str:
        return b.decode("utf-8", "replace").replace("$", "$$")

    for ref in c.env_from:
        kind = "ConfigMap" if ref["kind"] == "configMap" else "Secret"
        found = lookup(paths, kind, pod.namespace, ref["name"], ref["optional"])
        if found is None:
            continue
        secret |= kind == "Secret"
        for key, value in sorted(found.items()):
            name = ref["prefix"] + key
            if ENV_VAR_NAME.fullmatch(name):   # others are skipped, as upstream
                out.append((name, text(value)))
    for e in c.env:
        src = e.value_from
        if src is None:
            out.append((e.name, e.value))
            continue
        if "configMapKeyRef" in src or "secretKeyRef" in src:
            kind = "ConfigMap" if "configMapKeyRef" in src else "Secret"
            ref = src.get("configMapKeyRef") or src["secretKeyRef"]
            found = lookup(paths, kind, pod.namespace, ref["name"], ref["optional"])
            if found is None:
                continue
            if ref["key"] not in found:
                if ref["optional"]:
                    continue
                raise ConfigError(f"couldn't find key {ref['key']} in {kind} "
                                  f"{pod.namespace}/{ref['name']}")
            secret |= kind == "Secret"
            out.append((e.name, text(found[ref["key"]])))
        elif "fieldRef" in src:
            out.append((e.name, text(field_value(record, pod, src["fieldRef"]["fieldPath"])
                                     .encode())))
        else:
            out.append((e.name, resource_value(src["resourceFieldRef"], pod)))
    return out, secret


def names_used(pod) -> set[tuple[str, str]]:
    """(resource, name) of every object the pod's env and volumes name."""
    used = set()
    for c in pod.init_containers + pod.containers:
        for ref in c.env_from:
            used.add(("configmaps" if ref["kind"] == "configMap" else "secrets", ref["name"]))
        for e in c.env:
            for key, resource in (("configMapKeyRef", "configmaps"),
                                  ("secretKeyRef", "secrets")):
                if e.value_from and key in e.value_from:
                    used.add((resource, e.value_from[key]["name"]))
    for v in pod.volumes:
        if v.kind == "configMap":
            used.add(("configmaps", v.source["name"]))
        elif v.kind == "secret":
            used.add(("secrets", v.source["name"]))
        elif v.kind == "projected":
            for src in v.source["sources"]:
                for kind, resource in (("configMap", "configmaps"), ("secret", "secrets")):
                    if kind in src:
                        used.add((resource, src[kind]["name"]))
    return used


def uses_secret_env(c) -> bool:
    """Does the container take any variable from a Secret?"""
    return any(r["kind"] == "secret" for r in c.env_from) or any(
        e.value_from and "secretKeyRef" in e.value_from for e in c.env)
