"""The pod key (runtime/paths.py pod_key): one name per namespace + pod, in
file and kernel object names; and the namespace records (runtime/namespaces.py)."""
from __future__ import annotations

import json

import pytest

from minipod.runtime import namespaces
from minipod.runtime.api.record import PodRecord
from minipod.runtime.paths import MAX_KEY, Identity, Paths, pod_key, record_key


def test_default_keeps_the_bare_name():
    # pods made before namespaces: their state dir, logs and netns keep their names
    assert pod_key("default", "web") == "web"
    assert pod_key(None, "web") == "web"
    assert pod_key("", "web") == "web"
    assert record_key(PodRecord.from_dict({"name": "web"})) == "web"
    assert record_key(PodRecord.from_dict({"name": "web", "namespace": "default"})) == "web"


def test_other_namespaces_get_their_own_key():
    assert pod_key("team-a", "web") == "team-a_web"
    assert record_key(PodRecord.from_dict({"name": "web", "namespace": "team-a"})) == "team-a_web"
    assert pod_key("team-a", "web") != pod_key("team-b", "web") != pod_key("default", "web")


def test_keys_cannot_collide():
    # '_' is in no DNS-1123 name, so a key of a pod in default (its bare
    # name) never looks like NS_NAME, and NS_NAME splits one way only
    pairs = [("default", "a-b"), ("a", "b"), ("a-b", "c"), ("a", "b-c"), ("a.b", "c"),
             ("default", "a.b"), ("kube-system", "x")]
    keys = [pod_key(ns, n) for ns, n in pairs]
    assert len(set(keys)) == len(keys)


def test_long_keys_fit_a_file_name():
    ns, name = "n" * 63, "p" * 253           # the longest namespace and pod names
    key = pod_key(ns, name)
    assert len(key) == MAX_KEY
    assert "~" in key                        # marked: '~' is in no DNS name
    paths = Paths("/tmp/nsjunk", Identity("1a2b3c4d"))
    assert len(paths.netns_name(key).encode()) <= 255
    assert len(paths.pod_dir(key).name.encode()) <= 255
    # still one key per pod: names that share the first 221 bytes differ
    assert pod_key(ns, name) != pod_key(ns, "p" * 252 + "q")
    assert pod_key(ns, name) == key          # and stable
    # a default pod's name of up to MAX_KEY bytes stays bare (existing state)
    assert pod_key("default", "w" * MAX_KEY) == "w" * MAX_KEY
    assert "~" in pod_key("default", "w" * 253)


def test_paths_take_keys():
    paths = Paths("/tmp/nsjunk", Identity("1a2b3c4d"))
    key = pod_key("team-a", "web")
    assert str(paths.pod_dir(key)) == "/tmp/nsjunk/run/pods/team-a_web"
    assert paths.netns_name(key) == "minipod-1a2b3c4d-team-a_web"
    assert str(paths.log_path(key, "main", 0)) == "/tmp/nsjunk/log/pods/team-a_web/main/0.log"
    assert str(paths.namespace_file("team-a")) == "/tmp/nsjunk/run/namespaces/team-a.json"


def test_builtin_namespaces_always_exist(tmp_path):
    paths = Paths(str(tmp_path), Identity("1a2b3c4d"))
    assert [r["name"] for r in namespaces.read_all(paths)] == list(namespaces.BUILTIN)
    assert namespaces.read(paths, "default")["phase"] == "Active"
    assert namespaces.read(paths, None)["name"] == "default"
    assert namespaces.read(paths, "team-a") is None
    assert namespaces.read(paths, "../pods") is None       # never a path outside
    with pytest.raises(namespaces.NamespaceError) as e:
        namespaces.mark_terminating(paths, "kube-system", "2026-12-02T00:00:00Z")
    assert e.value.code == "Forbidden"
    assert str(e.value) == ('namespaces "kube-system" is forbidden: this namespace may not '
                            'be deleted')


def test_namespace_lifecycle(tmp_path):
    paths = Paths(str(tmp_path), Identity("1a2b3c4d"))
    made = namespaces.create(paths, "team-a", {"team": "a"})
    on_disk = json.loads((tmp_path / "run/namespaces/team-a.json").read_text())
    assert on_disk["uid"] == made["uid"] and on_disk["phase"] == "Active"
    with pytest.raises(namespaces.NamespaceError) as e:
        namespaces.create(paths, "team-a")
    assert (e.value.code, str(e.value)) == ("AlreadyExists", 'namespaces "team-a" already exists')
    obj = namespaces.to_object(namespaces.read(paths, "team-a"))
    assert obj["metadata"]["labels"] == {"team": "a", "kubernetes.io/metadata.name": "team-a"}
    assert not namespaces.remove_if_terminating(paths, "team-a")    # not being deleted
    record = namespaces.mark_terminating(paths, "team-a", "2026-12-02T00:00:00Z")
    assert record["phase"] == "Terminating"
    assert namespaces.to_object(record)["status"]["phase"] == "Terminating"
    assert namespaces.remove_if_terminating(paths, "team-a")
    assert namespaces.read(paths, "team-a") is None
    with pytest.raises(namespaces.NamespaceError) as e:
        namespaces.mark_terminating(paths, "team-a", "2026-12-02T00:00:00Z")
    assert (e.value.code, str(e.value)) == ("NotFound", 'namespaces "team-a" not found')


@pytest.mark.parametrize("name", ["Team", "a_b", "-a", "a-", "x" * 64, ""])
def test_bad_namespace_names(tmp_path, name):
    paths = Paths(str(tmp_path), Identity("1a2b3c4d"))
    with pytest.raises(namespaces.NamespaceError) as e:
        namespaces.create(paths, name)
    assert e.value.code == "Invalid"
    assert not (tmp_path / "run/namespaces").exists() or \
        not any((tmp_path / "run/namespaces").iterdir())


def test_mismatch_is_kubectls_message():
    assert namespaces.mismatch("a", "b") == (
        'the namespace from the provided object "a" does not match the namespace "b". '
        "You must pass '--namespace=a' to perform this operation.")
