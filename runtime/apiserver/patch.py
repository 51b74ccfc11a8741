"""Patches of a Pod: strategic merge and JSON merge (RFC 7386); JSON patch is jsonpatch.py.

PATCH's Content-Type picks the function (updates.py does the picking):

    application/strategic-merge-patch+json  strategic_merge(obj, patch)
                                            (kubectl apply, edit, set image)
    application/apply-patch+yaml            the same (kubectl apply --server-side)
    application/merge-patch+json            merge_patch(obj, patch)
                                            (kubectl label/annotate)
    application/json-patch+json             jsonpatch.json_patch(obj, ops)
                                            (kubectl patch --type=json)

Each returns a new object and never changes its arguments; bad patches raise
PatchError(message), which the server answers as a 422 (or 400) Status.

Strategic merge patch (apimachinery pkg/util/strategicpatch) is a JSON
merge patch with list rules from the API schema: a list field tagged
`patchStrategy: merge` with a `patchMergeKey` merges element by element
(containers by name, ports by containerPort, ...); one tagged `merge`
without a key (finalizers) is a set union; every other list is replaced.
Maps merge recursively and `null` deletes a key. Directives:

    {"$patch": "replace", ...}        this map replaces the original one
    {"$patch": "delete"}              delete this map
    [{"name": "c", "$patch": "delete"}]   in a merging list: drop element c
    [{"$patch": "replace"}, ...]      in a merging list: replace the list
    "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}]
                                      order of the merged list (kubectl
                                      apply sends it for every merged list)
    "$retainKeys": ["name", "emptyDir"]   keep only these keys of the map
                                      (volumes: patchStrategy merge,retainKeys)
    "$deleteFromPrimitiveList/finalizers": ["x"]   remove values of a set

What kubectl 1.32's client-side apply sends for an image change:

    {"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{...}\\n"}},
     "spec":{"$setElementOrder/containers":[{"name":"main"}],
             "containers":[{"image":"nginx:1.28","name":"main"}]}}

The list rules are POD_SCHEMA: per definition (short name), field ->
[definition of its values or None, patch strategy, merge key]. It is not
typed: schema_from_definitions() reads it, at import, from the
x-kubernetes-patch-strategy / x-kubernetes-patch-merge-key annotations of
the OpenAPI document the server ships (openapi-v1.json.gz, made from the
upstream schema as kubernetes-validate has it; it also reads that JSON
schema's `$defs`, which tests/unit/test_api_patch.py compares). Elements
not named in a $setElementOrder keep their relative order after the named
ones (upstream interleaves server-only elements by their old position;
for apply's own lists the result is the same).
"""

import copy
import gzip
import json

from minipod.runtime.apiserver import openapi


class PatchError(ValueError):
    """A patch that cannot be applied; the message says what and where."""


def schema_from_definitions(defs: dict, root: str = "io.k8s.api.core.v1.Pod") -> dict:
    """The POD_SCHEMA-style table for ROOT's closure in DEFS (JSON schema
    `$defs` or OpenAPI v3 `components.schemas`, keyed by full name)."""
    def ref(p):
        if not isinstance(p, dict):
            return None
        if "$ref" in p:
            return p["$ref"].rsplit("/", 1)[-1]
        for k in ("allOf", "anyOf", "oneOf"):
            for x in p.get(k, []):
                if (r := ref(x)):
                    return r
        return ref(p.get("items")) or ref(p.get("additionalProperties"))

    out, todo = {}, [root]
    while todo:
        name = todo.pop()
        if name in out:
            continue
        entries = {}
        for fieldname, prop in (defs.get(name, {}).get("properties") or {}).items():
            r = ref(prop)
            strategy = prop.get("x-kubernetes-patch-strategy")
            if r and r not in out:
                todo.append(r)
            if r or strategy:
                entry = [r.rsplit(".", 1)[-1] if r else None]
                if strategy:
                    entry += [strategy, prop.get("x-kubernetes-patch-merge-key")]
                entries[fieldname] = entry
        out[name] = entries
    return {n.rsplit(".", 1)[-1]: e for n, e in out.items() if e}


def _shipped_schema() -> dict:
    """POD_SCHEMA from the shipped OpenAPI document's components.schemas."""
    document = json.loads(gzip.decompress(openapi.DATA.read_bytes()))
    return schema_from_definitions(document["components"]["schemas"])


POD_SCHEMA = _shipped_schema()


def _field(schema: dict, defname: str | None, key: str):
    """(value definition, strategies, merge key) of field KEY of DEFNAME."""
    entry = schema.get(defname or "", {}).get(key)
    if not entry:
        return None, (), None
    strategies = tuple(entry[1].split(",")) if len(entry) > 1 else ()
    return entry[0], strategies, entry[2] if len(entry) > 2 else None


def _where(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)


