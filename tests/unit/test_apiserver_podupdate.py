"""What a pod update may change (runtime/apiserver/podupdate.check_update),
against kube-apiserver's ValidatePodUpdate rules and wording."""
import copy

import pytest

from minipod.runtime.apiserver.objects import ApiError
from minipod.runtime.apiserver.podupdate import FORBIDDEN, check_update

OLD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "web", "labels": {"app": "web"}, "resourceVersion": "7"},
       "spec": {"terminationGracePeriodSeconds": 30, "restartPolicy": "Always",
                "containers": [{"name": "main", "image": "busybox:1", "command": ["sh"]}],
                "initContainers": [{"name": "setup", "image": "busybox:1"}]},
       "status": {"phase": "Running"}}


def changed(**edits):
    new = copy.deepcopy(OLD)
    for path, value in edits.items():
        *parents, last = path.split("__")
        target = new
        for p in parents:
            target = target[int(p)] if p.isdigit() else target[p]
        target[int(last) if last.isdigit() else last] = value
    return new


def refused(new) -> ApiError:
    with pytest.raises(ApiError) as e:
        check_update(OLD, new)
    assert e.value.code == 422 and e.value.reason == "Invalid"
    return e.value


def test_nothing_changed():
    assert check_update(OLD, copy.deepcopy(OLD)) == {"images": {}, "spec": {}}


def test_labels_annotations_and_images_may_change():
    new = changed(metadata__labels={"app": "web", "tier": "front"},
                  metadata__annotations={"note": "x"},
                  spec__containers__0__image="busybox:2",
                  spec__initContainers__0__image="busybox:3")
    assert check_update(OLD, new) == {"images": {"main": "busybox:2", "setup": "busybox:3"},
                                      "spec": {}, "labels": {"app": "web", "tier": "front"},
                                      "annotations": {"note": "x"}}


def test_removing_every_label():
    new = copy.deepcopy(OLD)
    del new["metadata"]["labels"]
    assert check_update(OLD, new)["labels"] == {}


def test_a_command_change_is_forbidden_with_upstreams_text():
    e = refused(changed(spec__containers__0__command=["sleep", "1"]))
    assert e.message.startswith(f'Pod "web" is invalid: spec: Forbidden: {FORBIDDEN}\n')
    assert FORBIDDEN == (
        "pod updates may not change fields other than `spec.containers[*].image`,"
        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
        "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
        "(allow it to be set to 1 if it was previously negative)")
    assert "spec.containers[0].command" in e.message
    cause = e.details["causes"][0]
    assert (cause["field"], cause["reason"]) == ("spec", "FieldValueForbidden")
    assert e.details["name"] == "web" and e.details["kind"] == "Pod"


def test_grace_period_only_from_negative_to_one():
    refused(changed(spec__terminationGracePeriodSeconds=5))
    old = changed(spec__terminationGracePeriodSeconds=-1)
    new = changed(spec__terminationGracePeriodSeconds=1)
    assert check_update(old, new)["spec"] == {"terminationGracePeriodSeconds": 1}


def test_added_or_removed_container():
    new = copy.deepcopy(OLD)
    new["spec"]["containers"].append({"name": "two", "image": "busybox:1"})
    e = refused(new)
    assert e.message == ('Pod "web" is invalid: spec.containers: Forbidden: pod updates may '
                         'not add or remove containers')


def test_empty_image_is_required():
    e = refused(changed(spec__containers__0__image=""))
    assert e.message == 'Pod "web" is invalid: spec.containers[0].image: Required value'


def test_active_deadline_set_then_only_lowered():
    assert check_update(OLD, changed(spec__activeDeadlineSeconds=60))["spec"] == \
        {"activeDeadlineSeconds": 60}
    old = changed(spec__activeDeadlineSeconds=60)
    assert check_update(old, changed(spec__activeDeadlineSeconds=30))["spec"] == \
        {"activeDeadlineSeconds": 30}
    with pytest.raises(ApiError) as raised:
        check_update(old, changed(spec__activeDeadlineSeconds=90))
    assert raised.value.message.endswith("must be less than or equal to previous value")
    with pytest.raises(ApiError):
        check_update(old, copy.deepcopy(OLD))       # back to none


def test_tolerations_only_added():
    t1 = {"key": "a", "operator": "Exists"}
    t2 = {"key": "b", "operator": "Exists"}
    old = changed(spec__tolerations=[t1])
    assert check_update(old, changed(spec__tolerations=[t1, t2]))["spec"] == \
        {"tolerations": [t1, t2]}
    with pytest.raises(ApiError) as e:
        check_update(old, changed(spec__tolerations=[t2]))
    assert "spec.tolerations: Forbidden" in e.value.message


def test_defaults_and_empty_values_compare_equal():
    new = copy.deepcopy(OLD)
    new["spec"]["volumes"] = []
    new["spec"]["containers"][0]["env"] = None
    assert check_update(OLD, new) == {"images": {}, "spec": {}}
