"""`minipod port-forward` on a real kernel: every form, the relay, the errors.

The pod side is built here, not by the agent: a network namespace pinned
where minipod looks for the pod's (Paths.netns_path), a veth on a test
bridge with an IP, and a state record saying the pod runs (its "container"
is this test process: alive, with a known start time). Servers run inside
the pod with `ip netns exec NS python3 -c ...`, started and stopped by pid.
The forwarder is the real command in its own process, stopped with SIGINT
(Ctrl-C), after which it must exit 0.

Needs root; run through tests/run (a private network namespace).
"""
from __future__ import annotations

import hashlib
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces, veths"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2's `ip`"),
]

RUN = uuid.uuid4().hex[:6]
SUBNET, GATEWAY, PREFIX = "10.251.41.0/24", "10.251.41.1", 24
TIMEOUT = 20

# A server inside the pod: MODE ADDR PORT [FILE]. Prints "ready PORT".
#   hello   one line naming the address it was reached at, then close
#   echo    every byte back, until EOF
#   count   read until EOF, then answer "BYTES SHA256" (so the EOF got through)
#   source  send FILE, then close
POD_SERVER = r"""
import hashlib, os, socket, sys, threading
mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
path = sys.argv[4] if len(sys.argv) > 4 else None
s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((addr, port)); s.listen(512)
def handle(c):
    with c:
        if mode == "hello":
            c.sendall(f"hello from the pod, reached at {c.getsockname()[0]}\n".encode())
        elif mode == "echo":
            while data := c.recv(1 << 16):
                c.sendall(data)
        elif mode == "count":
            h, n = hashlib.sha256(), 0
            while data := c.recv(1 << 20):
                h.update(data); n += len(data)
            c.sendall(f"{n} {h.hexdigest()}\n".encode())
        elif mode == "source":
            with open(path, "rb") as f:
                size, off = os.fstat(f.fileno()).st_size, 0
                while off < size:
                    off += os.sendfile(c.fileno(), f.fileno(), off, size - off)
print("ready", s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
"""

# The real CLI, with the verb registered even before runtime/cli/main.py lists it.
CLI = ("import sys\n"
       "from minipod.runtime.cli import main as cli, cmd_port_forward\n"
       "if cmd_port_forward not in cli.VERBS:\n"
       "    cli.VERBS.append(cmd_port_forward)\n"
       "sys.exit(cli.main(sys.argv[1:]))\n")


def free_port(family=socket.AF_INET, addr="127.0.0.1") -> int:
    with socket.socket(family) as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


# -- the pod side -------------------------------------------------------------------

@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("pf-root")
    from minipod.runtime.paths import Paths
    yield Paths(str(root))
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def bridge_cfg():
    from pyroute2 import IPRoute

    from minipod.netns.bridge import NetworkConfig, delete_bridge, ensure_bridge
    cfg = NetworkConfig(bridge=f"mpf{RUN}", subnet=SUBNET)
    with IPRoute() as ipr:
        ensure_bridge(ipr, cfg, GATEWAY, PREFIX)
        try:
            yield cfg
        finally:
            delete_bridge(ipr, cfg)


class Pod:
    """A pod's network and state record, made by hand; servers inside it."""
    _ips = iter(range(2, 250))

    def __init__(self, paths, cfg, name: str):
        from pyroute2 import IPRoute

        from minipod.netns.bridge import attach_pod, host_ifname
        from minipod.linux import proc
        self.paths, self.cfg, self.name = paths, cfg, name
        self.uid = str(uuid.uuid4())
        self.netns = str(paths.netns_path(name))
        self.ip = f"10.251.41.{next(self._ips)}"
        self.servers: list[subprocess.Popen] = []
        self.veth = host_ifname(self.uid)
        subprocess.run(["ip", "netns", "add", paths.netns_name(name)], check=True)
        with IPRoute() as ipr:
            attach_pod(ipr, cfg, self.netns, self.veth, self.ip, PREFIX, GATEWAY)
        me = os.getpid()
        container = {"name": "main", "image": "x",
                     "ports": [{"containerPort": 1, "name": "http"}]}
        self.record = {
            "name": name, "namespace": "default", "uid": self.uid, "phase": "Running",
            "netns": paths.netns_name(name), "podIP": self.ip,
            "creationTimestamp": "2024-01-01T00:00:00Z",
            "manifest": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                         "spec": {"containers": [container]}},
            "containers": [{"name": "main", "image": "x", "state": "running",
                            "pid": me, "pidStart": proc.start_time(me),
                            "restartCount": 0}],
        }
        self.save()

    def save(self) -> None:
        from minipod.runtime import state
        d = self.paths.pod_dir(self.name)
        d.mkdir(parents=True, exist_ok=True)
        state.write(d, self.record)

    def serve(self, mode: str, addr: str = "0.0.0.0", port: int = 0,
              path: str | None = None) -> int:
        """Start a server in the pod; returns its port."""
        args = ["ip", "netns", "exec", self.paths.netns_name(self.name), sys.executable,
                "-c", POD_SERVER, mode, addr, str(port)] + ([path] if path else [])
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        self.servers.append(proc)
        line = proc.stdout.readline().split()
        assert line[:1] == ["ready"], f"pod server did not start: {line}"
        return int(line[1])

    def delete(self) -> None:
        """What the agent's teardown does to what port-forward watches."""
        for proc in self.servers:
            proc.kill()                     # by pid: servers this test started
            proc.wait()
        self.servers = []
        from pyroute2 import IPRoute

        from minipod.netns.bridge import detach_pod
        with IPRoute() as ipr:
            detach_pod(ipr, self.veth)
        if os.path.exists(self.netns):
            subprocess.run(["ip", "netns", "del", self.paths.netns_name(self.name)], check=True)
        shutil.rmtree(self.paths.pod_dir(self.name), ignore_errors=True)


