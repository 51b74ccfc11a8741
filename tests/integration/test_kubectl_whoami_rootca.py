"""Two things every cluster has, with the real kubectl (both versions, the
fixtures of test_kubectl.py) against a real `minipod serve`:

- `kubectl auth whoami` (a SelfSubjectReview): the admin certificate is the
  admin user; a pod's ServiceAccount token is system:serviceaccount:NS:default.
- the kube-root-ca.crt ConfigMap in every namespace, holding the CA that
  the pods' ca.crt holds, kept by minipod: a write to it is refused.
"""
from __future__ import annotations

import json
import subprocess

import pytest

from test_kubectl import api, kubectl, pod  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration

SA = "/var/run/secrets/kubernetes.io/serviceaccount"


def table(text: str) -> dict[str, str]:
    """ATTRIBUTE VALUE rows of `kubectl auth whoami` as a dict."""
    rows = [line.split(None, 1) for line in text.splitlines()]
    assert rows[0] == ["ATTRIBUTE", "VALUE"], text
    return {k: v.strip() for k, v in rows[1:]}


def test_whoami_admin_and_pod_token(kubectl, pod):
    assert table(kubectl("auth", "whoami").stdout) == {
        "Username": "minipod-admin", "Groups": "[system:masters system:authenticated]"}
    as_json = json.loads(kubectl("auth", "whoami", "-o", "json").stdout)
    assert as_json["kind"] == "SelfSubjectReview"
    assert as_json["apiVersion"] == "authentication.k8s.io/v1"
    assert as_json["status"]["userInfo"]["username"] == "minipod-admin"
    # the pod's token, from the host, at the pods' address of the API server
    token = kubectl("exec", pod, "--", "cat", f"{SA}/token").stdout
    where = kubectl("exec", pod, "--", "sh", "-c",
                    "echo $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT").stdout.strip()
    ca = kubectl.api.minipod.root / "lib" / "pki" / "ca.crt"
    out = subprocess.run([kubectl.binary, "--kubeconfig=/dev/null", f"--server=https://{where}",
                          f"--certificate-authority={ca}", f"--token={token}",
                          "auth", "whoami"], env=kubectl.env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    got = table(out.stdout)
    assert got.pop("UID")
    assert got == {"Username": "system:serviceaccount:default:default",
                   "Groups": "[system:serviceaccounts system:serviceaccounts:default "
                             "system:authenticated]"}


def test_root_ca_configmap_in_every_namespace(kubectl, pod):
    ca = (kubectl.api.minipod.root / "lib" / "pki" / "ca.crt").read_text()
    rows = kubectl("get", "configmaps").stdout.splitlines()
    assert rows[0].split() == ["NAME", "DATA", "AGE"]
    assert next(r for r in rows if r.startswith("kube-root-ca.crt ")).split()[1] == "1"
    every = kubectl("get", "cm", "-A", "-o", "json").stdout
    found = [(i["metadata"]["namespace"], i["metadata"]["name"])
             for i in json.loads(every)["items"] if i["metadata"]["name"] == "kube-root-ca.crt"]
    assert found == [(ns, "kube-root-ca.crt") for ns in
                     ("default", "kube-node-lease", "kube-public", "kube-system")]
    got = json.loads(kubectl("get", "cm", "kube-root-ca.crt", "-n", "kube-system",
                             "-o", "json").stdout)
    assert got["data"] == {"ca.crt": ca}
    assert "kubernetes.io/description" in got["metadata"]["annotations"]
    # the same CA as the pod's ServiceAccount volume holds
    assert kubectl("exec", pod, "--", "cat", f"{SA}/ca.crt").stdout == ca
    # kept by minipod: writes refused, a create of it is AlreadyExists
    for verb in (["delete", "configmap", "kube-root-ca.crt"],
                 ["patch", "configmap", "kube-root-ca.crt", "-p", '{"data":{"x":"y"}}'],
                 ["label", "configmap", "kube-root-ca.crt", "a=b"]):
        out = kubectl(*verb, check=False)
        assert out.returncode == 1, out
        assert out.stderr.startswith('Error from server (Forbidden): configmaps '
                                     '"kube-root-ca.crt" is forbidden: minipod keeps it'), out
    out = kubectl("create", "configmap", "kube-root-ca.crt", "--from-literal=a=b", check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == ('error: failed to create configmap: configmaps '
                                  '"kube-root-ca.crt" already exists')
    again = json.loads(kubectl("get", "cm", "kube-root-ca.crt", "-o", "json").stdout)
    assert again["data"] == {"ca.crt": ca} and "labels" not in again["metadata"]
    nowhere = kubectl("get", "cm", "kube-root-ca.crt", "-n", "nowhere", check=False)
    assert nowhere.returncode == 1 and nowhere.stderr.startswith("Error from server (NotFound)")
