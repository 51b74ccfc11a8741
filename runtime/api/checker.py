"""Step 2 of reading a manifest: the Checker that collects its problems.

    check = Checker(source, lines, start)
    check.get(obj, key, path, want)        obj[key] if of type want, else reported
    check.require / enum / integer / strings / string_map   the same, narrower
    check.fields(obj, path, level)         unknown fields (errors, with a guess)
                                           and ignored ones (warnings)
    check.error(path, message) / warn      a Problem at the field's line
    check.errors, check.warnings           what was found, in order

A path is a tuple ("spec", "containers", 0, "image"); its line comes from
the parse step's table (the nearest enclosing field when it has none), its
name from field_name: "spec.containers[0].image". Every check of a level
(pod.py, containers.py ...) takes the checker and collects instead of
raising, so the user sees every problem of a file at once.

The small helpers of every message live here too: suggest (the closest
valid name), describe (how a value reads: 'string "80"'), is_type (bool is
no integer in a manifest), by_line, plain_copy.
"""
from __future__ import annotations

import re

from minipod.runtime.api.fields import (CHILDREN, NOT_IMPLEMENTED, NOT_IMPLEMENTED_MESSAGE,
                                        SUPPORTED, TWINS, WHERE)
from minipod.runtime.api.podtypes import Problem


class Checker:
    """Collects errors and warnings for one document, locating each one."""

    def __init__(self, source: str, lines: dict[tuple, int],
                 start: int | None):
        self.source = source
        self.lines = lines
        self.start = start
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []
        self.document = 1              # which document of the file

    def line(self, path: tuple) -> int | None:
        # A missing field has no line: use the nearest enclosing one.
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.start

    def where(self, path: tuple) -> str:
        """How a message points at another field: "line 7", or its name."""
        line = self.line(path)
        return f"line {line}" if line is not None else field_name(path)

    def error(self, path: tuple, message: str) -> None:
        self.errors.append(Problem(self.source, self.line(path),
                                   field_name(path), message))

    def error_once(self, path: tuple, message: str) -> None:
        """Like :meth:`error`, for a pod-level field judged per container:
        only the first message about that field is kept."""
        name = field_name(path)
        if not any(p.field == name for p in self.errors):
            self.error(path, message)

    def warn(self, path: tuple, message: str) -> None:
        self.warnings.append(Problem(self.source, self.line(path),
                                     field_name(path), message))

    def get(self, obj: dict, key: str, path: tuple, want: type):
        """``obj[key]`` if present and of type ``want``; else report, None.

        A null value counts as absent, as in Kubernetes.
        """
        value = obj.get(key)
        if value is None or is_type(value, want):
            return value
        hint = ""
        if want is str and isinstance(value, (bool, int, float)):
            hint = "; put the value in quotes to make it a string"
        elif want is bool and str(value).lower() in ("true", "false"):
            hint = f"; write {str(value).lower()} without quotes"
        self.error(path + (key,),
                   f"expected {_TYPE_NAMES[want]}, got {describe(value)}"
                   + hint)
        return None

    def require(self, obj: dict, key: str, path: tuple, want: type,
                suggested: set[str]):
        """Like :meth:`get`, and report the field missing.

        Not reported when an unknown field here was taken for a misspelling
        of it: the user should see one fix, not two messages.
        """
        if obj.get(key) is None:
            if key not in suggested:
                self.error(path + (key,), "required field is missing")
            return None
        return self.get(obj, key, path, want)

    def fields(self, obj: dict, path: tuple, level: str,
               warn: bool = True) -> set[str]:
        """Report unknown fields (errors) and ignored ones (warnings).

        ``warn=False`` leaves the warnings to the caller. Returns the field
        names suggested for the unknown ones.
        """
        known, ignored = SUPPORTED[level], NOT_IMPLEMENTED[level]
        suggested = set()
        for key in obj:
            if not isinstance(key, str):    # only from load_object
                self.error(path, f"field names must be strings, got {key!r}")
                continue
            if key in known:
                continue
            if key in ignored:
                if warn:
                    self.warn(path + (key,), NOT_IMPLEMENTED_MESSAGE)
                continue
            twin = TWINS.get(level)
            if twin and key in SUPPORTED[twin]:
                self.error(path + (key,), f'unknown field "{key}"; "{key}" '
                           f"is a field of {WHERE[twin]}")
                continue
            guess = suggest(key, known | ignored)
            if guess:
                suggested.add(guess)
                message = f'unknown field "{key}"; did you mean "{guess}"?'
            else:
                message = f'unknown field "{key}"' + _elsewhere(key, level)
            self.error(path + (key,), message)
        return suggested

    def maps(self, obj: dict, key: str, path: tuple, what: str):
        """Each map of the list ``obj[key]``, as ``(its path, the map)``.

        An item that is not a map is reported ("expected WHAT, got ...")
        and skipped; so is a value that is not a list.
        """
        for i, item in enumerate(self.get(obj, key, path, list) or []):
            where = path + (key, i)
            if isinstance(item, dict):
                yield where, item
            else:
                self.error(where, f"expected {what}, got {describe(item)}")

    def enum(self, obj: dict, key: str, path: tuple,
             allowed: tuple[str, ...]) -> str | None:
        """``obj[key]`` if it is one of ``allowed`` (case-sensitive)."""
        value = self.get(obj, key, path, str)
        if value is None or value in allowed:
            return value
        choices = ", ".join(f'"{a}"' for a in allowed)
        message = f'unsupported value "{value}": must be one of {choices}'
        guess = suggest(value, allowed)
        if guess:
            case = "values are case-sensitive: " \
                if guess.lower() == value.lower() else ""
            message += f'; {case}did you mean "{guess}"?'
        self.error(path + (key,), message)
        return None

    def integer(self, obj: dict, key: str, path: tuple,
                low: int, high: int) -> int | None:
        value = self.get(obj, key, path, int)
        if value is not None and not low <= value <= high:
            self.error(path + (key,),
                       f"must be between {low} and {high}, got {value}")
            return None
        return value

    def strings(self, obj: dict, key: str, path: tuple) -> list[str] | None:
        """A list of strings (command, args)."""
        items = self.get(obj, key, path, list)
        if items is None:
            return None
        ok = True
        for i, item in enumerate(items):
            if not isinstance(item, str):
                hint = ("; put it in quotes to make it a string"
                        if isinstance(item, (bool, int, float)) else "")
                self.error(path + (key, i),
                           f"expected a string, got {describe(item)}{hint}")
                ok = False
        return items if ok else None

    def string_map(self, obj: dict, key: str, path: tuple) -> dict[str, str]:
        """A map of strings to strings (labels, annotations)."""
        mapping = self.get(obj, key, path, dict) or {}
        for k, v in mapping.items():
            if not isinstance(k, str):      # only from load_object
                self.error(path + (key,), f"keys must be strings, got {k!r}")
            elif not isinstance(v, str):
                hint = ("; put the value in quotes to make it a string"
                        if isinstance(v, (bool, int, float)) else "")
                self.error(path + (key, k),
                           f"expected a string, got {describe(v)}{hint}")
        return {k: v for k, v in mapping.items()
                if isinstance(k, str) and isinstance(v, str)}


