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
   PodSpec, Container, ContainerPort, EnvVar, Volume, VolumeMount, Probe,
   Lifecycle, ResourceRequirements, SecurityContext) against the field
   tables (fields.py) and *collect* every problem instead of stopping at the
   first, so the user fixes the whole file in one go. A :class:`Problem`
   names the file, the line, the field and what to do::

       kubia.yaml:7: spec.containers[0].images: unknown field "images"; did you mean "image"?

   Errors raise :class:`ManifestError`; warnings (fields that are valid
   Kubernetes but that minipod ignores) are returned, never dropped.

   Validation also does what the API server's *defaulting* does, so the
   values handed on are the ones a cluster would run: a volume without a
   source is an emptyDir, a probe's periodSeconds is 10 unless set, a
   resource request left out equals its limit, and a container's security
   settings are the pod's ``spec.securityContext`` with the container's own
   fields on top. Quantities ("500m", "128Mi", "1e3") are read the way
   Kubernetes' ``resource.Quantity`` reads them, exactly (fractions, no
   floats), and rounded up to millicores and bytes as the kubelet does.

The rules are the API server's (k8s.io/kubernetes
``pkg/apis/core/validation/validation.go``, ``pkg/apis/core/v1/defaults.go``
and apimachinery ``pkg/util/validation/validation.go``), so a manifest that
minipod accepts also runs unchanged on a real cluster with ``kubectl apply
-f``. A few are stricter, said where they are: they refuse what a cluster
accepts but could never run (a postStart hook of kind tcpSocket, runAsNonRoot
with runAsUser 0), or what only works on some runtimes (capability names
written "CAP_NET_ADMIN" or "net_admin"). Volume sources other than emptyDir
and hostPath are errors, not warnings: a pod cannot work without its volumes.

Usage::

    pods, warnings = load_file("pod.yaml")      # raises ManifestError
    pods[0].containers[0].resources.memory_limit  # 134217728 for "128Mi"

This module is the public face: the entry points, and the types of
podtypes.py (Pod, Container, ..., Problem, ManifestError) under their old
names. The work is done in:

    parse.py       step 1: text -> plain values and a table of lines
    checker.py     the Checker that collects problems; message helpers
    fields.py      the field tables, enum values, defaults, limits
    pod.py         the object and its spec      metadata.py   kind, metadata
    containers.py  one container                volumes.py    volumes, mounts
    probes.py      probes, lifecycle hooks      resources.py  requests, limits
    security.py    security contexts            configrefs.py ConfigMap/Secret refs
    names.py       name and path rules          quantity.py   "500m", "128Mi"
    configobject.py  ConfigMap and Secret documents (load_file with objects)
