"""ConfigMaps, Secrets and what pods take from them: the checks (configrefs,
configobjects), env resolution and the atomic writer (projection)."""
from __future__ import annotations

import base64
import os
import textwrap
from types import SimpleNamespace

import pytest

from minipod.runtime import configobjects, projection

from minipod.runtime.api import configobject, fields
from minipod.runtime.api.manifest import ManifestError, load_text
from minipod.runtime.api.record import PodRecord


def load(text: str, objects: list | None = None):
    return load_text(textwrap.dedent(text), "pod.yaml", objects)


def errors(text: str, objects: list | None = None) -> list[str]:
    with pytest.raises(ManifestError) as info:
        load(text, objects)
    return [str(p) for p in info.value.problems]


POD = """\
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers:
  - name: main
    image: busybox
    resources: {limits: {cpu: 500m, memory: 64Mi}}
"""


def test_file_with_configmap_secret_and_pod():
    objects: list = []
    pods, _ = load(textwrap.dedent("""\
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: settings}
        data: {mode: fast}
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: creds}
        stringData: {password: hunter2}
        data: {token: dG9r}
        ---
        """) + POD, objects)
    assert [p.name for p in pods] == ["web"]
    cm, secret = objects
    assert (cm.kind, cm.name, cm.namespace, cm.line) == ("ConfigMap", "settings", "default", 1)
    assert cm.obj["data"] == {"mode": "fast"}
    assert secret.obj["type"] == "Opaque"
    # stringData is folded into data, base64, as kube-apiserver stores it
    assert secret.obj["data"] == {"token": "dG9r",
                                  "password": base64.b64encode(b"hunter2").decode()}
    assert "stringData" not in secret.obj


def test_other_kinds_name_kind_document_and_line():
    found = errors("---\n" + POD + "---\napiVersion: apps/v1\nkind: Deployment\n"
                   "metadata: {name: d}\n", [])
    assert found == ['pod.yaml:12: kind: kind "Deployment" is not supported (document 2): '
                     "minipod runs Pods, ConfigMaps and Secrets only; nothing in this file "
                     "is created"]


