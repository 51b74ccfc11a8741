"""A dead agent freezes no container, and loses no line (issue 13, item 2).

A server that logs (busybox httpd -v, its request log on stdout) and a
shell writing numbered lines share the container's stdout. The agent is
killed with SIGKILL; while no agent runs and no minipod command is given,
the shell writes more than 1 MiB (16 times a pipe's 64 KiB) and the server
keeps answering requests over the pod IP. Then the next command that reads
state (`get`) brings the agent back, and every numbered line is in the log,
in order, none missing.

Before, stdout was a FIFO the agent read: with no agent the pipe filled,
the shell blocked at its first 64 KiB and so did httpd at its next log
line: requests hung and `get pods` still said Running.
"""
from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.request
from pathlib import Path

import pytest
from podhelpers import BUSYBOX_IMAGE

pytestmark = pytest.mark.integration

LINES = 12_000
PAD = "x" * 90        # LINES * ~100 bytes: 1.2 MB, far beyond a pipe's 64 KiB


def _manifest(name: str) -> str:
    script = (
        "mkdir -p /www && echo ok > /www/index.html; "
        "httpd -f -v -p 8080 -h /www 2>&1 & "
        "while [ ! -e /ctl/go ]; do sleep 0.05; done; "
        f"i=0; while [ $i -lt {LINES} ]; do i=$((i+1)); echo \"line $i {PAD}\"; done; "
        "touch /ctl/done; exec sleep 100000")
    return (f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n"
            f"  terminationGracePeriodSeconds: 0\n"
            f"  containers:\n  - name: main\n    image: {BUSYBOX_IMAGE}\n"
            f"    command: [\"sh\", \"-c\", {json.dumps(script)}]\n"
            f"    volumeMounts:\n    - {{name: ctl, mountPath: /ctl}}\n"
            f"  volumes:\n  - {{name: ctl, emptyDir: {{}}}}\n")


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def _wait(predicate, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.05)


def _restart_agent(minipod, env: dict) -> None:
    """Stop the session's agent and let the next command start it with env."""
    pid = minipod.agent_pid()
    if pid:
        minipod("agent", "stop")
        _wait(lambda: not os.path.exists(f"/proc/{pid}"), "the agent did not stop")
    minipod.env = env


def test_a_killed_agent_freezes_no_logging_server_and_loses_no_line(minipod, tmp_path):
    name = "agent-down-logger"
    session_env = dict(minipod.env)
    # the log must hold every line to show that none is lost: no rotation here
    _restart_agent(minipod, dict(session_env, MINIPOD_LOG_MAX_SIZE=str(64 << 20)))
    try:
        minipod.run_manifest(_manifest(name), tmp_path)
        pod = minipod.wait_for(name, lambda p: p["status"].get("podIP"))
        url = f"http://{pod['status']['podIP']}:8080/"
        _wait(lambda: _ok(url), "httpd in the pod did not answer")
        record = json.loads((Path(minipod.root) / "run" / "pods" / name / "pod.json")
                            .read_text())
        ctl = Path(record["volumes"]["ctl"])
        container = record["containers"][0]["pid"]

        agent = minipod.agent_pid()
        os.kill(agent, signal.SIGKILL)            # the agent this session started
        _wait(lambda: not os.path.exists(f"/proc/{agent}"), "the agent did not die")
        # no agent, and no minipod command from here until `get` below
        (ctl / "go").touch()
        _wait(lambda: (ctl / "done").exists(),
              f"the container froze: it could not write {LINES} lines while no agent ran")
        for _ in range(20):
            assert _get(url) == "ok\n", "the server stopped answering while no agent ran"
        assert os.path.exists(f"/proc/{container}")

        # the next command that reads state brings the agent back
        assert minipod.pod(name)["status"]["phase"] == "Running"
        assert minipod.agent_pid() is not None, "`get` did not bring the agent back"

        def numbered() -> list[int]:
            out = minipod("logs", name).stdout
            return [int(m.group(1)) for m in re.finditer(r"^line (\d+) x+$", out, re.M)]

        _wait(lambda: numbered()[-1:] == [LINES], "the lines written while no agent ran "
              "did not reach the log", timeout=60)
        assert numbered() == list(range(1, LINES + 1)), "lines were lost or repeated"
        log = minipod("logs", name).stdout
        assert log.count(": response:200") >= 21, "httpd's request log lines are missing"
        # what was read is given back to the disk: the output file keeps no
        # more than the unread part (it was 1.2 MB while no agent ran)
        raw = Path(minipod.root) / "lib" / "containers" / record["uid"] / "main" / "stdout"
        assert raw.stat().st_size > LINES * 100
        assert raw.stat().st_blocks * 512 < (1 << 20) + (64 << 10)
    finally:
        minipod("delete", "pod", name, "--grace-period", "0", check=False)
        _restart_agent(minipod, session_env)


