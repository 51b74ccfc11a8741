"""Label and field selectors, parsed and matched as kube-apiserver does.

Label selectors (`?labelSelector=`, `kubectl -l`; apimachinery
pkg/labels/selector.go)::

    selector    = requirement { "," requirement }        (comma = AND)
    requirement = key ("=" | "==" | "!=") value          equality
                | key ("in" | "notin") "(" [value {"," value}] ")"   sets
                | key                                    exists
                | "!" key                                does not exist
                | key (">" | "<") integer                numeric compare
    whitespace around tokens is ignored; "" matches everything.
    key   = [prefix "/"] name: prefix a DNS-1123 subdomain (<= 253),
            name <= 63 of [A-Za-z0-9-_.] starting and ending alphanumeric
    value = "" or like name (<= 63)
    `!=` and `notin` also match objects without the key.

Field selectors (`?fieldSelector=`; apimachinery pkg/fields/selector.go)::

    selector = term { "," term };  term = field ("=" | "==" | "!=") value
    a backslash escapes `,` `=` `!` `\\` in values; only the fields the
    kind supports (FIELDS below, from kubernetes pkg/registry/core/*/strategy.go)
    are accepted, otherwise "field label not supported: F".

Errors are SelectorError with the apiserver's wording; the server answers
400 BadRequest with the message.
"""

import re

DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
NAME_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
            "with an alphanumeric character")


class SelectorError(ValueError):
    """A selector that does not parse or names an unsupported field."""


# ------------------------------------------------------------------ labels
def validate_label_key(key: str) -> str | None:
    """None if KEY is a valid label key, else why not (upstream's text)."""
    prefix, slash, name = key.rpartition("/")
    if slash and not prefix:
        return "prefix part must be non-empty"
    if slash:
        if len(prefix) > 253:
            return "prefix part must be no more than 253 characters"
        if not DNS1123_SUBDOMAIN.fullmatch(prefix):
            return ("prefix part a lowercase RFC 1123 subdomain must consist of lower case "
                    "alphanumeric characters, '-' or '.', and must start and end with an "
                    "alphanumeric character")
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if not QUALIFIED_NAME.fullmatch(name):
        return "name part " + NAME_MSG
    return None


def validate_label_value(value: str) -> str | None:
    """None if VALUE is a valid label value, else why not."""
    if value == "":
        return None
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not QUALIFIED_NAME.fullmatch(value):
        return "a valid label " + NAME_MSG
    return None


class Requirement:
    """One `key op values` term of a label selector."""

    def __init__(self, key: str, op: str, values: list[str]):
        self.key, self.op, self.values = key, op, values

    def matches(self, labels: dict) -> bool:
        has = self.key in labels
        value = labels.get(self.key)
        if self.op in ("=", "==", "in"):
            return has and value in self.values
        if self.op in ("!=", "notin"):
            return not has or value not in self.values
        if self.op == "exists":
            return has
        if self.op == "!":
            return not has
        if self.op in (">", "<"):
            try:
                n = int(value) if has else None
            except ValueError:
                return False
            if n is None:
                return False
            return n > int(self.values[0]) if self.op == ">" else n < int(self.values[0])
        raise AssertionError(self.op)

    def __repr__(self):
        return f"Requirement({self.key!r}, {self.op!r}, {self.values!r})"