def test_configmap_without_objects_list_is_refused():
    found = errors("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    assert "is not supported (document 1)" in found[0]


def test_configmap_errors_located_with_suggestions():
    found = errors("""\
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: Bad_Name}
        dta: {a: b}
        data:
          "bad key": x
          n: 5
        """, [])
    assert found[0] == 'pod.yaml:3: metadata.name: invalid name "Bad_Name": must be a ' \
        "lowercase RFC 1123 subdomain: at most 253 characters, lowercase letters, digits, " \
        "'-' or '.', starting and ending with a letter or digit; did you mean \"bad-name\"?" \
        or found[0].startswith('pod.yaml:3: metadata.name: invalid name "Bad_Name"')
    assert 'pod.yaml:4: dta: unknown field "dta"; did you mean "data"?' in found
    assert any(f.startswith('pod.yaml:6: data["bad key"]: invalid key "bad key"')
               for f in found)
    assert any(f.startswith("pod.yaml:7: data.n: expected a string, got integer 5")
               for f in found)


def test_secret_data_must_be_base64():
    found = errors("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: 'not b64!'}\n",
                   [])
    assert found == ["pod.yaml:4: data.k: must be base64 (a Secret's data holds bytes; put "
                     "plain text under stringData)"]


ENV_POD = POD + """\
    env:
    - name: MODE
      valueFrom: {configMapKeyRef: {name: settings, key: mode}}
    - name: PASS
      valueFrom: {secretKeyRef: {name: creds, key: password, optional: true}}
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: APP
      valueFrom: {fieldRef: {fieldPath: "metadata.labels['app']"}}
    - name: CPU
      valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1m}}
    - name: MEM
      valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}
    envFrom:
    - prefix: CFG_
      configMapRef: {name: settings}
"""


def test_env_value_from_parsed():
    [pod], warnings = load(ENV_POD)
    assert warnings == []
    [c] = pod.containers
    assert c.env[0].value_from == {"configMapKeyRef": {"name": "settings", "key": "mode",
                                                       "optional": False}}
    assert c.env[1].value_from["secretKeyRef"]["optional"] is True
    assert c.env_from == [{"prefix": "CFG_", "kind": "configMap", "name": "settings",
                           "optional": False}]


@pytest.mark.parametrize("source, message", [
    ("{fieldRef: {fieldPath: metadata.nmae}}",
     'fieldRef.fieldPath: unsupported value "metadata.nmae": must be one of'),
    ("{configMapKeyRef: {name: x}}", "configMapKeyRef.key: required field is missing"),
    ("{configMapKeyRef: {name: x, key: k}, fieldRef: {fieldPath: metadata.name}}",
     "valueFrom: must have exactly one of"),
    ("{resourceFieldRef: {resource: limits.cpus}}",
     'resourceFieldRef.resource: unsupported value "limits.cpus"'),
    ("{configMapKeyRf: {name: x, key: k}}",
     'unknown field "configMapKeyRf"; did you mean "configMapKeyRef"?'),
])
def test_env_value_from_errors(source, message):
    found = errors(POD + f"    env:\n    - name: X\n      valueFrom: {source}\n")
    assert any(message in f for f in found), found
    assert all(f.startswith("pod.yaml:11: ") for f in found), found


def test_suggests_fieldpath():
    found = errors(POD + "    env:\n    - name: X\n      valueFrom: {fieldRef: "
                         "{fieldPath: metadata.nmae}}\n")
    assert found[0].endswith('did you mean "metadata.name"?')


VOLUMES = POD + """\
    volumeMounts:
    - {name: cfg, mountPath: /etc/cfg}
    - {name: sec, mountPath: /etc/sec}
    - {name: info, mountPath: /etc/info}
    - {name: all, mountPath: /etc/all}
  volumes:
  - name: cfg
    configMap:
      name: settings
      defaultMode: 0640
      items: [{key: mode, path: conf/mode.txt, mode: 0600}]
  - name: sec
    secret: {secretName: creds, optional: true}
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: cpu, resourceFieldRef: {containerName: main, resource: limits.cpu, divisor: 1m}}
  - name: all
    projected:
      sources:
      - configMap: {name: settings}
      - secret: {name: creds, items: [{key: password, path: pw}]}
      - downwardAPI: {items: [{path: name, fieldRef: {fieldPath: metadata.name}}]}
"""


def test_volumes_parsed():
    [pod], warnings = load(VOLUMES)
    assert warnings == []
    cfg, sec, info, every = pod.volumes
    assert cfg.kind == "configMap" and cfg.source["defaultMode"] == 0o640
    assert cfg.source["items"] == [{"key": "mode", "path": "conf/mode.txt", "mode": 0o600}]
    assert sec.source == {"defaultMode": 0o644, "name": "creds", "optional": True,
                          "items": None}
    assert [list(s) for s in every.source["sources"]] == [["configMap"], ["secret"],
                                                           ["downwardAPI"]]
    assert projection.holds_secret(every) and not projection.holds_secret(cfg)


@pytest.mark.parametrize("change, message", [
    ("path: conf/mode.txt", None),
    ("path: ../mode", 'must not start with "..", got "../mode"'),
    ("path: /abs", 'must be a path relative to the volume, got "/abs"'),
    ("mode: 0600", None),
    ("mode: 1000", "must be a file mode between 0 and 0777 (octal), got 1000 (01750)"),
])
def test_item_paths_and_modes(change, message):
    text = VOLUMES.replace("path: conf/mode.txt", change if change.startswith("path")
                           else "path: conf/mode.txt").replace(
        "mode: 0600", change if change.startswith("mode") else "mode: 0600")
    if message is None:
        load(text)
    else:
        assert any(message in f for f in errors(text))


def test_projected_source_not_implemented_is_an_error():
    text = VOLUMES.replace("      - downwardAPI: {items: [{path: name, fieldRef: "
                           "{fieldPath: metadata.name}}]}\n",
                           "      - serviceAccountToken: {path: token}\n")
    [found] = errors(text)
    assert 'projected source "serviceAccountToken" is not supported by minipod yet' in found


def test_downward_resource_needs_a_known_container():
    found = errors(VOLUMES.replace("containerName: main", "containerName: other"))
    assert any('no container named "other" in this pod' in f for f in found)


# ---- env resolution and volume payloads (plain files, no kernel) ------------

def put(tmp_path, obj):
    paths = SimpleNamespace(run=tmp_path)
    checked, _ = configobject.load_object(obj)
    return configobjects.put(paths, checked.obj)


def test_storage_modes_and_uid_kept(tmp_path):
    paths = SimpleNamespace(run=tmp_path)
    stored, created = put(tmp_path, {"apiVersion": "v1", "kind": "Secret",
                                     "metadata": {"name": "creds"},
                                     "stringData": {"password": "hunter2"}})
    assert created
    path = configobjects.object_path(paths, "secrets", "default", "creds")
    assert os.stat(path).st_mode & 0o777 == 0o600
    for d in (path.parent, path.parent.parent, tmp_path / "objects"):
        assert os.stat(d).st_mode & 0o777 == 0o700
    again, created = put(tmp_path, {"apiVersion": "v1", "kind": "Secret",
                                    "metadata": {"name": "creds"},
                                    "stringData": {"password": "x"}})
    assert not created and again["metadata"]["uid"] == stored["metadata"]["uid"]
    assert configobject.values(again) == {"password": b"x"}


def test_immutable_refuses_changes(tmp_path):
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
           "data": {"a": "1"}, "immutable": True}
    put(tmp_path, obj)
    with pytest.raises(configobjects.Conflict):
        put(tmp_path, dict(obj, data={"a": "2"}))


