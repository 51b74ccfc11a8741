"""Probes and lifecycle hooks: one check, run in a short-lived forked child.

The agent never blocks: for each check it forks a child that performs it
(with the probe's timeout) and exits 0 (success) or 1 (failure) after
writing one line of explanation to a pipe; the agent's SIGCHLD handling
reaps it and counts the result. The kubelet does the same checks:

    httpGet    GET http://POD_IP:PORT/PATH from the node; 200-399 succeeds
    tcpSocket  a TCP connect to POD_IP:PORT from the node succeeds
    exec       the command, run inside the container (like `exec`), exits 0
    sleep      (lifecycle only) wait N seconds

So an httpGet or tcpSocket probe needs no curl or nc in the image.
"""
from __future__ import annotations

import os
import select
import signal
import socket
import time
from dataclasses import dataclass

from minipod.linux import fork

# kubelet's probe user agent, so server logs tell probes from users
USER_AGENT = "kube-probe/minipod"


@dataclass
class ProbeState:
    """Counters of one probe of one container instance."""
    kind: str                  # "liveness" | "readiness" | "startup"
    instance: str              # the container instance (containerID + pid)
    successes: int = 0
    failures: int = 0
    running: bool = False      # a check is in flight


@dataclass
class Target:
    """The container an exec check runs in: its pod's record, its status
    entry (pid, cgroup, env) and the agent's Paths (enter.for_container):
    a PodRecord and its ContainerRecord."""
    record: object
    cs: object
    paths: object


def fork_check(handler, pod_ip: str, target: Target | None, timeout: float) -> tuple[int, int]:
    """Fork a child that runs one check; returns (pid, read end of its message pipe).

    The child (minipod.linux.fork) is made non-dumpable at once: it is a
    copy of the agent, and an exec check takes it into the container
    (runtime/enter.py). Its exit code is the verdict, its message the
    reason; the agent reaps it and reads both."""
    child = fork.spawn(lambda: check(handler, pod_ip, target, timeout))
    return child.pid, child.fd


def check(handler, pod_ip: str, target: Target | None, timeout: float) -> tuple[int, str]:
    if handler.kind == "httpGet":
        return _http(handler, pod_ip, timeout)
    if handler.kind == "tcpSocket":
        host = handler.host or pod_ip
        try:
            with socket.create_connection((host, handler.port), timeout=timeout):
                return 0, f"connected to {host}:{handler.port}"
        except OSError as e:
            return 1, f"dial tcp {host}:{handler.port}: {e.strerror or e}"
    if handler.kind == "exec":
        return _exec(handler, target, timeout)
    if handler.kind == "sleep":
        time.sleep(handler.seconds or 0)
        return 0, f"slept {handler.seconds}s"
    return 1, f"unsupported handler {handler.kind}"


def _http(handler, pod_ip: str, timeout: float) -> tuple[int, str]:
    import http.client
    host = handler.host or pod_ip
    url = f"{handler.scheme.lower()}://{host}:{handler.port}{handler.path}"
    if handler.scheme == "HTTPS":
        import ssl
        ctx = ssl._create_unverified_context()  # the kubelet does not verify either
        conn = http.client.HTTPSConnection(host, handler.port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(host, handler.port, timeout=timeout)
    headers = {"User-Agent": USER_AGENT, **dict(handler.headers)}
    try:
        conn.request("GET", handler.path, headers=headers)
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException) as e:
        return 1, f'Get "{url}": {getattr(e, "strerror", None) or e}'
    finally:
        conn.close()
    if 200 <= status < 400:
        return 0, f"HTTP probe succeeded with statuscode: {status}"
    return 1, f"HTTP probe failed with statuscode: {status}"


def _exec(handler, target: Target | None, timeout: float) -> tuple[int, str]:
    """Run the command in the container as its own process runs (its env,
    user, capabilities, seccomp filter, cgroup), with stdin /dev/null and
    stdout and stderr into one pipe of ours; its output is the message."""
    from minipod.runtime import container as ctr
    from minipod.runtime import enter
    if target is None or not target.cs.pid:
        return 1, "container is not running"
    out_r, out_w = os.pipe()
    try:
        spec = enter.for_container(target.record, target.cs, target.paths, handler.command,
                                   stdio=(None, out_w, out_w), name="probe")
        child = enter.start(spec)
    except ctr.StartError as e:
        return 1, str(e)
    finally:
        os.close(out_w)
    deadline = time.monotonic() + timeout
    output = b""
    while True:
        pid, status = os.waitpid(child, os.WNOHANG)
        ready, _, _ = select.select([out_r], [], [], 0.01)
        if ready:
            output += os.read(out_r, 4096)
        if pid:
            code = os.waitstatus_to_exitcode(status)
            text = output.decode(errors="replace").strip()
            return (0 if code == 0 else 1), (text or f"command exited with {code}")
        if time.monotonic() > deadline:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
            return 1, f"command timed out after {timeout:g}s"
