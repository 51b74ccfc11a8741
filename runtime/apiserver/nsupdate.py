"""PUT and PATCH of namespaces/NAME: what `kubectl label ns`, `annotate ns`
and `apply -f` (a second time, or --server-side) send.

The patch is applied to the current Namespace as kube-apiserver does
(runtime/apiserver/patch.py: JSON patch, merge patch, strategic merge; a
server-side apply of a missing namespace creates it); of the result only
metadata.labels and metadata.annotations may differ, and those the agent
writes (`{"op": "namespace_update"}`). A namespace has no other field a
user changes here (its spec holds only the finalizer minipod keeps).
"""
from __future__ import annotations

import copy
import json

from minipod.runtime.apiserver.objects import ApiError, not_found

NAME_LABEL = "kubernetes.io/metadata.name"


def serve(handler, method: str, name: str, q: dict, body: bytes) -> None:
    from minipod.runtime import client
    from minipod.runtime.apiserver import patch as patches
    from minipod.runtime.apiserver.podupdate import _content_type
    ctype = _content_type(handler)
    store = handler.server.store
    store.sync()
    with store.cond:
        old = store.namespaces.get(name)
    if old is None:
        if method == "PATCH" and ctype == "application/apply-patch+yaml":
            return handler.create_namespace(q, json.dumps(handler.decode(body)).encode())
        raise not_found("namespaces", name)
    current = {k: v for k, v in copy.deepcopy(old).items() if k != "status"}
    try:
        if method == "PUT":
            new = handler.decode(body)
        elif ctype == "application/json-patch+json":
            new = patches.json_patch(current, json.loads(body or b"[]"))
        elif ctype == "application/merge-patch+json":
            new = patches.merge_patch(current, handler.decode(body))
        elif ctype in ("application/strategic-merge-patch+json", "application/apply-patch+yaml"):
            new = patches.strategic_merge(current, handler.decode(body))
        else:
            raise ApiError(415, "UnsupportedMediaType",
                           "the body of the request was in an unknown format - accepted media "
                           "types include: application/json-patch+json, "
                           "application/merge-patch+json, application/strategic-merge-patch+json,"
                           " application/apply-patch+yaml")
    except patches.PatchError as e:
        raise ApiError(422, "Invalid", str(e))
    except ValueError as e:
        raise ApiError(400, "BadRequest", f"couldn't decode the patch: {e}")
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
        raise handler.agent_error(e, "namespaces", name)
    store.sync()
    with store.cond:
        handler.send_json(200, store.namespaces.get(name) or old)
