"""ServiceAccount tokens and what they may do (pure), and the pods' listener
over real HTTPS on 127.0.0.2 with records this test writes (no root).

The listener is the one `serve` opens on the bridge gateway; here it is a
loopback address so the test needs no bridge. The integration test
(tests/integration/test_incluster.py) runs the same from inside a pod.
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import ssl
import threading
import time
import uuid

import pytest

from minipod.linux import proc
from minipod.runtime import serviceaccount, state
from minipod.runtime.api import accountview
from minipod.runtime.apiserver import auth
from minipod.runtime.paths import Paths

KEY = b"k" * 32


def test_token_round_trip_and_tampering():
    token = serviceaccount.issue(KEY, "team", "web", "uid-1", now=1000)
    claims = serviceaccount.verify(KEY, token)
    assert claims["sub"] == "system:serviceaccount:team:default"
    assert claims["kubernetes.io"]["pod"] == {"name": "web", "uid": "uid-1"}
    with pytest.raises(serviceaccount.TokenError):
        serviceaccount.verify(b"x" * 32, token)
    head, body, sig = token.split(".")
    other = serviceaccount.issue(KEY, "kube-system", "web", "uid-1").split(".")[1]
    for bad in (f"{head}.{other}.{sig}", f"{head}.{body}.", "a.b", "", token + "x"):
        with pytest.raises(serviceaccount.TokenError):
            serviceaccount.verify(KEY, bad)


def test_service_env_names_as_the_kubelet_makes_them():
    env = dict(serviceaccount.service_env("10.89.0.1", 6443))
    assert env == {
        "KUBERNETES_SERVICE_HOST": "10.89.0.1", "KUBERNETES_SERVICE_PORT": "6443",
        "KUBERNETES_SERVICE_PORT_HTTPS": "6443", "KUBERNETES_PORT": "tcp://10.89.0.1:6443",
        "KUBERNETES_PORT_6443_TCP": "tcp://10.89.0.1:6443",
        "KUBERNETES_PORT_6443_TCP_PROTO": "tcp", "KUBERNETES_PORT_6443_TCP_PORT": "6443",
        "KUBERNETES_PORT_6443_TCP_ADDR": "10.89.0.1"}
    assert serviceaccount.api_host("10.77.0.0/16") == "10.77.0.1"


def test_container_env_overrides_the_service_env():
    from minipod.runtime import process
    env = process.environment({"Env": ["KUBERNETES_SERVICE_HOST=image"]},
                              serviceaccount.service_env("10.89.0.1", 6443)
                              + [("KUBERNETES_SERVICE_PORT", "1"),
                                 ("URL", "https://$(KUBERNETES_SERVICE_HOST)")], "p")
    assert env["KUBERNETES_SERVICE_HOST"] == "10.89.0.1"     # over the image's
    assert env["KUBERNETES_SERVICE_PORT"] == "1"             # the container's wins
    assert env["URL"] == "https://10.89.0.1"


SA = auth.service_account("team")


@pytest.mark.parametrize("method,path,watch,ok", [
    ("GET", "/api/v1/namespaces/team/pods", False, True),
    ("GET", "/api/v1/namespaces/team/pods", True, True),
    ("GET", "/api/v1/namespaces/team/pods/web", False, True),
    ("GET", "/api/v1/namespaces/team/pods/web/log", False, True),
    ("GET", "/api/v1/namespaces/team/events", False, True),
    ("GET", "/api/v1/namespaces/other/pods", False, False),
    ("GET", "/api/v1/pods", False, False),
    ("GET", "/api/v1/pods", True, False),
    ("GET", "/api/v1/namespaces/team", False, False),
    ("GET", "/api/v1/namespaces", False, False),
    ("GET", "/api/v1/nodes", False, False),
    ("POST", "/api/v1/namespaces/team/pods", False, False),
    ("PATCH", "/api/v1/namespaces/team/pods/web", False, False),
    ("DELETE", "/api/v1/namespaces/team/pods/web", False, False),
    ("DELETE", "/api/v1/namespaces/team/pods", False, False),
    ("GET", "/api/v1/namespaces/team/pods/web/exec", False, False),
    ("POST", "/api/v1/namespaces/team/pods/web/attach", False, False),
    ("GET", "/api/v1/namespaces/team/pods/web/portforward", False, False),
    ("GET", "/api/v1/namespaces/team/secrets", False, False),
    ("GET", "/apis/metrics.k8s.io/v1beta1/namespaces/team/pods", False, False),
    ("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", False, True),
    ("GET", "/version", False, True), ("GET", "/api", False, True),
    ("GET", "/api/v1", False, True), ("GET", "/apis", False, True),
    ("GET", "/apis/authorization.k8s.io/v1", False, True),
    ("GET", "/openapi/v3/api/v1", False, True), ("GET", "/livez", False, True),
    ("POST", "/version", False, False), ("GET", "/metrics", False, False),
])
def test_what_a_token_may_do(method, path, watch, ok):
    r = auth.request_info(method, [p for p in path.split("/") if p], watch)
    assert auth.allowed(SA, r) is ok
    assert auth.allowed(auth.ADMIN, r)


def test_forbidden_messages_are_kube_apiservers():
    def msg(method, path, watch=False):
        r = auth.request_info(method, [p for p in path.split("/") if p], watch)
        return auth.forbidden(SA, r).message
    user = 'User "system:serviceaccount:team:default"'
    assert msg("GET", "/api/v1/namespaces/other/pods") == (
        f'pods is forbidden: {user} cannot list resource "pods" in API group "" in the '
        f'namespace "other"')
    assert msg("GET", "/api/v1/pods", True) == (
        f'pods is forbidden: {user} cannot watch resource "pods" in API group "" at the '
        f'cluster scope')
    assert msg("DELETE", "/api/v1/namespaces/team/pods/web") == (
        f'pods "web" is forbidden: {user} cannot delete resource "pods" in API group "" in '
        f'the namespace "team"')
    assert msg("GET", "/api/v1/namespaces/team/pods/web/exec") == (
        f'pods "web" is forbidden: {user} cannot get resource "pods/exec" in API group "" in '
        f'the namespace "team"')
    assert msg("GET", "/metrics") == f'forbidden: {user} cannot get path "/metrics"'


def test_authenticate():
    assert auth.authenticate(True, None, lambda t: None) is auth.ADMIN
    assert auth.authenticate(False, "Bearer tok", lambda t: "team") == SA
    for header in (None, "", "Bearer ", "Basic dXNlcjpwdw==", "tok"):
        with pytest.raises(auth.ApiError) as e:
            auth.authenticate(False, header, lambda t: "team")
        assert e.value.code == 401
    with pytest.raises(auth.ApiError):
        auth.authenticate(False, "Bearer forged", lambda t: None)


def _pb(number: int, value) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    n, out = len(data), b""
    while True:
        out += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
        n >>= 7
        if not n:
            break
    return bytes([number << 3 | 2]) + out + data


def test_review_spec_from_kubectls_protobuf():
    attrs = _pb(1, "team") + _pb(2, "list") + _pb(5, "pods") + _pb(4, "v1")
    review = _pb(1, b"") + _pb(2, _pb(1, attrs))
    body = b"k8s\x00" + _pb(1, _pb(1, "authorization.k8s.io/v1")
                            + _pb(2, "SelfSubjectAccessReview")) + _pb(2, review)
    spec = auth.review_spec_from_protobuf(body)
    assert spec == {"resourceAttributes": {"namespace": "team", "verb": "list",
                                           "resource": "pods", "version": "v1"}}
    assert auth.review_answer(SA, spec)["allowed"] is True
    spec["resourceAttributes"]["namespace"] = "other"
    assert auth.review_answer(SA, spec) == {"allowed": False}
    assert auth.review_answer(SA, {"resourceAttributes": {"namespace": "team", "verb": "*",
                                                          "resource": "pods"}}) == \
        {"allowed": False}
    with pytest.raises(ValueError):
        auth.review_spec_from_protobuf(b"k8s\x00\x12\xff\xff")


def test_api_view_adds_the_projected_volume_once_per_container():
    rec = {"uid": "u1", "serviceAccountDir": "/x"}
    obj = {"spec": {"containers": [{"name": "a"}, {"name": "b", "volumeMounts": [
        {"name": "own", "mountPath": serviceaccount.MOUNT_PATH}]}], "volumes": [{"name": "own"}]}}
    accountview.api_view(obj, rec)
    name = accountview.volume_name("u1")
    assert name.startswith("kube-api-access-") and len(name) == 21
    assert [v["name"] for v in obj["spec"]["volumes"]] == ["own", name]
    assert obj["spec"]["containers"][0]["volumeMounts"] == [
        {"mountPath": serviceaccount.MOUNT_PATH, "name": name, "readOnly": True}]
    assert obj["spec"]["containers"][1]["volumeMounts"] == [
        {"name": "own", "mountPath": serviceaccount.MOUNT_PATH}]
    bare = {"spec": {"containers": [{"name": "a"}]}}
    accountview.api_view(bare, {"uid": "u1"})          # automountServiceAccountToken: false
    assert "volumes" not in bare["spec"] and bare["spec"]["serviceAccountName"] == "default"


# ---- over HTTPS --------------------------------------------------------------------


def record(name: str, namespace: str = "default") -> dict:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"name": name, "namespace": namespace, "uid": str(uuid.uuid4()),
            "manifest": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                         "spec": {"containers": [{"name": "main", "image": "busybox"}]}},
            "creationTimestamp": now, "phase": "Running", "restartPolicy": "Always",
            "nodeName": "node1", "podIP": "10.89.0.9",
            "containers": [{"name": "main", "image": "busybox", "state": "running",
                            "restartCount": 0, "startedAt": now, "pid": os.getpid(),
                            "pidStart": proc.start_time(os.getpid())}]}


@pytest.fixture(scope="module")
def listeners(tmp_path_factory):
    pytest.importorskip("cryptography")
    from minipod.runtime import pki
    from minipod.runtime.apiserver import server
    paths = Paths(str(tmp_path_factory.mktemp("root")))
    paths.pods.mkdir(parents=True)
    files = pki.ensure(paths, ("127.0.0.2",))
    main = server.Server(paths, 0, pki.server_context(files))
    main.sa_key = files.sa_key.read_bytes()
    pods = server.Server(paths, main.port, pki.server_context(files, require_cert=False),
                         host="127.0.0.2", main=main)
    for s in (main, pods):
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.1},
                         daemon=True).start()
    yield type("L", (), {"paths": paths, "port": main.port, "files": files,
                         "key": main.sa_key})
    for s in (pods, main):
        s.shutdown()
        s.server_close()


def call(lst, path: str, token: str | None = None, host: str = "127.0.0.2", cert=False):
    ctx = ssl.create_default_context(cafile=str(lst.files.ca_crt))
    if cert:
        ctx.load_cert_chain(lst.files.admin_crt, lst.files.admin_key)
    conn = http.client.HTTPSConnection(host, lst.port, context=ctx, timeout=10)
    conn.request("GET", path, headers={"Accept": "application/json", **(
        {"Authorization": f"Bearer {token}"} if token else {})})
    resp = conn.getresponse()
    data = json.loads(resp.read())
    conn.close()
    return resp.status, data


def test_the_pods_listener_wants_a_live_pods_token(listeners):
    rec = record("web")
    d = listeners.paths.pod_dir("web")
    d.mkdir()
    state.write(d, rec)
    token = serviceaccount.issue(listeners.key, "default", "web", rec["uid"])
    # the server certificate names the gateway address: verified, not skipped
    status, body = call(listeners, "/api/v1/namespaces/default/pods")
    assert (status, body["message"]) == (401, "Unauthorized")
    status, body = call(listeners, "/api/v1/namespaces/default/pods", token)
    assert status == 200 and [p["metadata"]["name"] for p in body["items"]] == ["web"]
    status, body = call(listeners, "/api/v1/namespaces/kube-system/pods", token)
    assert (status, body["reason"]) == (403, "Forbidden")
    status, body = call(listeners, "/api/v1/pods", cert=True)        # admin: everything
    assert status == 200
    stale = serviceaccount.issue(listeners.key, "default", "web", "another-uid")
    assert call(listeners, "/api/v1/namespaces/default/pods", stale)[0] == 401
    shutil.rmtree(d)
    assert call(listeners, "/api/v1/namespaces/default/pods", token)[0] == 401
    # loopback still requires the certificate: a token is not enough there
    with pytest.raises((ssl.SSLError, ConnectionResetError, http.client.RemoteDisconnected)):
        call(listeners, "/version", token, host="127.0.0.1")


def test_an_exported_pod_created_again_loses_only_the_added_volume():
    rec = {"uid": "u2", "serviceAccountDir": "/x"}
    written = {"spec": {"containers": [{"name": "a", "volumeMounts": [
        {"name": "data", "mountPath": "/data"}]}], "volumes": [{"name": "data", "emptyDir": {}}]}}
    exported = json.loads(json.dumps(written))
    accountview.api_view(exported, rec)
    assert exported != written
    accountview.strip_view(exported)
    exported["spec"].pop("serviceAccountName"), exported["spec"].pop("serviceAccount")
    assert exported == written
    # a volume of the user's that only looks similar stays
    own = {"spec": {"containers": [{"name": "a"}], "volumes": [
        {"name": "kube-api-access-mine", "emptyDir": {}}]}}
    accountview.strip_view(own)
    assert own["spec"]["volumes"] == [{"name": "kube-api-access-mine", "emptyDir": {}}]


def test_no_key_accepts_no_token():
    token = serviceaccount.issue(b"", "default", "web", "u")
    with pytest.raises(serviceaccount.TokenError):
        serviceaccount.verify(b"", token)
