"""Real server software (Debian 12's nginx, redis, PostgreSQL) behaves as on Kubernetes.

The image is a real Debian root file system made by debootstrap from the
machine's own mirror and cached between runs (tests/debian_image.py). Each
test runs a server the way its users do (the commands of the official
images) and checks what they would check: exec finds the tools, probes keep
the pod Ready with no restarts, preStop hooks run, HTTP is answered on the
pod IP and every request is in `minipod logs`, PostgreSQL runs as its own
user with that user's HOME (issue 13, items 1 and 8).

nginx and redis overwrite their /proc/PID/environ with process titles, so
anything that reads the container's environment from there (instead of the
one minipod computed when it started the container) finds no PATH.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time
from dataclasses import dataclass

import pytest

import debian_image
from podhelpers import http_get, http_get_when_up

pytestmark = pytest.mark.integration

IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
GREETING = "hello from the manifest"


@dataclass
class Servers:
    image: str                       # the image name in the suite's store
    info: debian_image.ServersImage


@pytest.fixture(scope="session")
def servers(minipod):
    """The Debian servers image, imported into the suite's MINIPOD_ROOT."""
    try:
        info = debian_image.servers_rootfs()
    except debian_image.MirrorUnreachable as e:
        pytest.skip(f"no Debian servers image: {e}")
    name = f"minipod.test/debian-servers:{info.key}"
    minipod("image", "import", str(info.rootfs), name, "--cmd", '["bash"]',
            "--env", f"PATH={IMAGE_PATH}", timeout=600)
    return Servers(image=name, info=info)


def manifest(name: str, image: str, command: list[str], extra: str = "",
             spec: str = "", grace: int = 5) -> str:
    """A one-container pod whose env sets GREETING (the manifest's env)."""
    return f"""apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: {grace}
{spec}  containers:
  - name: main
    image: {image}
    command: {json.dumps(command)}
    env:
    - {{name: GREETING, value: {json.dumps(GREETING)}}}
{extra}"""


NGINX = ["nginx", "-g", "daemon off;"]   # the official image's CMD
ACCESS = re.compile(r'"GET /\?req=(\d+)(?:&\S*)? HTTP/1\.1" 200 ')   # nginx's access log


def status(pod: dict) -> dict:
    return pod["status"]["containerStatuses"][0]


def running(pod: dict) -> bool:
    return pod["status"]["phase"] == "Running" and "running" in status(pod)["state"]


def ready(pod: dict) -> bool:
    return running(pod) and status(pod)["ready"]


@pytest.fixture
def nginx(minipod, servers, tmp_path):
    minipod.run_manifest(manifest("nginx-pod", servers.image, NGINX), tmp_path)
    pod = minipod.wait_for("nginx-pod", running, timeout=30)
    yield pod["status"]["podIP"]
    minipod("delete", "pod", "nginx-pod", "--grace-period", "0", "--ignore-not-found")


def test_exec_in_nginx_finds_tools_in_the_containers_path(minipod, nginx):
    # nginx's PID 1 has overwritten its /proc/PID/environ with its title:
    # exec must use the environment minipod computed, as the kubelet does.
    out = minipod("exec", "nginx-pod", "--", "ls", "/").stdout.split()
    assert {"etc", "usr", "var"} <= set(out)
    env = minipod("exec", "nginx-pod", "--", "sh", "-c",
                  'echo "$PATH"; echo "$GREETING"; echo "$HOME"').stdout.splitlines()
    assert env == [IMAGE_PATH, GREETING, "/root"], \
        "exec sees the image's Env, the manifest's env and root's HOME"