def test_container_env(tmp_path):
    paths = SimpleNamespace(run=tmp_path)
    [pod], _ = load(ENV_POD)
    [c] = pod.containers
    record = PodRecord.from_dict({"uid": "u1", "podIP": "10.0.0.5", "nodeName": "n"})
    with pytest.raises(configobjects.ConfigError) as info:
        configobjects.container_env(paths, record, pod, c)
    assert str(info.value) == 'configmap "settings" not found'
    put(tmp_path, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
                   "data": {"mode": "fast $(HOME)", "other": "o", "1st": "x"}})
    env, secret = configobjects.container_env(paths, record, pod, c)
    assert not secret      # the secret is optional and missing
    assert env == [("CFG_1st", "x"), ("CFG_mode", "fast $$(HOME)"), ("CFG_other", "o"),
                   ("MODE", "fast $$(HOME)"), ("POD_NAME", "web"), ("APP", "web"),
                   ("CPU", "500"), ("MEM", "64")]
    put(tmp_path, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
                   "stringData": {"password": "hunter2"}})
    env, secret = configobjects.container_env(paths, record, pod, c)
    assert secret and ("PASS", "hunter2") in env


def test_missing_key_message(tmp_path):
    paths = SimpleNamespace(run=tmp_path)
    [pod], _ = load(ENV_POD)
    put(tmp_path, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
                   "data": {"other": "o"}})
    with pytest.raises(configobjects.ConfigError) as info:
        configobjects.container_env(paths, {}, pod, pod.containers[0])
    assert str(info.value) == "couldn't find key mode in ConfigMap default/settings"


def test_payload(tmp_path):
    paths = SimpleNamespace(run=tmp_path)
    [pod], _ = load(VOLUMES)
    cfg, sec, info, every = pod.volumes
    with pytest.raises(projection.NotReady) as e:
        projection.payload(paths, PodRecord.from_dict({}), pod, cfg)
    assert str(e.value) == 'configmap "settings" not found'
    assert projection.payload(paths, PodRecord.from_dict({}), pod, sec) == {}     # optional
    put(tmp_path, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
                   "data": {"mode": "fast"}})
    assert projection.payload(paths, PodRecord.from_dict({}), pod, cfg) == {"conf/mode.txt": (b"fast", 0o600)}
    assert projection.payload(paths, PodRecord.from_dict({}), pod, info) == {
        "labels": (b'app="web"', 0o644), "cpu": (b"500", 0o644)}
    with pytest.raises(projection.NotReady):
        projection.payload(paths, PodRecord.from_dict({}), pod, every)
    put(tmp_path, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
                   "stringData": {"password": "hunter2"}})
    assert projection.payload(paths, PodRecord.from_dict({}), pod, every) == {
        "mode": (b"fast", 0o644), "pw": (b"hunter2", 0o644), "name": (b"web", 0o644)}


# ---- the atomic writer ----------------------------------------------------------

