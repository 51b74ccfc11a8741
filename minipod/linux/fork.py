"""Fork a child, maybe setns, run one function, report over a pipe.

The pattern of every short-lived helper process of minipod (the pod
sandbox, `inspect --check`, probes and hooks): a host process that acts
inside a pod must be a fresh single-threaded child (a namespace change
would otherwise hit the whole process), and its parent must learn what
happened from the child itself, never by guessing:

    parent                          child
    ------                          -----
    spawn(action, netns=…) ──fork──> default signals, non-dumpable,
                                     setns(netns) if asked
                                     code, message = action()
                                     (an exception: 1, "its message")
        <──────── message ────────── write(message); close the pipe
                                     then() if given and code 0 (hold on…)
    Child.wait(): (code, message)    _exit(code)

The child is made non-dumpable first (prctl PR_SET_DUMPABLE 0, as runc's
nsexec): it is a copy of its parent, and inside a pod its /proc/PID/exe,
fd/ and memory must be refused to the containers. The exit code is the
verdict; a child that holds on after reporting (then=) cannot be waited
for yet, so its parent reads the message alone (Child.read()) and
judges by it.
"""
from __future__ import annotations

import os
import signal

import prctl

from minipod.linux import namespaces

MAX_MESSAGE = 4000


class Child:
    """A forked child and the read end of its report pipe."""

    def __init__(self, pid: int, fd: int):
        self.pid, self.fd = pid, fd

    def read(self) -> str:
        """Everything the child reported (read until it closes the pipe)."""
        data = b""
        try:
            while chunk := os.read(self.fd, 4096):
                data += chunk
        finally:
            os.close(self.fd)
        return data.decode(errors="replace")

    def wait(self) -> tuple[int, str]:
        """(exit code, message) once the child has ended."""
        try:
            message = self.read()
        finally:
            _, status = os.waitpid(self.pid, 0)
        return os.waitstatus_to_exitcode(status), message


def spawn(action, *, netns: str | None = None, then=None) -> Child:
    """Fork a child that runs action() -> (exit code, message), inside the
    network namespace at path `netns` if given; returns at once.

    An exception in the child reports its text with exit code 1: an
    OSError as it is (its errno, step and path), anything else with its
    type. Nothing raises past the fork: the child always _exits. A then=
    that waits on a pipe needs the action to close the parent's end of it
    first (the child holds a copy, and a read sees EOF only when every
    copy is closed)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            code, message = _run(action, netns)
            os.write(w, message.encode()[:MAX_MESSAGE])
            os.close(w)
            if then is not None and code == 0:
                then()
        finally:
            os._exit(code)
    os.close(w)
    return Child(pid, r)


def _run(action, netns: str | None) -> tuple[int, str]:
    try:
        signal.set_wakeup_fd(-1)  # the parent's wake-up pipe is not ours to write
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        prctl.set_dumpable(False)
        if netns is not None:
            fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
            namespaces.setns(fd, namespaces.CLONE_NEWNET, netns)
            os.close(fd)
        return action()
    except BaseException as e:  # report, never raise past the fork
        return 1, str(e) if isinstance(e, OSError) else f"{type(e).__name__}: {e}"


def call(action, *, netns: str | None = None) -> str:
    """spawn() and wait: the message of an action that succeeded (exit 0),
    or OSError with the child's message."""
    code, message = spawn(action, netns=netns).wait()
    if code != 0:
        raise OSError(message or f"helper child exited with {code}")
    return message