def test_nginx_answers_on_the_pod_ip_and_logs_every_request(minipod, nginx):
    assert "Welcome to nginx" in http_get_when_up(f"http://{nginx}/", wait=20)
    n = 200
    for i in range(n):
        assert "Welcome to nginx" in http_get(f"http://{nginx}/?req={i}")

    def logged() -> list[int]:
        out = minipod("logs", "nginx-pod").stdout
        return [int(m.group(1)) for m in ACCESS.finditer(out)]

    deadline = time.monotonic() + 20
    while len(logged()) < n and time.monotonic() < deadline:
        time.sleep(0.2)
    assert logged() == list(range(n)), "every request once, in order, in `minipod logs`"
    assert "Welcome to nginx" in http_get(f"http://{nginx}/"), "and it keeps answering"


def _access_log_requests(minipod, pod: str) -> list[int]:
    """The req=N of every access-log line kept for the pod's container, in
    every log file (rotated ones too: the suite rotates at 64 KiB)."""
    from minipod.runtime.paths import Paths
    files = sorted((Paths(str(minipod.root)).pod_logs / pod / "main").glob("0.log*"),
                   key=lambda f: f.stat().st_mtime_ns)
    text = "".join(f.read_text() for f in files)
    return [int(m.group(1)) for m in ACCESS.finditer(text)]


def test_nginx_keeps_answering_and_logging_while_the_agent_is_dead(minipod, servers, tmp_path):
    minipod.run_manifest(manifest("nginx-dead", servers.image, NGINX), tmp_path)
    try:
        ip = minipod.wait_for("nginx-dead", running, timeout=30)["status"]["podIP"]
        http_get_when_up(f"http://{ip}/", wait=20)
        pid = minipod.agent_pid()
        assert pid
        os.kill(pid, signal.SIGKILL)   # the agent this suite started
        while os.path.exists(f"/proc/{pid}"):
            time.sleep(0.05)
        # ~250 bytes of access log a request: 400 fill a 64 KiB pipe
        # (its default size) one and a half times over.
        pad = "x" * 150
        n = 400
        for i in range(n):
            try:
                page = http_get(f"http://{ip}/?req={i}&pad={pad}")
            except OSError as e:
                pytest.fail(f"nginx stopped answering at request {i} of {n} while the agent "
                            f"was dead (its output blocked?): {e}")
            assert "Welcome to nginx" in page
        # Any command that reads state brings the agent back.
        assert minipod.pod("nginx-dead")["status"]["phase"] == "Running"
        deadline = time.monotonic() + 20
        while len(_access_log_requests(minipod, "nginx-dead")) < n \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _access_log_requests(minipod, "nginx-dead") == list(range(n)), \
            "no access-log line lost or repeated while the agent was dead"
        assert minipod.agent_pid() is not None
    finally:
        minipod("delete", "pod", "nginx-dead", "--grace-period", "0")


