"""Starting one container: two forks, a named protocol, then exec.

Namespaces are changed only in freshly forked, single-threaded children
(the agent stays where it is). The sequence, as runc's nsexec does it:

    agent                     [1:SETNS] child             [2:INIT] grandchild
    fork ───────────────────► setns(net, ipc, uts of pod)
                              unshare(NEWNS | NEWPID)
                              fork ─────────────────────► (PID 1 of a new PID ns)
                              write its pid to the        open stdio
                              container's cgroup.procs    mount overlay, /proc, /dev…
                              send JOINED ──────────────► wait_for_joined()
    wait_for(PID) ◄────────── send PID <host pid of 2>    unshare(NEWCGROUP)
                              _exit(0)                    security, chdir
                                                          [send TIMES, for --timings]
                                                          exec(argv)  ─ pipe closes
    wait_for(EXEC) ◄── EOF on the pipe (close-on-exec) ── or send ERROR {step, errno}

[1:SETNS] moves [2:INIT] into its cgroup while [2:INIT] mounts its root
(the first cgroup move after a quiet moment waits an RCU grace period,
cgroups/driver.py join()); [2:INIT] makes its cgroup namespace, rooted at
its cgroup, only once JOINED arrived on a pipe of their own, and nothing
of the container runs before it. If the move fails, [1:SETNS] reports the
error and closes the pipe: [2:INIT] sees end-of-file and exits.

The status pipe is close-on-exec, so its end-of-file is the proof that exec
succeeded; a failure before exec is always reported with the step and errno,
never guessed. By hand: `nsenter --net=… --ipc=… --uts=… unshare --mount
--pid --fork sh -c 'mount …; pivot_root …; exec …'`.
"""
from __future__ import annotations

import enum
import errno
import json
import os
import select
import shlex
from dataclasses import dataclass, field

import prctl

from minipod import cgroups
from minipod.linux import descriptors, explain, namespaces
from minipod.rootfs import mounts
from minipod.runtime import timings
from minipod.runtime import security  # imported before the fork: after
# pivot_root the host's Python library is out of sight

START_TIMEOUT = 10.0  # seconds for the children to reach exec


class Message(enum.Enum):
    PID = "pid"      # [1:SETNS] → agent: host pid of the container's init
    ERROR = "error"  # either child → agent: a step failed before exec
    TIMES = "times"  # [2:INIT] → agent, just before exec, only for --timings:
                     # the children's marks (runtime/timings.py)


class StartError(Exception):
    """A container failed before exec; `step` and `errno` say where and why."""

    def __init__(self, step: str, message: str, errno: int | None = None):
        super().__init__(message)
        self.step, self.errno = step, errno


@dataclass
class ProcessSpec:
    """Everything the children need: plain values, decided by the agent."""
    name: str                      # "pod/container", for messages and ps
    namespaces: dict[str, str]     # {"net": pinned file, "ipc": …, "uts": …}
    rootfs: mounts.RootfsPlan
    argv: list[str]
    env: dict[str, str]
    cwd: str = "/"
    stdout: str = "/dev/null"      # files the agent reads (O_APPEND)
    stderr: str = "/dev/null"
    uid: int = 0
    gid: int = 0
    groups: list[int] = field(default_factory=list)
    cgroup_procs: list[str] = field(default_factory=list)  # cgroup.procs files to join
    security: object = None        # runtime.security.SecurityPlan, prepared


def start(spec: ProcessSpec) -> int:
    """Start the container; returns the host pid of its PID 1 once exec'd.

    The agent must be a child subreaper (PR_SET_CHILD_SUBREAPER): when
    [1:SETNS] exits, its child, the container, is re-parented to the agent,
    which then reaps it and reads its exit code."""
    return launch(spec).wait()