def suggest(word: str, choices) -> str | None:
    """The closest valid name to ``word``, or None."""
    import difflib
    for choice in sorted(choices):     # a case slip first: "pod" -> "Pod"
        if choice.lower() == word.lower():
            return choice
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def _elsewhere(key: str, level: str) -> str:
    """A hint when ``key`` is a field of another level (wrong indentation)."""
    parents = [name for name, child in CHILDREN.get(level, {}).items()
               if key in SUPPORTED[child] | NOT_IMPLEMENTED[child]]
    if parents:
        names = [f'"{name}:"' for name in parents]
        listed = names[0] if len(names) == 1 else \
            ", ".join(names[:-1]) + " or " + names[-1]
        return f'; "{key}" belongs under {listed}: check the indentation'
    for other, where in WHERE.items():
        if other != level and key in SUPPORTED[other] | NOT_IMPLEMENTED[other]:
            return f'; "{key}" is a field of {where}: check the indentation'
    return ""


_TYPE_NAMES = {str: "a string", int: "an integer", list: "a list",
               dict: "a map", bool: "a boolean (true or false)"}


def is_type(value, want: type) -> bool:
    # bool is a subclass of int in Python; in a manifest it is not a number.
    if want is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, want)


def describe(value) -> str:
    """How a value reads in a message: 'string "80"', 'boolean true'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f'string "{text}"'
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a map"
    return type(value).__name__


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def field_name(path: tuple) -> str:
    """("spec", "containers", 0, "image") -> "spec.containers[0].image"."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(str(part)):
            out += f".{part}" if out else part
        else:                           # a label key such as "app.k8s.io/x"
            out += f'["{part}"]'
    return out


def by_line(problems: list[Problem]) -> list[Problem]:
    """Problems in file order; a stable sort keeps same-line ones in order."""
    return sorted(problems, key=lambda p: p.line or 0)


def plain_copy(value):
    """A copy of plain data (maps, lists, scalars), so that ``Pod.raw`` is
    never the caller's object. Five times faster than copy.deepcopy, which
    the agent would pay for every pod it re-reads."""
    if isinstance(value, dict):
        return {key: plain_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain_copy(item) for item in value]
    return value
