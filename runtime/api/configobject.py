"""ConfigMap and Secret objects: what a valid one is (pure; storing them
is runtime/configobjects.py).

    check_object(obj, check) -> ConfigObject | None   a document of a manifest
                                                      (manifest.load_file)
    load_object(obj) -> (ConfigObject, warnings)      an object from the API
    values(stored) -> {key: bytes}                    every key of a stored one

A ConfigObject's ``obj`` is the object as it is stored and shown (`kubectl
get -o json`, less uid and creationTimestamp, which the agent adds): a
Secret's values base64 in ``data``, its ``stringData`` already folded in,
as kube-apiserver does on write. The checks are the API server's: the
fields of each kind, DNS names, label keys, config keys (IsConfigMapKey),
base64 where bytes are due, the keys each Secret type needs, 1 MiB in all.
Every message names the file, line and field, as a Pod's do.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from minipod.runtime.api.checker import Checker, by_line, plain_copy, suggest
from minipod.runtime.api.names import (check_label, check_subdomain, config_key_problem,
                                       label_value_problems, qualified_name_problems)
from minipod.runtime.api.podtypes import ManifestError, Problem

KINDS = {"ConfigMap": "configmaps", "Secret": "secrets"}
RESOURCE_KINDS = {v: k for k, v in KINDS.items()}
MAX_BYTES = 1024 * 1024          # kube-apiserver's limit for either kind
SECRET_TYPES_KEYS = {            # keys a Secret of a type must hold
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
    "kubernetes.io/basic-auth": (),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/dockercfg": (".dockercfg",),
}

# The fields of the two kinds (Kubernetes 1.32); the system fields of
# metadata are accepted and replaced by the server's.
FIELDS = {"ConfigMap": {"apiVersion", "kind", "metadata", "data", "binaryData", "immutable"},
          "Secret": {"apiVersion", "kind", "metadata", "data", "stringData", "type",
                     "immutable"}}
META_FIELDS = {"name", "namespace", "labels", "annotations", "generateName"}
META_SYSTEM = {"creationTimestamp", "deletionGracePeriodSeconds", "deletionTimestamp",
               "finalizers", "generation", "managedFields", "ownerReferences",
               "resourceVersion", "selfLink", "uid"}


@dataclass
class ConfigObject:
    """A checked ConfigMap or Secret: ``obj`` is the object as stored
    (without uid, creationTimestamp: the agent adds those)."""
    kind: str                   # "ConfigMap" | "Secret"
    name: str
    namespace: str
    obj: dict
    source: str = ""
    line: int | None = None
    namespaced: bool = False    # metadata.namespace was written (else: -n's, or default)

    @property
    def resource(self) -> str:
        return KINDS[self.kind]


def values(obj: dict) -> dict[str, bytes]:
    """Every key of a stored ConfigMap or Secret with its bytes."""
    out: dict[str, bytes] = {}
    if obj.get("kind") == "Secret":
        for k, v in (obj.get("data") or {}).items():
            out[k] = base64.b64decode(v)
        return out
    for k, v in (obj.get("data") or {}).items():
        out[k] = v.encode()
    for k, v in (obj.get("binaryData") or {}).items():
        out[k] = base64.b64decode(v)
    return out


# ---------------------------------------------------------------------------
# Checking (checker.Checker: file, line and field in every message)

def check_object(obj: dict, check) -> ConfigObject | None:
    """Check a ConfigMap or Secret document; the object to store, or None."""
    kind = obj.get("kind")
    before = len(check.errors)
    for key in obj:
        if key in FIELDS[kind]:
            continue
        if key == "status":
            check.error((key,), f"a {kind} has no status")
            continue
        guess = suggest(str(key), FIELDS[kind])
        check.error((key,), f'unknown field "{key}"' + (f'; did you mean "{guess}"?'
                                                        if guess else ""))
    api = obj.get("apiVersion")
    if api is None:
        check.error(("apiVersion",), 'required field is missing; add "apiVersion: v1"')
    elif api != "v1":
        check.error(("apiVersion",), f'apiVersion "{api}" is not supported: {kind}s are '
                                     f'apiVersion "v1"')
    meta = check.get(obj, "metadata", (), dict)
    if meta is None:
        check.error(("metadata",), "required field is missing")
        return None
    for key in meta:
        if key not in META_FIELDS | META_SYSTEM:
            guess = suggest(str(key), META_FIELDS)
            check.error(("metadata", key), f'unknown field "{key}"'
                        + (f'; did you mean "{guess}"?' if guess else ""))
    name = check.get(meta, "name", ("metadata",), str)
    if not name:
        check.error(("metadata", "name"), "required field is missing")
    else:
        check_subdomain(name, ("metadata", "name"), check)
    namespace = check.get(meta, "namespace", ("metadata",), str)
    if namespace:
        check_label(namespace, ("metadata", "namespace"), check)
    labels = check.string_map(meta, "labels", ("metadata",))
    for key, value in labels.items():
        for message in qualified_name_problems(key) + label_value_problems(value):
            check.error(("metadata", "labels", key), f'invalid label "{key}": {message}')
    annotations = check.string_map(meta, "annotations", ("metadata",))
    immutable = check.get(obj, "immutable", (), bool)
    out = {"apiVersion": "v1", "kind": kind,
           "metadata": {"name": name, "namespace": namespace or "default"}}
    if labels:
        out["metadata"]["labels"] = labels
    if annotations:
        out["metadata"]["annotations"] = annotations
    if immutable is not None:
        out["immutable"] = immutable
    seen: dict[str, tuple] = {}

    def key_ok(key, where) -> bool:
        problem = config_key_problem(key)
        if problem:
            check.error(where, f'invalid key "{key}": {problem}')
            return False
        if key in seen:
            check.error(where, f'duplicate key "{key}" (also at {check.where(seen[key])})')
            return False
        seen[key] = where
        return True

    if kind == "ConfigMap":
        data = check.string_map(obj, "data", ())
        binary = check.string_map(obj, "binaryData", ())
        for key in data:
            key_ok(key, ("data", key))
        for key, value in binary.items():
            if key_ok(key, ("binaryData", key)) and _b64(value) is None:
                check.error(("binaryData", key), "must be base64 (binaryData holds bytes; "
                                                 "put text under data)")
        if data:
            out["data"] = data
        if binary:
            out["binaryData"] = binary
    else:
        stype = check.get(obj, "type", (), str) or "Opaque"
        out["type"] = stype
        data = check.string_map(obj, "data", ())
        folded = {}
        for key, value in data.items():
            if key_ok(key, ("data", key)):
                if _b64(value) is None:
                    check.error(("data", key), "must be base64 (a Secret's data holds "
                                               "bytes; put plain text under stringData)")
                else:
                    folded[key] = value
        for key, value in check.string_map(obj, "stringData", ()).items():
            problem = config_key_problem(key)
            if problem:     # stringData wins over data for one key, as upstream
                check.error(("stringData", key), f'invalid key "{key}": {problem}')
                continue
            folded[key] = base64.b64encode(value.encode()).decode()
        for key in SECRET_TYPES_KEYS.get(stype, ()):
            if key not in folded:
                check.error(("data",), f'a Secret of type "{stype}" needs the key "{key}"')
        if folded:
            out["data"] = folded
    size = sum(len(v) for v in values(out).values()) if len(check.errors) == before else 0
    if size > MAX_BYTES:
        check.error((), f"the {kind} holds {size} bytes; the limit is {MAX_BYTES} (1 MiB)")
    if len(check.errors) > before:
        return None
    return ConfigObject(kind, name, out["metadata"]["namespace"], out, check.source,
                        check.start, bool(namespace))


def _b64(value: str) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def load_object(obj: dict, source: str = "<object>"):
    """Check an already-parsed ConfigMap or Secret (no line numbers):
    (ConfigObject, warnings), or podtypes.ManifestError."""
    check = Checker(source, {}, None)
    if not isinstance(obj, dict) or obj.get("kind") not in KINDS:
        raise ManifestError([Problem(source, None, "kind",
                                         "expected a ConfigMap or a Secret")])
    out = check_object(plain_copy(obj), check)
    if check.errors:
        raise ManifestError(by_line(check.errors), check.warnings)
    return out, check.warnings
