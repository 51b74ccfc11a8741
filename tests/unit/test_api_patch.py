"""Strategic merge patch, JSON merge patch and JSON patch on Pods (table-driven)."""
from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest

from minipod.runtime.apiserver.jsonpatch import json_patch
from minipod.runtime.apiserver.patch import (POD_SCHEMA, PatchError, merge_patch,
                                             schema_from_definitions, strategic_merge)

POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "front"},
                 "finalizers": ["a"],
                 "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}\n"}},
    "spec": {
        "containers": [
            {"name": "main", "image": "nginx:1.27",
             "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
             "ports": [{"containerPort": 80, "protocol": "TCP"}],
             "volumeMounts": [{"name": "data", "mountPath": "/data"}],
             "args": ["-g", "daemon off;"]},
            {"name": "side", "image": "busybox", "command": ["sleep", "inf"]},
        ],
        "volumes": [{"name": "data", "emptyDir": {}}],
        "tolerations": [{"key": "k", "operator": "Exists"}],
        "imagePullSecrets": [{"name": "reg"}],
        "restartPolicy": "Always",
    },
}


def test_the_patch_kubectl_apply_sends_for_an_image_change():
    last = '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"},"spec":{...}}\n'
    patch = {"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": last}},
             "spec": {"$setElementOrder/containers": [{"name": "main"}, {"name": "side"}],
                      "containers": [{"image": "nginx:1.28", "name": "main"}]}}
    out = strategic_merge(POD, patch)
    main, side = out["spec"]["containers"]
    assert main["image"] == "nginx:1.28" and main["env"] == POD["spec"]["containers"][0]["env"]
    assert side == POD["spec"]["containers"][1]
    assert out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] == last
    assert POD["spec"]["containers"][0]["image"] == "nginx:1.27"   # input untouched


CASES = [
    ("map merge and null deletes",
     {"metadata": {"labels": {"tier": None, "env": "prod"}}},
     lambda p: p["metadata"].__setitem__("labels", {"app": "web", "env": "prod"})),
    ("env merges by name, new entries appended",
     {"spec": {"containers": [{"name": "main", "env": [{"name": "B", "value": "3"},
                                                      {"name": "C", "value": "4"}]}]}},
     lambda p: p["spec"]["containers"][0].__setitem__(
         "env", [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}])),
    ("ports merge by containerPort",
     {"spec": {"containers": [{"name": "main", "ports": [{"containerPort": 80, "name": "http"},
                                                        {"containerPort": 443}]}]}},
     lambda p: p["spec"]["containers"][0].__setitem__(
         "ports", [{"containerPort": 80, "protocol": "TCP", "name": "http"}, {"containerPort": 443}])),
    ("volumeMounts merge by mountPath",
     {"spec": {"containers": [{"name": "main", "volumeMounts": [{"mountPath": "/data", "readOnly": True}]}]}},
     lambda p: p["spec"]["containers"][0]["volumeMounts"][0].__setitem__("readOnly", True)),
    ("args (no strategy) are replaced",
     {"spec": {"containers": [{"name": "main", "args": ["x"]}]}},
     lambda p: p["spec"]["containers"][0].__setitem__("args", ["x"])),
    ("tolerations (no strategy) are replaced",
     {"spec": {"tolerations": [{"key": "other", "operator": "Exists"}]}},
     lambda p: p["spec"].__setitem__("tolerations", [{"key": "other", "operator": "Exists"}])),
    ("$patch: delete removes a list element",
     {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}},
     lambda p: p["spec"]["containers"].pop(1)),
    ("$patch: replace in a list replaces the list",
     {"spec": {"imagePullSecrets": [{"$patch": "replace"}, {"name": "other"}]}},
     lambda p: p["spec"].__setitem__("imagePullSecrets", [{"name": "other"}])),
    ("$patch: replace on a map",
     {"metadata": {"labels": {"$patch": "replace", "only": "this"}}},
     lambda p: p["metadata"].__setitem__("labels", {"only": "this"})),
    ("$patch: delete on a map",
     {"metadata": {"labels": {"$patch": "delete"}}},
     lambda p: p["metadata"].pop("labels")),
    ("volumes: $retainKeys drops the old volume source",
     {"spec": {"volumes": [{"name": "data", "hostPath": {"path": "/srv"},
                            "$retainKeys": ["hostPath", "name"]}]}},
     lambda p: p["spec"].__setitem__("volumes", [{"name": "data", "hostPath": {"path": "/srv"}}])),
    ("finalizers are a merged set",
     {"metadata": {"finalizers": ["b", "a"]}},
     lambda p: p["metadata"].__setitem__("finalizers", ["a", "b"])),
    ("$deleteFromPrimitiveList",
     {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}},
     lambda p: p["metadata"].__setitem__("finalizers", [])),
    ("$setElementOrder reorders",
     {"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "main"}]}},
     lambda p: p["spec"]["containers"].reverse()),
    ("new container appended with directives stripped",
     {"spec": {"containers": [{"name": "new", "image": "x", "env": [{"name": "Z", "value": "1"}]}]}},
     lambda p: p["spec"]["containers"].append({"name": "new", "image": "x",
                                              "env": [{"name": "Z", "value": "1"}]})),
    ("$patch: merge is the default",
     {"metadata": {"$patch": "merge", "labels": {"x": "y"}}},
     lambda p: p["metadata"]["labels"].__setitem__("x", "y")),
]


