"""The shipped OpenAPI document is exactly what build() makes from the
upstream schema kubernetes-validate ships: derived, never typed by hand."""
from __future__ import annotations

import gzip
import json

import pytest

from minipod.runtime.apiserver import openapi


def shipped() -> dict:
    return json.loads(gzip.decompress(openapi.DATA.read_bytes()))


def test_shipped_document_is_generated_from_kubernetes_validate():
    pytest.importorskip("kubernetes_validate", reason="kubernetes-validate (the test extra) "
                                                      "ships the upstream schema")
    built = openapi.build(openapi.upstream_definitions())
    assert openapi.encode(built) == openapi.encode(shipped()), (
        "regenerate: python -m minipod.runtime.apiserver.openapi --write "
        "runtime/apiserver/openapi-v1.json.gz")


def test_document_is_openapi_3_with_what_kubectl_reads():
    doc = shipped()
    assert doc["openapi"].startswith("3.")
    schemas = doc["components"]["schemas"]
    pod = schemas["io.k8s.api.core.v1.Pod"]
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod",
                                                      "version": "v1"}]
    assert pod["type"] == "object"
    spec = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert spec["items"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}
    assert spec["x-kubernetes-patch-merge-key"] == "name"
    port = schemas["io.k8s.api.core.v1.ContainerPort"]["properties"]["containerPort"]
    assert port["type"] == "integer"
    assert schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] == {
        "type": "string", "format": "int-or-string"}
    text = json.dumps(doc)
    assert "#/$defs/" not in text and '"null"' not in text
    refs = {r.split('"')[0] for r in text.split('"$ref": "#/components/schemas/')[1:]}
    assert refs <= set(schemas), f"dangling: {refs - set(schemas)}"


def test_patch_operations_carry_gvk_and_field_validation():
    paths = shipped()["paths"]
    for path, kind in (("/api/v1/namespaces/{namespace}/pods/{name}", "Pod"),
                       ("/api/v1/namespaces/{namespace}/events/{name}", "Event")):
        patch = paths[path]["patch"]
        assert patch["x-kubernetes-group-version-kind"]["kind"] == kind
        assert any(p["name"] == "fieldValidation" and p["in"] == "query"
                   for p in patch["parameters"])