def launch(spec: ProcessSpec) -> "Launch":
    """Fork [1:SETNS], wait until it has made [2:INIT], and return: [2:INIT]
    builds the container's root while the caller prepares the next one (a
    pod's containers start side by side); Launch.wait() then waits for this
    one's exec."""
    ns_fds = {ns: os.open(path, os.O_RDONLY | os.O_CLOEXEC)
              for ns, path in spec.namespaces.items() if ns in ("net", "ipc", "uts", "pid")}
    if explain.active():
        describe(spec)
    status_r, status_w = os.pipe()  # both ends close-on-exec (PEP 446)
    timings.mark(f"container {spec.name}: open namespaces, status pipe")
    first_child_mark = timings.count()
    try:
        setns_pid = os.fork()
        if setns_pid == 0:
            os.close(status_r)
            _setns_child(spec, ns_fds, status_w, first_child_mark)  # never returns
    except BaseException:
        close_all(*ns_fds.values(), status_r, status_w)
        raise
    os.close(status_w)
    launched = Launch(spec.name, Channel(status_r, spec.name), list(ns_fds.values()))
    launched.forked(setns_pid)
    return launched


class Launch:
    """A container whose [2:INIT] is on its way to exec."""

    def __init__(self, name: str, channel: "Channel", fds: list[int]):
        self.name, self.channel, self.fds = name, channel, fds
        self.init_pid, self.error = 0, None

    def forked(self, setns_pid: int) -> None:
        """Wait until [1:SETNS] forked [2:INIT], moved it into its cgroup and
        ended: [2:INIT] is our child from then on, so a pod's containers are
        the agent's children in their order. A failure is raised by wait()."""
        try:
            self.init_pid = int(self.channel.wait_for(Message.PID)["pid"])
        except StartError as e:
            self.error = e
        finally:
            os.waitpid(setns_pid, 0)

    def wait(self) -> int:
        """The host pid of the container's PID 1, once it exec'd; StartError
        with the children's step and errno if they failed."""
        try:
            if self.error is not None:
                raise self.error
            self.channel.wait_for_exec()
            timings.mark(f"container {self.name}: exec (the status pipe closes)")
            timings.add(self.channel.times)
            return self.init_pid
        finally:
            close_all(*self.fds, self.channel.fd)


class Channel:
    """The agent's end of the status pipe: JSON lines, then EOF at exec."""

    def __init__(self, fd: int, name: str):
        self.fd, self.name, self.buf = fd, name, b""
        self.times: list = []   # the children's marks, if they sent them

    def _next(self) -> dict | None:
        msg = self._read()
        while msg is not None and msg.get("type") == Message.TIMES.value:
            self.times += msg.get("marks", [])   # may come before PID: [1:SETNS] races [2:INIT]
            msg = self._read()
        return msg

    def _read(self) -> dict | None:
        while b"\n" not in self.buf:
            ready, _, _ = select.select([self.fd], [], [], START_TIMEOUT)
            if not ready:
                raise StartError("start", f"container {self.name} did not reach exec "
                                 f"within {START_TIMEOUT:.0f}s")
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def _raise_if_error(self, msg: dict | None) -> None:
        if msg and msg.get("type") == Message.ERROR.value:
            raise StartError(msg["step"], msg["message"], msg.get("errno"))

    def wait_for(self, expected: Message) -> dict:
        msg = self._next()
        self._raise_if_error(msg)
        if msg is None or msg.get("type") != expected.value:
            got = "end of pipe (child died)" if msg is None else msg.get("type")
            raise StartError("start", f"container {self.name}: expected {expected.value}, got {got}")
        return msg

    def wait_for_exec(self) -> None:
        msg = self._next()
        self._raise_if_error(msg)
        if msg is not None:
            raise StartError("start", f"container {self.name}: expected exec, got {msg.get('type')}")


def _send(fd: int, kind: Message, **fields) -> None:
    os.write(fd, (json.dumps({"type": kind.value, **fields}) + "\n").encode())


