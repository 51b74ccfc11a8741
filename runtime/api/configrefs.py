"""What a Pod takes from ConfigMaps, Secrets and itself: the checks of
env[].valueFrom, envFrom, and the configMap, secret, downwardAPI and
projected volume sources (containers.py and volumes.py call these; same
checker, same file/line/field messages, same typo suggestions; their field
tables are in fields.py with the others).

Each check returns the validated source as plain data (the manifest's own
maps, defaults filled in), kept on the Pod (EnvVar.value_from,
Container.env_from, Volume.source): runtime/configobjects.py resolves
env at container start, runtime/projection.py writes the volume files.

    env[].valueFrom     exactly one of configMapKeyRef, secretKeyRef,
                        fieldRef, resourceFieldRef
    envFrom[]           configMapRef or secretRef, an optional prefix
    volumes[]           configMap {name, items, defaultMode, optional}
                        secret {secretName, items, defaultMode, optional}
                        downwardAPI {items, defaultMode}
                        projected {sources: [configMap|secret|downwardAPI], defaultMode}

A projected source is checked by one function of PROJECTIONS; a new source
(serviceAccountToken) is one more entry there and one in
projection.SOURCES.
"""
from __future__ import annotations

import re

from minipod.runtime.api.checker import suggest
from minipod.runtime.api.fields import NOT_IMPLEMENTED, SUPPORTED
from minipod.runtime.api.names import (ENV_VAR_NAME, check_path, check_subdomain,
                                       config_key_problem, qualified_name_problems)
from minipod.runtime.api.quantity import as_written, check_quantity, parse_quantity

VOLUME_SOURCES = ("configMap", "secret", "downwardAPI", "projected")

# Kubernetes' validEnvDownwardAPIFieldPathExpressions and the volume's.
ENV_FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid",
                   "spec.nodeName", "spec.serviceAccountName", "status.hostIP",
                   "status.hostIPs", "status.podIP", "status.podIPs")
VOLUME_FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid",
                      "metadata.labels", "metadata.annotations")
SUBSCRIPTED = re.compile(r"metadata\.(labels|annotations)\['([^']*)'\]")
RESOURCES = ("limits.cpu", "limits.memory", "limits.ephemeral-storage",
             "requests.cpu", "requests.memory", "requests.ephemeral-storage")
MAX_MODE = 0o777


# ---------------------------------------------------------------------------
# env[].valueFrom and envFrom

def check_value_from(item: dict, where: tuple, check, container: dict) -> dict | None:
    """env[i].valueFrom: exactly one source; the validated map, or None."""
    at = where + ("valueFrom",)
    source = check.get(item, "valueFrom", where, dict)
    if source is None:
        return None
    check.fields(source, at, "envVarSource")
    kinds = [k for k in SUPPORTED["envVarSource"] | NOT_IMPLEMENTED["envVarSource"]
             if source.get(k) is not None]
    if len(kinds) != 1:
        check.error(at, "must have exactly one of configMapKeyRef, secretKeyRef, fieldRef, "
                        "resourceFieldRef" + (f" (it has {', '.join(sorted(kinds))})"
                                              if kinds else ""))
        return None
    kind = kinds[0]
    if kind in NOT_IMPLEMENTED["envVarSource"]:
        check.error(at + (kind,), f'"{kind}" is not supported by minipod')
        return None
    before = len(check.errors)
    if kind in ("configMapKeyRef", "secretKeyRef"):
        out = _key_selector(source, kind, at, check)
    elif kind == "fieldRef":
        out = _field_ref(source, at, check, ENV_FIELD_PATHS, subscripts_only=True)
    else:
        out = _resource_field_ref(source, at, check, container.get("name"), env=True)
    return {kind: out} if len(check.errors) == before and out is not None else None


def _key_selector(source: dict, kind: str, at: tuple, check) -> dict | None:
    where = at + (kind,)
    ref = check.get(source, kind, at, dict) or {}
    suggested = check.fields(ref, where, "keySelector")
    name = check.require(ref, "name", where, str, suggested)
    key = check.require(ref, "key", where, str, suggested)
    optional = check.get(ref, "optional", where, bool)
    if name is not None:
        check_subdomain(name, where + ("name",), check)
    if key is not None and config_key_problem(key):
        check.error(where + ("key",), f'invalid key "{key}": {config_key_problem(key)}')
    if name is None or key is None:
        return None
    return {"name": name, "key": key, "optional": bool(optional)}