@pytest.mark.parametrize("name, patch, expect", CASES, ids=[c[0] for c in CASES])
def test_strategic_merge(name, patch, expect):
    want = copy.deepcopy(POD)
    expect(want)
    assert strategic_merge(POD, patch) == want


@pytest.mark.parametrize("patch, message", [
    ({"spec": {"containers": [{"image": "x"}]}},
     'spec.containers[0]: map: {"image": "x"} does not contain declared merge key: name'),
    ({"spec": {"containers": ["main"]}}, "spec.containers[0]: elements of this list are objects"),
    ({"metadata": {"$patch": "explode"}}, "metadata: unknown $patch directive 'explode'"),
    ({"spec": {"$bogus": 1}}, "spec.$bogus: unknown directive"),
    ({"spec": {"volumes": [{"name": "data", "$retainKeys": "name"}]}}, "$retainKeys must be a list"),
    ([1], "must be a JSON object"),
])
def test_strategic_merge_errors(patch, message):
    with pytest.raises(PatchError) as e:
        strategic_merge(POD, patch)
    assert message in str(e.value)


def test_schema_table_has_upstream_merge_keys():
    assert POD_SCHEMA["PodSpec"]["containers"] == ["Container", "merge", "name"]
    assert POD_SCHEMA["PodSpec"]["volumes"] == ["Volume", "merge,retainKeys", "name"]
    assert POD_SCHEMA["Container"]["ports"] == ["ContainerPort", "merge", "containerPort"]
    assert POD_SCHEMA["Container"]["volumeMounts"] == ["VolumeMount", "merge", "mountPath"]
    assert POD_SCHEMA["ObjectMeta"]["finalizers"] == [None, "merge", None]
    assert "tolerations" not in POD_SCHEMA["PodSpec"] or len(POD_SCHEMA["PodSpec"]["tolerations"]) == 1


def test_schema_table_is_what_the_upstream_schema_says():
    # Only the package's data is needed (no import: it pulls in jsonschema).
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None:
        pytest.skip("kubernetes-validate is not installed (pip install kubernetes-validate)")
    path = Path(spec.origin).parent / "kubernetes-json-schema" / "v1.32.0-local" / "_definitions.json"
    defs = json.loads(path.read_text())["$defs"]
    assert schema_from_definitions(defs) == POD_SCHEMA