# ------------------------------------------------------- strategic merge
def strategic_merge(original: dict, patch: dict, schema: dict = None,
                    root: str = "Pod") -> dict:
    """Apply strategic merge PATCH to ORIGINAL (a Pod unless ROOT says)."""
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object")
    result = _merge_map(copy.deepcopy(original if isinstance(original, dict) else {}),
                        patch, schema or POD_SCHEMA, root, "")
    return {} if result is None else result


def _merge_map(original: dict, patch: dict, schema, defname, path):
    directive = patch.get("$patch")
    if directive == "replace":
        return _strip({k: v for k, v in patch.items() if k != "$patch"}, schema, defname, path)
    if directive == "delete":
        return None
    if directive not in (None, "merge"):
        raise PatchError(f"{path or 'patch'}: unknown $patch directive {directive!r} "
                         "(expected replace, delete or merge)")
    retain = patch.get("$retainKeys")
    if retain is not None:
        if not isinstance(retain, list) or not all(isinstance(k, str) for k in retain):
            raise PatchError(f"{path or 'patch'}: $retainKeys must be a list of strings")
        for k in list(original):
            if k not in retain:
                del original[k]
    orders = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            if not isinstance(value, list):
                raise PatchError(f"{_where(path, key)}: must be a list")
            current = original.get(name)
            if isinstance(current, list):
                original[name] = [v for v in current if v not in value]
            continue
        if key.startswith("$"):
            raise PatchError(f"{_where(path, key)}: unknown directive")
        where = _where(path, key)
        if value is None:
            original.pop(key, None)
            continue
        sub, strategies, merge_key = _field(schema, defname, key)
        current = original.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            merged = _merge_map(current, value, schema, sub, where)
        elif isinstance(value, dict):
            merged = _merge_map({}, value, schema, sub, where)
        elif isinstance(value, list) and "merge" in strategies:
            merged = _merge_list(current if isinstance(current, list) else [], value,
                                 schema, sub, merge_key, where)
        elif isinstance(value, list):
            merged = _strip(value, schema, sub, where)
        else:
            merged = value
        if merged is None:
            original.pop(key, None)
        else:
            original[key] = merged
    for name, order in orders.items():
        if isinstance(original.get(name), list):
            _, _, merge_key = _field(schema, defname, name)
            original[name] = _order(original[name], order, merge_key, _where(path, name))
    return original


def _strip(value, schema, defname, path):
    """VALUE with directives resolved against nothing (a fresh subtree)."""
    if isinstance(value, dict):
        return _merge_map({}, value, schema, defname, path)
    if isinstance(value, list):
        return [_strip(v, schema, defname, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _merge_list(original: list, patch: list, schema, defname, merge_key, path):
    if merge_key is None:                      # a set of primitives (finalizers)
        out = list(original)
        for v in patch:
            if isinstance(v, (dict, list)):
                raise PatchError(f"{path}: a merging list of values cannot hold {json.dumps(v)}")
            if v not in out:
                out.append(v)
        return out
    if any(isinstance(v, dict) and v.get("$patch") == "replace" for v in patch):
        return [_strip(v, schema, defname, path) for v in patch
                if not (isinstance(v, dict) and v.get("$patch") == "replace")]
    out = [copy.deepcopy(v) for v in original]
    for i, item in enumerate(patch):
        where = f"{path}[{i}]"
        if not isinstance(item, dict):
            raise PatchError(f"{where}: elements of this list are objects merged by "
                             f"{merge_key!r}, got {json.dumps(item)}")
        if merge_key not in item:
            raise PatchError(f"{where}: map: {json.dumps(item)} does not contain declared "
                             f"merge key: {merge_key}")
        key = item[merge_key]
        index = next((j for j, v in enumerate(out)
                      if isinstance(v, dict) and v.get(merge_key) == key), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del out[index]
            continue
        if index is None:
            out.append(_strip(item, schema, defname, where))
        else:
            merged = _merge_map(out[index], item, schema, defname, where)
            if merged is None:
                del out[index]
            else:
                out[index] = merged
    return out


def _order(items: list, order, merge_key, path):
    if not isinstance(order, list):
        raise PatchError(f"{path}: $setElementOrder must be a list")

    def ident(v):
        return v.get(merge_key) if merge_key and isinstance(v, dict) else json.dumps(v, sort_keys=True)
    wanted = [o.get(merge_key) if merge_key and isinstance(o, dict) else json.dumps(o, sort_keys=True)
              for o in order]
    rank = {w: i for i, w in enumerate(wanted)}
    named = sorted((v for v in items if ident(v) in rank), key=lambda v: rank[ident(v)])
    return named + [v for v in items if ident(v) not in rank]


# ------------------------------------------------------------ RFC 7386
def merge_patch(target, patch):
    """JSON merge patch (RFC 7386): objects merge, null deletes, others replace."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out
