"""JSON patch (RFC 6902): a list of operations on JSON pointers (RFC 6901).

    [{"op": "replace", "path": "/spec/containers/0/image", "value": "nginx:1.28"},
     {"op": "remove", "path": "/metadata/labels/tier"}]

kubectl patch --type=json sends it (Content-Type application/json-patch+json).
The operations: add, remove, replace, move, copy, test; a pointer's `~1` is
`/` and `~0` is `~`; `-` as the last token of an add appends to an array.
json_patch() returns a new document and never changes its arguments; an
operation that cannot apply raises patch.PatchError naming the operation's
index and its path.
"""

import copy
import json

from minipod.runtime.apiserver.patch import PatchError


def _pointer(ptr, op_index):
    if not isinstance(ptr, str) or (ptr and not ptr.startswith("/")):
        raise PatchError(f"operation {op_index}: path {ptr!r} is not a JSON pointer "
                         "(it must be empty or start with '/')")
    if ptr == "":
        return []
    parts = ptr[1:].split("/")
    for p in parts:
        rest = p.replace("~0", "").replace("~1", "")
        if "~" in rest:
            raise PatchError(f"operation {op_index}: path {ptr!r} has a bad '~' escape")
    return [p.replace("~1", "/").replace("~0", "~") for p in parts]


def _index(container: list, token: str, ptr: str, op_index: int, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise PatchError(f"operation {op_index}: {ptr!r}: {token!r} is not an array index")
    i = int(token)
    if i > len(container) or (i == len(container) and not allow_end):
        raise PatchError(f"operation {op_index}: {ptr!r}: index {i} is out of range "
                         f"(the array has {len(container)} elements)")
    return i


def _parent(doc, tokens, ptr, op_index):
    node = doc
    for t in tokens[:-1]:
        if isinstance(node, dict):
            if t not in node:
                raise PatchError(f"operation {op_index}: {ptr!r}: no such path ({t!r} is missing)")
            node = node[t]
        elif isinstance(node, list):
            node = node[_index(node, t, ptr, op_index, False)]
        else:
            raise PatchError(f"operation {op_index}: {ptr!r}: {t!r} is not inside an object or array")
    return node


def _existing(doc, tokens, ptr, op_index, suffix=""):
    """(parent, key) of the value at PTR, which must be there: a key of an
    object or an index of an array (SUFFIX ends the error's "no such path")."""
    parent = _parent(doc, tokens, ptr, op_index)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"operation {op_index}: {ptr!r}: no such path{suffix}")
        return parent, last
    if isinstance(parent, list):
        return parent, _index(parent, last, ptr, op_index, False)
    raise PatchError(f"operation {op_index}: {ptr!r}: no such path{suffix}")


def _get(doc, ptr, op_index):
    tokens = _pointer(ptr, op_index)
    if not tokens:
        return doc
    parent, key = _existing(doc, tokens, ptr, op_index)
    return parent[key]


def _add(doc, ptr, value, op_index):
    tokens = _pointer(ptr, op_index)
    if not tokens:
        return value
    parent = _parent(doc, tokens, ptr, op_index)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, ptr, op_index, True), value)
    else:
        raise PatchError(f"operation {op_index}: {ptr!r}: parent is not an object or array")
    return doc


def _remove(doc, ptr, op_index):
    tokens = _pointer(ptr, op_index)
    if not tokens:
        raise PatchError(f"operation {op_index}: cannot remove the whole document")
    parent, key = _existing(doc, tokens, ptr, op_index, " to remove")
    return parent.pop(key)


def json_patch(doc, ops):
    """Apply an RFC 6902 JSON patch (a list of operations) to DOC."""
    if not isinstance(ops, list):
        raise PatchError("json patch must be a JSON array of operations")
    doc = copy.deepcopy(doc)
    for i, op in enumerate(ops):
        if not isinstance(op, dict) or not isinstance(op.get("op"), str):
            raise PatchError(f"operation {i}: must be an object with an \"op\"")
        name = op["op"]
        if "path" not in op:
            raise PatchError(f"operation {i} ({name}): missing \"path\"")
        path = op["path"]
        if name in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"operation {i} ({name}): missing \"value\"")
        if name in ("move", "copy") and "from" not in op:
            raise PatchError(f"operation {i} ({name}): missing \"from\"")
        if name == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]), i)
        elif name == "remove":
            _remove(doc, path, i)
        elif name == "replace":
            if not _pointer(path, i):
                doc = copy.deepcopy(op["value"])
                continue
            _get(doc, path, i)                      # must exist
            _remove(doc, path, i)
            doc = _add(doc, path, copy.deepcopy(op["value"]), i)
        elif name == "move":
            src = op["from"]
            if path != src and path.startswith(src + "/"):
                raise PatchError(f"operation {i} (move): cannot move {src!r} into its own child {path!r}")
            value = _remove(doc, src, i) if _pointer(src, i) else doc
            doc = _add(doc, path, value, i)
        elif name == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, op["from"], i)), i)
        elif name == "test":
            actual = _get(doc, path, i)
            if not _json_equal(actual, op["value"]):
                raise PatchError(f"operation {i} (test): {path!r} is {json.dumps(actual)}, "
                                 f"not {json.dumps(op['value'])}")
        else:
            raise PatchError(f"operation {i}: unknown op {name!r} "
                             "(add, remove, replace, move, copy, test)")
    return doc


def _json_equal(a, b) -> bool:
    # JSON: 1 == 1.0 but True != 1
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b))
    return a == b