def describe(spec: ProcessSpec) -> None:
    """The steps the two children take, from the same spec they act on."""
    joins = " ".join(f"--{ns}={path}" for ns, path in spec.namespaces.items())
    new_pid = "" if "pid" in spec.namespaces else " --pid --fork"
    explain.step(f"nsenter {joins} unshare --mount{new_pid} sh   # then, in that shell:",
                 f"container {spec.name}: join the pod's namespaces, and make its own mount "
                 f"and PID namespaces (it will be PID 1)")
    explain.step("mount --make-rprivate /",
                 "mounts made from now on stay in this container")
    for m in spec.rootfs.mounts:
        explain.step(m.shell(spec.rootfs.merged),
                     "the root: image layers (read-only) under a private upper dir"
                     if m.fstype == "overlay" else f"{m.target}: what every container expects")
        if m.target == "/dev":
            devs = " && ".join(f"mknod -m {d.mode:o} {spec.rootfs.merged}{d.path} c {d.major} "
                               f"{d.minor}" for d in spec.rootfs.devices)
            explain.step(devs, "the only devices a container gets")
    explain.step(f"cd {spec.rootfs.merged} && pivot_root . . && umount -l .",
                 "make the overlay the root; the host's file system is gone from view")
    explain.step(f"cd {spec.cwd} && exec {shlex.join(spec.argv)}",
                 "become the container's process (PID 1), with its stdout/stderr on the "
                 "agent's log pipes")


def report_and_exit(fd: int, step: str, e: BaseException) -> None:
    errno = getattr(e, "errno", None)
    message = f"{step}: {e}"
    if isinstance(e, OSError) and e.filename:
        message = f"{step}: {e.strerror} ({e.filename}, errno {e.errno})"
    try:
        _send(fd, Message.ERROR, step=step, message=message, errno=errno)
    finally:
        os._exit(127)


def set_name(name: str) -> None:
    """PR_SET_NAME, so `ps` shows which stage a stuck child is in."""
    try:
        with open("/proc/self/comm", "w") as f:
            f.write(name[:15])
    except OSError:
        pass


def _setns_child(spec: ProcessSpec, ns_fds: dict[str, int], status_w: int,
                 first_mark: int) -> None:
    """[1:SETNS]: join the pod, make the new mount and PID namespaces, fork."""
    step = "setns"
    try:
        timings.mark(f"container {spec.name}: fork [1:SETNS]")
        set_name("minipod:1:SETNS")
        step = "make the helper non-dumpable"
        prctl.set_dumpable(False)  # before any setns; [2:INIT] inherits it (enter.py)
        for ns, fd in ns_fds.items():
            step = f"setns {ns} ({spec.namespaces[ns]})"
            namespaces.setns(fd, namespaces.NAMESPACE_FLAGS[ns], spec.namespaces[ns])
        timings.mark(f"container {spec.name}: [1:SETNS] setns into the pod's "
                     f"{', '.join(ns_fds)}")
        # Its own PID namespace, unless the pod shares one (shareProcessNamespace:
        # then "pid" was joined above, and our child lands in it).
        new = namespaces.CLONE_NEWNS if "pid" in ns_fds else namespaces.CLONE_NEWNS | namespaces.CLONE_NEWPID
        step = "unshare mount and pid namespaces"
        namespaces.unshare(new)
        timings.mark(f"container {spec.name}: [1:SETNS] unshare mount and pid")
        # Opened now: [2:INIT] shares this mount namespace, and its
        # pivot_root takes /sys/fs/cgroup out of our sight too.
        step = "join cgroup"
        procs = cgroups.open_procs(spec.cgroup_procs)
        step = "fork container init"
        joined_r, joined_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(joined_w)
            _init_child(spec, status_w, first_mark, joined_r)  # never returns
        os.close(joined_r)
        step = "join cgroup"   # [2:INIT] builds its root meanwhile
        cgroups.move(procs, pid)
        try:
            os.write(joined_w, JOINED)
        except BrokenPipeError:
            pass    # [2:INIT] failed already, and reported why
        _send(status_w, Message.PID, pid=pid)
    except BaseException as e:
        report_and_exit(status_w, step, e)
    os._exit(0)