class LabelSelector:
    """All requirements must match (an empty selector matches everything)."""

    def __init__(self, requirements: list[Requirement]):
        self.requirements = requirements

    def matches(self, labels: dict | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def empty(self) -> bool:
        return not self.requirements


_TOKEN = re.compile(r"\s*(?:(==|!=|=|!|\(|\)|,|>|<)|([^\s=!(),<>]+))")


def _lex(s: str) -> list[str]:
    tokens, pos = [], 0
    while pos < len(s):
        m = _TOKEN.match(s, pos)
        if not m:
            if s[pos:].strip() == "":
                break
            raise SelectorError(f"unable to parse requirement: unexpected character at {s[pos:]!r}")
        tokens.append(m.group(1) or m.group(2))
        pos = m.end()
    return tokens


def parse_label_selector(s: str | None) -> LabelSelector:
    """Parse a label selector string (None or "" selects everything)."""
    tokens = _lex(s or "")
    reqs: list[Requirement] = []
    i = 0

    def peek(k=0):
        return tokens[i + k] if i + k < len(tokens) else ""

    def is_ident(t):
        return t not in ("", "==", "!=", "=", "!", "(", ")", ",", ">", "<")

    def fail(found, expected):
        raise SelectorError(f"unable to parse requirement: found '{found}', expected: {expected}")

    def requirement(key, op, values):
        why = validate_label_key(key)
        if why:
            raise SelectorError(f'unable to parse requirement: key: Invalid value: "{key}": {why}')
        for j, v in enumerate(values):
            why = validate_label_value(v)
            if why and op not in (">", "<"):
                raise SelectorError(f'unable to parse requirement: values[{j}][{key}]: '
                                    f'Invalid value: "{v}": {why}')
        reqs.append(Requirement(key, op, values))

    while i < len(tokens):
        if peek() == "!":
            i += 1
            if not is_ident(peek()):
                fail(peek(), "identifier after '!'")
            requirement(peek(), "!", [])
            i += 1
        elif is_ident(peek()):
            key = peek()
            i += 1
            op = peek()
            if op in ("", ","):
                requirement(key, "exists", [])
            elif op in ("=", "==", "!="):
                i += 1
                value = peek() if is_ident(peek()) else ""
                if value:
                    i += 1
                requirement(key, op, [value])
            elif op in ("in", "notin"):
                i += 1
                if peek() != "(":
                    fail(peek(), "'(' after set operator")
                i += 1
                values = []
                while True:
                    if peek() == ")":
                        if values and tokens[i - 1] == ",":
                            values.append("")
                        i += 1
                        break
                    if is_ident(peek()):
                        values.append(peek())
                        i += 1
                    elif peek() == ",":
                        if not values or tokens[i - 1] == ",":
                            values.append("")
                    else:
                        fail(peek(), "',' or ')'")
                    if peek() == ",":
                        i += 1
                        if peek() == ")":
                            values.append("")
                    elif peek() != ")":
                        fail(peek(), "',' or ')'")
                if not values:
                    raise SelectorError(f"unable to parse requirement: for '{op}', "
                                        "'notin' operators, values set can't be empty")
                requirement(key, op, values)
            elif op in (">", "<"):
                i += 1
                value = peek()
                if not value.lstrip("-").isdigit():
                    raise SelectorError(f"unable to parse requirement: for 'Gt', 'Lt' operators, "
                                        f"the value must be an integer, got '{value}'")
                i += 1
                requirement(key, op, [value])
            else:
                fail(op, "in, notin, =, ==, !=, gt, lt")
        else:
            fail(peek(), "identifier")
        if i < len(tokens):
            if peek() != ",":
                fail(peek(), "','")
            i += 1
            if i == len(tokens):
                fail("", "identifier after ','")
    return LabelSelector(reqs)


# ------------------------------------------------------------------ fields
# kind -> selectable field -> where its value is in the object, as dotted keys
# (kubernetes pkg/registry/core/*/strategy.go, the *ToSelectableFields)
_META = {"metadata.name": "metadata.name", "metadata.namespace": "metadata.namespace"}
FIELDS = {
    "Pod": dict(_META, **{f: f for f in (
        "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
        "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName")}),
    "Event": dict(_META, **{f: f for f in (
        "involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
        "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
        "involvedObject.fieldPath", "reason", "reportingComponent", "type")},
        source="source.component"),
    "Namespace": _META, "Node": _META, "ConfigMap": _META,
    "Secret": dict(_META, type="type"),
}


def _value(obj: dict, path: str):
    """OBJ's value at dotted PATH; "" where a key is missing."""
    *parents, last = path.split(".")
    for key in parents:
        obj = obj.get(key) or {}
    return obj.get(last, "")


def _fields(kind: str, obj: dict) -> dict:
    """The selectable fields of OBJ, a KIND, with their values."""
    out = {field: _value(obj, path) for field, path in FIELDS[kind].items()}
    if kind == "Pod":      # a bool, as Go's strconv.FormatBool writes it; false when unset
        out["spec.hostNetwork"] = "true" if out["spec.hostNetwork"] else "false"
    return out


class FieldSelector:
    """Terms (field, op, value); all must hold."""

    def __init__(self, terms: list[tuple[str, str, str]], kind: str):
        self.terms, self.kind = terms, kind

    def matches(self, obj: dict) -> bool:
        fields = _fields(self.kind, obj)
        for field, op, value in self.terms:
            if (fields.get(field, "") == value) != (op != "!="):
                return False
        return True

    def value_of(self, field: str) -> str | None:
        """The value an `=`/`==` term requires of FIELD (an index hint, e.g.
        metadata.name), or None."""
        for f, op, v in self.terms:
            if f == field and op != "!=":
                return v
        return None


def _split_unescaped(s: str, sep: str) -> list[str]:
    parts, cur, i = [], [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            cur.append(s[i:i + 2])
            i += 2
            continue
        if c == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


def _unescape(value: str, term: str) -> str:
    out, i = [], 0
    while i < len(value):
        c = value[i]
        if c == "\\":
            if i + 1 >= len(value) or value[i + 1] not in "\\,=!":
                raise SelectorError(f"invalid field selector: '{term}': invalid escape sequence")
            out.append(value[i + 1])
            i += 2
            continue
        if c in ",=!":
            raise SelectorError(f"invalid field selector: '{term}': unescaped '{c}' in value")
        out.append(c)
        i += 1
    return "".join(out)


def parse_field_selector(s: str | None, kind: str = "Pod") -> FieldSelector:
    """Parse a field selector for objects of KIND ("Pod", "Event", ...)."""
    if kind not in FIELDS:
        raise SelectorError(f"field selectors are not supported for {kind}")
    terms = []
    if s:
        for term in _split_unescaped(s, ","):
            if not term:
                continue
            for op in ("!=", "==", "="):
                idx = _find_unescaped(term, op)
                if idx >= 0:
                    field, value = term[:idx], term[idx + len(op):]
                    break
            else:
                raise SelectorError(f"invalid selector: '{s}'; can't understand '{term}'")
            field = field.strip()
            if field not in FIELDS[kind]:
                raise SelectorError(f"field label not supported: {field}")
            terms.append((field, "==" if op == "=" else op, _unescape(value, term)))
    return FieldSelector(terms, kind)


def _find_unescaped(term: str, op: str) -> int:
    i = 0
    while i < len(term):
        if term[i] == "\\":
            i += 2
            continue
        if term.startswith(op, i):
            # "=" must not be the second half of "!=" / "=="
            if op == "=" and (i > 0 and term[i - 1] in "!="):
                i += 1
                continue
            return i
        i += 1
    return -1
