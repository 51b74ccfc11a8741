"""Pure parts of the API server: Accept negotiation, selectors, validation
errors as a cluster words them, kubeconfig merging, the port variable."""
from __future__ import annotations

import pytest

from minipod.runtime.apiserver import discovery, launch, validation
from minipod.runtime.apiserver.selectors import (SelectorError, parse_field_selector,
                                                  parse_label_selector)
from minipod.runtime.apiserver.objects import ApiError


def pod(**container) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
            "spec": {"containers": [dict({"name": "main", "image": "busybox"}, **container)]}}


@pytest.mark.parametrize("accept,want", [
    ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
     "v2"),
    ("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList", "v2beta1"),
    ("application/json; g=apidiscovery.k8s.io; v=v2beta1; as=APIGroupDiscoveryList", "v2beta1"),
    ("application/json;g=apidiscovery.k8s.io;v=v2beta;as=APIGroupDiscoveryList", None),
    ("application/json", None),
    ("", None),
])
def test_aggregated_discovery_needs_exact_parameters(accept, want):
    assert discovery.aggregated_version(accept) == want


def test_label_selectors():
    labels = {"app": "web", "tier": "front"}
    for text, want in [("app=web", True), ("app==web", True), ("app!=web", False),
                       ("app in (db,web)", True), ("app notin (web)", False), ("tier", True),
                       ("!tier", False), ("app=web,tier=back", False), ("", True),
                       ("missing!=x", True), ("missing notin (x)", True)]:
        assert parse_label_selector(text).matches(labels) is want, text
    with pytest.raises(SelectorError):
        parse_label_selector("app in web")


def test_field_selectors():
    obj = {"metadata": {"name": "web"}, "status": {"phase": "Running"}}
    assert parse_field_selector("metadata.name=web,status.phase=Running").matches(obj)
    assert parse_field_selector("status.phase!=Failed").matches(obj)
    assert not parse_field_selector("status.phase==Failed").matches(obj)
    assert not parse_field_selector("spec.nodeName=x").matches(obj)
    with pytest.raises(SelectorError):
        parse_field_selector("justaword")


def test_unknown_field_strict_is_a_bad_request():
    with pytest.raises(ApiError) as e:
        validation.validate(pod(imagee="x"), "Strict")
    assert (e.value.code, e.value.reason) == (400, "BadRequest")
    assert e.value.message == ('Pod in version "v1" cannot be handled as a Pod: strict decoding '
                               'error: unknown field "spec.containers[0].imagee"')


def test_unknown_field_warn_drops_it_with_a_warning():
    obj = pod(imagee="x")
    p, warnings = validation.validate(obj, "Warn")
    assert p.name == "web" and "imagee" not in obj["spec"]["containers"][0]
    assert warnings[0] == 'unknown field "spec.containers[0].imagee"'
    _, warnings = validation.validate(pod(imagee="x"), "Ignore")
    assert warnings == []


def test_invalid_pod_is_422_with_causes():
    obj = pod()
    del obj["spec"]["containers"][0]["image"]
    with pytest.raises(ApiError) as e:
        validation.validate(obj, "Strict")
    err = e.value
    assert (err.code, err.reason) == (422, "Invalid")
    assert err.message == 'Pod "web" is invalid: spec.containers[0].image: required field is missing'
    assert err.details == {"name": "web", "kind": "Pod", "causes": [
        {"reason": "FieldValueRequired", "message": "required field is missing",
         "field": "spec.containers[0].image"}]}
    with pytest.raises(ApiError) as e:
        validation.validate(pod(), "Sloppy")
    assert e.value.code == 400


def test_kubeconfig_merge_replaces_only_its_own_entries():
    from minipod.runtime.cli.cmd_kubeconfig import merge
    ours = {"clusters": [{"name": "minipod", "cluster": {"server": "https://127.0.0.1:1"}}],
            "users": [{"name": "minipod-admin", "user": {}}],
            "contexts": [{"name": "minipod", "context": {"cluster": "minipod"}}]}
    old = {"clusters": [{"name": "minipod", "cluster": {"server": "stale"}},
                        {"name": "prod", "cluster": {"server": "https://p"}}],
           "contexts": [{"name": "prod", "context": {}}], "current-context": "prod"}
    merged = merge(old, ours)
    assert [c["name"] for c in merged["clusters"]] == ["prod", "minipod"]
    assert merged["clusters"][1]["cluster"]["server"] == "https://127.0.0.1:1"
    assert merged["current-context"] == "prod"
    assert merge({}, ours)["current-context"] == "minipod"


def test_api_port_variable(monkeypatch):
    monkeypatch.setenv("MINIPOD_API_PORT", "7443")
    assert launch.port() == 7443
    for bad in ("0", "70000", "https"):
        monkeypatch.setenv("MINIPOD_API_PORT", bad)
        with pytest.raises(launch.LaunchError):
            launch.port()


def test_an_exit_nobody_saw_is_said_the_kubelet_way():
    from minipod.runtime.apiserver.store import pod_object
    record = {"name": "web", "uid": "u", "creationTimestamp": "2026-01-01T00:00:00Z",
              "manifest": {"spec": {"containers": [{"name": "main", "image": "busybox"}]}},
              "containers": [{"name": "main", "image": "busybox", "state": "terminated",
                              "reason": "Unknown", "exitCode": None,
                              "message": "the process is gone and the agent has not seen it end"}]}
    term = pod_object(record)["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (137, "ContainerStatusUnknown")
    assert term["message"].startswith("the process is gone")
