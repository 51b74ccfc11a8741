"""Bad input never hurts the API server: a real `minipod serve`, raw TLS
sockets and the real kubectl (the fixtures of test_kubectl.py).

Each bad client gets the Status a kube-apiserver gives (code, reason and
message in its words) or a closed connection; while one stalls (headers a
byte a second, a TLS handshake never finished, a body promised and never
sent) another client's `kubectl get pods` is answered; and what a client
leaves behind when it drops (50 watches, an exec, a port-forward) is
counted in the server's /proc: its threads, its fds and its children
(the `minipod exec` CLIs), and the exec'd process inside the container.
"""
from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import threading
import time

import psutil
import pytest

from test_kubectl import Api, api, forward, kubectl, kubia, pod, stop  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration

LIMIT = 3 * 1024 * 1024         # kube-apiserver's request body limit (3145728)


# ---- a raw HTTPS client ------------------------------------------------------

def context(api: Api, cert: bool = True) -> ssl.SSLContext:
    pki = api.minipod.root / "lib" / "pki"
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if cert:
        ctx.load_cert_chain(pki / "admin.crt", pki / "admin.key")
    return ctx


def connect(api: Api, timeout: float = 30) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", api.port), timeout=timeout)
    return context(api).wrap_socket(raw, server_hostname="127.0.0.1")


def read_response(s: ssl.SSLSocket) -> tuple[int, dict, bytes]:
    """Status code, headers (lower-case names) and body of one response."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, f"connection closed before the headers: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in
               (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", 0))
    while len(body) < length:
        chunk = s.recv(65536)
        assert chunk, "connection closed inside the body"
        body += chunk
    return int(lines[0].split()[1]), headers, body


def call(api: Api, method: str, path: str, body: bytes = b"",
         ctype: str = "application/json") -> tuple[int, dict]:
    """One request on its own connection: (code, decoded JSON answer)."""
    with connect(api) as s:
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                  f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                  + body)
        code, _, answer = read_response(s)
    return code, json.loads(answer)


def status(code: int, reason: str, message: str) -> dict:
    """The parts of a metav1.Status failure that a client reads."""
    return {"kind": "Status", "status": "Failure", "code": code, "reason": reason,
            "message": message}


def parts(answer: dict) -> dict:
    return {k: answer.get(k) for k in ("kind", "status", "code", "reason", "message")}


def closed(s: socket.socket, within: float) -> bool:
    """Does the server close s (EOF or reset) within `within` seconds?"""
    s.settimeout(within)
    try:
        while s.recv(4096):
            pass
        return True
    except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
        return True
    except (TimeoutError, socket.timeout):
        return False


# ---- what the server holds -----------------------------------------------------

def held(pid: int) -> dict:
    """The server's threads, open fds and child processes."""
    return {"threads": len(os.listdir(f"/proc/{pid}/task")),
            "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "children": sorted(p.pid for p in psutil.Process(pid).children())}


def settled(pid: int, before: dict, seconds: float = 20) -> dict:
    """What the server holds once it is back to `before` (or after `seconds`)."""
    deadline = time.monotonic() + seconds
    while True:
        now = held(pid)
        if (now["threads"] <= before["threads"] and now["fds"] <= before["fds"]
                and set(now["children"]) <= set(before["children"])) \
                or time.monotonic() > deadline:
            return now
        time.sleep(0.2)


def _stable(pid: int) -> dict:
    """held() once two looks a second apart agree (kubectl's connections gone)."""
    last = held(pid)
    for _ in range(20):
        time.sleep(1)
        now = held(pid)
        if now == last:
            return now
        last = now
    return last


def answered(kubectl) -> None:
    """Another client is served promptly: kubectl get pods, with a short timeout."""
    out = kubectl("get", "pods", "--request-timeout=10s", timeout=30)
    assert out.stdout.startswith("NAME") or "No resources found" in out.stderr, out


# ---- bad bodies ------------------------------------------------------------------

PODS = "/api/v1/namespaces/default/pods"


def test_malformed_json_and_yaml_get_bad_request(api):
    code, answer = call(api, "POST", PODS, b'{"apiVersion": "v1", "kind": "Pod",')
    assert (code, parts(answer)) == (400, status(
        400, "BadRequest", "couldn't get version/kind; json parse error: "
                           "unexpected end of JSON input"))
    code, answer = call(api, "POST", PODS, b'{"kind": Pod}')
    assert (code, parts(answer)) == (400, status(
        400, "BadRequest", "couldn't get version/kind; json parse error: "
                           "invalid character 'P' looking for beginning of value"))
    code, answer = call(api, "POST", PODS, b"kind: Pod\nmetadata: [a\n", "application/yaml")
    assert code == 400 and answer["reason"] == "BadRequest"
    assert answer["message"].startswith("error converting YAML to JSON: yaml: line "), answer
    assert "\n" not in answer["message"]
    # a YAML bomb: a few hundred bytes that expand to a billion strings
    bomb = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n"
        for p, c in zip("abcdefgh", "bcdefghi"))
    code, answer = call(api, "POST", PODS, bomb.encode(), "application/yaml")
    assert (code, parts(answer)) == (400, status(
        400, "BadRequest", "error converting YAML to JSON: yaml: document contains "
                           "excessive aliasing"))
    # nested 100000 deep
    code, answer = call(api, "POST", PODS, b"[" * 100000 + b"]" * 100000)
    assert code == 400 and answer["reason"] == "BadRequest", answer
    assert answer["message"].startswith("couldn't get version/kind; json parse error: ")
    assert call(api, "GET", "/version")[0] == 200


