"""PUT and PATCH of a pod: decode, patch, check what may change, ask the agent.

    PUT   …/pods/NAME                      the whole new Pod
    PATCH application/strategic-merge-patch+json   kubectl apply (2nd time), edit, set image
          application/merge-patch+json     kubectl label / annotate
          application/json-patch+json      kubectl patch --type=json
          application/apply-patch+yaml     kubectl apply --server-side: creates the pod
                                           when missing (201), else merges as SMP

A running pod may change only what the kubelet can change in place
(kube-apiserver's ValidatePodUpdate, pkg/apis/core/validation/validation.go):
metadata labels and annotations, `spec.containers[*].image`,
`spec.initContainers[*].image`, `spec.activeDeadlineSeconds` (set, or
lowered), `spec.tolerations` (additions only) and
`spec.terminationGracePeriodSeconds` (to 1, if it was negative). Anything
else is 422 with upstream's text. `check_update()` is that rule, pure.

The agent applies the change (`{"op": "update", ...}`, runtime/agent/server.py):
it alone writes state records. A new image restarts that container, as the
kubelet does ("Container C definition changed, will be restarted").
"""
from __future__ import annotations

import copy
import json

from minipod.runtime.apiserver.objects import ApiError

UPDATABLE = [
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
]
FORBIDDEN = "pod updates may not change fields other than " + ",".join(UPDATABLE)


def _invalid(name: str, field: str, reason: str, message: str) -> ApiError:
    return ApiError(422, "Invalid", f'Pod "{name}" is invalid: {field}: {message}',
                    {"name": name, "kind": "Pod",
                     "causes": [{"reason": reason, "message": message, "field": field}]})