def test_nginx_pre_stop_hook_quits_nginx_on_delete(minipod, servers, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    # The hook writes the manifest's GREETING (it runs in the container's
    # environment) and nginx -s quit's complaints, if any, to a hostPath.
    hook = ["sh", "-c", 'echo "$GREETING" > /out/prestop; exec nginx -s quit 2>> /out/prestop']
    extra = f"""    volumeMounts: [{{name: out, mountPath: /out}}]
    lifecycle:
      preStop:
        exec: {{command: {json.dumps(hook)}}}
"""
    volumes = f"""  volumes:
  - name: out
    hostPath: {{path: {out}, type: Directory}}
"""
    minipod.run_manifest(manifest("nginx-stop", servers.image, NGINX, extra, volumes,
                                  grace=30), tmp_path)
    ip = minipod.wait_for("nginx-stop", running, timeout=30)["status"]["podIP"]
    http_get_when_up(f"http://{ip}/", wait=20)
    # Watch the pod's events while it terminates (they go with the pod).
    seen: list[str] = []
    done = threading.Event()

    def watch():
        while not done.is_set():
            proc = minipod("describe", "pod", "nginx-stop", check=False)
            if proc.returncode != 0:
                return
            seen.append(proc.stdout)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        deleted = minipod("delete", "pod", "nginx-stop", timeout=60)
    finally:
        done.set()
        watcher.join()
    assert "FailedPreStopHook" not in deleted.stdout + deleted.stderr
    assert not [s for s in seen if "FailedPreStopHook" in s], seen[-1:]
    # The hook ran in the container's environment, and nginx -s quit
    # signalled the master ("[notice] ... signal process started") with no
    # [error] or [emerg] (no pid file, no nginx).
    said = (out / "prestop").read_text().splitlines()
    assert said[:1] == [GREETING], said
    assert "signal process started" in said[-1] and \
        all("[notice]" in line for line in said[1:]), said
    gone = minipod("get", "pod", "nginx-stop", check=False)
    assert gone.returncode != 0 and "not found" in gone.stderr.lower()


def redis_ping(ip: str) -> bytes:
    with socket.create_connection((ip, 6379), timeout=5) as s:
        s.sendall(b"PING\r\n")
        return s.recv(64)


def test_redis_with_redis_cli_probes_is_ready_and_stays_up(minipod, servers, tmp_path):
    probes = """    ports: [{containerPort: 6379, name: redis}]
    readinessProbe:
      exec: {command: [redis-cli, ping]}
      periodSeconds: 1
    livenessProbe:
      exec: {command: [redis-cli, ping]}
      periodSeconds: 1
      failureThreshold: 1
"""
    command = ["redis-server", "--protected-mode", "no", "--save", "", "--appendonly", "no"]
    minipod.run_manifest(manifest("redis", servers.image, command, probes), tmp_path)
    try:
        pod = minipod.wait_for("redis", ready, timeout=30)
        assert redis_ping(pod["status"]["podIP"]) == b"+PONG\r\n"
        # Ten liveness periods, each of which would kill a failing redis.
        for _ in range(10):
            time.sleep(1)
            pod = minipod.pod("redis")
            assert ready(pod) and status(pod)["restartCount"] == 0, \
                json.dumps(pod["status"], indent=1)
        described = minipod("describe", "pod", "redis").stdout
        assert "Unhealthy" not in described and "Killing" not in described, described
        assert minipod("exec", "redis", "--", "redis-cli", "ping").stdout == "PONG\n"
    finally:
        minipod("delete", "pod", "redis", "--grace-period", "0")


def test_postgres_runs_as_its_user_with_its_home(minipod, servers, tmp_path):
    info = servers.info
    command = [f"{info.pg_bin}/postgres", "-D", info.pg_data, "-c", f"config_file={info.pg_conf}"]
    extra = """    readinessProbe:
      exec: {command: [pg_isready, -q]}
      periodSeconds: 1
    livenessProbe:
      exec: {command: [pg_isready, -q]}
      initialDelaySeconds: 10
      periodSeconds: 2
"""
    spec = f"""  securityContext:
    runAsUser: {info.postgres_uid}
    runAsGroup: {info.postgres_gid}
"""
    minipod.run_manifest(manifest("pg", servers.image, command, extra, spec), tmp_path)
    try:
        pod = minipod.wait_for("pg", ready, timeout=60)
        assert status(pod)["restartCount"] == 0
        # Peer authentication: psql runs as the container's user, postgres.
        one = minipod("exec", "pg", "--", "psql", "-U", "postgres", "-tAc", "select 1")
        assert one.stdout == "1\n"
        table = minipod("exec", "pg", "--", "psql", "-U", "postgres", "-c", "select 1").stdout
        assert "(1 row)" in table
        # HOME of a non-root user: its home in the image's /etc/passwd.
        assert info.postgres_home == "/var/lib/postgresql"
        who = minipod("exec", "pg", "--", "sh", "-c", 'id -un; echo "$HOME"').stdout
        assert who.splitlines() == ["postgres", info.postgres_home]
    finally:
        minipod("delete", "pod", "pg", "--grace-period", "0")
