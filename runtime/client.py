"""The CLI's side of the agent socket, and starting the agent on demand.

One request per connection: a JSON line out, a JSON line back. If nothing
listens on the socket, the CLI starts `python -m minipod agent` detached
(setsid, output to the agent log) and waits for the socket, the way a
kubectl user never starts the kubelet by hand.

Commands that only read state (get, describe, logs, top, inspect, exec,
port-forward) do not need the agent, but a dead one leaves statuses stale
(an exit nobody saw) and output unread: they call revive() first, which
starts the agent when pods exist and none answers (as root), or says
plainly on stderr that it is down.
"""
from __future__ import annotations

import json
import os
import sys
import time

from minipod.runtime.paths import Paths

AGENT_START_TIMEOUT = 15.0


class AgentError(Exception):
    """The agent answered no (code, message) or could not be reached."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _connect(paths: Paths):
    """A socket connected to the agent, or None if none listens."""
    import socket   # here: the commands that only read state never connect
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        s.connect(str(paths.socket))
        return s
    except (FileNotFoundError, ConnectionRefusedError):
        s.close()
        return None


def spawn_detached(verb: str, log):
    """`minipod VERB` in a session of its own (no terminal, cwd /, stdin
    /dev/null), its output appended to `log` (a Path): how the agent and the API
    server are started on demand. Returns its subprocess.Popen."""
    log.parent.mkdir(parents=True, exist_ok=True)
    import subprocess   # here: every `get` imports this module, few start an agent
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "minipod", verb],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True, cwd="/", close_fds=True)


def start_agent(paths: Paths) -> None:
    """Start the agent detached from this terminal and wait for its socket."""
    proc = spawn_detached("agent", paths.agent_log)
    deadline = time.monotonic() + AGENT_START_TIMEOUT
    while time.monotonic() < deadline:
        s = _connect(paths)
        if s is not None:
            s.close()
            from minipod.runtime import timings
            timings.mark("CLI: start the agent")
            return
        if proc.poll() not in (None, 0):
            break
        time.sleep(0.005)
    raise AgentError("AgentUnavailable", f"the minipod agent did not start; see {paths.agent_log}")


def request(paths: Paths, message: dict, start: bool = True, timeout: float | None = None) -> dict:
    """Send one request; start the agent first if it is not running."""
    s = _connect(paths)
    if s is None:
        if not start:
            raise AgentError("AgentUnavailable", "the minipod agent is not running")
        start_agent(paths)
        s = _connect(paths)
        if s is None:
            raise AgentError("AgentUnavailable", f"cannot reach the agent at {paths.socket}")
    data = b""
    with s:
        s.settimeout(timeout)
        try:
            s.sendall((json.dumps(message) + "\n").encode())
            from minipod.runtime import faults
            faults.point("cli:sent")
            while not data.endswith(b"\n"):
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, BrokenPipeError):
            data = b""     # the agent died mid-request: said below
    if not data:
        raise AgentError("AgentUnavailable", "the agent closed the connection without an answer"
                         f" (see {paths.agent_log})")
    answer = json.loads(data)
    if not answer.get("ok"):
        raise AgentError(answer.get("code", "Error"), answer.get("error", "unknown error"))
    return answer


def agent_running(paths: Paths) -> bool:
    """Does an agent answer on the socket? Asked with the C module under
    socket.py, whose import (selectors, its enums) would cost every `get`
    2 ms. (Not from the agent lock in /proc/locks: reading that file takes
    the kernel's lock table for writing, an RCU grace period: 7-20 ms here.)"""
    import _socket
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        s.connect(paths.string("socket"))
        return True
    except (FileNotFoundError, ConnectionRefusedError):
        return False
    finally:
        s.close()


def revive(paths: Paths) -> None:
    """Before a command reads state: if this root has pods and no agent
    answers, start one and wait until it has adopted them (its first answer
    comes after adoption), so what the command reads is current. As
    non-root (who cannot start it), or if it does not start, say so on
    stderr; the command goes on either way."""
    try:
        with os.scandir(paths.string("pods")) as pods:
            if not any(pods) or agent_running(paths):
                return
    except OSError:          # no pods dir, or not ours to read: nothing to say
        return
    if os.geteuid() != 0:
        print("warning: the minipod agent is not running: pod statuses may be out of date "
              "and container output waits unread; start it as root: minipod agent start",
              file=sys.stderr)
        return
    try:
        start_agent(paths)
        request(paths, {"op": "ping"}, start=False, timeout=AGENT_START_TIMEOUT * 4)
    except (AgentError, OSError) as e:
        print(f"warning: the minipod agent is not running and could not be started: {e}",
              file=sys.stderr)


def wait_for_lock(paths: Paths) -> None:
    """Block until no agent holds this root's agent lock (for `minipod
    agent` under systemd: it waits for an agent a CLI started to end, then
    serves, instead of exiting at once and being restarted in a loop)."""
    from minipod.linux import files
    paths.run.mkdir(parents=True, exist_ok=True)
    os.close(files.lock(paths.agent_lock, what="agent lock"))  # serve() takes it again at once
