"""The official Python `kubernetes` client against a real `minipod serve`.

It talks differently from kubectl (no discovery, no OpenAPI, POST without a
Content-Type, watch without a resourceVersion, exec offering v5 and v4 in
one header), so it is a second, independent check of the API.
"""
from __future__ import annotations

import time

import pytest

from podhelpers import BUSYBOX_IMAGE
from test_kubectl import Api

kubernetes = pytest.importorskip("kubernetes")


@pytest.fixture(scope="module")
def core(minipod, tmp_path_factory):
    api = Api(minipod, tmp_path_factory.mktemp("pyclient"))
    try:
        from kubernetes import client, config
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(api.kubeconfig), client_configuration=cfg)
        with client.ApiClient(cfg) as c:
            yield client.CoreV1Api(c)
    finally:
        api.stop()


def body(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "pyweb"}},
            "spec": {"terminationGracePeriodSeconds": 2, "containers": [{
                "name": "main", "image": BUSYBOX_IMAGE,
                "command": ["sh", "-c", "trap 'exit 0' TERM; echo one; echo two; echo three;"
                                        " while true; do sleep 0.2; done"]}]}}


def wait_running(core, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while core.read_namespaced_pod(name, "default").status.phase != "Running":
        assert time.monotonic() < deadline, f"pod {name} did not start"
        time.sleep(0.1)


def wait_gone(core, name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while core.list_namespaced_pod("default", field_selector=f"metadata.name={name}").items:
        assert time.monotonic() < deadline, f"pod {name} was not deleted"
        time.sleep(0.1)


def test_create_list_watch_log_exec_delete(core):
    from kubernetes import watch
    from kubernetes.client.rest import ApiException
    from kubernetes.stream import stream
    created = core.create_namespaced_pod("default", body("pyp"))
    try:
        assert created.metadata.name == "pyp" and created.metadata.uid
        listed = core.list_namespaced_pod("default", label_selector="app=pyweb")
        assert [p.metadata.name for p in listed.items] == ["pyp"]
        assert core.list_namespaced_pod("default", label_selector="app=other").items == []
        # a watch without a resourceVersion starts with ADDED, and ends at its timeout
        seen = [(e["type"], e["object"].metadata.name) for e in
                watch.Watch().stream(core.list_namespaced_pod, "default", timeout_seconds=2)]
        assert ("ADDED", "pyp") in seen
        wait_running(core, "pyp")
        deadline = time.monotonic() + 10
        while core.read_namespaced_pod_log("pyp", "default") != "one\ntwo\nthree\n":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert core.read_namespaced_pod_log("pyp", "default", container="main",
                                            tail_lines=2) == "two\nthree\n"
        resp = stream(core.connect_get_namespaced_pod_exec, "pyp", "default",
                      command=["sh", "-c", "echo out; echo err >&2; exit 5"],
                      stderr=True, stdin=False, stdout=True, tty=False,
                      _preload_content=False)
        resp.run_forever(timeout=30)
        assert resp.read_stdout() == "out\n"
        assert resp.read_stderr() == "err\n"
        assert resp.returncode == 5
        with pytest.raises(ApiException) as e:
            core.create_namespaced_pod("default", body("pyp"))
        assert e.value.status == 409
    finally:
        core.delete_namespaced_pod("pyp", "default")
    wait_gone(core, "pyp")
    with pytest.raises(ApiException) as e:
        core.read_namespaced_pod("pyp", "default")
    assert e.value.status == 404


@pytest.mark.parametrize("protocol", ["v5.channel.k8s.io", "v4.channel.k8s.io"])
def test_exec_answers_websocket_pings(core, minipod, protocol):
    """kubectl pings every 5 s and gives up after 61 s without a pong: the
    server must answer pings while the command runs (in both protocols)."""
    import json
    import socket
    import ssl
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import (AcceptConnection, BytesMessage, CloseConnection, Ping, Pong,
                                Request)
    core.create_namespaced_pod("default", body("pping"))
    try:
        wait_running(core, "pping")
        cfg = core.api_client.configuration
        ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
        port = int(cfg.host.rsplit(":", 1)[1])
        ws = WSConnection(ConnectionType.CLIENT)
        path = ("/api/v1/namespaces/default/pods/pping/exec?command=sh&command=-c"
                "&command=sleep+1%3B+echo+done&stdout=true&stderr=true")
        with socket.create_connection(("127.0.0.1", port), timeout=20) as raw, \
                ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(ws.send(Request(host="127.0.0.1", target=path,
                                        subprotocols=[protocol])))
            events, pong, out, status = [], False, b"", None
            while status is None:
                data = tls.recv(65536)
                assert data, "the server closed before the end of the command"
                ws.receive_data(data)
                for ev in ws.events():
                    events.append(type(ev).__name__)
                    if isinstance(ev, AcceptConnection):
                        assert ev.subprotocol == protocol
                        tls.sendall(ws.send(Ping(payload=b"minipod")))
                    elif isinstance(ev, Pong):
                        assert ev.payload == b"minipod"
                        pong = True
                    elif isinstance(ev, BytesMessage) and ev.data[:1] == b"\x01":
                        out += ev.data[1:]
                    elif isinstance(ev, BytesMessage) and ev.data[:1] == b"\x03":
                        status = json.loads(ev.data[1:])
                    elif isinstance(ev, CloseConnection):
                        status = status or {"closed": ev.code}
        assert pong, f"no pong; events: {events}"
        assert events.index("Pong") < events.index("BytesMessage")  # answered while running
        assert out == b"done\n" and status["status"] == "Success"
    finally:
        core.delete_namespaced_pod("pping", "default", grace_period_seconds=0)
        wait_gone(core, "pping")


def test_portforward_echo_and_patch_labels(core):
    """kubernetes.stream.portforward (the kubelet's v4 WebSocket form, ?ports=)
    carries bytes both ways; patch_namespaced_pod changes labels (merge patch)."""
    from kubernetes.stream import portforward
    pod = body("ppf")
    pod["spec"]["containers"][0]["command"] = [
        "sh", "-c", "nc -ll -p 9000 -e cat & trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    core.create_namespaced_pod("default", pod)
    try:
        wait_running(core, "ppf")
        payload = bytes(range(256)) * 64
        deadline = time.monotonic() + 20
        while True:
            pf = portforward(core.connect_get_namespaced_pod_portforward, "ppf", "default",
                             ports="9000")
            sock = pf.socket(9000)
            sock.settimeout(20)
            sock.sendall(payload)
            echoed = b""
            try:
                while len(echoed) < len(payload):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    echoed += chunk
            finally:
                sock.close()
            error = pf.error(9000)
            if echoed or time.monotonic() > deadline:
                break
            time.sleep(0.3)                 # nc not listening yet
        assert echoed == payload, error
        before = int(core.read_namespaced_pod("ppf", "default").metadata.resource_version)
        patched = core.patch_namespaced_pod("ppf", "default",
                                            {"metadata": {"labels": {"tier": "front"}}})
        assert patched.metadata.labels == {"app": "pyweb", "tier": "front"}
        listed = core.list_namespaced_pod("default", label_selector="tier=front")
        assert [p.metadata.name for p in listed.items] == ["ppf"]
        assert int(patched.metadata.resource_version) > before   # watches see MODIFIED
        # PUT: the whole object back, with a label changed; a stale version is a 409
        from kubernetes.client.rest import ApiException
        current = core.read_namespaced_pod("ppf", "default")
        current.metadata.labels["tier"] = "back"
        replaced = core.replace_namespaced_pod("ppf", "default", current)
        assert replaced.metadata.labels["tier"] == "back"
        with pytest.raises(ApiException) as e:
            core.replace_namespaced_pod("ppf", "default", current)   # its version is old now
        assert e.value.status == 409
        current = core.read_namespaced_pod("ppf", "default")
        current.spec.containers[0].command = ["sleep", "1"]
        with pytest.raises(ApiException) as e:
            core.replace_namespaced_pod("ppf", "default", current)
        assert e.value.status == 422 and "pod updates may not change fields" in e.value.body
    finally:
        core.delete_namespaced_pod("ppf", "default", grace_period_seconds=0)
        wait_gone(core, "ppf")