JOINED = b"J"   # [1:SETNS] → [2:INIT]: you are in your cgroup


def _init_child(spec: ProcessSpec, status_w: int, first_mark: int, joined_r: int) -> None:
    """[2:INIT]: PID 1 of the container. Build the root, then exec."""
    step = "mount root file system"
    mark = timings.mark
    try:
        mark(f"container {spec.name}: fork [2:INIT]")
        set_name("minipod:2:INIT")
        # Open the output files while the host's paths are still visible.
        # Plain files with O_APPEND (runtime/agent/output.py, "container output"):
        # a write never blocks and never fails with EPIPE, whether the agent
        # that reads them runs or not, and no output is lost across agent
        # restarts.
        step = "open stdio"
        stdin = os.open("/dev/null", os.O_RDONLY)
        out = os.open(spec.stdout, os.O_WRONLY | os.O_APPEND)
        err = os.open(spec.stderr, os.O_WRONLY | os.O_APPEND)
        mark(f"container {spec.name}: [2:INIT] open stdio")
        step = "mount root file system"
        mounts.apply(spec.rootfs)
        mark(f"container {spec.name}: [2:INIT] mounts, pivot_root")
        step = "wait to be moved into the cgroup"
        if os.read(joined_r, 1) != JOINED:
            os._exit(127)       # [1:SETNS] could not move us: it reported why
        os.close(joined_r)
        # Its own cgroup namespace, rooted at the cgroup just joined (so it
        # must come after the join): /proc/self/cgroup inside shows "/",
        # not the host's layout (containerd's default on cgroup v2).
        step = "unshare cgroup namespace"
        namespaces.unshare(namespaces.CLONE_NEWCGROUP)
        mark(f"container {spec.name}: [2:INIT] wait for the cgroup move, unshare cgroup")
        for fd, target in ((stdin, 0), (out, 1), (err, 2)):
            os.dup2(fd, target)
            os.close(fd)
        step = f"create working directory {spec.cwd}"
        os.makedirs(spec.cwd, exist_ok=True)  # as root, before a read-only root
        if spec.security is not None:
            step = "apply security settings"
            security.apply(spec.security)
            mark(f"container {spec.name}: [2:INIT] security (caps, seccomp, user)")
        elif spec.uid or spec.gid or spec.groups:
            step = f"set user {spec.uid}:{spec.gid}"
            os.setgroups(spec.groups)
            os.setgid(spec.gid)
            os.setuid(spec.uid)
        step = f"chdir to working directory {spec.cwd}"
        os.chdir(spec.cwd)
        step = f'exec "{spec.argv[0]}"'
        if "/" not in spec.argv[0] and not on_path(spec.argv[0], spec.env.get("PATH", "")):
            raise OSError(errno.ENOENT, "executable file not found in $PATH", spec.argv[0])
        descriptors.close_fds([status_w])  # no fd of the agent reaches the container
        if timings.active():
            mark(f"container {spec.name}: [2:INIT] chdir, look up argv[0], close fds")
            _send(status_w, Message.TIMES, marks=timings.since(first_mark))
        os.execvpe(spec.argv[0], spec.argv, spec.env)
    except BaseException as e:
        report_and_exit(status_w, step, e)


def on_path(name: str, path: str) -> bool:
    return any(os.access(os.path.join(d or ".", name), os.X_OK) for d in path.split(":"))


def close_all(*fds: int) -> None:
    """Close each fd in turn, skipping -1 (one closed already): what start
    and enter.start hold (namespace fds, the status pipe) when they return."""
    for fd in fds:
        if fd != -1:
            os.close(fd)
