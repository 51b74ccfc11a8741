"""ConfigMaps and Secrets with real pods: env, volumes, updates, waiting for
a missing object, and the secret kept out of logs, events and disk modes.

minipod's own CLI (`minipod run FILE` with several documents) and the real
kubectl (the fixtures of test_kubectl.py) both drive it."""
from __future__ import annotations

import base64
import json
import os
import stat
import time

import pytest
import yaml

from podhelpers import BUSYBOX_IMAGE
from test_kubectl import api, kubectl  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration

SECRET_VALUE = "hunter2-s3cr3t"


def objects_file(name: str, mode: str = "fast", extra_pod: str = "") -> str:
    return f"""\
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}-cfg}}
data:
  mode: {mode}
  level: "3"
---
apiVersion: v1
kind: Secret
metadata: {{name: {name}-sec}}
stringData:
  password: {SECRET_VALUE}
---
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: {name}, tier: web}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", "env | sort; echo READY; sleep 100000"]
    resources: {{limits: {{cpu: 500m, memory: 64Mi}}}}
    env:
    - name: MODE
      valueFrom: {{configMapKeyRef: {{name: {name}-cfg, key: mode}}}}
    - name: PASSWORD
      valueFrom: {{secretKeyRef: {{name: {name}-sec, key: password}}}}
    - name: MISSING_OK
      valueFrom: {{configMapKeyRef: {{name: nothing-here, key: x, optional: true}}}}
    - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
    - {{name: POD_NS, valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}}}
    - {{name: POD_IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}
    - {{name: HOST_IP, valueFrom: {{fieldRef: {{fieldPath: status.hostIP}}}}}}
    - {{name: NODE, valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}}}
    - {{name: TIER, valueFrom: {{fieldRef: {{fieldPath: "metadata.labels['tier']"}}}}}}
    - {{name: CPU_MILLI, valueFrom: {{resourceFieldRef: {{resource: limits.cpu, divisor: 1m}}}}}}
    - {{name: MEM_MI, valueFrom: {{resourceFieldRef: {{resource: limits.memory, divisor: 1Mi}}}}}}
    envFrom:
    - {{prefix: CFG_, configMapRef: {{name: {name}-cfg}}}}
    volumeMounts:
    - {{name: cfg, mountPath: /etc/cfg}}
    - {{name: one, mountPath: /etc/one}}
    - {{name: sub, mountPath: /etc/sub-mode, subPath: mode}}
    - {{name: sec, mountPath: /etc/sec}}
    - {{name: info, mountPath: /etc/info}}
    - {{name: all, mountPath: /etc/all}}
{extra_pod}  volumes:
  - name: cfg
    configMap: {{name: {name}-cfg}}
  - name: one
    configMap:
      name: {name}-cfg
      defaultMode: 0640
      items: [{{key: mode, path: conf/mode.txt, mode: 0600}}]
  - name: sub
    configMap: {{name: {name}-cfg}}
  - name: sec
    secret: {{secretName: {name}-sec, defaultMode: 0400}}
  - name: info
    downwardAPI:
      items:
      - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}
      - {{path: name, fieldRef: {{fieldPath: metadata.name}}}}
      - {{path: mem, resourceFieldRef: {{containerName: main, resource: limits.memory,
                                       divisor: 1Mi}}}}
  - name: all
    projected:
      sources:
      - configMap: {{name: {name}-cfg, items: [{{key: level, path: level}}]}}
      - secret: {{name: {name}-sec}}
      - downwardAPI: {{items: [{{path: ns, fieldRef: {{fieldPath: metadata.namespace}}}}]}}
"""


def sh(minipod, pod: str, script: str) -> str:
    return minipod("exec", pod, "--", "sh", "-c", script).stdout


