"""Step 1 of reading a manifest: text -> YAML nodes -> plain values and lines.

    compose(text, source) -> [root node of each document]
    Builder(source).document(root) -> (plain object, {path: line}, problems)

yaml's composer gives a tree of nodes, each knowing its line; the Builder
walks it into dicts, lists, strings and numbers (Pod.raw) and a table
``("spec", "containers", 0, "image") -> 7`` for the messages of step 2.
JSON is YAML (tab indents made spaces), so it takes the same road.

Limits, checked as the tree is built: MAX_NODES (aliases can expand a few
lines into billions of nodes), MAX_DEPTH, and the API server's request
size MAX_MANIFEST_BYTES. Errors raise podtypes.ManifestError; Stop ends
one document. yaml is imported here only, and only when a manifest is read.
"""
from __future__ import annotations

import re

from minipod.runtime.api.checker import field_name
from minipod.runtime.api.podtypes import ManifestError, Problem

# Limits on the YAML tree. Aliases let a few lines expand to billions of
# nodes ("billion laughs"): count nodes as they are expanded and stop early.
MAX_NODES = 100_000
# kube-apiserver refuses a request body over 3 MiB ("request entity too large")
MAX_MANIFEST_BYTES = 3 * 1024 * 1024
MAX_DEPTH = 100


def compose(text: str, source: str) -> list:
    """Compose every YAML document of ``text`` into a node tree."""
    import yaml
    text = _untab_json(text)
    _count_events(text, source)
    try:
        return list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        what = "; ".join(s for s in (e.context, e.problem) if s)
        where = f" (column {mark.column + 1})" if mark else ""
        raise ManifestError([Problem(source, mark.line + 1 if mark else None,
                                     "", f"invalid YAML: {what}{where}")])
    except yaml.reader.ReaderError as e:
        # Raised for characters YAML forbids (NUL, most control characters).
        line = text[:e.position].count("\n") + 1
        char = e.character
        code = f"#x{char:04x}" if isinstance(char, int) else repr(char)
        raise ManifestError([Problem(
            source, line, "",
            f"invalid YAML: character {code} is not allowed")])
    except yaml.YAMLError as e:
        raise ManifestError([Problem(source, None, "", f"invalid YAML: {e}")])
    except RecursionError:
        raise ManifestError([Problem(source, None, "",
                                     "invalid YAML: nested too deeply")])


def _count_events(text: str, source: str) -> None:
    """Refuse a file of more than MAX_NODES nodes before composing it:
    libyaml's event parser counts 200k events in 0.2 s, composing them
    takes seconds. Its syntax errors are left to the composer, whose
    messages say more."""
    import yaml
    loader = getattr(yaml, "CSafeLoader", None)
    if loader is None:
        return
    depth = 0
    try:
        for n, event in enumerate(yaml.parse(text, Loader=loader)):
            if n > 2 * MAX_NODES:
                raise ManifestError([Problem(source, event.start_mark.line + 1, "", (
                    f"the file expands to more than {MAX_NODES} YAML nodes; "
                    "refusing to load it"))])
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise ManifestError([Problem(source, event.start_mark.line + 1, "", (
                        f"nested more than {MAX_DEPTH} levels deep"))])
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1
    except yaml.YAMLError:
        return


def _untab_json(text: str) -> str:
    """Let JSON indented with tabs through YAML, which forbids tab indents.

    Valid JSON cannot hold a raw tab inside a string (it must be written
    ``\\t``), so in valid JSON every tab is whitespace and may become a
    space; lines do not move. Anything else is left for YAML to judge.
    """
    if text.lstrip()[:1] not in ("{", "["):
        return text
    import json
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return text
    # characters JSON strings may hold raw but YAML's reader refuses
    return re.sub("[\x7f-\x9f\ufffe\uffff]", lambda m: f"\\u{ord(m.group()):04x}",
                  text.replace("\t", " "))


class Stop(Exception):
    """The document cannot be walked further (too big or too deep)."""

    def __init__(self, problem: Problem):
        self.problem = problem


class Builder:
    """Turn yaml nodes into plain values, noting the line of every field.

    One builder serves a whole file, so the node budget covers the file.
    """

    TAG = "tag:yaml.org,2002:"

    def __init__(self, source: str):
        import yaml
        from yaml.constructor import SafeConstructor
        self.yaml = yaml
        self.constructor = SafeConstructor()
        self.source = source
        self.nodes = 0
        self.lines: dict[tuple, int] = {}
        self.problems: list[Problem] = []

    def document(self, root) -> tuple[dict, dict[tuple, int], list[Problem]]:
        self.lines, self.problems = {}, []
        value = self._build(root, (), 0)
        return value, self.lines, self.problems

    def _problem(self, node, path: tuple, message: str) -> Problem:
        return Problem(self.source, node.start_mark.line + 1,
                       field_name(path), message)

    def _build(self, node, path: tuple, depth: int):
        yaml = self.yaml
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise Stop(self._problem(
                node, (), f"the file expands to more than {MAX_NODES} "
                "YAML nodes (nested aliases?); refusing to load it"))
        if depth > MAX_DEPTH:
            raise Stop(self._problem(
                node, path, f"nested more than {MAX_DEPTH} levels deep"))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            items = []
            for i, item in enumerate(node.value):
                self.lines[path + (i,)] = item.start_mark.line + 1
                items.append(self._build(item, path + (i,), depth + 1))
            return items
        return self._scalar(node, path)

    def _mapping(self, node, path: tuple, depth: int) -> dict:
        yaml = self.yaml
        out: dict = {}
        for key_node, value_node in node.value:
            if key_node.tag == self.TAG + "merge":
                self.problems.append(self._problem(
                    key_node, path, "YAML merge keys (<<) are not supported; "
                    "write the fields out"))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(self._problem(
                    key_node, path, "a field name must be a plain string"))
                continue
            # The key as written: Kubernetes turns `80:` or `true:` into the
            # strings "80" and "true" too (sigs.k8s.io/yaml).
            key = key_node.value
            if key in out:
                self.problems.append(self._problem(
                    key_node, path + (key,),
                    f'field "{key}" appears twice in this map (first at '
                    f"line {self.lines[path + (key,)]})"))
                continue
            self.lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = self._build(value_node, path + (key,), depth + 1)
        return out

    def _scalar(self, node, path: tuple):
        tag = node.tag.removeprefix(self.TAG)
        if tag in ("str", "value"):     # "value" is a lone "=": a string
            return node.value
        if tag == "null":
            return None
        if tag in ("bool", "int", "float"):
            constructor = self.constructor
            try:
                return constructor.yaml_constructors[node.tag](constructor, node)
            except ValueError:   # an integer of more than 4300 digits
                self.problems.append(self._problem(
                    node, path, f"a number of {len(node.value)} digits is out of range"))
                return node.value
        if tag == "timestamp":
            # Kept as written: Kubernetes reads timestamps as strings, and
            # raw must stay printable as JSON.
            return node.value
        self.problems.append(self._problem(
            node, path, f"unsupported YAML tag {node.tag}"))
        return node.value               # reported once: no "got null" after
