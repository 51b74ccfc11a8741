"""The pod sandbox: network, IPC and UTS namespaces that outlive any process.

A namespace lives while a process is in it or a file refers to it. The
kubelet keeps a "pause" process per pod; minipod keeps no process: it pins
each namespace by bind-mounting /proc/PID/ns/X onto a plain file, the way
`ip netns add` does (containerd's pkg/netns too). The steps:

    1. a thread of the agent calls unshare(CLONE_NEWNET|CLONE_NEWIPC|
       CLONE_NEWUTS) (these three belong to a thread, not to the whole
       process) and sets the pod's hostname, then waits
    2. the agent bind-mounts the thread's /proc/self/task/TID/ns/{net,ipc,uts}
       onto POD_DIR/ns/{net,ipc,uts}, and the netns also onto
       /run/netns/minipod-POD so `ip netns list` shows it
    3. the thread ends; the namespaces stay, held by the mounts

A thread, not a forked child: forking the agent copies its page tables
(about 3 ms for its ~40 MB, against 0.7 ms for a thread here).

The same by hand:
    unshare --net --ipc --uts sleep infinity &   # then, for X in net ipc uts:
    touch ns/X && mount --bind /proc/$!/ns/X ns/X
"""
from __future__ import annotations

import errno
import os
import signal
import socket
import threading
from pathlib import Path

import prctl

from minipod.linux import descriptors, explain, mount, namespaces

SHARED = ("net", "ipc", "uts")


def create(pod_dir: Path, netns_path: Path, hostname: str) -> dict[str, str]:
    """Create and pin the pod's namespaces; returns {"net": path, ...}.

    On failure nothing stays pinned (the caller also calls destroy)."""
    ns_dir = pod_dir / "ns"
    ns_dir.mkdir(parents=True, exist_ok=True)
    made, pinned = threading.Event(), threading.Event()
    answer: dict = {}

    def make():
        try:
            namespaces.unshare(namespaces.CLONE_NEWNET | namespaces.CLONE_NEWIPC
                               | namespaces.CLONE_NEWUTS)
            socket.sethostname(hostname)
            answer["tid"] = threading.get_native_id()
        except OSError as e:
            answer["error"] = e
        made.set()
        pinned.wait()       # its namespaces are held by the mounts: it may end
    thread = threading.Thread(target=make, name=f"sandbox {hostname}")
    thread.start()
    paths = {}
    try:
        made.wait()
        if "error" in answer:
            e = answer["error"]
            raise OSError(e.errno, f"cannot create namespaces of pod {hostname}: {e.strerror}")
        explain.step(f"unshare --net --ipc --uts sh -c 'hostname {hostname}; sleep infinity' &",
                     "a process in three new namespaces: the pod's network, IPC and hostname")
        task = f"/proc/self/task/{answer['tid']}"
        for ns in SHARED:
            paths[ns] = str(ns_dir / ns)
            pin(f"{task}/ns/{ns}", paths[ns])
        netns_path.parent.mkdir(parents=True, exist_ok=True)
        pin(f"{task}/ns/net", str(netns_path))
        explain.step("kill %1",
                     "the process may go: the bind mounts keep its namespaces alive")
        paths["netns"] = str(netns_path)
    finally:
        pinned.set()
        thread.join()
    return paths


def pin(ns_file: str, target: str) -> None:
    """Bind-mount a namespace file (/proc/self/task/TID/ns/X) onto target
    (created empty)."""
    fd = os.open(target, os.O_CREAT | os.O_RDONLY | os.O_CLOEXEC, 0o444)
    os.close(fd)
    try:
        mount.mount(ns_file, target, None, mount.MS_BIND)
    except OSError as e:
        os.unlink(target)
        raise OSError(e.errno, f"cannot pin namespace {ns_file}: {e.strerror}", target)
    shown = "/proc/$!/ns/" + ns_file.rpartition("/")[2]    # the shell's way: unshare ... &
    explain.step(f"touch {target} && mount --bind {shown} {target}",
                 "pin the namespace: a bind mount of its /proc file holds it open")


