"""Starting the API server on demand and stopping it, like the agent.

    RUN/apiserver.lock   flock held by the running server for its lifetime
    RUN/apiserver.pid    "PID PORT", written once it listens
    LOG/apiserver.log    its output when started in the background

(The port and the two files are read in the node library,
runtime/apiendpoint.py: a pod's environment names the running server's port.
launch.port, running and LaunchError are those, used here and by the verbs.)

A server holds the lock, so "is it running" is one non-blocking flock
attempt, never a guess from a pidfile a crash left behind. Any command that
needs the server (`minipod kubeconfig`) starts `python -m minipod serve`
detached (setsid, output to the log) and waits for the pidfile; the server
never idles out, since a kubeconfig may point at it.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import sys
import time

from minipod.linux import files
from minipod.runtime.apiendpoint import LaunchError, lock_path, pid_path, port, running

__all__ = ["LaunchError", "ensure", "log_path", "port", "running", "serve_foreground", "stop",
           "take_lock"]

START_TIMEOUT = 15.0


def log_path(paths):
    return paths.log / "apiserver.log"


def take_lock(paths) -> int | None:
    """The lock fd for a server about to start, or None if one runs."""
    paths.run.mkdir(parents=True, exist_ok=True)
    try:
        return files.lock(lock_path(paths), fcntl.LOCK_EX | fcntl.LOCK_NB,
                          what="API server lock")
    except BlockingIOError:
        return None


def serve_foreground(paths) -> int:
    """`minipod serve`: hold the lock, write the pidfile once listening, serve."""
    from minipod.runtime.apiserver import server
    listen_port = port()
    fd = take_lock(paths)
    if fd is None:
        found = running(paths)
        print(f"the API server is already running (pid {found[0] if found else '?'})",
              file=sys.stderr)
        return 0
    try:
        def ready():
            files.replace_file(pid_path(paths), f"{os.getpid()} {listen_port}\n".encode(),
                               durable=False)
        return server.serve(paths, listen_port, ready)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(pid_path(paths))
        os.close(fd)


def ensure(paths) -> tuple[int, int]:
    """(pid, port) of the server, started in the background if need be."""
    found = running(paths)
    if found:
        return found
    port()      # a bad MINIPOD_API_PORT is said here, not in the log
    from minipod.runtime.client import spawn_detached
    proc = spawn_detached("serve", log_path(paths))
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        found = running(paths)
        if found:
            return found
        if proc.poll() not in (None, 0):
            break       # exit 0: another server won the lock; wait for its pidfile
        time.sleep(0.01)
    raise LaunchError(f"the API server did not start; see {log_path(paths)}")


def stop(paths, timeout: float = 10.0) -> int | None:
    """SIGTERM the running server and wait until it let go of its lock."""
    found = running(paths)
    if not found:
        return None
    pid = found[0]
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fd = take_lock(paths)
        if fd is not None:
            os.close(fd)
            return pid
        time.sleep(0.02)
    raise LaunchError(f"the API server (pid {pid}) did not stop within {timeout:.0f}s")
