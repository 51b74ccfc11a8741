"""Running a process inside a running container: what `exec` does.

The container's init (host pid P) names every namespace it is in under
/proc/P/ns/. A new process joins them all, then execs. The same by hand:

    nsenter --target P --mount --uts --ipc --net --pid -- sh

The sequence (two forks: joining a PID namespace only affects children):

    CLI                       [1:JOIN] child                [2:EXEC] grandchild
    open /proc/P/ns/*
    fork ───────────────────► non-dumpable, close fds
                              setns(ipc, uts, net, pid, mnt)
                              fork ───────────────────────► setsid, stdio: pipes or pty
                                                            user, caps, seccomp
    wait_for(EXEC) ◄───────── EOF on close-on-exec pipe ─── close fds, exec(argv)
    relay pipes / the pty     waitpid, exit with its code ◄ … exits
    exit with that code

Joining the mount namespace also moves the process to that namespace's
root (the container's pivoted overlay), so no chroot is needed.

What the container can see of the helpers (it is hostile): [2:EXEC] is in
its PID namespace from the fork on, and until exec it is the host's python.
So [1:JOIN] makes itself non-dumpable (prctl PR_SET_DUMPABLE 0) before
setns(pid), as runc's nsexec does, and [2:EXEC] inherits that: then
/proc/PID/exe, /proc/PID/fd/*, /proc/PID/root and ptrace are refused to
any process without CAP_SYS_PTRACE (man 5 proc, ptrace_may_access). The
kernel makes a process dumpable again at a normal exec, when it is the
container's own program. And no fd of the caller survives: [1:JOIN]
closes all but the ones it needs, [2:EXEC] all above 2 but its status
pipe before exec (CVE-2024-21626: runc leaked a host fd the same way);
its stdio are pipes the CLI owns or a pty of the container's own devpts,
never the caller's terminal.

The environment is the one minipod computed when it started the
container (kept in the pod's record, see container_environment), not
/proc/P/environ, which a program may overwrite (nginx, redis: their
process titles).
"""
from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
import termios  # imported here: after joining the mount namespace, the
from dataclasses import dataclass  # host's Python library is out of sight

import prctl

from minipod import cgroups
from minipod.linux import descriptors, namespaces, proc
from minipod.runtime import container as ctr
from minipod.runtime import process, security

# Order matters a little: mnt last, so the /proc paths we opened stay valid.
JOIN_ORDER = ("ipc", "uts", "net", "pid", "cgroup", "mnt")

# <asm-generic/ioctls.h>; Python's termios lacks these two
TIOCGPTN = 0x80045430    # which /dev/pts/N belongs to this master
TIOCSPTLCK = 0x40045431  # unlock the slave (unlockpt(3))


@dataclass
class ExecSpec:
    pid: int                    # host pid of the container's init
    argv: list[str]
    env: dict[str, str]         # the container's environment (container_environment)
    console: socket.socket | None = None  # -t: the pty master comes back here
    console_size: bytes | None = None     # -t: struct winsize, set before exec (OCI consoleSize)
    stdio: tuple[int | None, int | None, int | None] | None = None  # fds to be
    # 0, 1, 2 (None: /dev/null); -t puts the pty over them all
    cwd: str = "/"
    cgroup_procs: list[str] | None = None  # the container's cgroup.procs files
    security: object = None                # a prepared SecurityPlan, no mounts
    name: str = "exec"