def _field_ref(source: dict, at: tuple, check, allowed: tuple,
               subscripts_only: bool) -> dict | None:
    """fieldRef {apiVersion: v1, fieldPath}. Env may subscript labels and
    annotations only (`metadata.labels['app']`); a volume file may take
    them whole as well."""
    where = at + ("fieldRef",)
    ref = check.get(source, "fieldRef", at, dict) or {}
    suggested = check.fields(ref, where, "fieldRef")
    api = check.get(ref, "apiVersion", where, str) or "v1"
    if api != "v1":
        check.error(where + ("apiVersion",), f'unsupported value "{api}": must be "v1"')
    path = check.require(ref, "fieldPath", where, str, suggested)
    if path is None:
        return None
    sub = SUBSCRIPTED.fullmatch(path)
    if sub:
        problems = qualified_name_problems(sub.group(2))
        if problems:
            check.error(where + ("fieldPath",), f'invalid key "{sub.group(2)}" in "{path}": '
                                                f"{problems[0]}")
            return None
        return {"apiVersion": "v1", "fieldPath": path}
    if path not in allowed:
        choices = ", ".join(f'"{a}"' for a in allowed + (
            "metadata.labels['KEY']", "metadata.annotations['KEY']"))
        guess = suggest(path, allowed)
        check.error(where + ("fieldPath",), f'unsupported value "{path}": must be one of '
                                            f"{choices}" + (f'; did you mean "{guess}"?'
                                                            if guess else ""))
        return None
    return {"apiVersion": "v1", "fieldPath": path}


def _resource_field_ref(source: dict, at: tuple, check, own: str | None,
                        env: bool, containers: list[str] | None = None) -> dict | None:
    """resourceFieldRef {containerName, resource, divisor}: env defaults the
    container to its own; a volume file must name one of the pod's."""
    where = at + ("resourceFieldRef",)
    ref = check.get(source, "resourceFieldRef", at, dict) or {}
    suggested = check.fields(ref, where, "resourceFieldRef")
    resource = check.require(ref, "resource", where, str, suggested)
    name = check.get(ref, "containerName", where, str)
    if env and name and own and name != own:
        check.error(where + ("containerName",), f'must be this container ("{own}") or left '
                                                f'out, got "{name}"')
    if not env and not name:
        check.error(where + ("containerName",), "required field is missing (a downwardAPI "
                                                "file names the container it describes)")
    elif not env and containers is not None and name not in containers:
        check.error(where + ("containerName",), f'no container named "{name}" in this pod')
    if resource is not None and resource not in RESOURCES:
        guess = suggest(resource, RESOURCES)
        check.error(where + ("resource",), f'unsupported value "{resource}": must be one of '
                    + ", ".join(f'"{r}"' for r in RESOURCES)
                    + (f'; did you mean "{guess}"?' if guess else ""))
        return None
    divisor = ref.get("divisor")
    if divisor is not None:
        value = check_quantity(ref, "divisor", where, check)
        if value is not None and value <= 0:
            check.error(where + ("divisor",), "must be greater than zero")
        if value is not None and resource and resource.endswith("cpu") and \
                value not in (parse_quantity("1m"), 1):
            check.error(where + ("divisor",), f'for {resource} must be "1m" or "1", '
                                              f"got {as_written(divisor)}")
    if resource is None:
        return None
    return {"containerName": name or own, "resource": resource,
            "divisor": str(divisor) if divisor is not None else "1"}


def check_env_from(obj: dict, path: tuple, check) -> list[dict]:
    """Container envFrom: [{prefix, configMapRef|secretRef}], as
    [{"prefix", "kind": "configMap"|"secret", "name", "optional"}]."""
    out = []
    for where, item in check.maps(obj, "envFrom", path,
                                  "an envFrom entry (a map with configMapRef or secretRef)"):
        check.fields(item, where, "envFrom")
        prefix = check.get(item, "prefix", where, str) or ""
        if prefix and not ENV_VAR_NAME.fullmatch(prefix):
            check.error(where + ("prefix",), f'invalid prefix "{prefix}": must start with a '
                        'letter, "_", "-" or "." and hold only letters, digits, "_", "-", "."')
        refs = [k for k in ("configMapRef", "secretRef") if item.get(k) is not None]
        if len(refs) != 1:
            check.error(where, "must have exactly one of configMapRef, secretRef")
            continue
        at = where + (refs[0],)
        ref = check.get(item, refs[0], where, dict)
        if ref is None:
            continue
        suggested = check.fields(ref, at, "objectRef")
        name = check.require(ref, "name", at, str, suggested)
        optional = check.get(ref, "optional", at, bool)
        if name is None:
            continue
        check_subdomain(name, at + ("name",), check)
        out.append({"prefix": prefix, "kind": refs[0][:-3], "name": name,
                    "optional": bool(optional)})
    return out


# ---------------------------------------------------------------------------
# volumes

def check_volume_source(obj: dict, kind: str, path: tuple, check,
                        containers: list[str]) -> dict | None:
    """spec.volumes[i].KIND for the four kinds above; the validated source."""
    where = path + (kind,)
    source = check.get(obj, kind, path, dict)
    if source is None:
        if obj.get(kind) is None:
            source = {}
        else:
            return None
    level = {"configMap": "configMapVolume", "secret": "secretVolume",
             "downwardAPI": "downwardAPIVolume", "projected": "projectedVolume"}[kind]
    suggested = check.fields(source, where, level)
    mode = _mode(source, "defaultMode", where, check)
    out: dict = {"defaultMode": 0o644 if mode is None else mode}
    if kind in ("configMap", "secret"):
        key = "name" if kind == "configMap" else "secretName"
        name = check.require(source, key, where, str, suggested)
        if name is not None:
            check_subdomain(name, where + (key,), check)
        out.update(name=name, optional=bool(check.get(source, "optional", where, bool)),
                   items=_key_items(source, where, check))
    elif kind == "downwardAPI":
        out["items"] = _downward_items(source, where, check, containers)
    else:
        out["sources"] = _projections(source, where, check, containers)
    return out