def test_schema_from_an_openapi_v3_document():
    doc = {"io.k8s.api.core.v1.Pod": {"properties": {"spec": {"allOf": [
        {"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}]}}},
           "io.k8s.api.core.v1.PodSpec": {"properties": {"containers": {
               "type": "array", "items": {"allOf": [{"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}]},
               "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"}}},
           "io.k8s.api.core.v1.Container": {"properties": {"image": {"type": "string"}}}}
    assert schema_from_definitions(doc) == {"Pod": {"spec": ["PodSpec"]},
                                            "PodSpec": {"containers": ["Container", "merge", "name"]}}


# ------------------------------------------------------------------ RFC 7386
@pytest.mark.parametrize("target, patch, result", [   # RFC 7386 appendix A
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
])
def test_merge_patch_rfc7386_examples(target, patch, result):
    assert merge_patch(target, patch) == result


def test_merge_patch_kubectl_label_and_unlabel():
    out = merge_patch(POD, {"metadata": {"labels": {"tier": None, "x": "1"}}})
    assert out["metadata"]["labels"] == {"app": "web", "x": "1"}
    assert out["spec"] == POD["spec"]


# ------------------------------------------------------------------ RFC 6902
DOC = {"foo": "bar", "list": [1, 2, 3], "a/b": 1, "m~n": 2, "obj": {"x": {"y": 1}}}


@pytest.mark.parametrize("ops, result", [
    ([{"op": "add", "path": "/baz", "value": "qux"}], {**DOC, "baz": "qux"}),
    ([{"op": "add", "path": "/list/1", "value": 9}], {**DOC, "list": [1, 9, 2, 3]}),
    ([{"op": "add", "path": "/list/-", "value": 4}], {**DOC, "list": [1, 2, 3, 4]}),
    ([{"op": "remove", "path": "/list/0"}], {**DOC, "list": [2, 3]}),
    ([{"op": "replace", "path": "/foo", "value": 1}], {**DOC, "foo": 1}),
    ([{"op": "replace", "path": "/a~1b", "value": 5}], {**DOC, "a/b": 5}),
    ([{"op": "remove", "path": "/m~0n"}], {k: v for k, v in DOC.items() if k != "m~n"}),
    ([{"op": "move", "from": "/foo", "path": "/obj/foo"}],
     {k: v for k, v in {**DOC, "obj": {"x": {"y": 1}, "foo": "bar"}}.items() if k != "foo"}),
    ([{"op": "copy", "from": "/obj/x", "path": "/z"}], {**DOC, "z": {"y": 1}}),
    ([{"op": "test", "path": "/list", "value": [1, 2, 3]}], DOC),
    ([{"op": "test", "path": "/list/0", "value": 1.0}], DOC),
    ([{"op": "replace", "path": "", "value": [1]}], [1]),
    ([{"op": "add", "path": "/metadata", "value": {}},
      {"op": "add", "path": "/metadata/labels", "value": {"k": "v"}}],
     {**DOC, "metadata": {"labels": {"k": "v"}}}),
])
def test_json_patch(ops, result):
    assert json_patch(DOC, ops) == result


@pytest.mark.parametrize("ops, message", [
    ([{"op": "remove", "path": "/nope"}], "no such path"),
    ([{"op": "replace", "path": "/nope", "value": 1}], "no such path"),
    ([{"op": "add", "path": "/list/7", "value": 1}], "index 7 is out of range"),
    ([{"op": "add", "path": "/list/01", "value": 1}], "is not an array index"),
    ([{"op": "test", "path": "/foo", "value": "baz"}], 'operation 0 (test): \'/foo\' is "bar", not "baz"'),
    ([{"op": "test", "path": "/list/0", "value": True}], "(test)"),
    ([{"op": "add", "path": "foo", "value": 1}], "is not a JSON pointer"),
    ([{"op": "add", "path": "/x~2", "value": 1}], "bad '~' escape"),
    ([{"op": "move", "from": "/obj", "path": "/obj/x/z"}], "into its own child"),
    ([{"op": "frob", "path": "/"}], "unknown op 'frob'"),
    ([{"op": "add", "path": "/x"}], 'missing "value"'),
    ([{"path": "/x"}], 'must be an object with an "op"'),
    ({"op": "add"}, "must be a JSON array"),
    ([{"op": "add", "path": "/foo/bar/baz", "value": 1}], "is not inside an object or array"),
])
def test_json_patch_errors(ops, message):
    with pytest.raises(PatchError) as e:
        json_patch(DOC, ops)
    assert message in str(e.value)


def test_json_patch_is_atomic_on_failure():
    doc = copy.deepcopy(DOC)
    with pytest.raises(PatchError):
        json_patch(doc, [{"op": "add", "path": "/new", "value": 1}, {"op": "remove", "path": "/nope"}])
    assert doc == DOC