def for_container(record, cs, paths, argv: list[str], **fields) -> ExecSpec:
    """The spec to run argv in container `cs` of pod `record` as the
    container's own process runs: its environment, its cgroup, its user,
    capabilities, no_new_privs and seccomp filter (the mounts, masked paths
    and read-only root are already in its mount namespace). `exec`, exec
    probes and exec hooks all use it, as the kubelet's go through the
    runtime's exec with the container's process spec."""
    import dataclasses
    from minipod.runtime.api import manifest
    spec = ExecSpec(pid=cs.pid, argv=argv, env=container_environment(record, cs, paths),
                    **fields)
    if cs.cgroup:
        spec.cgroup_procs = cgroups.detect(parent=paths.cgroup_parent).join_paths(cs.cgroup)
    pod = manifest.load_object(record.manifest, record.source or "<state>")
    c = next(c for c in pod.init_containers + pod.containers if c.name == cs.name)
    user = cs.user
    if user is not None:  # the user the agent derived at start, groups included
        uid, gid, groups = int(user.uid), int(user.gid), [int(g) for g in user.groups]
    else:  # a record of an older minipod: uid and gid of the running process
        uid, gid = _ids(cs.pid)
        groups = None
    plan = security.plan_security(c.security_context, f"{uid}:{gid}")
    # the ids the container runs as, not derived again: runAsUser without
    # runAsGroup took its gid from the image's passwd, which the plan lacks here
    plan = dataclasses.replace(plan, uid=uid, gid=gid, groups=plan.groups if groups is None
                               else groups)
    spec.security = security.prepare(dataclasses.replace(
        plan, masked_paths=[], readonly_paths=[], readonly_root=False))
    return spec


def container_environment(record, cs, paths) -> dict[str, str]:
    """The environment container `cs` was started with: the agent stores
    what it computed (cs.env). A record written by an older minipod has
    none: then it is computed again the same way, from the manifest, the
    image's config and /etc/passwd, and the uid the process runs as. Never
    from /proc/PID/environ: the process may have rewritten that area."""
    env = cs.env
    if cs.env_file:           # it holds a Secret's value: kept 0600 (podconfig.py)
        from minipod.runtime import podconfig
        env = podconfig.load_env(cs)
    if isinstance(env, dict):
        return {str(k): str(v) for k, v in env.items()}
    from minipod.rootfs.store import ImageNotFound, ImageStore
    from minipod.runtime.api import manifest
    pod = manifest.load_object(record.manifest, record.source or "<state>")
    c = next(c for c in pod.init_containers + pod.containers if c.name == cs.name)
    config, passwd = {}, ""
    store = ImageStore(paths.images)
    for ref in (cs.image_id, cs.image):
        try:
            image = store.get(ref) if ref else None
        except (ImageNotFound, ValueError, OSError):
            continue
        if image is not None:
            config, passwd = image.config, _image_file(image.layer_dirs, "etc/passwd")
            break
    uid = _ids(cs.pid)[0] if cs.pid else 0
    return process.environment(config, [(e.name, e.value) for e in c.env], pod.name,
                               process.home(uid, passwd))


def _image_file(layers: list, rel: str) -> str:
    """A file of the image as the container sees it at start: the top layer wins."""
    for layer in reversed(layers):
        p = layer / rel
        if p.is_file() and not p.is_symlink():
            return p.read_text(errors="replace")
    return ""


def _ids(pid: int) -> tuple[int, int]:
    """The uid and gid the container's process runs as (real ids)."""
    fields = proc.status(pid)
    return int(fields["Uid"][0]), int(fields["Gid"][0])


def start(spec: ExecSpec) -> int:
    """Fork [1:JOIN]; returns its pid once [2:EXEC] has exec'd (or raises
    StartError). [1:JOIN] exits with the command's exit code."""
    env = spec.env
    while (fd := os.open("/dev/null", os.O_RDWR)) <= 2:
        pass  # a caller with 0, 1 or 2 closed: fill them, so no fd of ours lands there
    os.close(fd)
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
        ctr.close_all(*fds.values(), status_r, status_w)