_names = iter(range(1000))


@pytest.fixture
def make_pod(root, bridge_cfg):
    made = []

    def make(name: str | None = None) -> Pod:
        pod = Pod(root, bridge_cfg, name or f"web{next(_names)}-{RUN}")
        made.append(pod)
        return pod
    yield make
    for pod in made:
        pod.delete()


@pytest.fixture
def pod(make_pod) -> Pod:
    return make_pod()


# -- the forwarder: the real command --------------------------------------------------

class Forwarder:
    """`minipod port-forward ARGS` in its own process; lines read by threads."""

    def __init__(self, paths, *args: str):
        env = dict(os.environ, MINIPOD_ROOT=paths.root)
        self.proc = subprocess.Popen([sys.executable, "-c", CLI, "port-forward", *args],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.out: queue.Queue = queue.Queue()
        self.err: queue.Queue = queue.Queue()
        self.err_lines: list[str] = []
        self.err_eof = False
        for stream, q in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._read, args=(stream, q), daemon=True).start()

    @staticmethod
    def _read(stream, q) -> None:
        for line in stream:
            q.put(line.rstrip("\n"))
        q.put(None)

    def line(self, q=None, timeout: float = TIMEOUT) -> str | None:
        try:
            line = (q or self.out).get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output from port-forward in {timeout}s; "
                                 f"stderr so far: {self.stderr_now()}") from None
        return line

    def stderr_now(self, until_eof: float | None = None) -> list[str]:
        """Every stderr line so far; with until_eof, wait up to that long for EOF."""
        while not self.err_eof:
            try:
                line = (self.err.get(timeout=until_eof) if until_eof
                        else self.err.get_nowait())
            except queue.Empty:
                break
            if line is None:
                self.err_eof = True
            else:
                self.err_lines.append(line)
        return self.err_lines

    def err_line(self, timeout: float = TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        seen = len(self.err_lines)
        while time.monotonic() < deadline:
            if len(self.stderr_now()) > seen:
                return self.err_lines[seen]
            time.sleep(0.02)
        raise AssertionError(f"no error line from port-forward in {timeout}s")

    def forwarding(self, n: int) -> list[tuple[str, int, int]]:
        """The first n `Forwarding from ADDR:LOCAL -> REMOTE` lines, parsed."""
        out = []
        for _ in range(n):
            line = self.line()
            assert line is not None and line.startswith("Forwarding from "), \
                f"expected a Forwarding line, got {line!r}; stderr: {self.stderr_now()}"
            where, remote = line.removeprefix("Forwarding from ").split(" -> ")
            addr, port = where.rsplit(":", 1)
            out.append((addr.strip("[]"), int(port), int(remote)))
        return out

    def wait(self, timeout: float = TIMEOUT) -> int:
        code = self.proc.wait(timeout)
        self.stderr_now(until_eof=timeout)   # the reader gets the last lines after the exit
        return code

    def stop(self, sig=signal.SIGINT) -> int:
        """Ctrl-C; the exit code (0 expected)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.wait()
        except subprocess.TimeoutExpired:
            self.proc.kill()                # by pid: the forwarder this test started
            self.proc.wait()
            raise AssertionError("port-forward did not exit within 20s of SIGINT")


@pytest.fixture
def forward(root):
    started: list[Forwarder] = []

    def start(*args: str) -> Forwarder:
        fwd = Forwarder(root, *args)
        started.append(fwd)
        return fwd
    yield start
    for fwd in started:
        if fwd.proc.poll() is None:
            fwd.proc.kill()
            fwd.proc.wait()


def fetch(addr: str, port: int) -> str:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family) as s:
        s.settimeout(TIMEOUT)
        s.connect((addr, port))
        return s.makefile().read()


def assert_refused(addr: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family) as s, pytest.raises(ConnectionRefusedError):
        s.settimeout(TIMEOUT)
        s.connect((addr, port))


# -- the forms ------------------------------------------------------------------------

def test_local_remote_default_localhost_and_pod_slash_name(pod, forward):
    remote = pod.serve("hello")
    local = free_port()
    fwd = forward(f"pod/{pod.name}", f"{local}:{remote}")
    want = [("127.0.0.1", local, remote)]
    if has_ipv6_loopback():
        want.append(("::1", local, remote))
    assert fwd.forwarding(len(want)) == want
    assert fetch("127.0.0.1", local) == "hello from the pod, reached at 127.0.0.1\n"
    assert fwd.line() == f"Handling connection for {local}"
    if has_ipv6_loopback():
        assert fetch("::1", local) == "hello from the pod, reached at 127.0.0.1\n"
        assert fwd.line() == f"Handling connection for {local}"
    # localhost only: the bridge-side address of the host does not listen
    assert_refused(GATEWAY, local)
    assert fwd.stop() == 0
    assert_refused("127.0.0.1", local)


def test_one_number_is_the_same_port_on_both_ends(pod, forward):
    port = free_port()                      # free here, and in the fresh pod
    pod.serve("hello", port=port)
    fwd = forward(pod.name, str(port), "--address", "127.0.0.1")
    assert fwd.forwarding(1) == [("127.0.0.1", port, port)]
    assert fetch("127.0.0.1", port).startswith("hello from the pod")
    assert fwd.stop() == 0


def test_colon_remote_picks_a_random_local_port(pod, forward):
    remote = pod.serve("hello")
    fwd = forward(pod.name, f":{remote}")
    lines = fwd.forwarding(2 if has_ipv6_loopback() else 1)
    ports = {port for _, port, _ in lines}
    assert len(ports) == 1, f"the same random port on every address: {lines}"
    (local,) = ports
    assert local != 0 and all(r == remote for _, _, r in lines)
    assert fetch("127.0.0.1", local).startswith("hello from the pod")
    assert fwd.stop() == 0


def test_several_ports_and_addresses(pod, forward):
    r1, r2 = pod.serve("hello"), pod.serve("echo")
    l1 = free_port()
    fwd = forward(pod.name, f"{l1}:{r1}", f":{r2}", "--address", f"127.0.0.1,{GATEWAY}")
    lines = fwd.forwarding(4)
    assert lines[:2] == [("127.0.0.1", l1, r1), (GATEWAY, l1, r1)]
    l2 = lines[2][1]
    assert lines[2:] == [("127.0.0.1", l2, r2), (GATEWAY, l2, r2)]
    assert fetch(GATEWAY, l1).startswith("hello from the pod")
    with socket.create_connection((GATEWAY, l2), timeout=TIMEOUT) as s:
        s.sendall(b"ping")
        assert s.recv(4) == b"ping"
    if has_ipv6_loopback():
        assert_refused("::1", l1)           # not asked for: not listened on
    assert fwd.stop() == 0


def test_named_container_port(pod, forward):
    remote = pod.serve("hello")
    pod.record["manifest"]["spec"]["containers"][0]["ports"] = [
        {"containerPort": remote, "name": "http"}]
    pod.save()
    fwd = forward(pod.name, ":http", "--address", "127.0.0.1")
    ((_, local, got),) = fwd.forwarding(1)
    assert got == remote
    assert fetch("127.0.0.1", local).startswith("hello from the pod")
    assert fwd.stop() == 0


def test_a_server_bound_to_the_pods_loopback(pod, forward):
    remote = pod.serve("hello", addr="127.0.0.1")
    assert_refused(pod.ip, remote)          # the pod's IP does not reach it ...
    fwd = forward(pod.name, f":{remote}", "--address", "127.0.0.1")
    ((_, local, _),) = fwd.forwarding(1)
    # ... port-forward does, like kubectl's: it connects inside the pod
    assert fetch("127.0.0.1", local) == "hello from the pod, reached at 127.0.0.1\n"
    assert fwd.stop() == 0


def test_a_server_on_the_pods_ipv6_loopback_only(pod, forward):
    if not has_ipv6_loopback():
        pytest.skip("this kernel has no IPv6")
    remote = pod.serve("hello", addr="::1")
    fwd = forward(pod.name, f":{remote}", "--address", "127.0.0.1")
    ((_, local, _),) = fwd.forwarding(1)
    assert fetch("127.0.0.1", local) == "hello from the pod, reached at ::1\n"
    assert fwd.stop() == 0


def test_sigterm_is_a_clean_exit_too(pod, forward):
    fwd = forward(pod.name, f":{pod.serve('hello')}")
    fwd.forwarding(1)
    assert fwd.stop(signal.SIGTERM) == 0


# -- the relay ----------------------------------------------------------------------

def test_fifty_concurrent_connections(pod, forward):
    remote = pod.serve("echo")
    fwd = forward(pod.name, f":{remote}", "--address", "127.0.0.1")
    ((_, local, _),) = fwd.forwarding(1)
    socks = [socket.create_connection(("127.0.0.1", local), timeout=TIMEOUT)
             for _ in range(50)]
    results: dict[int, bytes] = {}

    def talk(i: int, s: socket.socket) -> None:
        msg = f"connection {i} ".encode() * 4000           # ~60 KB each
        s.sendall(msg)
        s.shutdown(socket.SHUT_WR)
        results[i] = s.makefile("rb").read() == msg
    threads = [threading.Thread(target=talk, args=(i, s)) for i, s in enumerate(socks)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT)
    finally:
        for s in socks:
            s.close()
    assert results == {i: True for i in range(50)}
    handled = [fwd.line() for _ in range(50)]
    assert handled == [f"Handling connection for {local}"] * 50
    assert fwd.stop() == 0


def test_200_mb_both_ways_intact(pod, forward, tmp_path):
    data = tmp_path / "200mb"
    digest = hashlib.sha256()
    with open(data, "wb") as f:
        for _ in range(200):
            chunk = os.urandom(1 << 20)
            digest.update(chunk)
            f.write(chunk)
    want = f"{200 << 20} {digest.hexdigest()}"
    up, down = pod.serve("count"), pod.serve("source", path=str(data))
    fwd = forward(pod.name, f":{up}", f":{down}", "--address", "127.0.0.1")
    (_, l_up, _), (_, l_down, _) = fwd.forwarding(2)
    got = {}

    def upload() -> None:
        with socket.create_connection(("127.0.0.1", l_up), timeout=60) as s, \
                open(data, "rb") as f:
            s.sendfile(f)
            s.shutdown(socket.SHUT_WR)
            got["up"] = s.makefile().read().strip()

    def download() -> None:
        h, n = hashlib.sha256(), 0
        with socket.create_connection(("127.0.0.1", l_down), timeout=60) as s:
            while chunk := s.recv(1 << 20):
                h.update(chunk)
                n += len(chunk)
        got["down"] = f"{n} {h.hexdigest()}"
    threads = [threading.Thread(target=upload), threading.Thread(target=download)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert got == {"up": want, "down": want}
    assert fwd.stop() == 0


def test_half_close_reaches_the_pod_and_the_answer_comes_back(pod, forward):
    remote = pod.serve("count")
    fwd = forward(pod.name, f":{remote}", "--address", "127.0.0.1")
    ((_, local, _),) = fwd.forwarding(1)
    with socket.create_connection(("127.0.0.1", local), timeout=TIMEOUT) as s:
        s.sendall(b"abc")
        s.shutdown(socket.SHUT_WR)          # FIN: the server answers only after EOF
        answer = s.makefile().read()
    assert answer == f"3 {hashlib.sha256(b'abc').hexdigest()}\n"
    assert fwd.stop() == 0


def test_worker_threads_are_in_the_pod_and_the_main_thread_is_not(pod, forward):
    remote = pod.serve("echo")
    fwd = forward(pod.name, f":{remote}", "--address", "127.0.0.1")
    ((_, local, _),) = fwd.forwarding(1)
    with socket.create_connection(("127.0.0.1", local), timeout=TIMEOUT) as s:
        s.sendall(b"x")
        assert s.recv(1) == b"x"            # the relay is up
        pid = fwd.proc.pid
        mine = os.stat("/proc/self/ns/net").st_ino
        pods = os.stat(pod.netns).st_ino
        assert os.stat(f"/proc/{pid}/task/{pid}/ns/net").st_ino == mine
        threads = {os.stat(f"/proc/{pid}/task/{t}/ns/net").st_ino
                   for t in os.listdir(f"/proc/{pid}/task")}
        assert pods in threads
    assert fwd.stop() == 0


# -- errors ---------------------------------------------------------------------------

def test_local_port_in_use_names_it_and_exits_1(pod, forward):
    remote = pod.serve("hello")
    free = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        fwd = forward(pod.name, f"{free}:{remote}", f"{taken}:{remote}")
        assert fwd.wait() == 1
    assert fwd.line() is None, "nothing is forwarded when one port cannot be"
    (message,) = fwd.err_lines
    assert message.startswith(f"error: unable to listen on 127.0.0.1:{taken}: bind: "
                              "Address already in use (EADDRINUSE)")
    assert "pick another one" in message
    assert_refused("127.0.0.1", free)       # the first port was let go too


def test_nothing_listening_in_the_pod_closes_that_connection_only(pod, forward):
    port = free_port()
    fwd = forward(pod.name, f":{port}", "--address", "127.0.0.1")
    ((_, local, _),) = fwd.forwarding(1)
    with socket.create_connection(("127.0.0.1", local), timeout=TIMEOUT) as s:
        assert s.recv(100) == b""           # closed by the forwarder
    assert fwd.line() == f"Handling connection for {local}"
    why = fwd.err_line()
    assert why.startswith(f"an error occurred forwarding {local} -> {port}: nothing is "
                          f"listening on port {port} in pod {pod.name}")
    assert f"connect to 127.0.0.1:{port}: Connection refused (ECONNREFUSED)" in why
    # still serving: start the server and try again
    pod.serve("hello", port=port)
    assert fetch("127.0.0.1", local).startswith("hello from the pod")
    assert fwd.stop() == 0


def test_pod_deleted_while_forwarding_ends_it(pod, forward):
    remote = pod.serve("echo")
    fwd = forward(pod.name, f":{remote}", "--address", "127.0.0.1")
    ((_, local, _),) = fwd.forwarding(1)
    s = socket.create_connection(("127.0.0.1", local), timeout=TIMEOUT)
    s.sendall(b"x")
    assert s.recv(1) == b"x"
    pod.delete()
    try:
        assert fwd.wait() == 1
        assert s.recv(1) == b""            # the open connection ended with it
    finally:
        s.close()
    assert fwd.err_lines[-1] == (
        f"error: lost connection to pod {pod.name}: its network namespace "
        f"{pod.netns} is gone (the pod was deleted)")


def test_pod_state_gone_while_forwarding_ends_it(pod, forward):
    fwd = forward(pod.name, f":{pod.serve('hello')}", "--address", "127.0.0.1")
    fwd.forwarding(1)
    shutil.rmtree(pod.paths.pod_dir(pod.name))
    assert fwd.wait() == 1
    assert fwd.err_lines[-1] == f"error: lost connection to pod {pod.name}: the pod was deleted"


def test_a_new_pod_with_the_same_name_ends_it(pod, forward):
    fwd = forward(pod.name, f":{pod.serve('hello')}", "--address", "127.0.0.1")
    fwd.forwarding(1)
    pod.record["uid"] = str(uuid.uuid4())      # deleted and created again
    pod.save()
    assert fwd.wait() == 1
    assert fwd.err_lines[-1] == (f"error: lost connection to pod {pod.name}: the pod was "
                                 "deleted and a new one with the same name created")


def test_pod_not_found(root, forward):
    fwd = forward(f"nope-{RUN}", "8080")
    assert fwd.wait() == 1
    assert fwd.err_lines == [f'error: Error from server (NotFound): pods "nope-{RUN}" not found']


def test_pod_not_running(pod, forward):
    pod.record["containers"][0].update(state="terminated", exitCode=0, pid=None)
    pod.save()
    fwd = forward(pod.name, "8080")
    assert fwd.wait() == 1
    assert fwd.err_lines == ["error: unable to forward port because pod is not running. "
                             "Current status=Succeeded"]


def test_usage_errors_exit_2(root, forward):
    fwd = forward("web", "8080:x:y")
    assert fwd.wait() == 2
    assert fwd.err_lines == ['error: invalid port "8080:x:y": expected [LOCAL:]REMOTE, '
                             "e.g. 8080:80 or :80"]
    fwd = forward("web", "80", "--address", "example.com")
    assert fwd.wait() == 2
    assert "is not an IP address or localhost" in fwd.err_lines[0]
