"""A minimal label and field selector parser, private to the server for now.

Stands in for runtime/apiserver/selectors.py (another helper's, with the same
interface) until that is merged; then server.py imports that one instead.

    parse_label_selector("app=web,tier!=db,env in (a,b),!canary") -> .matches(labels)
    parse_field_selector("metadata.name=web,status.phase!=Failed") -> .matches(obj)

Both raise SelectorError(message) on bad input (answered as 400 BadRequest).
"""
from __future__ import annotations

import re


class SelectorError(ValueError):
    pass


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


_SET = re.compile(r"^([A-Za-z0-9./_-]+)\s+(in|notin)\s+\(([^()]*)\)$")
_CMP = re.compile(r"^([A-Za-z0-9./_-]+)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)$")
_KEY = re.compile(r"^(!?)\s*([A-Za-z0-9./_-]+)$")


class _Labels:
    def __init__(self, reqs):
        self.reqs = reqs

    def matches(self, labels: dict) -> bool:
        labels = labels or {}
        for key, op, values in self.reqs:
            have = key in labels
            if op == "exists" and not have or op == "!" and have:
                return False
            if op == "in" and labels.get(key) not in values:
                return False
            if op == "notin" and have and labels[key] in values:
                return False
        return True


def parse_label_selector(text: str) -> _Labels:
    reqs = []
    for part in _split_top(text or ""):
        if m := _SET.match(part):
            values = {v.strip() for v in m.group(3).split(",") if v.strip()}
            reqs.append((m.group(1), m.group(2), values))
        elif m := _CMP.match(part):
            reqs.append((m.group(1), "notin" if m.group(2) == "!=" else "in", {m.group(3)}))
        elif m := _KEY.match(part):
            reqs.append((m.group(2), "!" if m.group(1) else "exists", set()))
        else:
            raise SelectorError(f"unable to parse requirement: {part!r}")
    return _Labels(reqs)


class _Fields:
    def __init__(self, reqs):
        self.reqs = reqs

    def matches(self, obj: dict) -> bool:
        for path, op, value in self.reqs:
            node = obj
            for key in path.split("."):
                node = node.get(key) if isinstance(node, dict) else None
            have = "" if node is None else str(node)
            if (have == value) != (op == "="):
                return False
        return True


def parse_field_selector(text: str) -> _Fields:
    reqs = []
    for part in _split_top(text or ""):
        m = re.match(r"^([A-Za-z0-9._]+)\s*(==|=|!=)\s*(.*)$", part)
        if not m:
            raise SelectorError(f"invalid selector: {part!r}; can't understand {part!r}")
        reqs.append((m.group(1), "!=" if m.group(2) == "!=" else "=", m.group(3).strip()))
    return _Fields(reqs)