def _normal(value):
    """JSON value with empty maps/lists and nulls dropped (Go's zero values
    and omitted fields compare equal, as apiequality.Semantic does here)."""
    if isinstance(value, dict):
        out = {k: _normal(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def _diff(old, new, path: str = "spec") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            out += _diff(old.get(k), new.get(k), f"{path}.{k}")
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for i, (a, b) in enumerate(zip(old, new)):
            out += _diff(a, b, f"{path}[{i}]")
        return out
    if old == new:
        return []
    return [f"-\t{path}: {json.dumps(old)}", f"+\t{path}: {json.dumps(new)}"]


def check_update(old: dict, new: dict) -> dict:
    """What changes from pod OLD to pod NEW (both API objects), or ApiError 422.

    Returns {"labels", "annotations", "images": {container: image},
    "spec": {field: value}} for what differs (empty dicts: nothing)."""
    name = old["metadata"]["name"]
    ospec, nspec = _normal(old.get("spec") or {}), _normal(new.get("spec") or {})
    images: dict[str, str] = {}
    for key in ("containers", "initContainers"):
        before, after = ospec.get(key, []), nspec.get(key, [])
        if len(before) != len(after):
            raise _invalid(name, f"spec.{key}", "FieldValueForbidden",
                           "Forbidden: pod updates may not add or remove containers")
        for i, (a, b) in enumerate(zip(before, after)):
            if not b.get("image"):
                raise _invalid(name, f"spec.{key}[{i}].image", "FieldValueRequired",
                               "Required value")
            if a.get("image") != b.get("image") and a.get("name") == b.get("name"):
                images[b["name"]] = b["image"]
    changes: dict = {}
    deadline, was = nspec.get("activeDeadlineSeconds"), ospec.get("activeDeadlineSeconds")
    if deadline is not None:
        if not isinstance(deadline, int) or deadline < 0 or deadline > 2**31 - 1:
            raise _invalid(name, "spec.activeDeadlineSeconds", "FieldValueInvalid",
                           f"Invalid value: {json.dumps(deadline)}: must be between 0 and "
                           f"2147483647, inclusive")
        if was is not None and was < deadline:
            raise _invalid(name, "spec.activeDeadlineSeconds", "FieldValueInvalid",
                           f"Invalid value: {deadline}: must be less than or equal to "
                           f"previous value")
    elif was is not None:
        raise _invalid(name, "spec.activeDeadlineSeconds", "FieldValueInvalid",
                       "Invalid value: \"null\": must not update from a positive integer to "
                       "nil value")
    if deadline != was:
        changes["activeDeadlineSeconds"] = deadline
    old_tol, new_tol = ospec.get("tolerations", []), nspec.get("tolerations", [])
    for i, t in enumerate(old_tol):
        if t not in new_tol:
            raise _invalid(name, "spec.tolerations", "FieldValueForbidden",
                           "Forbidden: existing toleration can not be modified except its "
                           "tolerationSeconds")
    if new_tol != old_tol:
        changes["tolerations"] = new.get("spec", {}).get("tolerations")
    munged = copy.deepcopy(nspec)
    for key in ("containers", "initContainers"):
        for a, b in zip(ospec.get(key, []), munged.get(key, [])):
            b["image"] = a.get("image")
    for key in ("activeDeadlineSeconds", "tolerations", "schedulingGates"):
        munged.pop(key, None)
        if key in ospec:
            munged[key] = ospec[key]
    grace = ospec.get("terminationGracePeriodSeconds")
    if grace is not None and grace < 0 and munged.get("terminationGracePeriodSeconds") == 1:
        munged["terminationGracePeriodSeconds"] = grace
        changes["terminationGracePeriodSeconds"] = 1
    if munged != ospec:
        diff = "\n".join(_diff(ospec, munged))
        raise _invalid(name, "spec", "FieldValueForbidden", f"Forbidden: {FORBIDDEN}\n{diff}")
    out = {"images": images, "spec": changes}
    for key in ("labels", "annotations"):
        before = (old.get("metadata") or {}).get(key) or {}
        after = (new.get("metadata") or {}).get(key) or {}
        if not isinstance(after, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in after.items()):
            raise _invalid(name, f"metadata.{key}", "FieldValueInvalid",
                           f"Invalid value: {json.dumps(after)}: must be a map of strings")
        if before != after:
            out[key] = after
    return out


def serve(handler, method: str, ns: str, name: str, q: dict, body: bytes) -> None:
    """Answer one PUT or PATCH of pods/NAME."""
    from minipod.runtime import client
    from minipod.runtime.apiserver import updates
    ctype = updates.content_type(handler)
    dry_run = (q.get("dryRun") or [""])[-1] == "All"
    if method == "PATCH" and ctype == updates.APPLY_PATCH:
        from minipod.runtime.apiserver import validation
        validation.check_apply(handler.decode(body), ns, name)
        try:
            handler.pod(ns, name)
        except ApiError as e:
            if e.code != 404:
                raise
            applied = handler.decode(body)
            updates.named(applied, name)
            return handler.create_pod(ns, q, json.dumps(applied).encode())
    entry = handler.pod(ns, name)
    old = entry.obj
    current = {k: v for k, v in copy.deepcopy(old).items() if k != "status"}
    new = updates.patched(handler, method, ctype, current, body)
    meta = updates.named(new, name)
    wanted_rv = meta.get("resourceVersion")
    if wanted_rv not in (None, "") and wanted_rv != old["metadata"]["resourceVersion"]:
        raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on pods "{name}": the '
                                        f'object has been modified; please apply your changes '
                                        f'to the latest version and try again',
                       {"name": name, "kind": "pods"})
    change = check_update(old, new)
    if dry_run:
        return handler.send_json(200, dict(new, status=old["status"]))
    if not (change["images"] or change["spec"] or "labels" in change or "annotations" in change):
        return handler.send_json(200, old)     # nothing to do: no new resourceVersion
    request = {"op": "update", "name": name, "namespace": ns, "uid": entry.pod_record.uid,
               "images": change["images"], "spec": change["spec"]}
    for key in ("labels", "annotations"):
        if key in change:
            request[key] = change[key]
    try:
        client.request(handler.server.paths, request, timeout=60)
    except client.AgentError as e:
        if e.code == "NotFound":
            raise ApiError(404, "NotFound", f'pods "{name}" not found',
                           {"name": name, "kind": "pods"})
        if e.code == "Conflict":
            raise ApiError(409, "Conflict", str(e), {"name": name, "kind": "pods"})
        raise ApiError(500, "InternalError", f"Internal error occurred: {e}")
    handler.send_json(200, handler.pod(ns, name).obj)
