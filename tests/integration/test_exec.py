"""`exec` joins every namespace of a running container; -t gives a real pty."""
from __future__ import annotations

import os
import pty
import subprocess
import sys
import time

import pytest

from podhelpers import pod_manifest

pytestmark = pytest.mark.integration


@pytest.fixture
def sleeper(minipod, tmp_path):
    minipod.run_manifest(pod_manifest("sleeper", "echo started; exec sleep 100000"), tmp_path)
    minipod.wait_for("sleeper", lambda p: p["status"]["phase"] == "Running")
    yield "sleeper"
    minipod("delete", "pod", "sleeper", "--grace-period", "0")


def test_exec_sees_the_containers_processes_hostname_and_root(minipod, sleeper):
    out = minipod("exec", sleeper, "--", "sh", "-c",
                  "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /").stdout
    lines = out.splitlines()
    assert lines[0] == "sleeper"
    assert lines[1].strip() == "sleep 100000", "PID 1 must be the container's own process"
    assert "bin" in lines[2:]


def test_exec_exit_code_and_stdin_pass_through(minipod, sleeper):
    proc = minipod("exec", "-i", sleeper, "--", "sh", check=False,
                   input="read x; echo got $x; exit 7\n")
    assert proc.returncode == 7 and proc.stdout == "got \n" or proc.stdout.startswith("got")
    missing = minipod("exec", sleeper, "--", "no-such-tool", check=False)
    assert missing.returncode == 127
    assert "executable file not found" in missing.stderr


def test_exec_t_gives_a_real_pty_from_the_containers_devpts(minipod, sleeper):
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(sys.executable, [sys.executable, "-m", "minipod", "exec", "-it", sleeper,
                                    "--", "sh"], minipod.env)
    out = b""
    deadline = time.monotonic() + 15
    while b"# " not in out and time.monotonic() < deadline:  # the shell's prompt
        out += os.read(fd, 4096)
    os.write(fd, b"tty; echo $((6*7)); exit 5\n")
    while time.monotonic() < deadline:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        out += data
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 5
    assert b"/dev/pts/0" in out and b"42" in out


def test_exec_in_a_missing_pod_is_not_found(minipod):
    proc = minipod("exec", "nope", "--", "true", check=False)
    assert proc.returncode == 1 and 'pods "nope" not found' in proc.stderr


def test_logs_follow_prints_new_lines_and_stops_when_the_container_ends(minipod, tmp_path):
    minipod.run_manifest(pod_manifest(
        "counter", "for i in 1 2 3 4 5; do echo n$i; sleep 0.2; done", restartPolicy="Never"),
        tmp_path)
    proc = subprocess.run([sys.executable, "-m", "minipod", "logs", "-f", "counter"],
                          env=minipod.env, capture_output=True, text=True, timeout=30)
    assert proc.stdout.split() == ["n1", "n2", "n3", "n4", "n5"]
    assert minipod("logs", "counter", "--tail", "2").stdout.split() == ["n4", "n5"]
    stamped = minipod("logs", "counter", "--timestamps").stdout.splitlines()[0]
    assert stamped.endswith("Z n1") or " n1" in stamped and stamped[:4].isdigit()
    minipod("delete", "pod", "counter")


def test_agent_stop_leaves_pods_running(minipod, sleeper):
    agent = minipod.agent_pid()
    assert "pods keep running" in minipod("agent", "stop").stdout
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{agent}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert minipod("agent", "status", check=False).returncode == 1
    pod = minipod.pod(sleeper)
    assert pod["status"]["phase"] == "Running"
    assert minipod("exec", sleeper, "--", "true").returncode == 0


def test_logs_follow_loses_no_line_across_rotation(minipod, tmp_path):
    # The suite's agent rotates at 64 KiB and keeps 3 files: 20000 lines
    # (~900 KiB of CRI log) rotate many times while `logs -f` reads. (A
    # follower that falls more than 3 files behind does lose the oldest, as
    # with the kubelet: the writer pauses a little so this one keeps up.)
    minipod.run_manifest(pod_manifest(
        "chatty", "sleep 1; i=0; while [ $i -lt 20000 ]; do echo line-$i; i=$((i+1)); "
                  "[ $((i % 500)) = 0 ] && usleep 50000; done",
        restartPolicy="Never"), tmp_path)
    follower = subprocess.run([sys.executable, "-m", "minipod", "logs", "-f", "chatty"],
                              env=minipod.env, capture_output=True, text=True, timeout=120)
    lines = follower.stdout.split()
    assert lines == [f"line-{i}" for i in range(20000)]
    files = os.listdir(minipod.root / "log/pods/chatty/main")
    assert len(files) <= 3 and "0.log" in files
    minipod("delete", "pod", "chatty")
