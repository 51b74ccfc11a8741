"""The API server over real HTTPS, in-process, on state records this test writes.

No agent and no root: the server reads pod records from a temporary state
root (the agent's format, runtime/state.py), so discovery, Table printing,
selectors, errors and the watch semantics (resourceVersion replay, no
replayed ADDED, synthetic ADDED, sendInitialEvents, 410 Expired, Table
events) are checked byte for byte against what kubectl relies on.
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import ssl
import threading
import time
import uuid

import pytest

pytest.importorskip("cryptography")

from minipod.linux import proc  # noqa: E402
from minipod.runtime import state  # noqa: E402
from minipod.runtime import pki  # noqa: E402
from minipod.runtime.apiserver import server  # noqa: E402
from minipod.runtime.paths import Paths  # noqa: E402

KUBECTL_DISCOVERY = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
                     "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
                     "application/json")
TABLE = ("application/json;as=Table;v=v1;g=meta.k8s.io,"
         "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")


def record(name: str, container_state: str = "running", labels=None) -> dict:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    manifest = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "labels": labels or {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "busybox"}]}}
    return {"name": name, "namespace": "default", "uid": str(uuid.uuid4()),
            "manifest": manifest, "creationTimestamp": now, "phase": "Running",
            "restartPolicy": "Always", "nodeName": "node1", "podIP": "10.89.0.9",
            # this test's own process stands in for the container (alive, same start time)
            "containers": [{"name": "main", "image": "busybox", "state": container_state,
                            "restartCount": 0, "startedAt": now, "pid": os.getpid(),
                            "pidStart": proc.start_time(os.getpid())}],
            "events": [{"type": "Normal", "reason": "Started", "message":
                        "Started container main", "count": 1, "firstTimestamp": now,
                        "lastTimestamp": now}]}


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    paths = Paths(str(tmp_path_factory.mktemp("root")))
    paths.pods.mkdir(parents=True)
    files = pki.ensure(paths)
    srv = server.Server(paths, 0, pki.server_context(files))
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    ctx = ssl.create_default_context(cafile=str(files.ca_crt))
    ctx.load_cert_chain(files.admin_crt, files.admin_key)
    yield type("Api", (), {"paths": paths, "port": srv.port, "ctx": ctx, "files": files})
    srv.shutdown()
    srv.server_close()


def put(api, rec: dict) -> None:
    d = api.paths.pod_dir(rec["name"])
    d.mkdir(exist_ok=True)
    state.write(d, rec)


def remove(api, name: str) -> None:
    shutil.rmtree(api.paths.pod_dir(name))


def request(api, method: str, path: str, accept: str = "application/json", body=None,
            headers=None, timeout: float = 10):
    conn = http.client.HTTPSConnection("127.0.0.1", api.port, context=api.ctx,
                                       timeout=timeout)
    conn.request(method, path, body=body, headers={"Accept": accept, **(headers or {})})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp, data


def get(api, path: str, accept: str = "application/json"):
    resp, data = request(api, "GET", path, accept)
    return resp, json.loads(data) if data and data[:1] in b"{[" else data


def watch_events(api, query: str, accept: str = "application/json") -> list[dict]:
    resp, data = request(api, "GET", f"/api/v1/namespaces/default/pods?watch=true&{query}",
                         accept, timeout=30)
    assert resp.status == 200
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def test_version_reports_minor_32(api):
    resp, body = get(api, "/version")
    assert resp.status == 200
    assert (body["major"], body["minor"]) == ("1", "32")
    assert body["gitVersion"].startswith("v1.32.")


def test_discovery_matches_accept_parameters_exactly(api):
    resp, body = get(api, "/api", KUBECTL_DISCOVERY)
    assert resp.getheader("Content-Type") == \
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    pods = body["items"][0]["versions"][0]["resources"][0]
    assert (pods["resource"], pods["shortNames"]) == ("pods", ["po"])
    assert {s["subresource"] for s in pods["subresources"]} >= {"exec", "log"}
    # the trap: v2beta1 only must not be answered as v2 (a substring test would)
    old = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
    resp, body = get(api, "/apis", old)
    assert resp.getheader("Content-Type").endswith("v=v2beta1;as=APIGroupDiscoveryList")
    assert body["apiVersion"] == "apidiscovery.k8s.io/v2beta1"
    resp, body = get(api, "/api")
    assert body["kind"] == "APIVersions" and body["versions"] == ["v1"]
    _, body = get(api, "/api/v1")
    assert "pods/exec" in {r["name"] for r in body["resources"]}
    _, body = get(api, "/apis/authorization.k8s.io/v1")
    assert body["resources"][0]["name"] == "selfsubjectaccessreviews"


def test_openapi_v3_makes_kubectl_send_strict_validation(api):
    _, root = get(api, "/openapi/v3")
    url = root["paths"]["api/v1"]["serverRelativeURL"]
    resp, doc = get(api, url)
    etag = resp.getheader("ETag")
    patch = doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "", "version": "v1",
                                                        "kind": "Pod"}
    assert {"name": "fieldValidation", "in": "query"}.items() <= next(
        p for p in patch["parameters"] if p["name"] == "fieldValidation").items()
    assert "io.k8s.api.core.v1.Pod" in doc["components"]["schemas"]
    resp, _ = request(api, "GET", url, headers={"If-None-Match": etag})
    assert resp.status == 304


def test_list_as_table_and_plain(api):
    put(api, record("tweb"))
    try:
        resp, table = get(api, "/api/v1/namespaces/default/pods", TABLE)
        assert table["kind"] == "Table"
        assert [c["name"] for c in table["columnDefinitions"]][:5] == \
            ["Name", "Ready", "Status", "Restarts", "Age"]
        row = next(r for r in table["rows"] if r["cells"][0] == "tweb")
        assert row["cells"][1:4] == ["1/1", "Running", "0"]
        assert row["cells"][5] == "10.89.0.9"
        assert row["object"]["kind"] == "PartialObjectMetadata"
        assert row["object"]["metadata"]["labels"] == {"app": "tweb"}
        _, plain = get(api, "/api/v1/namespaces/default/pods")
        assert plain["kind"] == "PodList" and plain["metadata"]["resourceVersion"]
        assert [p["metadata"]["name"] for p in plain["items"]] == ["tweb"]
        _, one = get(api, "/api/v1/namespaces/default/pods/tweb", TABLE)
        assert [r["cells"][0] for r in one["rows"]] == ["tweb"]
        _, sel = get(api, "/api/v1/namespaces/default/pods?labelSelector=app%3Dother")
        assert sel["items"] == []
        _, sel = get(api, "/api/v1/pods?fieldSelector=metadata.name%3Dtweb")
        assert len(sel["items"]) == 1
        _, sel = get(api, "/api/v1/namespaces/kube-system/pods")
        assert sel["items"] == []
        resp, status = get(api, "/api/v1/namespaces/default/pods?fieldSelector=spec.bogus%3D1")
        assert resp.status == 400 and status["reason"] == "BadRequest"
        _, events = get(api, "/api/v1/namespaces/default/events", TABLE)
        assert any(r["cells"][2] == "Started" and r["cells"][3] == "pod/tweb"
                   for r in events["rows"])
    finally:
        remove(api, "tweb")


def test_errors_are_metav1_status(api):
    resp, status = get(api, "/api/v1/namespaces/default/pods/nope")
    assert resp.status == 404
    assert status == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                      "status": "Failure", "message": 'pods "nope" not found',
                      "reason": "NotFound", "details": {"name": "nope", "kind": "pods"},
                      "code": 404}
    resp, status = get(api, "/no/such/path")
    assert resp.status == 404 and status["reason"] == "NotFound"
    resp, data = request(api, "POST", "/api/v1/namespaces/default/pods", body=b"{not json",
                         headers={"Content-Type": "application/json"})
    assert resp.status == 400 and json.loads(data)["reason"] == "BadRequest"
    resp, data = request(api, "POST", "/api/v1/namespaces/nowhere/pods", body=b"{}")
    assert resp.status == 404 and json.loads(data)["message"] == 'namespaces "nowhere" not found'
    # a body over the 3 MiB limit is refused from its Content-Length, before it is read
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as raw:
        with api.ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"POST /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Type: application/json\r\nContent-Length: 4194304\r\n\r\n")
            assert tls.recv(100).startswith(b"HTTP/1.1 413")
    unknown = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "u"},
               "spec": {"containers": [{"name": "a", "image": "b", "imagee": "c"}]}}
    resp, data = request(api, "POST", "/api/v1/namespaces/default/pods?fieldValidation=Strict",
                         body=json.dumps(unknown).encode())
    assert resp.status == 400
    assert json.loads(data)["message"] == ('Pod in version "v1" cannot be handled as a Pod: '
                                           'strict decoding error: unknown field '
                                           '"spec.containers[0].imagee"')
    resp, data = request(api, "POST", "/api/v1/namespaces/default/pods?dryRun=All",
                         body=json.dumps(unknown).encode())
    assert resp.status == 201     # Warn, the default: dropped, with a warning
    assert resp.getheader("Warning") == '299 - "unknown field \\"spec.containers[0].imagee\\""'


def test_watch_from_list_version_replays_only_later_changes(api):
    put(api, record("w1"))
    try:
        _, listed = get(api, "/api/v1/namespaces/default/pods")
        rv = listed["metadata"]["resourceVersion"]
        changed = record("w1", container_state="waiting")
        changed["uid"] = listed["items"][0]["metadata"]["uid"]
        put(api, changed)
        events = watch_events(api, f"resourceVersion={rv}&timeoutSeconds=2")
        assert [e["type"] for e in events] == ["MODIFIED"]
        assert int(events[0]["object"]["metadata"]["resourceVersion"]) > int(rv)
        # the same from a Table client: every event object is a one-row Table
        events = watch_events(api, f"resourceVersion={rv}&timeoutSeconds=1", TABLE)
        assert events[0]["object"]["kind"] == "Table"
        assert events[0]["object"]["rows"][0]["cells"][0] == "w1"
    finally:
        remove(api, "w1")


def test_watch_without_version_starts_with_added(api):
    put(api, record("w2"))
    try:
        events = watch_events(api, "fieldSelector=metadata.name%3Dw2&resourceVersion=0"
                                   "&timeoutSeconds=1")
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == \
            [("ADDED", "w2")]
        events = watch_events(api, "sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
                                   "&allowWatchBookmarks=true&fieldSelector=metadata.name%3Dw2"
                                   "&timeoutSeconds=1")
        assert [e["type"] for e in events][:2] == ["ADDED", "BOOKMARK"]
        assert events[1]["object"]["metadata"]["annotations"] == \
            {"k8s.io/initial-events-end": "true"}
    finally:
        remove(api, "w2")


def test_watch_sees_delete_and_too_old_version_expires(api):
    put(api, record("w3"))
    _, listed = get(api, "/api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Dw3")
    rv = listed["metadata"]["resourceVersion"]
    result = {}

    def watcher():
        result["events"] = watch_events(api, f"resourceVersion={rv}&timeoutSeconds=3"
                                             f"&fieldSelector=metadata.name%3Dw3")
    t = threading.Thread(target=watcher)
    t.start()
    time.sleep(0.5)
    remove(api, "w3")
    t.join(10)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in result["events"]] == \
        [("DELETED", "w3")]
    events = watch_events(api, "resourceVersion=1&timeoutSeconds=1")
    assert events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410 and events[0]["object"]["reason"] == "Expired"


def test_client_without_certificate_is_refused(api):
    ctx = ssl.create_default_context(cafile=str(api.files.ca_crt))
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        with socket.create_connection(("127.0.0.1", api.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
                if not tls.recv(100):
                    raise ConnectionResetError("closed without an answer")


def test_keys_are_private(api):
    for key in (api.files.ca_key, api.files.server_key, api.files.admin_key):
        assert key.stat().st_mode & 0o777 == 0o600
    assert api.files.dir.stat().st_mode & 0o777 == 0o700
