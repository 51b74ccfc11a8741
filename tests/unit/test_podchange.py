"""run's decision for a manifest that may already be stored (runtime/api/podchange.py)."""
from minipod.runtime.api import podchange

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
       "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def test_a_new_pod_is_created():
    assert podchange.pod_change(None, POD) == podchange.CREATE


def test_the_same_manifest_is_unchanged_whether_or_not_its_namespace_is_written():
    placed = dict(POD, metadata={"name": "web", "namespace": "default"})
    assert podchange.pod_change({"manifest": POD}, placed) == podchange.UNCHANGED
    assert podchange.pod_change({"manifest": placed}, POD) == podchange.UNCHANGED


def test_another_manifest_under_the_name_is_a_conflict():
    other = dict(POD, spec={"containers": [{"name": "c", "image": "nginx"}]})
    assert podchange.pod_change({"manifest": POD}, other) == podchange.CONFLICT
    assert podchange.pod_change({"manifest": None}, POD) == podchange.CONFLICT


def test_an_object_changes_with_its_data_or_labels_not_with_server_metadata():
    cm = {"kind": "ConfigMap", "metadata": {"name": "x", "labels": {"a": "1"}}, "data": {"k": "v"}}
    stored = dict(cm, metadata=dict(cm["metadata"], uid="u1", creationTimestamp="t"))
    assert podchange.object_change(None, cm) == podchange.CREATE
    assert podchange.object_change(stored, cm) == podchange.UNCHANGED
    assert podchange.object_change(stored, dict(cm, data={"k": "w"})) == podchange.UPDATE
    relabeled = dict(cm, metadata={"name": "x", "labels": {"a": "2"}})
    assert podchange.object_change(stored, relabeled) == podchange.UPDATE