def _join_child(spec: ExecSpec, fds: dict[str, int], env: dict[str, str],
                status_w: int) -> None:
    step = "join"
    try:
        ctr.set_name("minipod:1:JOIN")
        step = "make the helper non-dumpable"
        prctl.set_dumpable(False)  # before setns(pid): [2:EXEC] inherits it
        step = "replace the caller's stdio"
        devnull = os.open("/dev/null", os.O_RDWR)
        _install_stdio([devnull if fd is None else fd for fd in spec.stdio or (None,) * 3])
        step = "close the caller's fds"
        keep = [status_w, *fds.values()]
        if spec.console is not None:
            keep.append(spec.console.fileno())
        descriptors.close_fds(keep)
        step = "join the container's cgroup"
        cgroups.join(spec.cgroup_procs or [])
        for ns in JOIN_ORDER:
            step = f"setns {ns} of pid {spec.pid}"
            namespaces.setns(fds[ns], namespaces.NAMESPACE_FLAGS[ns], f"/proc/{spec.pid}/ns/{ns}")
        step = "fork into the pid namespace"
        pid = os.fork()
        if pid == 0:
            _exec_child(spec, env, status_w)
        descriptors.close_fds()  # the command's stdio ends with the command
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        os._exit(128 - code if code < 0 else code)
    except BaseException as e:
        ctr.report_and_exit(status_w, step, e)


def _exec_child(spec: ExecSpec, env: dict[str, str], status_w: int) -> None:
    step = "set up stdio"
    try:
        ctr.set_name("minipod:2:EXEC")
        os.setsid()
        if spec.console is not None:
            step = "allocate a pty in the container's /dev/pts"
            tty = _open_pty(spec.console)
            fcntl.ioctl(tty, termios.TIOCSCTTY, 0)
            if spec.console_size:   # the command's first look at its size already sees it
                fcntl.ioctl(tty, termios.TIOCSWINSZ, spec.console_size)
            for target in (0, 1, 2):
                os.dup2(tty, target)
            os.close(tty)
        os.chdir(spec.cwd if os.path.isdir(spec.cwd) else "/")
        if spec.security is not None:
            step = "drop to the container's user, capabilities and seccomp filter"
            security.apply(spec.security)
        step = f'exec "{spec.argv[0]}"'
        if "/" not in spec.argv[0] and not ctr.on_path(spec.argv[0], env.get("PATH", "")):
            raise OSError(errno.ENOENT, "executable file not found in $PATH", spec.argv[0])
        descriptors.close_fds([status_w])  # close-on-exec: its EOF says exec worked
        os.execvpe(spec.argv[0], spec.argv, env)
    except BaseException as e:
        ctr.report_and_exit(status_w, step, e)


def _install_stdio(stdio: list[int]) -> None:
    """Make the three given fds 0, 1 and 2. Each is first copied above 2,
    so a source that is itself 0, 1 or 2 survives."""
    copies = [os.dup(fd) for fd in stdio]
    for target, fd in enumerate(copies):
        os.dup2(fd, target)
        os.close(fd)


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


def start_confined(record, cs, paths, argv: list[str], *, tty: bool,
                   with_stdin: bool, console_size: bytes | None = None,
                   name: str = "exec") -> tuple[int, socket.socket | None, dict]:
    """Start argv in container `cs` of pod `record` (a ContainerRecord and
    its PodRecord; for_container, start)
    with stdio the container cannot turn against the caller: never the
    caller's terminal or files. With `tty`, a pty of the container's own
    devpts, whose master comes back over a socket pair (receive_pty on the
    socket returned); else one pipe per stream that the caller owns and
    copies (stdout, stderr, and stdin with `with_stdin`), so nothing inside
    can type into the caller's terminal (TIOCSTI) or reopen its files.

    Returns ([1:JOIN]'s pid, the console socket or None, {stream: (read
    end, write end)}); the caller closes the ends the command holds once it
    runs. On ctr.StartError everything made here is closed first."""
    ours = theirs = None
    pipes: dict[str, tuple[int, int]] = {}  # stream -> (read end, write end)
    if tty:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        pipes = {s: os.pipe() for s in (["stdin"] if with_stdin else []) + ["stdout", "stderr"]}
    stdio = None if tty else (pipes["stdin"][0] if with_stdin else None,
                              pipes["stdout"][1], pipes["stderr"][1])
    try:
        spec = for_container(record, cs, paths, argv, console=theirs, stdio=stdio,
                             console_size=console_size, name=name)
        return start(spec), ours, pipes
    except ctr.StartError:
        for r, w in pipes.values():
            os.close(r)
            os.close(w)
        if ours is not None:
            ours.close()
        raise
    finally:
        if theirs is not None:
            theirs.close()
