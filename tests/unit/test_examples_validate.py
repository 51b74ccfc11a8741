"""Every manifest a user is handed (examples/, and docs/pods/ the docs run)
validates against the real Kubernetes schema, strictly (no unknown field):
the same files run unchanged on a cluster (`kubectl apply -f`).

kubernetes-validate (the test extra) ships upstream's OpenAPI schemas; each
document of each file is checked against its newest version. The files that
show a mistake on purpose must fail, and for the reason they show.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

kv = pytest.importorskip("kubernetes_validate",
                         reason="kubernetes-validate (the test extra) is not installed")

REPO = Path(__file__).resolve().parent.parent.parent
FILES = sorted(p for d in ("examples", "docs/pods") for p in (REPO / d).rglob("*")
               if p.suffix in (".yaml", ".yml", ".json"))
# mistakes shown on purpose -> what the schema says about them
BROKEN_ON_PURPOSE = {
    "examples/kubia-manual-broken.yaml": "kind: 'pod' is not one of ['Pod']",
    "docs/pods/mistakes.yaml": "'sleep 3600' is not of type 'array'",
}


def documents(path: Path) -> list[dict]:
    text = path.read_text()
    if path.suffix == ".json":
        return [json.loads(text)]
    return [d for d in yaml.safe_load_all(text) if d is not None]


def test_there_are_examples():
    assert REPO / "examples" / "kubia.yaml" in FILES
    assert set(BROKEN_ON_PURPOSE) <= {str(p.relative_to(REPO)) for p in FILES}


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_manifest_validates_against_the_kubernetes_schema(path):
    rel = str(path.relative_to(REPO))
    docs = documents(path)
    assert docs, f"{rel} holds no document"
    version = kv.latest_version()
    errors = []
    for doc in docs:
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as e:
            where = ".".join(str(p) for p in e.path)
            errors.append(f"{where + ': ' if where else ''}{e.message}")
    if rel in BROKEN_ON_PURPOSE:
        assert any(BROKEN_ON_PURPOSE[rel] in e for e in errors), errors
    else:
        assert errors == [], f"{rel} does not validate against Kubernetes {version}"


def test_a_pod_exported_with_get_o_yaml_runs_again():
    """`kubectl get pod -o yaml` shows the kube-api-access-* volume a cluster
    (and minipod's API) adds; the file, given to `minipod run`, makes a pod
    that gets its own token mount, as the API's create does."""
    from minipod.runtime.api import manifest
    text = """apiVersion: v1
kind: Pod
metadata: {name: exported, namespace: default}
spec:
  serviceAccountName: default
  containers:
  - name: main
    image: busybox
    volumeMounts:
    - {name: kube-api-access-x1y2z, mountPath: /var/run/secrets/kubernetes.io/serviceaccount, readOnly: true}
    - {name: data, mountPath: /data}
  volumes:
  - name: kube-api-access-x1y2z
    projected:
      sources:
      - serviceAccountToken: {expirationSeconds: 3607, path: token}
      - configMap: {name: kube-root-ca.crt, items: [{key: ca.crt, path: ca.crt}]}
      - downwardAPI: {items: [{path: namespace, fieldRef: {fieldPath: metadata.namespace}}]}
  - name: data
    emptyDir: {}
"""
    pods, _ = manifest.load_text(text, "exported.yaml")
    (pod,) = pods
    assert [v.name for v in pod.volumes] == ["data"]
    assert [m.name for m in pod.containers[0].volume_mounts] == ["data"]