"""

from __future__ import annotations

import sys

# The types every caller uses, by their old names. The checks (and yaml,
# difflib, fractions) are imported inside the functions that read a
# manifest: every CLI command imports this module for the Pod type, few
# of them parse.
from minipod.runtime.api.podtypes import (  # noqa: F401  (re-exported)
    Container, EnvVar, Handler, Lifecycle, ManifestError, Pod, Port, Probe, Problem,
    Resources, SecurityContext, Volume, VolumeMount, default_pull_policy)


def load_file(path: str, objects: list | None = None,
              data: bytes | None = None) -> tuple[list[Pod], list[Problem]]:
    """Read and validate the manifest at ``path`` ("-" for stdin).

    Returns ``(pods, warnings)``; raises :class:`ManifestError` listing all
    errors found, including a file that cannot be read. With ``objects``
    (a list), ConfigMap and Secret documents are checked too and appended
    to it (configobject.ConfigObject); without, they are refused. ``data``:
    the bytes of the file, when the caller has read them (stdin reads once).
    """
    source = "<stdin>" if path == "-" else path
    try:
        if data is not None:
            pass
        elif path == "-":
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
    return load_text(data, source, objects)


def invalid_message(path: str, e: ManifestError) -> str:
    """What `minipod run PATH` says of an invalid file: every problem, one a line."""
    return f"{path} is not a valid Pod manifest:\n" + "\n".join(f"  {p}" for p in e.problems)


def load_text(text: str, source: str,
              objects: list | None = None) -> tuple[list[Pod], list[Problem]]:
    """Parse and validate manifest text; see :func:`load_file`."""
    from minipod.runtime.api.checker import by_line
    from minipod.runtime.api.parse import MAX_MANIFEST_BYTES, Builder, compose
    size = len(text) if len(text) > MAX_MANIFEST_BYTES else len(text.encode("utf-8", "replace"))
    if size > MAX_MANIFEST_BYTES:
        raise ManifestError([Problem(source, None, "", (
            f"the file is {size / 2**20:.1f} MiB; Kubernetes takes at most "
            f"{MAX_MANIFEST_BYTES // 2**20} MiB in one request: split it into several files"))])
    roots = compose(text, source)
    builder = Builder(source)
    pods: list[Pod] = []
    errors: list[Problem] = []
    warnings: list[Problem] = []
    first_seen: dict[tuple[str, ...], int | None] = {}
    for number, root in enumerate(roots, 1):
        pod, doc_errors, doc_warnings = _load_document(root, builder, source,
                                                       objects is not None, number)
        if pod is not None:             # a Pod, or a ConfigMap or Secret
            is_pod = isinstance(pod, Pod)
            what, key = (("pod", (pod.namespace, pod.name)) if is_pod else
                         (pod.kind, (pod.kind, pod.namespace, pod.name)))
            if key in first_seen:
                doc_errors.append(Problem(
                    source, pod.line, "metadata.name",
                    f'{what} "{pod.name}" is defined twice in this file '
                    f"(first at line {first_seen[key]})"))
            else:
                first_seen[key] = pod.line
                (pods if is_pod else objects).append(pod)
        errors += by_line(doc_errors)
        warnings += by_line(doc_warnings)
    if not pods and not objects and not errors:
        errors.append(Problem(source, None, "",
                              "no Pod found: the file has no documents"))
    if errors:
        raise ManifestError(errors, warnings)
    return pods, warnings


def load_object(obj: dict, source: str = "<object>") -> Pod:
    """Validate an already-parsed Pod object (no line numbers)."""
    from minipod.runtime.api.checker import Checker, by_line, describe, plain_copy
    from minipod.runtime.api.pod import check_pod
    if not isinstance(obj, dict):
        raise ManifestError([Problem(
            source, None, "",
            f"expected a Pod object (a map), got {describe(obj)}")])
    check = Checker(source, {}, None)
    pod = check_pod(plain_copy(obj), check)
    if check.errors:
        raise ManifestError(by_line(check.errors), check.warnings)
    return pod


def _load_document(root, builder, source: str, objects: bool = False,
                   number: int = 1):
    """Build and validate one document: ``(pod or None, errors, warnings)``;
    with ``objects``, a ConfigMap or Secret document gives its
    configobject.ConfigObject in place of the pod."""
    import yaml

    from minipod.runtime.api.checker import Checker
    from minipod.runtime.api.parse import Stop
    from minipod.runtime.api.pod import check_pod
    start = root.start_mark.line + 1
    if isinstance(root, yaml.ScalarNode) and root.tag.endswith(":null"):
        return None, [], []             # an empty document, e.g. a stray ---
    if not isinstance(root, yaml.MappingNode):
        kind = "a list" if isinstance(root, yaml.SequenceNode) else "a value"
        message = f"expected a Pod object (a map), got {kind}"
        return None, [Problem(source, start, "", message)], []
    try:
        obj, lines, problems = builder.document(root)
    except Stop as stop:
        return None, [stop.problem], []
    check = Checker(source, lines, start)
    check.errors += problems
    check.document = number
    if objects and obj.get("kind") in ("ConfigMap", "Secret"):
        from minipod.runtime.api import configobject
        return configobject.check_object(obj, check), check.errors, check.warnings
    volumes = (obj.get("spec") or {}).get("volumes") if isinstance(obj.get("spec"), dict) else None
    if isinstance(volumes, list) and any(isinstance(v, dict) and str(v.get("name", ""))
                                         .startswith("kube-api-access-") for v in volumes):
        from minipod.runtime.api import accountview  # (hashlib: only when needed)
        accountview.strip_view(obj)  # `kubectl get pod -o yaml`, run again: its own token
    pod = check_pod(obj, check)
    return pod, check.errors, check.warnings
