"""PUT and PATCH bodies (runtime/apiserver/updates.py): what each content type
does to the current object, and the Status a bad request gets."""
from __future__ import annotations

import json

import pytest

from minipod.runtime.apiserver import updates
from minipod.runtime.apiserver.connection import Connection
from minipod.runtime.apiserver.objects import ApiError

CURRENT = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "web", "labels": {"app": "web"}},
           "spec": {"containers": [{"name": "a", "image": "busybox"},
                                   {"name": "b", "image": "nginx"}]}}


class Request:
    """What updates.py reads of a request: its headers, and the handler's decode()."""

    decode = Connection.decode

    def __init__(self, ctype: str | None):
        self.headers = {} if ctype is None else {"Content-Type": ctype}


def patched(ctype, body, method="PATCH", **kw):
    request = Request(ctype)
    return updates.patched(request, method, updates.content_type(request), CURRENT,
                           json.dumps(body).encode() if not isinstance(body, bytes) else body,
                           **kw)


def test_content_type_drops_parameters_and_case():
    assert updates.content_type(Request("Application/Merge-Patch+JSON; charset=utf-8")) == \
        updates.MERGE_PATCH
    assert updates.content_type(Request(None)) == "application/json"


def test_strategic_merge_merges_containers_by_name():
    new = patched(updates.STRATEGIC_PATCH, {"spec": {"containers": [{"name": "b",
                                                                     "image": "nginx:1.28"}]}})
    assert [(c["name"], c["image"]) for c in new["spec"]["containers"]] == \
        [("a", "busybox"), ("b", "nginx:1.28")]
    assert CURRENT["spec"]["containers"][1]["image"] == "nginx"     # never changed in place


def test_merge_patch_replaces_lists_and_null_deletes():
    new = patched(updates.MERGE_PATCH, {"metadata": {"labels": {"app": None, "tier": "x"}},
                                        "spec": {"containers": [{"name": "b"}]}})
    assert new["metadata"]["labels"] == {"tier": "x"}
    assert new["spec"]["containers"] == [{"name": "b"}]


def test_a_kind_of_maps_only_takes_strategic_merge_as_merge_patch():
    new = patched(updates.APPLY_PATCH, {"spec": {"containers": [{"name": "b"}]}},
                  strategic=False)
    assert new["spec"]["containers"] == [{"name": "b"}]


def test_json_patch_and_its_errors():
    new = patched(updates.JSON_PATCH, [{"op": "replace", "path": "/spec/containers/0/image",
                                        "value": "busybox:1.37"}])
    assert new["spec"]["containers"][0]["image"] == "busybox:1.37"
    with pytest.raises(ApiError) as e:
        patched(updates.JSON_PATCH, [{"op": "remove", "path": "/spec/nope"}])
    assert (e.value.code, e.value.reason) == (422, "Invalid")
    assert "operation 0: '/spec/nope': no such path to remove" in e.value.message
    with pytest.raises(ApiError) as e:
        patched(updates.JSON_PATCH, b"[{")
    assert (e.value.code, e.value.reason) == (400, "BadRequest")
    assert e.value.message.startswith("couldn't decode the patch: ")


def test_an_unknown_patch_type_is_415_before_the_body_is_read():
    with pytest.raises(ApiError) as e:
        patched("application/json", b"not json at all")
    assert (e.value.code, e.value.reason) == (415, "UnsupportedMediaType")
    assert e.value.message.endswith("application/json-patch+json, "
                                    "application/merge-patch+json, "
                                    "application/strategic-merge-patch+json, "
                                    "application/apply-patch+yaml")


def test_put_sends_the_whole_object_through_the_kinds_decoder():
    new = patched("application/json", {"metadata": {"name": "web"}}, method="PUT")
    assert new == {"metadata": {"name": "web"}}
    seen = []
    patched("application/vnd.kubernetes.protobuf", b"k8s\0...", method="PUT",
            decode=lambda body: seen.append(body) or {})
    assert seen == [b"k8s\0..."]


@pytest.mark.parametrize("obj, message", [
    ([1], "the patched object is not a JSON object"),
    ({"metadata": {"name": "db"}},
     "the name of the object (db) does not match the name on the URL (web)"),
])
def test_named_refuses_another_object(obj, message):
    with pytest.raises(ApiError) as e:
        updates.named(obj, "web")
    assert (e.value.code, e.value.message) == (400, message)


def test_named_gives_the_metadata():
    assert updates.named({"metadata": {"name": "web", "labels": {}}}, "web") == \
        {"name": "web", "labels": {}}
    assert updates.named({"metadata": "junk"}, "web") == {}
