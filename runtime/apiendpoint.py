"""Where the API server is: its port, and whether (and where) one runs.

    RUN/apiserver.lock   flock held by the running server for its lifetime
    RUN/apiserver.pid    "PID PORT", written once it listens

The API server's launcher (runtime/apiserver/launch.py) writes them; the
node reads them too: a pod's KUBERNETES_SERVICE_PORT is the running
server's port (runtime/serviceaccount.py api_port), so this sits in the
node library, below both.

By hand: `cat RUN/apiserver.pid`; `grep FLOCK /proc/locks`.
"""
from __future__ import annotations

import os

DEFAULT_PORT = 6443


class LaunchError(Exception):
    """The API server cannot be started (or found): says why."""


def port() -> int:
    """Where a server started now listens: MINIPOD_API_PORT, else 6443."""
    text = os.environ.get("MINIPOD_API_PORT", str(DEFAULT_PORT))
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 0 < value < 65536:
        raise LaunchError(f"MINIPOD_API_PORT={text!r} is not a TCP port (1-65535)")
    return value


def lock_path(paths):
    """RUN/apiserver.lock: flock held by the running server."""
    return paths.run / "apiserver.lock"


def pid_path(paths):
    """RUN/apiserver.pid: "PID PORT" of the server once it listens."""
    return paths.run / "apiserver.pid"


def flock_held(path) -> bool:
    """Does some process hold a flock(2) on path? Read from /proc/locks, so
    asking never takes the lock itself (a probe that took it, even shared and
    for a moment, could make a server starting right then think another runs)."""
    try:
        st = os.stat(path)
        with open("/proc/locks") as f:
            table = f.read()
    except FileNotFoundError:
        return False
    key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in table.splitlines():
        fields = line.split()
        if "->" in fields:      # a waiter, not a holder
            continue
        if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == key:
            return True
    return False


def running(paths) -> tuple[int, int] | None:
    """(pid, port) of the running server, or None."""
    if not flock_held(lock_path(paths)):
        return None
    try:
        pid, listen_port = pid_path(paths).read_text().split()
        return int(pid), int(listen_port)
    except (FileNotFoundError, ValueError):
        return None         # starting: not listening yet