def logs_when(minipod, pod: str, text: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while True:
        out = minipod("logs", pod, check=False).stdout
        if text in out or time.monotonic() > deadline:
            return out
        time.sleep(0.1)


@pytest.fixture
def objects_pod(minipod, tmp_path):
    name = "cfgpod"
    path = tmp_path / "objects.yaml"
    path.write_text(objects_file(name))
    out = minipod("run", str(path))
    assert out.stdout.splitlines() == [f"configmap/{name}-cfg created",
                                       f"secret/{name}-sec created", f"pod/{name} created"]
    minipod.wait_for(name, lambda p: p["status"].get("phase") == "Running" and all(
        c.get("ready") for c in p["status"].get("containerStatuses", [])))
    yield name, path
    minipod("delete", "-f", str(path), "--grace-period", "0", check=False)


def test_env_from_configmap_secret_and_the_downward_api(minipod, objects_pod):
    name, _ = objects_pod
    out = logs_when(minipod, name, "READY")
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    pod = minipod.pod(name)
    assert env["MODE"] == "fast"
    assert env["PASSWORD"] == SECRET_VALUE
    assert "MISSING_OK" not in env              # optional and missing: not set
    assert (env["CFG_mode"], env["CFG_level"]) == ("fast", "3")    # envFrom with prefix
    assert (env["POD_NAME"], env["POD_NS"], env["TIER"]) == (name, "default", "web")
    assert env["POD_IP"] == pod["status"]["podIP"]
    assert env["HOST_IP"] == pod["status"]["hostIP"]
    assert env["NODE"] == pod["spec"]["nodeName"]
    assert (env["CPU_MILLI"], env["MEM_MI"]) == ("500", "64")
    # exec runs with the same environment, the Secret's value included
    assert sh(minipod, name, "echo $PASSWORD").strip() == SECRET_VALUE


def test_volumes_items_modes_and_downward_files(minipod, objects_pod):
    name, _ = objects_pod
    out = sh(minipod, name, "cat /etc/cfg/mode; echo; cat /etc/cfg/level; echo; "
                            "ls -a /etc/cfg | tr '\\n' ' '; echo; "
                            "cat /etc/one/conf/mode.txt; echo; stat -L -c %a /etc/one/conf/mode.txt; "
                            "cat /etc/sec/password; echo; stat -L -c %a /etc/sec/password; "
                            "cat /etc/info/labels; echo; cat /etc/info/name; echo; "
                            "cat /etc/info/mem; echo; "
                            "cat /etc/all/level /etc/all/password /etc/all/ns; echo; "
                            "touch /etc/cfg/new 2>&1 || echo read-only")
    lines = out.splitlines()
    assert lines[0:2] == ["fast", "3"]
    listed = lines[2].split()
    assert "..data" in listed and "mode" in listed and "level" in listed
    assert any(n.startswith("..20") for n in listed)   # the kubelet's timestamped dir
    assert lines[3:5] == ["fast", "600"]                # the item's own mode
    assert lines[5:7] == [SECRET_VALUE, "400"]          # the secret's defaultMode
    assert lines[7:9] == [f'app="{name}"', 'tier="web"']
    assert lines[9:11] == [name, "64"]
    assert lines[11] == f"3{SECRET_VALUE}default"
    assert "Read-only file system" in lines[12] or lines[-1] == "read-only"


def test_configmap_update_is_seen_inside_but_not_by_subpath(minipod, objects_pod, tmp_path):
    name, path = objects_pod
    before = sh(minipod, name, "readlink /etc/cfg/..data").strip()
    changed = tmp_path / "changed.yaml"
    changed.write_text(objects_file(name, mode="slow"))
    out = minipod("run", str(changed)).stdout.splitlines()
    assert out == [f"configmap/{name}-cfg configured", f"secret/{name}-sec unchanged",
                   f"pod/{name} unchanged"]
    deadline = time.monotonic() + 20
    while sh(minipod, name, "cat /etc/cfg/mode").strip() != "slow":
        assert time.monotonic() < deadline, "the update never reached the container"
        time.sleep(0.2)
    assert sh(minipod, name, "cat /etc/one/conf/mode.txt").strip() == "slow"
    assert sh(minipod, name, "readlink /etc/cfg/..data").strip() != before
    # a subPath mount holds the old file, as in Kubernetes
    assert sh(minipod, name, "cat /etc/sub-mode").strip() == "fast"
    # env is fixed at start
    assert sh(minipod, name, "echo $MODE").strip() == "fast"


def test_secret_stored_0600_and_never_in_agent_log_or_events(minipod, objects_pod):
    name, _ = objects_pod
    logs_when(minipod, name, "READY")
    stored = minipod.root / "run" / "objects" / "default" / "secrets" / f"{name}-sec.json"
    assert stat.S_IMODE(os.stat(stored).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(stored.parent).st_mode) == 0o700
    data = json.loads(stored.read_text())["data"]
    assert base64.b64decode(data["password"]).decode() == SECRET_VALUE
    assert SECRET_VALUE not in stored.read_text()          # base64, as the API has it
    # nowhere a user reads without asking for the secret itself
    agent_log = minipod.root / "log" / "agent.log"
    assert SECRET_VALUE not in (agent_log.read_text() if agent_log.exists() else "")
    record = (minipod.root / "run" / "pods" / name / "pod.json").read_text()
    assert SECRET_VALUE not in record
    described = minipod("describe", "pod", name).stdout
    assert SECRET_VALUE not in described
    assert f"PASSWORD:  <set to the key 'password' in secret '{name}-sec'>  Optional: false" \
        in described
    assert SECRET_VALUE not in minipod("get", "pod", name, "-o", "yaml").stdout
    # minipod's own get: the table counts keys, -o yaml shows the API's base64
    rows = minipod("get", "secrets").stdout.splitlines()
    assert rows[0].split() == ["NAME", "TYPE", "DATA", "AGE"]
    assert next(r for r in rows if r.startswith(f"{name}-sec ")).split()[1:3] == ["Opaque", "1"]
    shown = yaml.safe_load(minipod("get", "secret", f"{name}-sec", "-o", "yaml").stdout)
    assert shown["data"] == data and SECRET_VALUE not in json.dumps(shown)
    assert minipod("get", "cm", "-o", "name").stdout.split() == [f"configmap/{name}-cfg"]
    # the secret volume is a tmpfs: its bytes never reach the disk
    mounts = open("/proc/self/mountinfo").read()
    vol = next(line for line in mounts.splitlines() if line.split()[4].endswith("/volumes/sec"))
    assert " - tmpfs " in vol


def test_file_with_a_deployment_creates_nothing(minipod, tmp_path):
    path = tmp_path / "mixed.yaml"
    path.write_text(objects_file("mixed") + "---\napiVersion: apps/v1\nkind: Deployment\n"
                                            "metadata: {name: web}\n")
    line = objects_file("mixed").count("\n") + 3
    out = minipod("run", str(path), check=False)
    assert out.returncode != 0
    assert (f'{path}:{line}: kind: kind "Deployment" is not supported (document 4): '
            "minipod runs Pods, ConfigMaps and Secrets only; nothing in this file is "
            "created") in out.stderr
    assert not (minipod.root / "run" / "objects" / "default" / "configmaps" /
                "mixed-cfg.json").exists()
    assert minipod("get", "pod", "mixed", check=False).returncode != 0


def test_pod_waits_for_missing_configmap_then_starts(minipod, tmp_path):
    name = "waiter"
    path = tmp_path / "waiter.yaml"
    path.write_text(f"""\
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", "echo got $GREETING; sleep 100000"]
    env:
    - name: GREETING
      valueFrom: {{configMapKeyRef: {{name: later, key: greeting}}}}
""")
    try:
        started = minipod("run", str(path))
        assert started.stderr.strip() == (f"waiting: pod {name}: container main: "
                                          f'CreateContainerConfigError: configmap "later" '
                                          f"not found")
        pod = minipod.wait_for(name, lambda p: p["status"]["containerStatuses"][0]["state"]
                               .get("waiting", {}).get("reason") == "CreateContainerConfigError")
        assert pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"] == \
            'configmap "later" not found'
        rows = minipod("get", "pods").stdout
        assert any(r.split()[:3] == [name, "0/1", "CreateContainerConfigError"]
                   for r in rows.splitlines())
        cm = tmp_path / "cm.yaml"
        cm.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: later}\n"
                      "data: {greeting: hello}\n")
        assert minipod("run", str(cm)).stdout.strip() == "configmap/later created"
        minipod.wait_for(name, lambda p: p["status"].get("containerStatuses", [{}])[0]
                         .get("state", {}).get("running") is not None)
        assert "got hello" in logs_when(minipod, name, "got hello")
        described = minipod("describe", "pod", name).stdout
        assert 'Error: configmap "later" not found' in described
        assert minipod("delete", "configmap", "later").stdout.strip() == \
            'configmap "later" deleted'
        assert minipod("get", "configmap", "later", check=False).stderr.strip() == \
            'error: Error from server (NotFound): configmaps "later" not found'
        # deleted: the running container keeps what it started with
        assert minipod.pod(name)["status"]["containerStatuses"][0]["state"].get("running")
    finally:
        minipod("delete", "pod", name, "--grace-period", "0", check=False)
        minipod("delete", "configmap", "later", "--ignore-not-found", check=False)


