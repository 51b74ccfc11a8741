"""`exec` hands the container no host binary, no fd and no terminal of its caller.

Each test runs the attack for real, from inside a container, against a
canary the test makes:

1. CVE-2019-5736 class: while `minipod exec` runs, its helper sits in the
   container's PID namespace as the host's python until it execs. The
   container opens /proc/N/exe of every process it sees, as often as it
   can, and checks what it got hold of: never the host's interpreter.
2. CVE-2024-21626 class: the caller's shell holds `exec 8<CANARY_DIR`;
   the command in the container has no fd 8 and cannot list the canary.
3. Without -t the container's stdio are pipes minipod owns, never the
   caller's terminal (TIOCSTI, escape sequences); the relay keeps bytes,
   exit codes, EOF on stdin and stdout apart from stderr.
"""
from __future__ import annotations

import json
import os
import pty
import shlex
import subprocess
import sys
import time
import uuid

import pytest

from podhelpers import BUSYBOX_IMAGE

pytestmark = pytest.mark.integration

# A PATH of many missing directories before /bin: every exec walks it before
# it execs (as the kernel's own lookup would), so the helper stays in sight
# of the container for some milliseconds and the scan has a fair chance.
LONG_PATH = ":".join(f"/nonexistent/d{i}" for i in range(3000)) + ":/bin"

# Open /proc/N/exe of every other process (a redirection opens it, as an
# attacker's open(O_PATH) would), and for each one opened record pid,
# device and inode of what the open got: the proof of a handle. Each pid
# is recorded once, at its first successful open. A sleep of its own is
# the control: the scan must get that one.
SCAN = r"""
sleep 100000 &
echo $! > /tmp/control
: > /tmp/seen
got=" 1 "
while [ ! -e /tmp/stop ]; do
  for d in /proc/[0-9]*; do
    n=${d#/proc/}
    case "$got" in *" $n "*) continue;; esac
    { /bin/stat -L -c "$n %d %i" /proc/self/fd/3 >> /tmp/seen && got="$got$n "; } \
      3<"$d/exe" 2>/dev/null
  done
done
touch /tmp/stopped
exec sleep 100000
"""


def _scanner_manifest(name: str) -> str:
    return f"""apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", {json.dumps(SCAN)}]
    env:
    - {{name: PATH, value: {json.dumps(LONG_PATH)}}}
"""


def test_exec_helper_exe_is_never_the_host_interpreter(minipod, tmp_path):
    host = os.stat(os.path.realpath(sys.executable))
    minipod.run_manifest(_scanner_manifest("exescan"), tmp_path)
    minipod.wait_for("exescan", lambda p: p["status"]["phase"] == "Running")
    try:
        for _ in range(40):
            minipod("exec", "exescan", "--", "true")
        minipod("exec", "exescan", "--", "touch", "/tmp/stop")
        deadline = time.monotonic() + 20
        while minipod("exec", "exescan", "--", "test", "-e", "/tmp/stopped",
                      check=False).returncode != 0:
            assert time.monotonic() < deadline, "the scanner did not stop"
            time.sleep(0.1)
        seen = minipod("exec", "exescan", "--", "cat", "/tmp/seen").stdout.splitlines()
        control = minipod("exec", "exescan", "--", "cat", "/tmp/control").stdout.strip()
    finally:
        minipod("delete", "pod", "exescan", "--grace-period", "0")
    handles = {int(pid): (int(dev), int(ino)) for pid, dev, ino in map(str.split, seen)}
    # The scan works: it got a handle on its own sleep, so it would on the helper too.
    assert int(control) in handles, f"the scan opened no exe of a sibling: {seen}"
    leaked = [pid for pid, file in handles.items() if file == (host.st_dev, host.st_ino)]
    assert not leaked, (f"the container opened the host's interpreter {sys.executable} "
                        f"through /proc/PID/exe of pids {leaked}")


@pytest.fixture
def sleeper(minipod, tmp_path):
    from podhelpers import pod_manifest
    minipod.run_manifest(pod_manifest("fdvictim", "exec sleep 100000",
                                      terminationGracePeriodSeconds=0), tmp_path)
    minipod.wait_for("fdvictim", lambda p: p["status"]["phase"] == "Running")
    yield "fdvictim"
    minipod("delete", "pod", "fdvictim", "--grace-period", "0")


def _exec_from_shell(minipod, shell_prefix: str, *argv: str) -> subprocess.CompletedProcess:
    """Run `minipod exec` from a sh that ran shell_prefix first (e.g. `exec 8<DIR`)."""
    cmd = f"{shell_prefix}; exec {shlex.join([sys.executable, '-m', 'minipod', 'exec', *argv])}"
    return subprocess.run(["sh", "-c", cmd], env=minipod.env, capture_output=True,
                          text=True, timeout=60)


