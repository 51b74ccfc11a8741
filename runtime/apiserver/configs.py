"""ConfigMaps and Secrets in the API: the store's view of the agent's
objects, and the handlers (get, list, watch, create, replace, patch,
apply, delete) for `configmaps` and `secrets` in any namespace.

    GET    /api/v1/{configmaps,secrets}                    every namespace
    GET    /api/v1/namespaces/NS/{configmaps,secrets}      list (?watch=true)
    POST   /api/v1/namespaces/NS/{configmaps,secrets}      create (kubectl create configmap)
    GET    …/NAME   PUT …/NAME   PATCH …/NAME   DELETE …/NAME

The agent stores them (ops put_object and delete_object; files under
RUN/objects, runtime/configobjects.py); this server reads the files, as
it reads pod records, and numbers each change in the store's change log
(sync), so list and watch never disagree. A Secret goes out as the API
has it: base64 `data`, never the plain text, and never into a log line.

kube-root-ca.crt: the ConfigMap a cluster's root-ca-cert-publisher keeps
in every namespace, `ca.crt` = the CA that signed the API server's
certificate (the one a pod's ServiceAccount volume holds). It is made
here, from LIB/pki/ca.crt, for each namespace, never stored; a write to
it is refused (403), since the cluster's controller would only rewrite
it, and a create of it is AlreadyExists.
"""
from __future__ import annotations

import copy
import json
import os
import secrets as random

from minipod.runtime import configobjects

from minipod.runtime.api import configobject, manifest, podstatus
from minipod.runtime.apiserver.connection import _one
from minipod.runtime.apiserver.objects import ApiError, _col, not_found, table

KIND_OF = configobject.RESOURCE_KINDS      # "configmaps" -> "ConfigMap"
COLUMNS = {
    "configmaps": [_col("Name", fmt="name", description="Name must be unique within a "
                                                        "namespace."),
                   _col("Data"), _col("Age")],
    "secrets": [_col("Name", fmt="name", description="Name must be unique within a "
                                                     "namespace."),
                _col("Type"), _col("Data"), _col("Age")],
}


def cells(obj: dict) -> list:
    meta = obj["metadata"]
    count = len(obj.get("data") or {}) + len(obj.get("binaryData") or {})
    age = podstatus.age(meta.get("creationTimestamp"))
    if obj["kind"] == "Secret":
        return [meta["name"], obj.get("type", "Opaque"), count, age]
    return [meta["name"], count, age]


# ---- kube-root-ca.crt ---------------------------------------------------------

# kube-root-ca.crt: made from the CA, in every namespace (configobjects.py, where
# the agent finds it too, for pods that mount it)
ROOT_CA = configobjects.ROOT_CA
root_ca = configobjects.root_ca


def root_cas(paths, ns: str | None) -> list[dict]:
    from minipod.runtime import namespaces
    every = [r["name"] for r in namespaces.read_all(paths)] if ns is None else [ns]
    found = (root_ca(paths, n) for n in every)
    return [o for o in found if o is not None]