def _ok(url: str) -> bool:
    try:
        return _get(url) == "ok\n"
    except OSError:
        return False


def test_a_container_that_reopens_its_stdout_with_truncation_keeps_logging(minipod, tmp_path):
    """`echo … > /proc/1/fd/1` (O_TRUNC) empties the output file, which a
    pipe would not notice: the agent sees it shrink, reads it from the
    start, and the lines after it still reach the log."""
    name = "agent-down-reopen"
    minipod.run_manifest(
        _manifest(name).replace(f"i=0; while [ $i -lt {LINES} ]", "i=0; while :")
        .replace('echo \\"line $i', 'sleep 0.02; echo \\"tick $i'), tmp_path)
    try:
        record = json.loads((Path(minipod.root) / "run" / "pods" / name / "pod.json")
                            .read_text())
        (Path(record["volumes"]["ctl"]) / "go").touch()

        def ticks() -> list[int]:
            out = minipod("logs", name).stdout
            return [int(m.group(1)) for m in re.finditer(r"^tick (\d+) x+$", out, re.M)]

        _wait(lambda: len(ticks()) >= 50, "the container did not log")
        minipod("exec", name, "--", "sh", "-c", "echo reopened > /proc/1/fd/1")
        _wait(lambda: "reopened" in minipod("logs", name).stdout, "the line written "
              "through a reopened /proc/1/fd/1 did not reach the log")
        seen = ticks()[-1]
        _wait(lambda: ticks()[-1] > seen + 10, "the lines after the reopen did not reach "
              "the log")
        after = minipod("logs", name).stdout.split("reopened\n", 1)[1]
        numbers = [int(n) for n in re.findall(r"^tick (\d+) x+$", after, re.M)]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    finally:
        minipod("delete", "pod", name, "--grace-period", "0", check=False)


def test_a_container_that_grows_its_stdout_with_a_hole_costs_the_agent_nothing(minipod,
                                                                                 tmp_path):
    """A hostile container can ftruncate its output file to 1 GiB of hole
    (a pipe has no size to set): the agent skips the hole instead of
    logging a gigabyte of zero bytes, and the next line arrives at once."""
    name = "agent-down-hole"
    minipod.run_manifest(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name + "\nspec:\n"
        "  terminationGracePeriodSeconds: 0\n  containers:\n  - name: main\n"
        f"    image: {BUSYBOX_IMAGE}\n"
        "    command: [\"sh\", \"-c\", \"echo before; sleep 0.5; "
        "truncate -s 1G /proc/1/fd/1; echo after; exec sleep 100000\"]\n", tmp_path)
    try:
        _wait(lambda: "after" in minipod("logs", name).stdout, "the line after the hole "
              "did not reach the log")
        out = minipod("logs", name).stdout
        assert out == "before\nafter\n", out[:200]
    finally:
        minipod("delete", "pod", name, "--grace-period", "0", check=False)
