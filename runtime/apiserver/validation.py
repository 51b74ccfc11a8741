"""A Pod from a request body, validated by runtime/api/manifest.py, errors as a cluster's.

The manifest loader is the one `minipod run` uses, so the API and the CLI
accept and refuse the same pods. Its problems become the two answers
kube-apiserver gives (apimachinery strict decoding; pkg/apis/core/validation):

    unknown fields, fieldValidation=Strict   400 BadRequest
        Pod in version "v1" cannot be handled as a Pod: strict decoding error:
        unknown field "spec.containers[0].imagee"
    anything else                            422 Invalid, details.causes[] per field
        (kubectl prints `The Pod "x" is invalid: FIELD: MESSAGE`)

With fieldValidation=Warn (the server default) or Ignore, unknown fields are
dropped and the pod validated again, as a cluster does; Warn returns them as
warnings (the Warning header kubectl prints as "Warning: ...").
"""
from __future__ import annotations

import json
import re

from minipod.runtime.api import manifest
from minipod.runtime.apiserver.objects import ApiError

_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _path(field: str) -> list:
    return [int(i) if i else k for k, i in _STEP.findall(field)]


def _drop(obj, path: list) -> None:
    for step in path[:-1]:
        try:
            obj = obj[step]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(obj, dict):
        obj.pop(path[-1], None)


def _unknown(problem: manifest.Problem) -> bool:
    return problem.message.startswith('unknown field "') and bool(problem.field)


def _load(obj: dict) -> tuple[manifest.Pod, list[str]]:
    """Validate through the manifest loader (JSON is YAML), keeping its warnings."""
    pods, warnings = manifest.load_text(json.dumps(obj, indent=1), "request")
    if len(pods) != 1:
        raise ApiError(400, "BadRequest", "the request body must hold exactly one Pod")
    return pods[0], [f"{w.field}: {w.message}" if w.field else w.message for w in warnings]


def validate(obj: dict, field_validation: str = "Warn") -> tuple[manifest.Pod, list[str]]:
    """(pod, warnings) or ApiError."""
    if field_validation not in ("Strict", "Warn", "Ignore"):
        raise ApiError(400, "BadRequest", f'fieldValidation "{field_validation}" is invalid: '
                                          'must be one of "Ignore", "Warn", or "Strict"')
    try:
        return _load(obj)
    except manifest.ManifestError as e:
        problems = e.problems
    unknown = [p for p in problems if _unknown(p)]
    if unknown and field_validation == "Strict":
        raise ApiError(400, "BadRequest",
                       'Pod in version "v1" cannot be handled as a Pod: strict decoding error: '
                       + ", ".join(f'unknown field "{p.field}"' for p in unknown))
    if unknown:
        for p in unknown:
            _drop(obj, _path(p.field))
        try:
            pod, warnings = _load(obj)
        except manifest.ManifestError as e:
            raise invalid(obj, e.problems)
        if field_validation == "Warn":
            warnings = [f'unknown field "{p.field}"' for p in unknown] + warnings
        return pod, warnings
    raise invalid(obj, problems)


def invalid(obj: dict, problems: list[manifest.Problem]) -> ApiError:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    name = meta.get("name") if isinstance(meta.get("name"), str) else ""
    causes = [{"reason": "FieldValueRequired" if "required" in p.message else
               "FieldValueInvalid", "message": p.message, "field": p.field} for p in problems]
    parts = [f"{p.field}: {p.message}" if p.field else p.message for p in problems]
    text = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return ApiError(422, "Invalid", f'Pod "{name}" is invalid: {text}',
                    {"name": name, "kind": "Pod", "causes": causes})


# list fields structured-merge-diff keys by a field (k8s.io/api patchMergeKey +
# listType=map); a path into one names the element by its key, [name="c"]
LIST_KEYS = {"containers": "name", "initContainers": "name", "ephemeralContainers": "name",
             "volumes": "name", "env": "name", "volumeMounts": "mountPath",
             "imagePullSecrets": "name", "hostAliases": "ip"}


def _smd_path(obj: dict, field: str) -> str:
    """spec.containers[0].images -> .spec.containers[name="c"].images"""
    out, node, last = "", obj, None
    for step in _path(field):
        if isinstance(step, int):
            item = node[step] if isinstance(node, list) and step < len(node) else None
            key = LIST_KEYS.get(last)
            if isinstance(item, dict) and key and key in item:
                out += f"[{key}={json.dumps(item[key])}]"
            else:
                out += f"[{step}]"
            node = item
        else:
            out += f".{step}"
            node = node.get(step) if isinstance(node, dict) else None
        last = step
    return out


def check_apply(obj: dict, namespace: str, name: str) -> None:
    """The answer of kube-apiserver 1.32 to a server-side apply of a Pod with
    fields its schema lacks (structured-merge-diff's typed conversion, a 500
    with no reason in 1.32; kubernetes/kubernetes#122480); None if it has none."""
    try:
        _load(obj)
        return
    except manifest.ManifestError as e:
        unknown = [p for p in e.problems if _unknown(p)]
    except ApiError:
        return
    if not unknown:
        return
    errors = [f"{_smd_path(obj, p.field)}: field not declared in schema" for p in unknown]
    text = errors[0] if len(errors) == 1 else "errors:\n  " + "\n  ".join(errors)
    raise ApiError(500, "", f"failed to create typed patch object ({namespace}/{name}; "
                            f"/v1, Kind=Pod): {text}")