def test_callers_fd_does_not_reach_the_container(minipod, sleeper, tmp_path):
    canary = tmp_path / "canary"
    canary.mkdir()
    secret = f"host-secret-{uuid.uuid4().hex[:8]}"
    (canary / secret).write_text("a host file the container must not see\n")
    # the caller really holds it: the same shell line lists it through fd 8
    mine = subprocess.run(["sh", "-c", f"exec 8<{canary}; ls /proc/self/fd/8/"],
                          capture_output=True, text=True)
    assert secret in mine.stdout
    fds = _exec_from_shell(minipod, f"exec 8<{canary}", sleeper, "--", "ls", "/proc/self/fd")
    assert fds.returncode == 0, fds.stderr
    assert "8" not in fds.stdout.split(), f"fd 8 reached the container: {fds.stdout.split()}"
    listing = _exec_from_shell(minipod, f"exec 8<{canary}", sleeper, "--",
                               "sh", "-c", "ls /proc/self/fd/8/ /proc/1/fd/8/ 2>&1; true")
    assert secret not in listing.stdout + listing.stderr


def _under_a_terminal(minipod, *argv: str) -> tuple[int, bytes]:
    """Run the CLI with a pty as its stdin, stdout and stderr (as a user's
    terminal); return its exit code and all it printed there."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(sys.executable, [sys.executable, "-m", "minipod", *argv], minipod.env)
    out = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO: the child side is closed
            break
        if not data:
            break
        out += data
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out


def test_without_t_the_containers_stdio_are_pipes_not_the_callers_terminal(minipod, sleeper):
    show = "for n in 0 1 2; do readlink /proc/self/fd/$n; done"
    code, out = _under_a_terminal(minipod, "exec", "-i", sleeper, "--", "sh", "-c", show)
    lines = out.decode().split()
    assert code == 0 and len(lines) == 3, out
    assert all(x.startswith("pipe:") for x in lines), f"-i: the container's stdio are {lines}"
    code, out = _under_a_terminal(minipod, "exec", sleeper, "--", "sh", "-c", show)
    lines = out.decode().split()
    assert code == 0 and lines[0] == "/dev/null", f"no -i: stdin is {lines}"
    assert all(x.startswith("pipe:") for x in lines[1:]), f"the container's stdio are {lines}"


def test_pipe_relay_keeps_bytes_exit_code_eof_and_stderr_apart(minipod, sleeper):
    data = bytes(range(256)) * 4096  # 1 MiB, every byte value, more than a pipe holds
    proc = subprocess.run([sys.executable, "-m", "minipod", "exec", "-i", sleeper, "--",
                           "sh", "-c", "cat; echo to-stderr >&2; exit 3"],
                          env=minipod.env, input=data, capture_output=True, timeout=60)
    assert proc.returncode == 3
    assert proc.stdout == data
    assert proc.stderr == b"to-stderr\n"
    # a background process that keeps the pipes open does not keep exec waiting
    proc = subprocess.run([sys.executable, "-m", "minipod", "exec", sleeper, "--",
                           "sh", "-c", "echo before; sleep 30 & exit 0"],
                          env=minipod.env, capture_output=True, timeout=20)
    assert proc.returncode == 0 and proc.stdout == b"before\n"


def test_pause_of_a_shared_pid_pod_gives_a_ptrace_capable_container_nothing(
        minipod, tmp_path):
    """shareProcessNamespace: every container sees the pause as its PID 1.
    One that may ptrace (CAP_SYS_PTRACE, as debugging pods add) passes the
    non-dumpable check, so the pause itself must hold nothing of the host's:
    not its root (a canary dir of the host), nor its fds, nor any power."""
    canary = tmp_path / "canary"
    canary.mkdir()
    secret = f"host-secret-{uuid.uuid4().hex[:8]}"
    (canary / secret).write_text("a host file the container must not see\n")
    minipod.run_manifest(f"""apiVersion: v1
kind: Pod
metadata:
  name: ptracer
spec:
  terminationGracePeriodSeconds: 0
  shareProcessNamespace: true
  containers:
  - name: main
    image: {BUSYBOX_IMAGE}
    command: ["sleep", "100000"]
    securityContext: {{capabilities: {{add: [SYS_PTRACE]}}}}
""", tmp_path)
    try:
        minipod.wait_for("ptracer", lambda p: p["status"]["phase"] == "Running")
        def inside(script: str) -> str:
            return minipod("exec", "ptracer", "--", "sh", "-c", script).stdout
        comm = inside("cat /proc/1/comm")
        root = inside(f"ls -a /proc/1/root/ /proc/1/root{canary}/ 2>&1; true")
        fds = inside("for f in /proc/1/fd/*; do readlink $f; done").split()
        status = dict(line.split(":", 1) for line in inside(
            "grep -E '^(Uid|CapEff|NoNewPrivs):' /proc/1/status").splitlines())
    finally:
        minipod("delete", "pod", "ptracer", "--grace-period", "0")
    assert comm == "minipod-pause\n"
    assert secret not in root and "bin" not in root.split(), f"the pause's root:\n{root}"
    assert fds == ["/dev/null"] * 3, f"the pause holds {fds}"
    assert status["Uid"].split() == ["65534"] * 4
    assert int(status["CapEff"], 16) == 0 and status["NoNewPrivs"].strip() == "1"