# ---- the real kubectl ---------------------------------------------------------

def test_kubectl_create_get_apply_delete(kubectl, tmp_path):
    v = kubectl.version.replace(".", "")
    cm, sec = f"kcm-{v}", f"ksec-{v}"
    assert kubectl("create", "configmap", cm, "--from-literal=a=b",
                   "--from-literal=c=d").stdout.strip() == f"configmap/{cm} created"
    assert kubectl("create", "secret", "generic", sec,
                   f"--from-literal=password={SECRET_VALUE}").stdout.strip() == \
        f"secret/{sec} created"
    try:
        got = yaml.safe_load(kubectl("get", "secret", sec, "-o", "yaml").stdout)
        assert got["data"] == {"password": base64.b64encode(SECRET_VALUE.encode()).decode()}
        assert got["type"] == "Opaque" and got["metadata"]["resourceVersion"]
        rows = kubectl("get", "configmaps").stdout.splitlines()
        assert rows[0].split() == ["NAME", "DATA", "AGE"]
        assert next(r for r in rows if r.startswith(cm + " ")).split()[1] == "2"
        rows = kubectl("get", "secrets").stdout.splitlines()
        assert rows[0].split() == ["NAME", "TYPE", "DATA", "AGE"]
        assert next(r for r in rows if r.startswith(sec + " ")).split()[1:3] == ["Opaque", "1"]
        assert SECRET_VALUE not in kubectl("describe", "secret", sec).stdout
        # wait watches the object (the store's change log numbers configmaps too)
        kubectl("wait", "--for=jsonpath={.data.a}=b", f"configmap/{cm}", "--timeout=20s")
        kubectl("patch", "configmap", cm, "-p", '{"data":{"a":"z"}}')
        kubectl("wait", "--for=jsonpath={.data.a}=z", f"configmap/{cm}", "--timeout=20s")
        resources = kubectl("api-resources").stdout
        assert any(r.split()[:2] == ["configmaps", "cm"] for r in resources.splitlines())
        assert any(r.split()[0] == "secrets" for r in resources.splitlines())
        # apply of a file: created, unchanged, configured
        path = tmp_path / "cm.yaml"
        doc = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{cm}-file"},
               "data": {"x": "1"}}
        path.write_text(yaml.safe_dump(doc))
        assert kubectl("apply", "-f", str(path)).stdout.strip() == \
            f"configmap/{cm}-file created"
        assert kubectl("apply", "-f", str(path)).stdout.strip() == \
            f"configmap/{cm}-file unchanged"
        doc["data"] = {"x": "2", "w": "3"}
        path.write_text(yaml.safe_dump(doc))
        assert kubectl("apply", "-f", str(path)).stdout.strip() == \
            f"configmap/{cm}-file configured"
        got = json.loads(kubectl("get", "cm", f"{cm}-file", "-o", "json").stdout)
        assert got["data"] == {"x": "2", "w": "3"}
        # strict validation: a typo is refused by the server
        doc["dta"] = {"z": "1"}
        path.write_text(yaml.safe_dump(doc))
        bad = kubectl("apply", "-f", str(path), check=False)
        assert bad.returncode != 0 and 'unknown field "dta"' in bad.stderr
        assert kubectl("delete", "-f", str(path)).stdout.strip().startswith(
            f'configmap "{cm}-file" deleted')     # 1.37 adds "from default namespace"
        gone = kubectl("get", "cm", f"{cm}-file", check=False)
        assert f'configmaps "{cm}-file" not found' in gone.stderr
        assert "ConfigMap holds configuration data" in kubectl("explain", "configmap").stdout
    finally:
        kubectl("delete", "configmap", cm, "--ignore-not-found", check=False)
        kubectl("delete", "secret", sec, "--ignore-not-found", check=False)
        kubectl("delete", "configmap", f"{cm}-file", "--ignore-not-found", check=False)


