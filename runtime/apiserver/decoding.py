"""A request body as JSON or YAML, with kube-apiserver's error words.

    loads(body, yaml=False) -> object, or ApiError 400 BadRequest

kube-apiserver reads a body with Go's encoding/json (sigs.k8s.io/json) or,
for YAML, go-yaml then JSON, and a client sees those libraries' messages:

    couldn't get version/kind; json parse error: unexpected end of JSON input
    couldn't get version/kind; json parse error: invalid character 'P' looking for
        beginning of value
    couldn't get version/kind; json parse error: exceeded max depth
    error converting YAML to JSON: yaml: line 2: did not find expected node content
    error converting YAML to JSON: yaml: document contains excessive aliasing

Python's json and PyYAML say the same things differently; WORDS maps
them. A YAML alias is a reference, so a few hundred bytes of anchors can
stand for a billion strings (the "billion laughs"): go-yaml refuses a
document whose aliases expand it far beyond its size, and so does
`_check_expansion` here, before anything walks the tree.
"""
from __future__ import annotations

import json

from minipod.runtime.apiserver.objects import ApiError

JSON_PREFIX = "couldn't get version/kind; json parse error: "
YAML_PREFIX = "error converting YAML to JSON: yaml: "
EXPANSION = 4          # nodes per byte of the body a document may expand to (aliases)
MIN_NODES = 10000

# Python's json message -> what encoding/json says after "invalid character 'c' "
WORDS = {
    "Expecting value": "looking for beginning of value",
    "Expecting property name enclosed in double quotes":
        "looking for beginning of object key string",
    "Expecting ':' delimiter": "after object key",
    "Expecting ',' delimiter": "after object key:value pair",
    "Extra data": "after top-level value",
}


def _json_message(e: json.JSONDecodeError) -> str:
    rest = e.doc[e.pos:]
    if not rest.strip():
        return "unexpected end of JSON input"
    words = WORDS.get(e.msg)
    if words is None:
        return f"{e.msg}: line {e.lineno} column {e.colno}"
    if e.msg == "Expecting ',' delimiter" and _in_array(e.doc, e.pos):
        words = words.replace("object key:value pair", "array element")
    char = rest[0]
    shown = repr(char)[1:-1] if char.isprintable() else f"\\x{ord(char):02x}"
    return f"invalid character '{shown}' {words}"


def _in_array(doc: str, pos: int) -> bool:
    """Is pos directly inside a [...] (not a {...})? A rough scan that skips strings."""
    depth: list[str] = []
    in_string = escaped = False
    for c in doc[:pos]:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth.append(c)
        elif c in "]}" and depth:
            depth.pop()
    return bool(depth) and depth[-1] == "["


def loads(body: bytes, yaml: bool = False):
    """Decode body (empty: {}); ApiError 400 with upstream's words if it is malformed."""
    if yaml:
        return _yaml(body)
    try:
        return json.loads(body or b"{}")
    except json.JSONDecodeError as e:
        raise ApiError(400, "BadRequest", JSON_PREFIX + _json_message(e))
    except RecursionError:
        raise ApiError(400, "BadRequest", JSON_PREFIX + "exceeded max depth")
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, "BadRequest", JSON_PREFIX + str(e))


def _yaml(body: bytes):
    import yaml
    try:
        obj = yaml.safe_load(body.decode())
    except UnicodeDecodeError as e:
        raise ApiError(400, "BadRequest", YAML_PREFIX + f"invalid UTF-8: {e.reason}")
    except RecursionError:
        raise ApiError(400, "BadRequest", YAML_PREFIX + "exceeded max depth")
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ApiError(400, "BadRequest", YAML_PREFIX + where + (e.problem or e.context
                                                                 or "malformed"))
    except yaml.YAMLError as e:
        raise ApiError(400, "BadRequest", YAML_PREFIX + " ".join(str(e).split()))
    _check_expansion(obj, max(MIN_NODES, EXPANSION * len(body)))
    return obj


def _check_expansion(obj, budget: int) -> None:
    """ApiError if walking obj (shared parts counted each time they are
    reached, as a JSON encoder or a validator would) visits more than budget nodes."""
    stack = [obj]
    seen = 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > budget:
            raise ApiError(400, "BadRequest", YAML_PREFIX + "document contains excessive "
                                                            "aliasing")
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
