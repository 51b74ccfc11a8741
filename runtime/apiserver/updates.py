"""PUT and PATCH bodies, whatever the kind: pods, namespaces, ConfigMaps, Secrets.

    content_type(handler)            the request's media type, lowercase, no parameters
    patched(handler, method, ctype, current, body)
                                     the new object: a PUT's body, or CURRENT
                                     with the PATCH applied (CTYPE picks how)
    named(obj, name)                 OBJ's metadata, once it is an object that
                                     names NAME or no one (the URL's name wins)

What each kind may change, and how the change is made, stays with the kind
(podupdate.py, nsapi.py, configs.py). The answers are kube-apiserver's:
an unknown patch type is 415 UnsupportedMediaType (before the body is
read, as its PatchResource does), a patch that cannot apply 422 Invalid, a
body that does not decode 400 BadRequest.
"""
from __future__ import annotations

import json

from minipod.runtime.apiserver.objects import ApiError

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


def content_type(handler) -> str:
    return handler.headers.get("Content-Type", "application/json").split(";")[0].strip().lower()


def patched(handler, method: str, ctype: str, current: dict, body: bytes, *,
            decode=None, strategic: bool = True):
    """The object a PUT sends (DECODE(body); handler.decode by default) or
    CURRENT patched by a PATCH's BODY: JSON patch, merge patch, or strategic
    merge patch (server-side apply's too; with STRATEGIC false a merge patch:
    kinds whose fields are maps only)."""
    from minipod.runtime.apiserver import jsonpatch, patch
    if method == "PATCH" and ctype not in (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH):
        raise ApiError(415, "UnsupportedMediaType",
                       "the body of the request was in an unknown format - accepted media "
                       f"types include: {JSON_PATCH}, {MERGE_PATCH}, {STRATEGIC_PATCH}, "
                       f"{APPLY_PATCH}")
    try:
        if method == "PUT":
            return (decode or handler.decode)(body)
        if ctype == JSON_PATCH:
            return jsonpatch.json_patch(current, json.loads(body or b"[]"))
        doc = handler.decode(body)
        if ctype == MERGE_PATCH or not strategic:
            return patch.merge_patch(current, doc)
        return patch.strategic_merge(current, doc)
    except patch.PatchError as e:
        raise ApiError(422, "Invalid", str(e))
    except ValueError as e:
        raise ApiError(400, "BadRequest", f"couldn't decode the patch: {e}")


def named(obj, name: str) -> dict:
    """OBJ's metadata (a dict, maybe empty); 400 when OBJ is no JSON object
    or names another object than NAME."""
    if not isinstance(obj, dict):
        raise ApiError(400, "BadRequest", "the patched object is not a JSON object")
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    if meta.get("name") not in (None, name):
        raise ApiError(400, "BadRequest", f'the name of the object ({meta.get("name")}) does '
                                          f'not match the name on the URL ({name})')
    return meta
