"""Running a process inside a running container: what `exec` does.

The container's init (host pid P) names every namespace it is in under
/proc/P/ns/. A new process joins them all, then execs. The same by hand:

    nsenter --target P --mount --uts --ipc --net --pid -- sh

The sequence (two forks: joining a PID namespace only affects children):

    CLI                       [1:JOIN] child                [2:EXEC] grandchild
    open /proc/P/ns/*
    fork ───────────────────► setns(ipc, uts, net, pid, mnt)
                              fork ───────────────────────► setsid, pty as tty
    wait_for(EXEC) ◄───────── EOF on close-on-exec pipe ─── exec(argv)
    relay the pty             waitpid, exit with its code ◄ … exits
    exit with that code

Joining the mount namespace also moves the process to that namespace's
root (the container's pivoted overlay), so no chroot is needed. The
environment is the container's own, read from /proc/P/environ.
"""
from __future__ import annotations

import fcntl
import os
import socket
import struct
import termios  # imported here: after joining the mount namespace, the
from dataclasses import dataclass  # host's Python library is out of sight

from minipod import cgroups, libc
from minipod.runtime import container as ctr
from minipod.runtime import security

# Order matters a little: mnt last, so the /proc paths we opened stay valid.
JOIN_ORDER = ("ipc", "uts", "net", "pid", "cgroup", "mnt")

# <asm-generic/ioctls.h>; Python's termios lacks these two
TIOCGPTN = 0x80045430    # which /dev/pts/N belongs to this master
TIOCSPTLCK = 0x40045431  # unlock the slave (unlockpt(3))


@dataclass
class ExecSpec:
    pid: int                    # host pid of the container's init
    argv: list[str]
    console: socket.socket | None = None  # -t: the pty master comes back here
    cwd: str = "/"
    cgroup_procs: list[str] | None = None  # the container's cgroup.procs files
    security: object = None                # a prepared SecurityPlan, no mounts
    stdin: bool = False         # -i: keep stdin; otherwise /dev/null
    name: str = "exec"


def container_env(pid: int) -> dict[str, str]:
    """The environment the container's init was started with."""
    with open(f"/proc/{pid}/environ", "rb") as f:
        items = f.read().split(b"\0")
    env = {}
    for item in items:
        if b"=" in item:
            key, _, value = item.partition(b"=")
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def start(spec: ExecSpec) -> int:
    """Fork [1:JOIN]; returns its pid once [2:EXEC] has exec'd (or raises
    StartError). [1:JOIN] exits with the command's exit code."""
    env = container_env(spec.pid)
    try:  # the init's working directory, as its own mount namespace names it
        spec.cwd = os.readlink(f"/proc/{spec.pid}/cwd")
    except OSError:
        spec.cwd = "/"
    fds = {ns: os.open(f"/proc/{spec.pid}/ns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
           for ns in JOIN_ORDER}
    status_r, status_w = os.pipe()
    try:
        child = os.fork()
        if child == 0:
            os.close(status_r)
            _join_child(spec, fds, env, status_w)
        os.close(status_w)
        status_w = -1
        channel = ctr.Channel(status_r, spec.name)
        try:
            channel.wait_for_exec()
        except ctr.StartError:
            os.waitpid(child, 0)
            raise
        return child
    finally:
        for fd in fds.values():
            os.close(fd)
        os.close(status_r)
        if status_w != -1:
            os.close(status_w)


def _join_child(spec: ExecSpec, fds: dict[str, int], env: dict[str, str],
                status_w: int) -> None:
    step = "join"
    try:
        ctr.set_name("minipod:[1:JOIN]")
        step = "join the container's cgroup"
        cgroups.join(spec.cgroup_procs or [])
        for ns in JOIN_ORDER:
            step = f"setns {ns} of pid {spec.pid}"
            libc.setns(fds[ns], libc.NAMESPACE_FLAGS[ns], f"/proc/{spec.pid}/ns/{ns}")
        step = "fork into the pid namespace"
        pid = os.fork()
        if pid == 0:
            _exec_child(spec, env, status_w)
        os.close(status_w)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        os._exit(128 - code if code < 0 else code)
    except BaseException as e:
        ctr.report_and_exit(status_w, step, e)


def _exec_child(spec: ExecSpec, env: dict[str, str], status_w: int) -> None:
    step = "set up stdio"
    try:
        ctr.set_name("minipod:[2:EXEC]")
        os.setsid()
        if spec.console is not None:
            step = "allocate a pty in the container's /dev/pts"
            tty = _open_pty(spec.console)
            fcntl.ioctl(tty, termios.TIOCSCTTY, 0)
            for target in (0, 1, 2):
                os.dup2(tty, target)
            os.close(tty)
        elif not spec.stdin:
            devnull = os.open("/dev/null", os.O_RDONLY)
            os.dup2(devnull, 0)
        os.chdir(spec.cwd if os.path.isdir(spec.cwd) else "/")
        if spec.security is not None:
            step = "drop to the container's user, capabilities and seccomp filter"
            security.apply(spec.security)
        step = f'exec "{spec.argv[0]}"'
        if "/" not in spec.argv[0] and not ctr.on_path(spec.argv[0], env.get("PATH", "")):
            raise OSError(2, "executable file not found in $PATH", spec.argv[0])
        os.execvpe(spec.argv[0], spec.argv, env)
    except BaseException as e:
        ctr.report_and_exit(status_w, step, e)


def _open_pty(console: socket.socket) -> int:
    """Open a pty from the container's own devpts instance, so `tty` and
    ttyname() inside name a /dev/pts/N that exists there (runc does the
    same with its console socket); the master goes to the CLI by SCM_RIGHTS."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    n = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0" * 4))[0]
    slave = os.open(f"/dev/pts/{n}", os.O_RDWR | os.O_CLOEXEC)
    socket.send_fds(console, [b"pty"], [master])
    os.close(master)
    return slave


def receive_pty(console: socket.socket) -> int:
    """The CLI's side: the master end of the container's pty."""
    _, fds, _, _ = socket.recv_fds(console, 16, 1)
    if not fds:
        raise OSError("the container side sent no pty")
    return fds[0]