def _mode(obj: dict, key: str, where: tuple, check) -> int | None:
    value = check.get(obj, key, where, int)
    if value is not None and not 0 <= value <= MAX_MODE:
        check.error(where + (key,), f"must be a file mode between 0 and 0777 (octal), got "
                                    f"{value} (0{value:o}); in YAML write an octal mode with "
                                    f"a leading 0, e.g. 0644")
        return None
    return value


def _item_path(item: dict, where: tuple, check, suggested: set) -> str | None:
    path = check.require(item, "path", where, str, suggested)
    if path is None:
        return None
    if not path:
        check.error(where + ("path",), "must not be empty")
        return None
    if path.startswith(".."):
        check.error(where + ("path",), f'must not start with "..", got "{path}"')
        return None
    return path if check_path(path, where + ("path",), check, absolute=False) else None


def _unique_path(path: str | None, at: tuple, seen: dict, check) -> None:
    """Report an item path that another item of the volume has already."""
    if path is not None:
        if path in seen:
            check.error(at + ("path",), f'duplicate path "{path}" (first at '
                                        f"{check.where(seen[path])})")
        seen[path] = at + ("path",)


def _key_items(source: dict, where: tuple, check) -> list[dict] | None:
    """items: [{key, path, mode}] of a configMap or secret; None: every key."""
    if check.get(source, "items", where, list) is None:
        return None
    out, seen = [], {}
    for at, item in check.maps(source, "items", where, "an item (a map with key and path)"):
        suggested = check.fields(item, at, "keyToPath")
        key = check.require(item, "key", at, str, suggested)
        path = _item_path(item, at, check, suggested)
        mode = _mode(item, "mode", at, check)
        if key is not None and config_key_problem(key):
            check.error(at + ("key",), f'invalid key "{key}": {config_key_problem(key)}')
        _unique_path(path, at, seen, check)
        out.append({"key": key, "path": path, "mode": mode})
    return out


def _downward_items(source: dict, where: tuple, check, containers: list[str]) -> list[dict]:
    out, seen = [], {}
    for at, item in check.maps(source, "items", where,
                               "an item (a map with path and fieldRef or resourceFieldRef)"):
        suggested = check.fields(item, at, "downwardAPIFile")
        path = _item_path(item, at, check, suggested)
        mode = _mode(item, "mode", at, check)
        refs = [k for k in ("fieldRef", "resourceFieldRef") if item.get(k) is not None]
        if len(refs) != 1:
            check.error(at, "must have exactly one of fieldRef, resourceFieldRef")
            continue
        if refs[0] == "fieldRef":
            ref = _field_ref(item, at, check, VOLUME_FIELD_PATHS, subscripts_only=False)
        else:
            ref = _resource_field_ref(item, at, check, None, env=False, containers=containers)
        _unique_path(path, at, seen, check)
        out.append({"path": path, "mode": mode, refs[0]: ref})
    return out


def _projected_object(src: dict, kind: str, at: tuple, check, containers) -> dict | None:
    where = at + (kind,)
    ref = check.get(src, kind, at, dict) or {}
    suggested = check.fields(ref, where, "projectedObject")
    name = check.require(ref, "name", where, str, suggested)
    if name is not None:
        check_subdomain(name, where + ("name",), check)
    return {"name": name, "optional": bool(check.get(ref, "optional", where, bool)),
            "items": _key_items(ref, where, check)}


def _projected_downward(src: dict, kind: str, at: tuple, check, containers) -> dict:
    where = at + (kind,)
    ref = check.get(src, kind, at, dict) or {}
    check.fields(ref, where, "projectedDownwardAPI")
    return {"items": _downward_items(ref, where, check, containers)}


# One function per projected source: (source map, key, path, check, the
# pod's container names) -> the validated source. serviceAccountToken goes here.
PROJECTIONS = {
    "configMap": _projected_object,
    "secret": _projected_object,
    "downwardAPI": _projected_downward,
}


def _projections(source: dict, where: tuple, check, containers) -> list[dict]:
    out = []
    for at, src in check.maps(source, "sources", where,
                              "a projected source (a map with configMap, secret or downwardAPI)"):
        check.fields(src, at, "projection", warn=False)
        kinds = [k for k in src if src[k] is not None and
                 (k in PROJECTIONS or k in NOT_IMPLEMENTED["projection"])]
        if len(kinds) != 1:
            check.error(at, "must have exactly one of " + ", ".join(sorted(PROJECTIONS))
                        + (f" (it has {', '.join(kinds)})" if kinds else ""))
            continue
        kind = kinds[0]
        if kind not in PROJECTIONS:
            check.error(at + (kind,), f'projected source "{kind}" is not supported by '
                                      f"minipod yet; it has "
                                      + ", ".join(sorted(PROJECTIONS)))
            continue
        out.append({kind: PROJECTIONS[kind](src, kind, at, check, containers)})
    return out
