"""The CLI's side of the agent socket, and starting the agent on demand.

One request per connection: a JSON line out, a JSON line back. If nothing
listens on the socket, the CLI starts `python -m minipod agent` detached
(setsid, output to the agent log) and waits for the socket, the way a
kubectl user never starts the kubelet by hand.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

from minipod.runtime.paths import Paths

AGENT_START_TIMEOUT = 15.0


class AgentError(Exception):
    """The agent answered no (code, message) or could not be reached."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _connect(paths: Paths) -> socket.socket | None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        s.connect(str(paths.socket))
        return s
    except (FileNotFoundError, ConnectionRefusedError):
        s.close()
        return None


def start_agent(paths: Paths) -> None:
    """Start the agent detached from this terminal and wait for its socket."""
    paths.log.mkdir(parents=True, exist_ok=True)
    with open(paths.agent_log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "minipod", "agent"],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True, cwd="/", close_fds=True)
    deadline = time.monotonic() + AGENT_START_TIMEOUT
    while time.monotonic() < deadline:
        s = _connect(paths)
        if s is not None:
            s.close()
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
    s = _connect(paths)
    if s is None:
        return False
    s.close()
    return True
