"""Pod manifests: parse, then validate, before anything is created.

A manifest is a file holding one or more Kubernetes v1 Pod objects, in YAML
(documents separated by ``---``) or JSON. It becomes a list of :class:`Pod`
values in two pure steps; nothing here touches the kernel:

1. **parse** -- yaml's *composer* turns the text into a tree of nodes, and
   every node knows the line it was written on. We walk that tree into plain
   dicts, lists, strings and numbers (kept as ``Pod.raw`` for ``get -o
   yaml``) and, beside them, a table ``path -> line`` such as
   ``("spec", "containers", 0, "image") -> 7``. JSON is YAML, so a ``.json``
   file takes the same road and its errors name lines too.

2. **validate** -- walk the plain object level by level (Pod, ObjectMeta,
   PodSpec, Container, ContainerPort, EnvVar) against the field tables below
   and *collect* every problem instead of stopping at the first, so the
   user fixes the whole file in one go. A :class:`Problem` names the file,
   the line, the field and what to do::

       kubia.yaml:7: spec.containers[0].images: unknown field "images"; did you mean "image"?

   Errors raise :class:`ManifestError`; warnings (fields that are valid
   Kubernetes but that minipod ignores) are returned, never dropped.

The rules are the API server's (k8s.io/kubernetes
``pkg/apis/core/validation/validation.go`` and apimachinery
``pkg/util/validation/validation.go``), so a manifest that minipod accepts
also runs unchanged on a real cluster with ``kubectl apply -f``. A few are
stricter, said where they are.

Usage::

    pods, warnings = load_file("pod.yaml")      # raises ManifestError
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

# yaml and difflib are imported inside the functions that need them: every
# CLI command imports this module (for the Pod type), few of them parse.


# ---------------------------------------------------------------------------
# Field tables: the complete field lists of the Kubernetes v1 schema (as of
# Kubernetes 1.37), split into what minipod implements and what it ignores
# with a warning. Anything in neither set is an unknown field: an error.

SUPPORTED = {
    "pod": {"apiVersion", "kind", "metadata", "spec"},
    "metadata": {"name", "namespace", "labels", "annotations"},
    "spec": {"containers", "restartPolicy", "terminationGracePeriodSeconds"},
    "container": {"name", "image", "imagePullPolicy", "command", "args",
                  "env", "workingDir", "ports"},
    "port": {"containerPort", "protocol", "name", "hostPort", "hostIP"},
    "env": {"name", "value"},
    "status": set(),
}

NOT_IMPLEMENTED = {
    "pod": {"status"},
    "metadata": {
        "creationTimestamp", "deletionGracePeriodSeconds",
        "deletionTimestamp", "finalizers", "generateName", "generation",
        "managedFields", "ownerReferences", "resourceVersion", "selfLink",
        "uid",
    },
    "spec": {
        "activeDeadlineSeconds", "affinity", "automountServiceAccountToken",
        "dnsConfig", "dnsPolicy", "enableServiceLinks", "ephemeralContainers",
        "evictionResponders", "hostAliases", "hostIPC", "hostNetwork",
        "hostPID", "hostUsers", "hostname", "hostnameOverride",
        "imagePullSecrets", "initContainers", "nodeName", "nodeSelector", "os",
        "overhead", "preemptionPolicy", "priority", "priorityClassName",
        "readinessGates", "resourceClaims", "resources", "runtimeClassName",
        "schedulerName", "schedulingGates", "schedulingGroup",
        "securityContext", "serviceAccount", "serviceAccountName",
        "setHostnameAsFQDN", "shareProcessNamespace", "subdomain",
        "tolerations", "topologySpreadConstraints", "volumes",
    },
    "container": {
        "envFrom", "lifecycle", "livenessProbe", "readinessProbe",
        "resizePolicy", "resources", "restartPolicy", "restartPolicyRules",
        "securityContext", "startupProbe", "stdin", "stdinOnce",
        "terminationMessagePath", "terminationMessagePolicy", "tty",
        "volumeDevices", "volumeMounts",
    },
    "port": set(),
    "env": {"valueFrom"},
    # status is written by the system, never by the user: minipod ignores
    # it as a whole, but still checks its field names for typos.
    "status": {
        "allocatedResources", "conditions", "containerStatuses",
        "ephemeralContainerStatuses", "extendedResourceClaimStatus",
        "hostIP", "hostIPs", "initContainerStatuses", "message",
        "nodeAllocatableResourceClaimStatuses", "nominatedNodeName",
        "observedGeneration", "phase", "podIP", "podIPs", "qosClass",
        "reason", "resize", "resourceClaimStatuses", "resources",
        "startTime", "volumeHealth",
    },
}

# Where each level lives, to tell a user whose field is at the wrong
# indentation where it belongs.
WHERE = {
    "pod": "the Pod itself (top level)",
    "metadata": "metadata",
    "spec": "spec",
    "container": "a container (spec.containers[])",
    "port": "a port (spec.containers[].ports[])",
    "env": "an env entry (spec.containers[].env[])",
}

RESTART_POLICIES = ("Always", "OnFailure", "Never")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
PROTOCOLS = ("TCP", "UDP", "SCTP")

DEFAULT_NAMESPACE = "default"
DEFAULT_RESTART_POLICY = "Always"
DEFAULT_GRACE_SECONDS = 30

NOT_IMPLEMENTED_MESSAGE = ("field is valid Kubernetes but not implemented "
                           "by minipod yet; ignored")

# The name rules of apimachinery's validation.go.
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
IANA_SVC_NAME = re.compile(r"[-a-z0-9]+")
# Kubernetes >= 1.34 accepts any printable ASCII but '=' in env var names;
# minipod keeps the older rule, which every cluster accepts.
ENV_VAR_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")

MAX_ANNOTATIONS_BYTES = 256 * 1024

# Limits on the YAML tree. Aliases let a few lines expand to billions of
# nodes ("billion laughs"): count nodes as they are expanded and stop early.
MAX_NODES = 100_000
MAX_DEPTH = 100


# ---------------------------------------------------------------------------
# The public types.

@dataclass(frozen=True)
class Problem:
    """One error or warning, located as precisely as the input allows."""
    source: str            # file path as given, or "<stdin>"
    line: int | None       # 1-based; None when unknown (load_object)
    field: str             # "spec.containers[0].images"; "" for the file
    message: str

    def __str__(self) -> str:
        head = self.source or ""
        if self.line is not None:
            head += f":{self.line}"
        parts = [p for p in (head, self.field) if p]
        return ": ".join(parts + [self.message])


class ManifestError(Exception):
    """The manifest is not valid; ``str(e)`` lists every problem, one a line.

    ``problems`` are the errors; ``warnings`` those found along the way.
    """

    def __init__(self, problems: list[Problem],
                 warnings: list[Problem] | None = None):
        self.problems = list(problems)
        self.warnings = list(warnings or [])
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass
class Port:
    container_port: int
    protocol: str = "TCP"
    name: str | None = None
    host_port: int | None = None
    host_ip: str | None = None


@dataclass
class EnvVar:
    name: str
    value: str = ""


@dataclass
class Container:
    name: str
    image: str
    image_pull_policy: str
    command: list[str] | None
    args: list[str] | None
    env: list[EnvVar]
    working_dir: str | None
    ports: list[Port]


@dataclass
class Pod:
    name: str
    namespace: str
    labels: dict[str, str]
    annotations: dict[str, str]
    containers: list[Container]
    restart_policy: str
    termination_grace_period_seconds: int
    raw: dict                 # the object as loaded, for `get -o yaml`
    source: str
    line: int | None          # where the document starts


def default_pull_policy(image: str) -> str:
    """Kubernetes' default imagePullPolicy for ``image``.

    ``Always`` when the tag is ``latest``, or when there is neither tag nor
    digest (which means latest); ``IfNotPresent`` otherwise. Follows
    ``SetDefaults_Container`` in pkg/apis/core/v1/defaults.go.
    """
    rest, _, digest = image.partition("@")
    last = rest.rsplit("/", 1)[-1]      # a registry "host:5000/" is no tag
    tag = last.partition(":")[2]
    if tag == "latest" or (not tag and not digest):
        return "Always"
    return "IfNotPresent"


# ---------------------------------------------------------------------------
# Entry points.

def load_file(path: str) -> tuple[list[Pod], list[Problem]]:
    """Read and validate the manifest at ``path`` ("-" for stdin).

    Returns ``(pods, warnings)``; raises :class:`ManifestError` listing all
    errors found, including a file that cannot be read.
    """
    source = "<stdin>" if path == "-" else path
    try:
        if path == "-":
            stream = getattr(sys.stdin, "buffer", None)
            data = stream.read() if stream is not None else sys.stdin.read()
        else:
            with open(path, "rb") as f:
                data = f.read()
    except OSError as e:
        raise ManifestError([Problem(source, None, "",
                                     f"cannot read file: {e.strerror}")])
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data[:e.start].count(b"\n") + 1
            raise ManifestError([Problem(
                source, line, "",
                f"file is not UTF-8 text (byte 0x{data[e.start]:02x} "
                f"at offset {e.start})")])
    return load_text(data, source)


def load_text(text: str, source: str) -> tuple[list[Pod], list[Problem]]:
    """Parse and validate manifest text; see :func:`load_file`."""
    roots = _compose(text, source)
    builder = _Builder(source)
    pods: list[Pod] = []
    errors: list[Problem] = []
    warnings: list[Problem] = []
    first_seen: dict[tuple[str, str], int | None] = {}
    for root in roots:
        pod, doc_errors, doc_warnings = _load_document(root, builder, source)
        if pod is not None:
            key = (pod.namespace, pod.name)
            if key in first_seen:
                doc_errors.append(Problem(
                    source, pod.line, "metadata.name",
                    f'pod "{pod.name}" is defined twice in this file '
                    f"(first at line {first_seen[key]})"))
            else:
                first_seen[key] = pod.line
                pods.append(pod)
        errors += _by_line(doc_errors)
        warnings += _by_line(doc_warnings)
    if not pods and not errors:
        errors.append(Problem(source, None, "",
                              "no Pod found: the file has no documents"))
    if errors:
        raise ManifestError(errors, warnings)
    return pods, warnings


def load_object(obj: dict, source: str = "<object>") -> Pod:
    """Validate an already-parsed Pod object (no line numbers)."""
    import copy
    if not isinstance(obj, dict):
        raise ManifestError([Problem(
            source, None, "",
            f"expected a Pod object (a map), got {_describe(obj)}")])
    check = _Checker(source, {}, None)
    pod = _validate(copy.deepcopy(obj), check)
    if check.errors:
        raise ManifestError(_by_line(check.errors), check.warnings)
    return pod


# ---------------------------------------------------------------------------
# Step 1: parse. Text -> yaml nodes -> plain values plus a table of lines.

def _compose(text: str, source: str) -> list:
    """Compose every YAML document of ``text`` into a node tree."""
    import yaml
    text = _untab_json(text)
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


def _untab_json(text: str) -> str:
    """Let JSON indented with tabs through YAML, which forbids tab indents.

    Valid JSON cannot hold a raw tab inside a string (it must be written
    ``\\t``), so in valid JSON every tab is whitespace and may become a
    space; lines do not move. Anything else is left for YAML to judge.
    """
    if "\t" not in text or text.lstrip()[:1] not in ("{", "["):
        return text
    import json
    try:
        json.loads(text)
    except ValueError:
        return text
    return text.replace("\t", " ")


class _Stop(Exception):
    """The document cannot be walked further (too big or too deep)."""

    def __init__(self, problem: Problem):
        self.problem = problem


class _Builder:
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
                       _field_name(path), message)

    def _build(self, node, path: tuple, depth: int):
        yaml = self.yaml
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _Stop(self._problem(
                node, (), f"the file expands to more than {MAX_NODES} "
                "YAML nodes (nested aliases?); refusing to load it"))
        if depth > MAX_DEPTH:
            raise _Stop(self._problem(
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
            return constructor.yaml_constructors[node.tag](constructor, node)
        if tag == "timestamp":
            # Kept as written: Kubernetes reads timestamps as strings, and
            # raw must stay printable as JSON.
            return node.value
        self.problems.append(self._problem(
            node, path, f"unsupported YAML tag {node.tag}"))
        return node.value               # reported once: no "got null" after


def _load_document(root, builder: _Builder, source: str):
    """Build and validate one document: ``(pod or None, errors, warnings)``."""
    import yaml
    start = root.start_mark.line + 1
    if isinstance(root, yaml.ScalarNode) and root.tag.endswith(":null"):
        return None, [], []             # an empty document, e.g. a stray ---
    if not isinstance(root, yaml.MappingNode):
        kind = "a list" if isinstance(root, yaml.SequenceNode) else "a value"
        message = f"expected a Pod object (a map), got {kind}"
        return None, [Problem(source, start, "", message)], []
    try:
        obj, lines, problems = builder.document(root)
    except _Stop as stop:
        return None, [stop.problem], []
    check = _Checker(source, lines, start)
    check.errors += problems
    pod = _validate(obj, check)
    return pod, check.errors, check.warnings


# ---------------------------------------------------------------------------
# Step 2: validate. A _Checker collects problems; one function per level.

class _Checker:
    """Collects errors and warnings for one document, locating each one."""

    def __init__(self, source: str, lines: dict[tuple, int],
                 start: int | None):
        self.source = source
        self.lines = lines
        self.start = start
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []

    def line(self, path: tuple) -> int | None:
        # A missing field has no line: use the nearest enclosing one.
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.start

    def error(self, path: tuple, message: str) -> None:
        self.errors.append(Problem(self.source, self.line(path),
                                   _field_name(path), message))

    def warn(self, path: tuple, message: str) -> None:
        self.warnings.append(Problem(self.source, self.line(path),
                                     _field_name(path), message))

    def get(self, obj: dict, key: str, path: tuple, want: type):
        """``obj[key]`` if present and of type ``want``; else report, None.

        A null value counts as absent, as in Kubernetes.
        """
        value = obj.get(key)
        if value is None or _is(value, want):
            return value
        hint = ""
        if want is str and isinstance(value, (bool, int, float)):
            hint = "; put the value in quotes to make it a string"
        self.error(path + (key,),
                   f"expected {_TYPE_NAMES[want]}, got {_describe(value)}"
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
            guess = _suggest(key, known | ignored)
            if guess:
                suggested.add(guess)
                message = f'unknown field "{key}"; did you mean "{guess}"?'
            else:
                message = f'unknown field "{key}"' + _elsewhere(key, level)
            self.error(path + (key,), message)
        return suggested

    def enum(self, obj: dict, key: str, path: tuple,
             allowed: tuple[str, ...]) -> str | None:
        """``obj[key]`` if it is one of ``allowed`` (case-sensitive)."""
        value = self.get(obj, key, path, str)
        if value is None or value in allowed:
            return value
        choices = ", ".join(f'"{a}"' for a in allowed)
        message = f'unsupported value "{value}": must be one of {choices}'
        guess = _suggest(value, allowed)
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
                           f"expected a string, got {_describe(item)}{hint}")
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
                           f"expected a string, got {_describe(v)}{hint}")
        return {k: v for k, v in mapping.items()
                if isinstance(k, str) and isinstance(v, str)}


def _validate(obj: dict, check: _Checker) -> Pod | None:
    """Validate one Pod object; the Pod if it has no errors, else None."""
    if not _check_type_meta(obj, check):
        return None                     # not a Pod at all: say only that
    suggested = check.fields(obj, (), "pod")
    meta = check.require(obj, "metadata", (), dict, suggested)
    spec = check.require(obj, "spec", (), dict, suggested)
    status = check.get(obj, "status", (), dict)
    if status:
        # Already warned about as a whole; only typos are worth a word.
        check.fields(status, ("status",), "status", warn=False)
    # A missing metadata or spec is one error, not one per field inside.
    if meta is not None:
        name, namespace, labels, annotations = _check_metadata(meta, check)
    if spec is not None:
        containers, restart, grace = _check_spec(spec, check)
    if check.errors or meta is None or spec is None:
        return None
    return Pod(name=name, namespace=namespace, labels=labels,
               annotations=annotations, containers=containers,
               restart_policy=restart,
               termination_grace_period_seconds=grace, raw=obj,
               source=check.source, line=check.start)


def _check_type_meta(obj: dict, check: _Checker) -> bool:
    """Check apiVersion and kind. False if the object is not a Pod at all."""
    kind = check.get(obj, "kind", (), str)
    if "kind" not in obj or obj["kind"] is None:
        check.error(("kind",), 'required field is missing; add "kind: Pod"')
    elif kind is not None and kind != "Pod":
        if kind.lower() == "pod":
            check.error(("kind",), f'kind "{kind}" is not supported; kind is '
                        'case-sensitive: did you mean "Pod"?')
        else:
            more = ("; put each Pod in its own YAML document, separated by "
                    '"---"' if kind == "List" else "")
            check.error(("kind",), f'kind "{kind}" is not supported: minipod '
                        f'runs Pods only (kind: Pod){more}')
            return False
    api = check.get(obj, "apiVersion", (), str)
    if "apiVersion" not in obj or obj["apiVersion"] is None:
        check.error(("apiVersion",),
                    'required field is missing; add "apiVersion: v1"')
    elif api is not None and api != "v1":
        check.error(("apiVersion",), f'apiVersion "{api}" is not supported: '
                    'Pods are apiVersion "v1"')
    return True


def _check_metadata(meta: dict, check: _Checker):
    """ObjectMeta: name, namespace, labels, annotations."""
    path = ("metadata",)
    suggested = check.fields(meta, path, "metadata")
    name = check.require(meta, "name", path, str, suggested)
    if name is not None:
        _check_name(name, path + ("name",), DNS1123_SUBDOMAIN, 253,
                    "a lowercase RFC 1123 subdomain", "'-' or '.'", check)
    namespace = check.get(meta, "namespace", path, str)
    if namespace is not None:
        _check_name(namespace, path + ("namespace",), DNS1123_LABEL, 63,
                    "a lowercase RFC 1123 label", "'-'", check)
    labels = check.string_map(meta, "labels", path)
    for key, value in labels.items():
        where = path + ("labels", key)
        for message in _qualified_name_problems(key):
            check.error(where, f'invalid label key "{key}": {message}')
        for message in _label_value_problems(value):
            check.error(where, f'invalid label value "{value}": {message}')
    annotations = check.string_map(meta, "annotations", path)
    for key in annotations:
        for message in _qualified_name_problems(key):
            check.error(path + ("annotations", key),
                        f'invalid annotation key "{key}": {message}')
    size = sum(len(k.encode()) + len(v.encode())
               for k, v in annotations.items())
    if size > MAX_ANNOTATIONS_BYTES:
        check.error(path + ("annotations",), f"annotations take {size} bytes;"
                    f" the limit is {MAX_ANNOTATIONS_BYTES}")
    return name, namespace or DEFAULT_NAMESPACE, labels, annotations


def _check_spec(spec: dict, check: _Checker):
    """PodSpec: containers, restartPolicy, terminationGracePeriodSeconds."""
    path = ("spec",)
    suggested = check.fields(spec, path, "spec")
    restart = check.enum(spec, "restartPolicy", path, RESTART_POLICIES)
    grace = check.integer(spec, "terminationGracePeriodSeconds", path,
                          0, 2**63 - 1)
    items = check.require(spec, "containers", path, list, suggested)
    containers = []
    if items == []:
        check.error(path + ("containers",),
                    "a pod needs at least one container")
    first_line: dict[str, int | None] = {}
    for i, item in enumerate(items or []):
        where = path + ("containers", i)
        if not isinstance(item, dict):
            check.error(where, f"expected a container (a map), got "
                        f"{_describe(item)}")
            continue
        container = _check_container(item, where, check)
        name = item.get("name")
        if isinstance(name, str):
            if name in first_line:
                check.error(where + ("name",),
                            f'duplicate container name "{name}" (first at '
                            f"line {first_line[name]})")
            else:
                first_line[name] = check.line(where + ("name",))
        if container is not None:
            containers.append((where, container))
    _check_pod_ports(containers, check)
    return ([c for _, c in containers], restart or DEFAULT_RESTART_POLICY,
            DEFAULT_GRACE_SECONDS if grace is None else grace)


def _check_container(obj: dict, path: tuple, check: _Checker):
    """Container; None if it has errors."""
    before = len(check.errors)
    suggested = check.fields(obj, path, "container")
    name = check.require(obj, "name", path, str, suggested)
    if name is not None:
        _check_name(name, path + ("name",), DNS1123_LABEL, 63,
                    "a lowercase RFC 1123 label", "'-'", check)
    image = check.require(obj, "image", path, str, suggested)
    if image is not None and (not image or image != image.strip()):
        check.error(path + ("image",),
                    "must not be empty or start or end with whitespace")
    policy = check.enum(obj, "imagePullPolicy", path, PULL_POLICIES)
    command = check.strings(obj, "command", path)
    args = check.strings(obj, "args", path)
    working_dir = check.get(obj, "workingDir", path, str)
    if working_dir is not None and not working_dir.startswith("/"):
        # Stricter than the API server, which leaves this to the runtime;
        # the OCI runtime spec requires an absolute cwd.
        check.error(path + ("workingDir",),
                    f'must be an absolute path, got "{working_dir}"')
    env = _check_env(obj, path, check)
    ports = _check_ports(obj, path, check)
    if len(check.errors) > before:
        return None
    return Container(name=name, image=image,
                     image_pull_policy=policy or default_pull_policy(image),
                     command=command, args=args, env=env,
                     working_dir=working_dir, ports=ports)


def _check_env(obj: dict, path: tuple, check: _Checker) -> list[EnvVar]:
    """Container env: [{name, value}]; valueFrom is ignored with a warning."""
    env: list[EnvVar] = []
    first_line: dict[str, int | None] = {}
    for i, item in enumerate(check.get(obj, "env", path, list) or []):
        where = path + ("env", i)
        if not isinstance(item, dict):
            check.error(where, f"expected an env entry (a map with name and "
                        f"value), got {_describe(item)}")
            continue
        suggested = check.fields(item, where, "env", warn=False)
        name = check.require(item, "name", where, str, suggested)
        value = check.get(item, "value", where, str)
        if name is not None and not ENV_VAR_NAME.fullmatch(name):
            check.error(where + ("name",), f'invalid environment variable '
                        f'name "{name}": must start with a letter, "_", "-" '
                        'or "." and hold only letters, digits, "_", "-", "."')
        if "valueFrom" in item:
            if value:
                check.error(where + ("valueFrom",),
                            'may not be set together with a non-empty "value"')
            check.warn(where + ("valueFrom",), NOT_IMPLEMENTED_MESSAGE.replace(
                "ignored", f'variable "{name}" is not set'))
            continue
        if name is None:
            continue
        if name in first_line:
            check.warn(where + ("name",), f'environment variable "{name}" is '
                       f"set twice (first at line {first_line[name]}); the "
                       "last value wins")
        first_line[name] = check.line(where + ("name",))
        env.append(EnvVar(name, value or ""))
    return env


def _check_ports(obj: dict, path: tuple, check: _Checker) -> list[Port]:
    """Container ports: each one alone, then names unique in the container."""
    ports: list[Port] = []
    first_line: dict[str, int | None] = {}
    for i, item in enumerate(check.get(obj, "ports", path, list) or []):
        where = path + ("ports", i)
        if not isinstance(item, dict):
            check.error(where, f"expected a port (a map with containerPort), "
                        f"got {_describe(item)}")
            continue
        port = _check_port(item, where, check)
        if port is None:
            continue
        if port.name is not None:
            if port.name in first_line:
                check.error(where + ("name",), f'duplicate port name '
                            f'"{port.name}" in this container (first at line '
                            f"{first_line[port.name]})")
            first_line.setdefault(port.name, check.line(where + ("name",)))
        ports.append(port)
    return ports


def _check_port(obj: dict, path: tuple, check: _Checker) -> Port | None:
    """ContainerPort; None if it has errors."""
    before = len(check.errors)
    suggested = check.fields(obj, path, "port")
    number = check.integer(obj, "containerPort", path, 1, 65535)
    if obj.get("containerPort") is None and "containerPort" not in suggested:
        check.error(path + ("containerPort",), "required field is missing")
    protocol = check.enum(obj, "protocol", path, PROTOCOLS) or "TCP"
    name = check.get(obj, "name", path, str)
    if name is not None:
        for message in _iana_svc_name_problems(name):
            check.error(path + ("name",), f'invalid port name "{name}": '
                        f"{message}")
    # hostPort 0 is what Kubernetes itself writes for "no host port".
    host_port = check.integer(obj, "hostPort", path, 0, 65535) or None
    host_ip = check.get(obj, "hostIP", path, str)
    if host_ip is not None:
        import ipaddress
        try:
            ipaddress.ip_address(host_ip)
        except ValueError:
            check.error(path + ("hostIP",),
                        f'"{host_ip}" is not an IP address')
        if host_port is None:
            check.warn(path + ("hostIP",), "has no effect without hostPort")
    if len(check.errors) > before:
        return None
    return Port(container_port=number, protocol=protocol, name=name,
                host_port=host_port, host_ip=host_ip)


def _check_pod_ports(containers: list[tuple[tuple, Container]],
                     check: _Checker) -> None:
    """Ports across the pod: one network namespace, one port space.

    Every container of a pod has the same IP, so two of them cannot both
    listen on 8080/TCP. Kubernetes only warns about such duplicates; minipod
    refuses them before anything starts (the clash would otherwise show up
    later as a failed bind). Host ports clash the same way, on the host.
    """
    owner: dict[tuple[int, str], tuple[str, int | None]] = {}
    host_owner: dict[tuple, int | None] = {}
    for where, container in containers:
        for i, port in enumerate(container.ports):
            at = where + ("ports", i, "containerPort")
            key = (port.container_port, port.protocol)
            label = f"{port.container_port}/{port.protocol}"
            if key in owner and owner[key][0] != container.name:
                other, line = owner[key]
                check.error(at, f'containerPort {label} is also declared by '
                            f'container "{other}" (line {line}): the '
                            "containers of a pod share one network namespace "
                            "(same IP, same port space), so only one of them "
                            "can listen on it")
            elif key in owner:
                check.warn(at, f"containerPort {label} is declared twice in "
                           f"this container (first at line {owner[key][1]})")
            else:
                owner[key] = (container.name, check.line(at))
            if port.host_port is not None:
                hkey = (port.host_port, port.protocol, port.host_ip or "")
                hat = where + ("ports", i, "hostPort")
                if hkey in host_owner:
                    check.error(hat, f"hostPort {port.host_port}/"
                                f"{port.protocol} is already used in this pod "
                                f"(line {host_owner[hkey]})")
                else:
                    host_owner[hkey] = check.line(hat)


# ---------------------------------------------------------------------------
# Name rules and small helpers.

def _check_name(value: str, path: tuple, pattern: re.Pattern, limit: int,
                what: str, extra: str, check: _Checker) -> None:
    """Report ``value`` unless it is a DNS-1123 label/subdomain."""
    if len(value) <= limit and pattern.fullmatch(value):
        return
    message = (f'invalid name "{value}": must be {what}: at most {limit} '
               f"characters, lowercase letters, digits and {extra}, starting "
               "and ending with a letter or digit")
    guess = _dns_guess(value, pattern, limit)
    if guess:
        message += f'; did you mean "{guess}"?'
    check.error(path, message)


def _dns_guess(value: str, pattern: re.Pattern, limit: int) -> str | None:
    """A valid name close to ``value`` ("Kubia_Manual" -> "kubia-manual")."""
    allowed = "." if pattern is DNS1123_SUBDOMAIN else ""
    guess = re.sub(rf"[^a-z0-9{allowed}-]+", "-", value.lower())
    guess = guess[:limit].strip("-.")
    return guess if guess and pattern.fullmatch(guess) else None


def _qualified_name_problems(key: str) -> list[str]:
    """Label and annotation keys: an optional DNS prefix, '/', a name."""
    prefix, slash, name = key.rpartition("/")
    problems = []
    if slash and (not prefix or len(prefix) > 253
                  or not DNS1123_SUBDOMAIN.fullmatch(prefix)):
        problems.append("the prefix before '/' must be a lowercase DNS "
                        "subdomain (e.g. example.com) of at most 253 "
                        "characters")
    if not name or len(name) > 63 or not QUALIFIED_NAME.fullmatch(name):
        problems.append("the name must be at most 63 characters: letters, "
                        "digits, '-', '_' or '.', starting and ending with a "
                        "letter or digit")
    return problems


def _label_value_problems(value: str) -> list[str]:
    """Label values: empty, or like the name part of a key."""
    if value == "" or (len(value) <= 63 and QUALIFIED_NAME.fullmatch(value)):
        return []
    return ["must be empty or at most 63 characters: letters, digits, '-', "
            "'_' or '.', starting and ending with a letter or digit"]


def _iana_svc_name_problems(name: str) -> list[str]:
    """Port names (IANA service names, RFC 6335), as Kubernetes checks them."""
    problems = []
    if len(name) > 15:
        problems.append("must be no more than 15 characters")
    if not IANA_SVC_NAME.fullmatch(name):
        problems.append("must contain only lowercase letters, digits and '-'")
    if "--" in name:
        problems.append("must not contain consecutive hyphens")
    if not re.search("[a-z]", name):
        problems.append("must contain at least one letter")
    if name.startswith("-") or name.endswith("-"):
        problems.append("must not begin or end with a hyphen")
    return problems


def _suggest(word: str, choices) -> str | None:
    """The closest valid name to ``word``, or None."""
    import difflib
    for choice in sorted(choices):     # a case slip first: "pod" -> "Pod"
        if choice.lower() == word.lower():
            return choice
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def _elsewhere(key: str, level: str) -> str:
    """A hint when ``key`` is a field of another level (wrong indentation)."""
    for other, where in WHERE.items():
        if other != level and key in SUPPORTED[other] | NOT_IMPLEMENTED[other]:
            return f'; "{key}" is a field of {where}: check the indentation'
    return ""


_TYPE_NAMES = {str: "a string", int: "an integer", list: "a list",
               dict: "a map"}


def _is(value, want: type) -> bool:
    # bool is a subclass of int in Python; in a manifest it is not a number.
    if want is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, want)


def _describe(value) -> str:
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


def _field_name(path: tuple) -> str:
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


def _by_line(problems: list[Problem]) -> list[Problem]:
    """Problems in file order; a stable sort keeps same-line ones in order."""
    return sorted(problems, key=lambda p: p.line or 0)