def _root_ca_write(method: str, ns: str) -> ApiError:
    verb = {"PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]
    return ApiError(403, "Forbidden", f'configmaps "{ROOT_CA}" is forbidden: minipod keeps '
                                      f'it (the CA of the API server) in every namespace, as a '
                                      f"cluster's root-ca-cert-publisher does: it cannot "
                                      f"{verb} it (namespace \"{ns}\")",
                    {"name": ROOT_CA, "kind": "configmaps"})


# ---- the store's part (called from Store._sync, store.cond held) ------------

def sync(store) -> bool:
    """Bring store.configs up to date with the agent's files; log changes."""
    from minipod.runtime.apiserver.store import Entry
    seen = set()
    changed = False
    for resource, ns, name, path in configobjects.scan(store.paths):
        key = (resource, ns, name)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue
        seen.add(key)
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        old = store.configs.get(key)
        if old is not None and old.stamp == stamp:
            continue
        try:
            with open(path, "rb") as f:
                obj = json.loads(f.read())
        except (OSError, ValueError):
            continue        # being replaced right now: the next look sees it
        if old is not None and old.record == obj:
            old.stamp = stamp
            continue
        typ = "MODIFIED" if old is not None and \
            old.obj["metadata"].get("uid") == obj["metadata"].get("uid") else "ADDED"
        if old is not None and typ == "ADDED":
            store._bump(resource, "DELETED", old.obj, None)
        store.configs[key] = Entry(obj, store._bump(resource, typ, obj, None), stamp)
        changed = True
    for key in set(store.configs) - seen:
        store._bump(key[0], "DELETED", store.configs.pop(key).obj, None)
        changed = True
    return changed


def current(store, resource: str) -> list[tuple[dict, None]]:
    """(object, None) of every object of resource (for a watch's ADDED)."""
    out = [(e.obj, None) for (r, _, n), e in sorted(store.configs.items()) if r == resource
           and not (r == "configmaps" and n == ROOT_CA)]
    if resource == "configmaps":
        out += [(o, None) for o in root_cas(store.paths, None)]
    return out


# ---- handlers ---------------------------------------------------------------

def entry(handler, resource: str, ns: str, name: str):
    store = handler.server.store
    if resource == "configmaps" and name == ROOT_CA:
        obj = root_ca(store.paths, ns)
        if obj is not None:
            from minipod.runtime.apiserver.store import Entry
            return Entry(obj, obj, None)
    store.sync()
    found = store.configs.get((resource, ns, name))
    if found is None:
        raise not_found(resource, name)
    return found


def serve(handler, method: str, ns: str | None, resource: str, rest: list[str], q: dict,
          body: bytes) -> None:
    """Answer one request for configmaps or secrets (ns None: all namespaces)."""
    if not rest and method == "GET":
        return list_objects(handler, ns, resource, q)
    if ns is not None and not rest and method == "POST":
        return create(handler, ns, resource, q, body)
    if ns is not None and len(rest) == 1:
        name = rest[0]
        if resource == "configmaps" and name == ROOT_CA and method in ("PUT", "PATCH",
                                                                       "DELETE"):
            entry(handler, resource, ns, name)      # 404 in a namespace that is not there
            raise _root_ca_write(method, ns)
        if method == "GET":
            found = entry(handler, resource, ns, name)
            if handler.wants_table():
                return handler.send_json(200, table(
                    COLUMNS[resource], [(cells(found.obj), found.obj)],
                    found.obj["metadata"]["resourceVersion"], _one(q, "includeObject",
                                                                   "Metadata")))
            return handler.send_json(200, found.obj)
        if method == "DELETE":
            return delete(handler, ns, resource, name, q, body)
        if method in ("PUT", "PATCH"):
            return update(handler, method, ns, resource, name, q, body)
    raise ApiError(404, "NotFound", "the server could not find the requested resource", {})


def list_objects(handler, ns: str | None, resource: str, q: dict) -> None:
    match = handler.selectors(q, KIND_OF[resource])
    if _one(q, "watch") in ("true", "1"):
        return handler.watch(resource, ns, q, match)
    store = handler.server.store
    rv, items = store.listed(lambda store: [e.obj for (r, n, _), e in sorted(store.configs.items())
                                            if r == resource and (ns is None or n == ns)
                                            and match(e.obj)])
    if resource == "configmaps":        # the published one wins over a stored namesake
        items = sorted([o for o in items if o["metadata"]["name"] != ROOT_CA]
                       + [o for o in root_cas(store.paths, ns) if match(o)],
                       key=lambda o: (o["metadata"]["namespace"], o["metadata"]["name"]))
    if handler.wants_table():
        return handler.send_json(200, table(COLUMNS[resource], [(cells(o), o) for o in items],
                                            rv, _one(q, "includeObject", "Metadata")))
    handler.send_json(200, {"kind": KIND_OF[resource] + "List", "apiVersion": "v1",
                            "metadata": {"resourceVersion": rv}, "items": items})


def check(obj: dict, resource: str, ns: str, q: dict) -> tuple[configobject.ConfigObject,
                                                               list[str]]:
    """Validate a request's object: (checked object, warnings) or ApiError
    (400 for unknown fields under fieldValidation=Strict, as upstream; 422
    for invalid values)."""
    kind = KIND_OF[resource]
    mode = _one(q, "fieldValidation", "Warn")
    if mode not in ("Strict", "Warn", "Ignore"):
        raise ApiError(400, "BadRequest", f'fieldValidation "{mode}" is invalid: must be one '
                                          'of "Ignore", "Warn", or "Strict"')
    if obj.get("kind") not in (None, kind):
        raise ApiError(400, "BadRequest", f'the object kind "{obj.get("kind")}" does not match '
                                          f'the resource "{resource}"')
    obj = dict(obj, kind=kind, apiVersion=obj.get("apiVersion") or "v1")
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    if meta.get("namespace") not in (None, "", ns):
        raise ApiError(400, "BadRequest", "the namespace of the provided object does not "
                                          "match the namespace sent on the request")
    meta = dict(meta, namespace=ns)
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = meta["generateName"] + "".join(
            random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
    obj["metadata"] = meta
    unknown = sorted(k for k in obj if k not in configobject.FIELDS[kind] | {"status"}) + \
        sorted(f"metadata.{k}" for k in meta
               if k not in configobject.META_FIELDS | configobject.META_SYSTEM)
    if unknown and mode == "Strict":
        raise ApiError(400, "BadRequest", f'{kind} in version "v1" cannot be handled as a '
                                          f"{kind}: strict decoding error: "
                       + ", ".join(f'unknown field "{u}"' for u in unknown))
    for u in unknown:
        if u.startswith("metadata."):
            meta.pop(u[len("metadata."):], None)
        else:
            obj.pop(u, None)
    obj.pop("status", None)
    try:
        checked, warnings = configobject.load_object(obj, "request")
    except manifest.ManifestError as e:
        raise invalid(kind, meta.get("name") or "", e.problems)
    out = [f'unknown field "{u}"' for u in unknown] if mode == "Warn" else []
    return checked, out + [f"{w.field}: {w.message}" for w in warnings]


def invalid(kind: str, name: str, problems) -> ApiError:
    causes = [{"reason": "FieldValueRequired" if "required" in p.message else
               "FieldValueInvalid", "message": p.message, "field": p.field} for p in problems]
    parts = [f"{p.field}: {p.message}" if p.field else p.message for p in problems]
    text = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {text}',
                    {"name": name, "kind": kind, "causes": causes})


def _warnings(warnings: list[str]) -> list[tuple[str, str]]:
    return [("Warning", '299 - "%s"' % w.replace("\\", "\\\\").replace('"', '\\"'))
            for w in warnings]


def _put(handler, checked, q: dict) -> dict:
    """Ask the agent to store it; the object as the store now numbers it."""
    from minipod.runtime import client
    if _one(q, "dryRun") == "All":
        return checked.obj
    try:
        client.request(handler.server.paths, {"op": "put_object", "object": checked.obj,
                                              "source": "api"}, timeout=60)
    except client.AgentError as e:
        if e.code == "Invalid":
            raise ApiError(422, "Invalid", str(e), {"name": checked.name,
                                                    "kind": checked.kind})
        if e.code == "NotFound":        # its namespace went away meanwhile
            raise ApiError(404, "NotFound", str(e), {"name": checked.namespace,
                                                     "kind": "namespaces"})
        if e.code == "Forbidden":       # its namespace is being deleted
            raise ApiError(403, "Forbidden", str(e), {"name": checked.name,
                                                      "kind": checked.resource})
        raise ApiError(500, "InternalError", f"Internal error occurred: {e}")
    return entry(handler, checked.resource, checked.namespace, checked.name).obj


def decode(handler, body: bytes) -> dict:
    """JSON or YAML as for pods; protobuf too, as kubectl's typed client
    sends `create configmap` and `create secret` (protobuf.py)."""
    if "protobuf" in handler.headers.get("Content-Type", ""):
        from minipod.runtime.apiserver import protobuf
        try:
            return protobuf.decode(body)
        except (protobuf.ProtobufError, UnicodeDecodeError) as e:
            raise ApiError(400, "BadRequest", f"the body of the request could not be decoded "
                                              f"as protobuf: {e}")
    return handler.decode(body)


def create(handler, ns: str, resource: str, q: dict, body: bytes) -> None:
    handler.check_namespace(ns)     # NotFound: namespaces "x" not found, as a cluster says
    obj = decode(handler, body)
    checked, warnings = check(obj, resource, ns, q)
    if configobjects.read(handler.server.paths, resource, ns, checked.name) is not None or (
            resource == "configmaps" and checked.name == ROOT_CA):
        raise ApiError(409, "AlreadyExists", f'{resource} "{checked.name}" already exists',
                       {"name": checked.name, "kind": resource})
    handler.send_json(201, _put(handler, checked, q), headers=_warnings(warnings))


def update(handler, method: str, ns: str, resource: str, name: str, q: dict,
           body: bytes) -> None:
    """PUT, and PATCH in the four content types (apply creates when missing)."""
    from minipod.runtime.apiserver import updates
    ctype = updates.content_type(handler)
    try:
        old = entry(handler, resource, ns, name).obj
    except ApiError as e:
        if e.code != 404 or not (method == "PATCH" and ctype == updates.APPLY_PATCH):
            raise
        applied = handler.decode(body)
        updates.named(applied, name)
        return create(handler, ns, resource, q, json.dumps(applied).encode())
    new = updates.patched(handler, method, ctype, copy.deepcopy(old), body,   # maps only:
                          decode=lambda body: decode(handler, body), strategic=False)  # SMP is merge
    meta = updates.named(new, name)
    wanted = meta.get("resourceVersion")
    if method == "PUT" and wanted not in (None, "") and \
            wanted != old["metadata"]["resourceVersion"]:
        raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {resource} "{name}": '
                                        f"the object has been modified; please apply your "
                                        f"changes to the latest version and try again",
                       {"name": name, "kind": resource})
    meta = dict(meta, name=name)
    new["metadata"] = meta
    checked, warnings = check(new, resource, ns, q)
    same = {k: v for k, v in checked.obj.items() if k != "metadata"} == \
        {k: v for k, v in old.items() if k != "metadata"} and all(
            checked.obj["metadata"].get(k) == old["metadata"].get(k)
            for k in ("labels", "annotations"))
    if same:
        return handler.send_json(200, old, headers=_warnings(warnings))
    handler.send_json(200, _put(handler, checked, q), headers=_warnings(warnings))


def delete(handler, ns: str, resource: str, name: str, q: dict, body: bytes) -> None:
    from minipod.runtime import client
    found = entry(handler, resource, ns, name)
    options = handler.decode(body) if body.strip() else {}
    status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
              "details": {"name": name, "kind": resource,
                          "uid": found.obj["metadata"].get("uid")}}
    if _one(q, "dryRun") == "All" or options.get("dryRun") == ["All"]:
        return handler.send_json(200, status)
    try:
        client.request(handler.server.paths, {"op": "delete_object", "resource": resource,
                                              "namespace": ns, "name": name})
    except client.AgentError as e:
        if e.code == "NotFound":
            raise not_found(resource, name)
        raise ApiError(500, "InternalError", f"Internal error occurred: {e}")
    handler.server.store.sync()
    handler.send_json(200, status)