def test_unknown_fields_strict(api):
    pod_ = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "strict-x"},
            "spec": {"foo": 1, "containers": [{"name": "c", "image": "busybox"}]}}
    code, answer = call(api, "POST", PODS + "?fieldValidation=Strict",
                        json.dumps(pod_).encode())
    assert (code, parts(answer)) == (400, status(
        400, "BadRequest", 'Pod in version "v1" cannot be handled as a Pod: strict decoding '
                           'error: unknown field "spec.foo"'))
    # server-side apply: structured-merge-diff's words, and 1.32's code (500, no reason)
    code, answer = call(api, "PATCH", PODS + "/strict-x?fieldManager=kubectl&"
                        "fieldValidation=Strict&force=false", json.dumps(pod_).encode(),
                        "application/apply-patch+yaml")
    assert code == 500, answer
    assert answer["message"] == ("failed to create typed patch object (default/strict-x; "
                                 "/v1, Kind=Pod): .spec.foo: field not declared in schema")
    code, answer = call(api, "GET", PODS + "/strict-x")
    assert code == 404


def test_ten_megabytes_is_too_large(api, kubectl, tmp_path):
    big = b'{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"big"},' \
          b'"data":{"x":"' + b"y" * (10 << 20) + b'"}}'
    # the whole body sent: the server reads and drops the rest, so the answer arrives
    code, answer = call(api, "POST", "/api/v1/namespaces/default/configmaps", big)
    assert (code, parts(answer)) == (413, status(
        413, "RequestEntityTooLarge", f"Request entity too large: limit is {LIMIT}"))
    # only promised: answered before any of it arrives
    with connect(api) as s:
        s.sendall(f"POST {PODS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {10 << 20}\r\n\r\n".encode())
        code, _, body = read_response(s)
        assert code == 413 and json.loads(body)["message"] == \
            f"Request entity too large: limit is {LIMIT}"
        assert closed(s, 10)
    # chunked
    with connect(api) as s:
        s.sendall(f"POST {PODS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"Transfer-Encoding: chunked\r\n\r\n".encode())
        for _ in range(4):
            s.sendall(b"%x\r\n%s\r\n" % (1 << 20, b"z" * (1 << 20)))
        code, _, body = read_response(s)
        assert code == 413 and json.loads(body)["reason"] == "RequestEntityTooLarge"
    # kubectl prints it as from a cluster
    path = tmp_path / "big.json"
    path.write_bytes(big)
    out = kubectl("create", "-f", str(path), check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == (f'Error from server (RequestEntityTooLarge): error when '
                                  f'creating "{path}": Request entity too large: limit is '
                                  f'{LIMIT}'), out.stderr
    assert kubectl("get", "configmap", "big", check=False).returncode == 1


# ---- slow clients ------------------------------------------------------------------

class Drip(threading.Thread):
    """Send data to sock a byte a second; `cut` is set once the server
    has closed the connection (a send fails)."""

    def __init__(self, sock, data: bytes):
        super().__init__(daemon=True)
        self.sock, self.data = sock, data
        self.cut, self.stop = threading.Event(), threading.Event()
        self.start()

    def run(self) -> None:
        for byte in self.data:
            if self.stop.wait(1):
                return
            try:
                self.sock.sendall(bytes([byte]))
            except OSError:
                self.cut.set()
                return


def client_hello(api: Api) -> bytes:
    """The first flight of a TLS handshake with the admin certificate's context."""
    out = ssl.MemoryBIO()
    tls = context(api).wrap_bio(ssl.MemoryBIO(), out, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return out.read()


def test_slow_clients_do_not_hold_up_others(api, kubectl):
    before = _stable(api.pid)
    # a TLS handshake never finished: a ClientHello's first bytes, then nothing
    stalled = socket.create_connection(("127.0.0.1", api.port), timeout=30)
    stalled.sendall(b"\x16\x03\x01\x02\x00")
    # a handshake trickled, a byte a second (each read gets a byte in time)
    slow_hello = socket.create_connection(("127.0.0.1", api.port), timeout=30)
    hello = Drip(slow_hello, client_hello(api))
    # headers trickled a byte a second
    trickle = connect(api)
    headers = Drip(trickle, b"GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
                   + b"s" * 1000)
    # a body promised and never sent
    promised = connect(api)
    promised.sendall(f"POST {PODS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: 5000\r\n\r\n{{".encode())
    try:
        time.sleep(2)
        for _ in range(3):
            answered(kubectl)
        assert held(api.pid)["threads"] >= before["threads"] + 4
        # the handshake has a deadline (10 s), the headers one of their own
        # (32 s from their first byte, kube-apiserver's ReadHeaderTimeout)
        assert closed(stalled, 30)
        assert hello.cut.wait(30), "a handshake trickled a byte a second was never cut off"
        assert headers.cut.wait(45), "headers trickled a byte a second were never cut off"
        answered(kubectl)
    finally:
        for drip in (hello, headers):
            drip.stop.set()
            drip.join()
        for s in (stalled, slow_hello, trickle, promised):
            s.close()
    after = settled(api.pid, before)
    assert (after["threads"], after["fds"]) <= (before["threads"], before["fds"]), \
        (before, after)


def test_client_without_certificate_leaves_nothing(api, kubectl):
    before = _stable(api.pid)
    refused = 0
    for _ in range(20):
        ctx = context(api, cert=False)
        try:
            with socket.create_connection(("127.0.0.1", api.port), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                    s.sendall(b"GET /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: x\r\n\r\n")
                    if not s.recv(100):
                        refused += 1
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            refused += 1
    assert refused == 20
    answered(kubectl)
    after = settled(api.pid, before)
    assert (after["threads"], after["fds"]) <= (before["threads"], before["fds"]), \
        (before, after)


# ---- many watches, dropped ---------------------------------------------------------

def test_fifty_watches_then_dropped(api, kubectl, pod):
    before = _stable(api.pid)
    watches = []
    try:
        for _ in range(50):
            s = connect(api)
            s.sendall(f"GET {PODS}?watch=true HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            watches.append(s)
        for s in watches:        # each one answered, with the pod's synthetic ADDED
            data = b""
            while b'"type":"ADDED"' not in data:
                chunk = s.recv(65536)
                assert chunk, data
                data += chunk
            assert data.startswith(b"HTTP/1.1 200") and pod.encode() in data
        assert held(api.pid)["threads"] >= before["threads"] + 50
        answered(kubectl)
    finally:
        for s in watches:
            s.close()           # dropped by the client, without a word
    after = settled(api.pid, before)
    assert (after["threads"], after["fds"]) <= (before["threads"], before["fds"]), \
        (before, after)


# ---- dropped exec and port-forward --------------------------------------------------

def in_container(kubectl, pod: str, marker: str) -> list[str]:
    """The container's processes whose command line has `marker`, from its /proc."""
    out = kubectl("exec", pod, "--", "sh", "-c",
                  "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done")
    return [line for line in out.stdout.splitlines() if marker in line]


def test_dropped_exec_leaves_no_process(api, kubectl, pod):
    marker = "sleep 4321"
    before = _stable(api.pid)
    proc = kubectl.popen("exec", "-i", pod, "--", "sh", "-c", f"echo started; {marker}",
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"started\n"
        assert in_container(kubectl, pod, marker)
        assert len(held(api.pid)["children"]) > len(before["children"])
    finally:
        proc.kill()             # the kubectl this test started, mid-stream
        proc.wait()
        for f in (proc.stdin, proc.stdout, proc.stderr):
            f.close()
    deadline = time.monotonic() + 20
    while in_container(kubectl, pod, marker):
        assert time.monotonic() < deadline, "the exec'd process outlived its client"
        time.sleep(0.5)
    after = settled(api.pid, before)
    assert after["children"] == before["children"]
    assert (after["threads"], after["fds"]) <= (before["threads"], before["fds"]), \
        (before, after)


@pytest.mark.parametrize("spdy", [False, True], ids=["websocket", "spdy"])
def test_dropped_port_forward_leaves_nothing(api, kubectl, tmp_path, spdy):
    name = f"drop-{kubectl.version.replace('.', '')}-{'s' if spdy else 'w'}"
    path = tmp_path / "pf.yaml"
    path.write_text(kubia(name, "trap 'exit 0' TERM; nc -ll -p 9000 -e cat &"
                                " while true; do sleep 0.2; done"))
    kubectl("create", "-f", str(path))
    proc = None
    try:
        kubectl("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=60s")
        before = _stable(api.pid)
        proc, (local,) = forward(kubectl, name, "0:9000", spdy=spdy)
        conns = []
        for i in range(3):
            deadline = time.monotonic() + 20
            while True:
                s = socket.create_connection(("127.0.0.1", local), timeout=10)
                s.sendall(b"ping%d\n" % i)
                try:
                    if s.recv(100) == b"ping%d\n" % i:
                        break
                except OSError:
                    pass
                s.close()       # nc not listening yet
                assert time.monotonic() < deadline
                time.sleep(0.3)
            conns.append(s)
        proc.kill()             # mid-stream, three connections open
        proc.wait()
        stop(proc)
        for s in conns:
            s.close()
        answered(kubectl)
        after = settled(api.pid, before)
        assert after["children"] == before["children"]
        assert (after["threads"], after["fds"]) <= (before["threads"], before["fds"]), \
            (before, after)
    finally:
        if proc is not None:
            stop(proc)
        kubectl("delete", "pod", name, "--grace-period=0", check=False)