def test_kubectl_pod_waits_for_configmap_created_by_kubectl(kubectl, tmp_path):
    v = kubectl.version.replace(".", "")
    name, cm = f"kwait-{v}", f"kwait-cfg-{v}"
    path = tmp_path / "pod.yaml"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
            "name": "main", "image": BUSYBOX_IMAGE,
            "command": ["sh", "-c", "cat /cfg/a; echo; sleep 100000"],
            "envFrom": [{"configMapRef": {"name": cm}}],
            "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}]}],
            "volumes": [{"name": "cfg", "configMap": {"name": cm}}]}}))
    kubectl("create", "-f", str(path))
    try:
        deadline = time.monotonic() + 30
        while True:
            row = next((r.split() for r in kubectl("get", "pods").stdout.splitlines()
                        if r.startswith(name + " ")), [])
            if row[2:3] in (["ContainerCreating"], ["CreateContainerConfigError"]):
                break
            assert time.monotonic() < deadline, row
            time.sleep(0.2)
        events = kubectl("get", "events").stdout
        assert f'configmap "{cm}" not found' in events
        kubectl("create", "configmap", cm, "--from-literal=a=from-kubectl")
        kubectl("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=60s")
        deadline = time.monotonic() + 20
        while "from-kubectl" not in kubectl("logs", name).stdout:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        env = kubectl("exec", name, "--", "sh", "-c", "echo $a").stdout.strip()
        assert env == "from-kubectl"
    finally:
        kubectl("delete", "pod", name, "--grace-period=0", "--ignore-not-found", check=False)
        kubectl("delete", "configmap", cm, "--ignore-not-found", check=False)


