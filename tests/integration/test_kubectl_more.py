"""The rest of what a kubectl user types, against a real `minipod serve`:
custom columns, every form of delete (-f, -l, --all, --now, its grace
period), wait --for=delete and --for=jsonpath, and a terminal resize under
exec -it. Both kubectl binaries (test_kubectl's fixtures).
"""
from __future__ import annotations

import os
import pty
import select
import signal
import struct
import subprocess
import termios
import fcntl
import time

import pytest

from test_kubectl import api, kubectl, kubia, pod  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration


def _create(kubectl, tmp_path, *names: str, **spec) -> None:
    for name in names:
        path = tmp_path / f"{name}.yaml"
        path.write_text(kubia(name, **spec))
        kubectl("create", "-f", str(path))
    for name in names:
        kubectl("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=60s")


def _names(kubectl, *selector: str) -> list[str]:
    return kubectl("get", "pods", "-o", "name", *selector).stdout.split()


def test_custom_columns_and_jsonpath_ranges(kubectl, pod, minipod):
    ip = minipod.pod(pod)["status"]["podIP"]
    out = kubectl("get", "pods", "-l", f"app={pod}", "-o",
                  "custom-columns=NAME:.metadata.name,IP:.status.podIP,"
                  "IMAGE:.spec.containers[*].image").stdout.splitlines()
    assert out[0].split() == ["NAME", "IP", "IMAGE"]
    assert out[1].split() == [pod, ip, "minipod.test/busybox:1"]
    ranged = kubectl("get", "pods", "-l", f"app={pod}", "-o",
                     "jsonpath={range .items[*]}{.metadata.name}={.status.phase}{\"\\n\"}{end}")
    assert ranged.stdout == f"{pod}=Running\n"


def test_delete_by_label_by_file_all_and_now(kubectl, tmp_path):
    v = kubectl.version.replace(".", "")
    a, b, c, d = (f"del{x}-{v}" for x in "abcd")
    _create(kubectl, tmp_path, a, b, c, d)
    try:
        out = kubectl("delete", "pods", "-l", f"app={a}")
        assert out.stdout.strip().startswith(f'pod "{a}" deleted')
        assert f"pod/{a}" not in _names(kubectl)     # delete waits until it is gone
        out = kubectl("delete", "-f", str(tmp_path / f"{b}.yaml"), "--now")
        assert out.stdout.strip().startswith(f'pod "{b}" deleted')
        assert f"pod/{b}" not in _names(kubectl)
        missing = kubectl("delete", "pod", b, check=False)
        assert missing.returncode == 1
        assert missing.stderr.strip() == f'Error from server (NotFound): pods "{b}" not found'
        assert kubectl("delete", "pod", b, "--ignore-not-found").stdout == ""
        left = set(_names(kubectl))
        assert {f"pod/{c}", f"pod/{d}"} <= left
        out = kubectl("delete", "pods", "--all", "--grace-period=0", "--force")
        deleted = {line.split('"')[1] for line in out.stdout.splitlines() if '"' in line}
        assert {c, d} <= deleted
        assert _names(kubectl) == []
    finally:
        for name in (a, b, c, d):
            kubectl("delete", "pod", name, "--grace-period=0", "--ignore-not-found", check=False)


def test_wait_for_delete_and_for_jsonpath(kubectl, tmp_path):
    name = f"waits-{kubectl.version.replace('.', '')}"
    # a pod that ignores SIGTERM for a moment: its deletion takes a while
    _create(kubectl, tmp_path, name, command="trap 'sleep 1; exit 0' TERM; echo up; "
                                             "while true; do sleep 0.2; done")
    try:
        out = kubectl("wait", "--for=jsonpath={.status.phase}=Running", f"pod/{name}",
                      "--timeout=30s")
        assert out.stdout.strip() == f"pod/{name} condition met"
        kubectl("delete", "pod", name, "--wait=false")
        out = kubectl("wait", "--for=delete", f"pod/{name}", "--timeout=60s")
        assert out.returncode == 0
        assert kubectl("get", "pod", name, check=False).returncode == 1
    finally:
        kubectl("delete", "pod", name, "--grace-period=0", "--ignore-not-found", check=False)


def test_exec_tty_follows_a_terminal_resize(kubectl, pod):
    """The size of kubectl's terminal reaches the pty in the container, at
    start and after SIGWINCH (the resize channel of the exec protocol)."""
    pid, fd = pty.fork()
    if pid == 0:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        os.execve(kubectl.binary, [kubectl.binary, "exec", "-it", pod, "--", "sh", "-c",
                                   "stty size; read x; stty size"], kubectl.env)
    out = b""
    try:
        resized = False
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    break
                if not data:
                    break
                out += data
            if not resized and b"30 100" in out:
                fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
                os.kill(pid, signal.SIGWINCH)   # what the terminal does for kubectl
                time.sleep(1)                    # the resize frame goes before the line
                os.write(fd, b"\n")
                resized = True
    finally:
        end = time.monotonic() + 5
        while (done := os.waitpid(pid, os.WNOHANG)) == (0, 0) and time.monotonic() < end:
            time.sleep(0.05)
        if done == (0, 0):
            os.kill(pid, signal.SIGKILL)    # the kubectl this test started
            os.waitpid(pid, 0)
        os.close(fd)
    text = out.decode(errors="replace")
    assert "30 100" in text, text
    assert "40 120" in text, text