def test_atomic_writer_layout_and_switch(tmp_path):
    target = tmp_path / "vol"
    assert projection.write(target, {"a": (b"1", 0o644), "d/b": (b"2", 0o600)})
    first = os.readlink(target / "..data")
    assert first.startswith("..20")
    assert os.readlink(target / "a") == "..data/a"
    assert os.readlink(target / "d") == "..data/d"
    assert (target / "d" / "b").read_bytes() == b"2"
    assert os.stat(target / "d" / "b").st_mode & 0o777 == 0o600
    assert not projection.write(target, {"a": (b"1", 0o644), "d/b": (b"2", 0o600)})
    assert os.readlink(target / "..data") == first          # unchanged: no new version
    held = open(target / "a", "rb")                          # a reader of the old version
    assert projection.write(target, {"a": (b"new", 0o644), "c": (b"3", 0o444)})
    second = os.readlink(target / "..data")
    assert second != first
    assert (target / "a").read_bytes() == b"new"
    assert held.read() == b"1"                               # all-old for the old reader
    held.close()
    assert not os.path.lexists(target / "d")                 # gone from the payload
    assert sorted(n for n in os.listdir(target)) == sorted(["..data", second, "a", "c"])


def test_atomic_writer_replaces_a_directory_a_subpath_made(tmp_path):
    """A subPath for a key not there yet makes a directory in the volume;
    the update that brings the key makes its link there (before, the
    unlink of that directory failed and no new key ever appeared)."""
    target = tmp_path / "vol"
    assert projection.write(target, {"a": (b"1", 0o644)})
    (target / "later").mkdir()                               # what the subPath made
    assert projection.write(target, {"a": (b"1", 0o644), "later": (b"2", 0o644)})
    assert os.readlink(target / "later") == "..data/later"
    assert (target / "later").read_bytes() == b"2"
    assert projection.write(target, {"a": (b"3", 0o644)})    # and it goes again with the key
    assert not os.path.lexists(target / "later")
    assert len([n for n in os.listdir(target) if n.startswith("..20")]) == 1


def test_atomic_writer_mode_change_is_a_change(tmp_path):
    target = tmp_path / "vol"
    projection.write(target, {"a": (b"1", 0o644)})
    assert projection.write(target, {"a": (b"1", 0o600)})
    assert os.stat(target / "a").st_mode & 0o777 == 0o600


def test_manifest_tables_know_the_new_levels():
    for level in ("envVarSource", "configMapVolume", "projection"):
        assert level in fields.SUPPORTED and level in fields.WHERE


# ---- protobuf, as kubectl's typed client sends create configmap/secret --------

def test_protobuf_configmap_and_secret():
    from minipod.runtime.apiserver import protobuf as pb
    meta = pb.field(1, "settings") + pb.field(3, "default") + pb.encode_map(11, {"app": "x"})
    cm = pb.field(1, meta) + pb.encode_map(2, {"a": "b", "c": "d"}) + pb.field(4, True)
    body = pb.MAGIC + pb.field(1, pb.field(1, "v1") + pb.field(2, "ConfigMap")) + \
        pb.field(2, cm) + pb.field(4, "application/vnd.kubernetes.protobuf")
    assert pb.decode(body) == {"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": "settings", "namespace": "default",
                                            "labels": {"app": "x"}},
                               "data": {"a": "b", "c": "d"}, "immutable": True}
    secret = pb.field(1, pb.field(1, "creds")) + pb.encode_map(
        2, {"password": base64.b64encode(b"\x00pw").decode()}, value_bytes=True) + \
        pb.field(3, "Opaque")
    body = pb.MAGIC + pb.field(1, pb.field(1, "v1") + pb.field(2, "Secret")) + \
        pb.field(2, secret)
    assert pb.decode(body) == {"apiVersion": "v1", "kind": "Secret",
                               "metadata": {"name": "creds"}, "type": "Opaque",
                               "data": {"password": base64.b64encode(b"\x00pw").decode()}}
    with pytest.raises(pb.ProtobufError):
        pb.decode(b"k8s\x00\x0a\xff")


def test_atomic_writer_refuses_paths_outside(tmp_path):
    for bad in ("../x", "/etc/x", "a/../../x", "..data"):
        with pytest.raises(ValueError):
            projection.write(tmp_path / "vol", {bad: (b"x", 0o644)})
    assert not (tmp_path / "x").exists()


def test_object_paths_never_leave_the_objects_dir(tmp_path):
    paths = SimpleNamespace(run=tmp_path)
    for ns, name in ((("..", "x")), ("default", "../../x"), ("default", ".hidden"), ("", "x")):
        with pytest.raises(ValueError):
            configobjects.object_path(paths, "configmaps", ns, name)
    with pytest.raises(ManifestError):     # and the check refuses such names first
        configobject.load_object({"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"name": "x", "namespace": ".."}})
