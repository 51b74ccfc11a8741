"""The writes of namespaces: POST (`kubectl create ns`), DELETE, and PUT and
PATCH of namespaces/NAME (what `kubectl label ns`, `annotate ns` and
`apply -f` send). The reads (list, get, watch) are the server's, over the
store (runtime/apiserver/store.py). The agent writes (runtime/namespaces.py).

An update's patch is applied to the current Namespace as kube-apiserver does
(updates.py: JSON patch, merge patch, strategic merge; a
server-side apply of a missing namespace creates it); of the result only
metadata.labels and metadata.annotations may differ, and those the agent
writes (`{"op": "namespace_update"}`). A namespace has no other field a
user changes here (its spec holds only the finalizer minipod keeps).
"""
from __future__ import annotations

import copy
import json
import secrets

from minipod.runtime.apiserver import objects
from minipod.runtime.apiserver.objects import ApiError, not_found

NAME_LABEL = "kubernetes.io/metadata.name"


def serve(handler, method: str, name: str | None, q: dict, body: bytes) -> None:
    """Route one write: POST namespaces, or PUT/PATCH/DELETE namespaces/NAME."""
    if method == "POST" and name is None:
        return create(handler, q, body)
    if method == "DELETE" and name is not None:
        return delete(handler, name, q)
    if method in ("PUT", "PATCH") and name is not None:
        return update(handler, method, name, q, body)
    raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the "
                                            "requested resource", {})


def create(handler, q: dict, body: bytes) -> None:
    """POST /api/v1/namespaces (`kubectl create ns NAME`): the agent writes it."""
    from minipod.runtime import client, namespaces
    if "protobuf" in handler.headers.get("Content-Type", ""):   # kubectl create ns sends it
        from minipod.runtime.apiserver import protobuf
        try:
            obj = protobuf.decode_metadata(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, "BadRequest", f"cannot decode the Namespace: {e}")
    else:
        obj = handler.decode(body)
    if obj.get("kind") not in (None, "Namespace"):
        raise ApiError(400, "BadRequest", f'the body is a {obj.get("kind")}, not a '
                                          f"Namespace")
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    name = meta.get("name")
    if not name and meta.get("generateName"):
        name = meta["generateName"] + "".join(
            secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
    why = namespaces.invalid_name(name)
    if why:
        raise ApiError(422, "Invalid", f'Namespace "{name or ""}" is invalid: {why}',
                       {"name": name or "", "kind": "Namespace", "causes": [
                           {"reason": "FieldValueInvalid", "message": why.split(": ", 1)[1],
                            "field": "metadata.name"}]})
    labels = {k: v for k, v in (meta.get("labels") or {}).items()
              if k != NAME_LABEL}
    if (q.get("dryRun") or [""])[-1] == "All":
        if namespaces.read(handler.server.paths, name) is not None:
            raise ApiError(409, "AlreadyExists", f'namespaces "{name}" already exists',
                           {"name": name, "kind": "namespaces"})
        return handler.send_json(201, namespaces.to_object(
            {"name": name, "labels": labels, "annotations": meta.get("annotations"),
             "creationTimestamp": objects.now_iso()}))
    try:
        answer = client.request(handler.server.paths, {
            "op": "namespace_create", "name": name, "labels": labels,
            "annotations": meta.get("annotations") or {}})
    except client.AgentError as e:
        raise agent_error(e, "namespaces", name)
    store = handler.server.store
    store.sync()
    with store.cond:
        obj = store.namespaces.get(name) or namespaces.to_object(answer["namespace"])
    handler.send_json(201, obj)


def delete(handler, name: str, q: dict) -> None:
    """DELETE /api/v1/namespaces/NAME: Terminating at once (the answer),
    its pods deleted with their grace periods, then it is gone."""
    from minipod.runtime import client, namespaces
    record = namespaces.read(handler.server.paths, name)
    if record is None:
        raise not_found("namespaces", name)
    if (q.get("dryRun") or [""])[-1] == "All":
        return handler.send_json(200, namespaces.to_object(record))
    try:
        answer = client.request(handler.server.paths, {"op": "namespace_delete", "name": name})
    except client.AgentError as e:
        raise agent_error(e, "namespaces", name)
    handler.server.store.sync()
    handler.send_json(200, namespaces.to_object(answer["namespace"]))


def agent_error(e, kind: str, name: str) -> ApiError:
    """An agent refusal as the apiserver's Status (its message is already Kubernetes')."""
    codes = {"NotFound": 404, "AlreadyExists": 409, "Forbidden": 403, "Invalid": 422,
             "BadRequest": 400, "Conflict": 409}
    if e.code in codes:
        return ApiError(codes[e.code], e.code, str(e), {"name": name, "kind": kind})
    return ApiError(500, "InternalError", f"Internal error occurred: {e}")


def update(handler, method: str, name: str, q: dict, body: bytes) -> None:
    """PUT or PATCH namespaces/NAME: labels and annotations."""
    from minipod.runtime import client
    from minipod.runtime.apiserver import updates
    ctype = updates.content_type(handler)
    store = handler.server.store
    store.sync()
    with store.cond:
        old = store.namespaces.get(name)
    if old is None:
        if method == "PATCH" and ctype == updates.APPLY_PATCH:
            return create(handler, q, json.dumps(handler.decode(body)).encode())
        raise not_found("namespaces", name)
    current = {k: v for k, v in copy.deepcopy(old).items() if k != "status"}
    new = updates.patched(handler, method, ctype, current, body)
    meta = new.get("metadata") if isinstance(new, dict) and isinstance(
        new.get("metadata"), dict) else None
    if meta is None or meta.get("name") not in (None, name):
        raise ApiError(400, "BadRequest", "the patched object is not the Namespace "
                                          f'"{name}"')
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    if not all(isinstance(m, dict) and all(isinstance(v, str) for v in m.values())
               for m in (labels, annotations)):
        raise ApiError(422, "Invalid", f'Namespace "{name}" is invalid: metadata: labels and '
                                       f"annotations are maps of strings")
    labels = {k: v for k, v in labels.items() if k != NAME_LABEL}
    old_meta = old["metadata"]
    same = (labels == {k: v for k, v in (old_meta.get("labels") or {}).items()
                       if k != NAME_LABEL}
            and annotations == (old_meta.get("annotations") or {}))
    if same or (q.get("dryRun") or [""])[-1] == "All":
        out = copy.deepcopy(old)
        if not same:
            out["metadata"].update(labels=dict(labels, **{NAME_LABEL: name}),
                                   annotations=annotations)
        return handler.send_json(200, out)
    try:
        client.request(handler.server.paths, {"op": "namespace_update", "name": name,
                                              "labels": labels, "annotations": annotations})
    except client.AgentError as e:
        raise agent_error(e, "namespaces", name)
    store.sync()
    with store.cond:
        handler.send_json(200, store.namespaces.get(name) or old)