def unpin(target: str) -> None:
    """Unmount and remove a pinned namespace file; a missing one is fine."""
    try:
        mount.umount(target, mount.MNT_DETACH)
        explain.step(f"umount -l {target} && rm {target}",
                     "unpin: the kernel frees the namespace once nothing holds it")
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOENT):  # not a mount; gone
            raise
    try:
        os.unlink(target)
    except FileNotFoundError:
        pass


def destroy(pod_dir: Path, netns_path: Path) -> None:
    """Release every pin; the kernel frees a namespace when nothing holds it."""
    for ns in SHARED:
        unpin(str(pod_dir / "ns" / ns))
    unpin(str(netns_path))
    try:
        (pod_dir / "ns").rmdir()
    except (FileNotFoundError, OSError):
        pass


def inode(path: str) -> int:
    """The namespace's identity: the inode of its nsfs file (`ls -i`)."""
    return os.stat(path).st_ino


def start_pause(name: str, root: Path) -> int:
    """For shareProcessNamespace: a tiny PID 1 that holds the pod's PID
    namespace and reaps orphans, like the kubelet's pause container.

    A PID namespace whose PID 1 has died accepts no new process, so it
    cannot be pinned by a bind mount alone: something must live in it.
    Forked from the agent (no exec, no image), so it is the host's python
    for good, and every container of the pod sees it. It confines itself
    before it says ready: non-dumpable from before the unshare (prctl
    PR_SET_DUMPABLE 0, as runc's nsexec), so its /proc/PID/exe, fd/ and
    root are refused to the containers; /dev/null as stdio and no other
    fd; chrooted into `root` (an empty directory made here); uid and gid
    65534 with no capabilities and no_new_privs, so even a container that
    may ptrace it (CAP_SYS_PTRACE) finds nothing of the host's there but
    the interpreter's file. Returns its host pid; the agent is its
    subreaper and kills it at teardown. By hand: `unshare --pid --fork
    setpriv --reuid=65534 --regid=65534 --clear-groups sleep infinity`,
    then `nsenter --pid=/proc/PID/ns/pid` per container."""
    root.mkdir(mode=0o555, exist_ok=True)
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(r)
            prctl.set_dumpable(False)  # the pause inherits it; it never execs
            namespaces.unshare(namespaces.CLONE_NEWPID)
            pid = os.fork()
            if pid == 0:
                _pause(str(root), w)
            os.write(w, f"pid {pid}\n".encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    try:
        while chunk := os.read(r, 4096):
            data += chunk
    finally:
        os.close(r)
        os.waitpid(child, 0)
    # two writers, either may come first: "pid N" (the middle child), then
    # "ready" or the step that failed (the pause)
    lines = dict(line.partition(" ")[::2] for line in data.decode(errors="replace").splitlines())
    if "ready" not in lines or "pid" not in lines:
        why = lines.get("error") or "it died"
        raise OSError(f"cannot start the pause process of pod {name}: {why}")
    return int(lines["pid"])


NOBODY = 65534  # the overflow uid and gid: nobody and nogroup


def _pause(root: str, w: int) -> None:
    """The pause process: confine, say "ready" on w, then reap forever."""
    step = "set up"
    try:
        signal.set_wakeup_fd(-1)
        devnull = os.open("/dev/null", os.O_RDWR)
        for target in (0, 1, 2):  # not the agent's stdio (its terminal, its log)
            os.dup2(devnull, target)
        descriptors.close_fds([w])  # nor its sockets, pipes, FIFOs
        with open("/proc/self/comm", "w") as f:
            f.write("minipod-pause")
        step = f"chroot {root}"
        os.chroot(root)
        os.chdir("/")
        step = f"set user {NOBODY}:{NOBODY}"
        os.setgroups([])
        os.setresgid(NOBODY, NOBODY, NOBODY)
        os.setresuid(NOBODY, NOBODY, NOBODY)  # from uid 0: every capability goes
        step = "no_new_privs"
        prctl.set_no_new_privs(True)
        prctl.set_dumpable(False)  # a uid change sets it to fs.suid_dumpable
        os.write(w, b"ready\n")
        os.close(w)
    except BaseException as e:
        message = f"{step}: {e}".replace("\n", " ")
        os.write(w, f"error {message}\n".encode())
        os._exit(1)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wake signal.pause()
    while True:
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            pass
        signal.pause()