def test_a_container_cannot_rewrite_a_configmap_volume(minipod, tmp_path):
    """The attack: a container whose volumeMount is not readOnly rewrites the
    files (and the ..data switch) of a configMap volume its neighbour reads.
    The kubelet mounts these volumes read-only whatever the mount says, and
    so does minipod: every attempt fails with EROFS and the neighbour, and
    the host's copy, keep the ConfigMap's content."""
    name = "cfg-attack"
    path = tmp_path / "attack.yaml"
    path.write_text(f"""\
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}}}
data: {{mode: trusted}}
---
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 0
  volumes:
  - {{name: cfg, configMap: {{name: {name}}}}}
  containers:
  - name: attacker
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", "sleep 100000"]
    volumeMounts: [{{name: cfg, mountPath: /cfg, readOnly: false}}]
  - name: victim
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", "sleep 100000"]
    volumeMounts: [{{name: cfg, mountPath: /cfg}}]
""")
    minipod("run", str(path))
    try:
        minipod.wait_for(name, lambda p: all(c.get("ready") for c in p["status"].get(
            "containerStatuses", [])) and len(p["status"].get("containerStatuses", [])) == 2)
        attack = minipod("exec", name, "-c", "attacker", "--", "sh", "-c",
                         "echo evil > /cfg/..data/mode; "
                         "mkdir /cfg/..evil && echo evil > /cfg/..evil/mode && "
                         "ln -sfn ..evil /cfg/..data_tmp && mv -T /cfg/..data_tmp /cfg/..data; "
                         "rm -f /cfg/mode && echo evil > /cfg/mode; cat /cfg/mode", check=False)
        assert attack.stdout.strip().splitlines()[-1] == "trusted", attack.stdout + attack.stderr
        assert "Read-only file system" in attack.stderr
        seen = minipod("exec", name, "-c", "victim", "--", "cat", "/cfg/mode").stdout
        assert seen.strip() == "trusted"
        uid = minipod.pod(name)["metadata"]["uid"]
        host = minipod.root / "lib" / "containers" / uid / "volumes" / "cfg"
        assert (host / "mode").read_text() == "trusted"
        assert os.readlink(host / "..data").startswith("..20")
    finally:
        minipod("delete", "-f", str(path), "--grace-period", "0", check=False)
