"""A container's root file system: an overlay, the API file systems, pivot_root.

Runs inside the container's fresh mount namespace (after unshare(CLONE_NEWNS)
and, for /proc, inside its new PID namespace). The plan is pure data, so it
can be printed and unit tested; `apply` performs it. Same steps, in the same
order, as runc's rootfs_linux.go:

    mount --make-rprivate /                      # nothing leaks back to the host
    mount -t overlay overlay -o lowerdir=L2:L1,upperdir=U,workdir=W MERGED
    mount -t proc proc MERGED/proc
    mount -t tmpfs -o mode=755,size=64k tmpfs MERGED/dev   + mknod null zero …
    mount -t devpts -o newinstance,ptmxmode=0666 devpts MERGED/dev/pts
    mount -t tmpfs shm MERGED/dev/shm ; mount -t mqueue mqueue MERGED/dev/mqueue
    mount -t sysfs -o ro sysfs MERGED/sys
    mount --bind POD/hosts MERGED/etc/hosts   (hostname, resolv.conf too)
    cd MERGED && pivot_root . . && umount -l .   # old root stacked, then gone

No path below MERGED, and no subPath inside a volume, is used by its string
after it was checked: a neighbour container sharing a volume can swap a
directory for a symlink at any moment (CVE-2017-1002101, CVE-2021-25741,
runc's CVE-2021-30465). Each mount target is opened by a walk of O_PATH fds
that follows the image's symlinks the way the container will (an absolute
one restarts at the root, `..` stops there: runc's securejoin, done with
fds), checked through /proc/self/fd (runc's WithProcfd), and mounted onto
through that fd; a bind source is opened once (a subPath with openat2
RESOLVE_BENEATH below its volume) and mounted from that fd with open_tree +
move_mount, so the object checked is the object mounted.
"""
from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field

from minipod.linux import mount
from minipod.linux.mount import (AT_EMPTY_PATH, AT_RECURSIVE, MNT_DETACH, MS_BIND, MS_NODEV,
                                 MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC,
                                 MS_REMOUNT)


@dataclass
class Mount:
    """One mount(2) call; `target` is inside the new root (absolute there)."""
    source: str | None
    target: str
    fstype: str | None
    flags: int = 0
    data: str | None = None
    kind: str = "dir"          # what to create at target if missing: dir | file
    remount_ro: bool = False   # bind mounts become read-only only by a remount
    sub_path: str | None = None  # bind: open this beneath `source`, mount that

    def shell(self, root: str) -> str:
        """The same step as a command a learner could type."""
        opts = [{"MS_RDONLY": "ro"}.get(n, n.removeprefix("MS_").lower()) for n in
                mount.mount_flag_names(self.flags).split("|") if n != "0"]
        opts = [o for o in opts if o not in ("bind", "rec")]
        if self.data:
            opts.append(self.data)
        if self.remount_ro:
            opts.append("ro")
        kind = "--rbind" if self.flags & MS_REC and self.flags & MS_BIND else \
            "--bind" if self.flags & MS_BIND else f"-t {self.fstype}"
        o = f" -o {','.join(opts)}" if opts else ""
        source = f"{self.source}/{self.sub_path}" if self.sub_path else self.source or "none"
        return f"mount {kind}{o} {source} {root}{self.target}"


@dataclass(frozen=True)
class Device:
    path: str
    major: int
    minor: int
    mode: int = 0o666


# The devices every OCI runtime creates (runtime-spec config-linux.md).
DEFAULT_DEVICES = [
    Device("/dev/null", 1, 3), Device("/dev/zero", 1, 5), Device("/dev/full", 1, 7),
    Device("/dev/random", 1, 8), Device("/dev/urandom", 1, 9), Device("/dev/tty", 5, 0),
]
DEV_SYMLINKS = {
    "/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0",
    "/dev/stdout": "/proc/self/fd/1", "/dev/stderr": "/proc/self/fd/2",
    "/dev/ptmx": "pts/ptmx", "/dev/core": "/proc/kcore",
}


@dataclass
class RootfsPlan:
    merged: str
    mounts: list[Mount] = field(default_factory=list)
    devices: list[Device] = field(default_factory=list)
    symlinks: dict[str, str] = field(default_factory=dict)


def overlay_options(lower: list[str], upper: str, work: str) -> str:
    """lowerdir lists the TOP layer first: `lower` comes bottom → top."""
    return f"lowerdir={':'.join(reversed(lower))},upperdir={upper},workdir={work}"


@dataclass(frozen=True)
class BindMount:
    """A volume in a container: host `source` at `target` inside."""
    source: str
    target: str
    read_only: bool = False
    is_file: bool = False
    sub_path: str | None = None   # relative, opened beneath `source` at mount time


def plan(lower: list[str], upper: str, work: str, merged: str,
         etc_files: dict[str, str], binds: list[BindMount] = ()) -> RootfsPlan:
    """The mounts of a container root, in order (pure: no system calls).

    etc_files maps a path in the container (/etc/hosts) to the host file
    bind-mounted there (the pod's shared copy); binds are the volumes."""
    nosuid_nodev = MS_NOSUID | MS_NODEV
    mounts = [
        # nodev: a device node shipped in an image must not open a host device
        Mount("overlay", "", "overlay", MS_NODEV, overlay_options(lower, upper, work)),
        Mount("proc", "/proc", "proc", nosuid_nodev | MS_NOEXEC),
        Mount("tmpfs", "/dev", "tmpfs", MS_NOSUID, "mode=755,size=65536k"),
        Mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
              "newinstance,ptmxmode=0666,mode=0620,gid=5"),
        Mount("shm", "/dev/shm", "tmpfs", nosuid_nodev | MS_NOEXEC, "mode=1777,size=65536k"),
        Mount("mqueue", "/dev/mqueue", "mqueue", nosuid_nodev | MS_NOEXEC),
        Mount("sysfs", "/sys", "sysfs", nosuid_nodev | MS_NOEXEC | MS_RDONLY),
    ]
    for target, source in etc_files.items():
        mounts.append(Mount(source, target, None, MS_BIND, kind="file"))
    for b in binds:
        mounts.append(Mount(b.source, b.target, None, MS_BIND | MS_REC,
                            kind="file" if b.is_file else "dir", remount_ro=b.read_only,
                            sub_path=b.sub_path))
    return RootfsPlan(merged, mounts, list(DEFAULT_DEVICES), dict(DEV_SYMLINKS))


def apply(p: RootfsPlan) -> None:
    """Perform the plan in this (fresh, private) mount namespace, then
    pivot_root into it. Raises OSError naming the step and path.

    After the root's own mount, every target is opened inside it with
    open_in_root and mounted onto through its fd; bind sources are opened
    by open_source and mounted from their fd (see the module docstring)."""
    mount.mount(None, "/", None, MS_REC | MS_PRIVATE)
    root_fd = -1
    try:
        for m in p.mounts:
            if not m.target:   # the root itself: a path minipod made, no container in it yet
                mount.mount(m.source, p.merged, m.fstype, m.flags, m.data)
                continue
            if root_fd == -1:
                root_fd = os.open(p.merged, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            _mount_in_root(root_fd, p.merged, m)
            if m.target == "/dev":
                _populate_dev(p, root_fd)
    finally:
        if root_fd != -1:
            os.close(root_fd)
    pivot(p.merged)


def _mount_in_root(root_fd: int, root: str, m: Mount) -> None:
    """One mount onto an fd of its target inside the root (opened, checked,
    created if missing), from an fd of its source when it is a bind."""
    src_fd = dst_fd = -1
    try:
        kind = m.kind
        if m.flags & MS_BIND:
            src_fd = open_source(m.source, m.sub_path)
            # what is mounted decides the mount point, not an earlier look at it
            kind = "dir" if stat.S_ISDIR(os.fstat(src_fd).st_mode) else "file"
        dst_fd = open_in_root(root_fd, m.target, create=kind)
        check_inside(dst_fd, root_fd, f"mount target {m.target}")
        if src_fd != -1:
            _bind(src_fd, dst_fd, m, lambda: open_in_root(root_fd, m.target))
        else:
            mount.mount(m.source, f"/proc/self/fd/{dst_fd}", m.fstype, m.flags, m.data)
    except OSError as e:
        # the fd paths say nothing to a reader: name the source and the target
        source = f"{m.source}/{m.sub_path}" if m.sub_path else m.source
        raise OSError(e.errno, f"{e.strerror} (mounting {source} on {m.target})",
                      f"{root}{m.target}") from e
    finally:
        for fd in (src_fd, dst_fd):
            if fd != -1:
                os.close(fd)


def _bind(src_fd: int, dst_fd: int, m: Mount, reopen) -> None:
    """Bind-mount the object src_fd names onto dst_fd (mount --bind/--rbind).

    open_tree(OPEN_TREE_CLONE) makes the bind mount from the fd itself and
    move_mount attaches it onto the target fd: no path is looked up, and the
    new mount's own fd is at hand for the read-only remount (an fd of the
    mount point names the directory underneath, not the mount). Before
    Linux 5.2, the same through /proc/self/fd/N, as runc and the kubelet do
    it; `reopen()` then walks to the new mount for the remount."""
    try:
        tree = mount.open_tree(src_fd, "", mount.OPEN_TREE_CLONE | mount.OPEN_TREE_CLOEXEC
                              | AT_EMPTY_PATH | (AT_RECURSIVE if m.flags & MS_REC else 0))
    except OSError as e:
        if e.errno != errno.ENOSYS:
            raise
        mount.mount(f"/proc/self/fd/{src_fd}", f"/proc/self/fd/{dst_fd}", None, m.flags)
        if not m.remount_ro:
            return
        tree = reopen()   # crosses into the mount just made
        if not os.path.samestat(os.fstat(tree), os.fstat(src_fd)):
            os.close(tree)
            raise OSError(errno.EXDEV, "the mount point changed while it was mounted on",
                          m.target) from e
    else:
        try:
            mount.move_mount(tree, "", dst_fd, "",
                            mount.MOVE_MOUNT_F_EMPTY_PATH | mount.MOVE_MOUNT_T_EMPTY_PATH)
        except OSError:
            os.close(tree)
            raise
    try:
        if m.remount_ro:
            mount.mount(None, f"/proc/self/fd/{tree}", None,
                       MS_REMOUNT | MS_BIND | MS_RDONLY | m.flags)
    finally:
        os.close(tree)


def open_source(source: str, sub_path: str | None = None) -> int:
    """An O_PATH fd of a bind mount's source: `source` (a path on the host
    minipod or the pod's author chose), or `sub_path` beneath it, opened with
    open_beneath (made if missing, as the kubelet does). Raises OSError."""
    fd = os.open(source, os.O_PATH | os.O_CLOEXEC)
    if not sub_path:
        return fd
    try:
        sub = open_beneath(fd, sub_path, create="dir")
        try:
            check_inside(sub, fd, f'subPath "{sub_path}"')
        except OSError:
            os.close(sub)
            raise
        return sub
    except OSError as e:
        if e.errno in (errno.EXDEV, errno.ELOOP):
            raise OSError(e.errno, f'subPath "{sub_path}" leads out of the volume {source} '
                          f"({e.strerror})", f"{source}/{sub_path}") from e
        raise
    finally:
        os.close(fd)


OPEN_FLAGS = os.O_PATH | os.O_CLOEXEC
BENEATH = mount.RESOLVE_BENEATH | mount.RESOLVE_NO_MAGICLINKS


def open_beneath(dir_fd: int, path: str, create: str | None = None) -> int:
    """An O_PATH fd of relative `path` below dir_fd, never of anything outside.

    openat2(RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS): a symlink is followed
    only while it stays below dir_fd (one in the volume pointing inside it
    works, as on a cluster, where the kubelet evaluates it and checks the
    result); an absolute one, or a `..` out, fails with EXDEV. The kernel
    enforces it on each step of the one lookup, so no swap can get between.
    With `create` ("dir" or "file"), what is missing is made one component
    at a time by the fd walk (kubelet's doSafeMakeDir); the walk is also
    the fallback before Linux 5.6 (ENOSYS)."""
    try:
        return mount.openat2(dir_fd, path, OPEN_FLAGS, BENEATH)
    except OSError as e:
        if e.errno == errno.ENOSYS or (e.errno == errno.ENOENT and create):
            return walk(dir_fd, path, in_root=False, create=create)
        raise


def open_in_root(root_fd: int, path: str, create: str | None = None) -> int:
    """An O_PATH fd of `path` as the container will see it, with root_fd as "/".

    The image's symlinks are followed as they will be inside: an absolute
    target restarts at the root and `..` stops there (runc's securejoin),
    but by a walk of fds, so nothing is looked up twice. Missing components
    are made (`create`: "dir" or "file" for the last one)."""
    return walk(root_fd, path, in_root=True, create=create)


MAX_SYMLINKS = 40   # the kernel's limit (ELOOP)


def walk(base_fd: int, path: str, in_root: bool, create: str | None = None) -> int:
    """Resolve `path` from base_fd one component at a time; an O_PATH fd.

    Each component is opened with O_PATH|O_NOFOLLOW relative to the fd of
    its parent, so a component swapped for a symlink is seen as that
    symlink, never followed behind our back. A symlink's target (read from
    its own fd) is then resolved by the same walk: in_root, an absolute one
    restarts at base_fd and `..` stops there; otherwise both fail with
    EXDEV (the path would leave base_fd). A missing component is made with
    mkdirat (or created O_EXCL as a file, for the last one when `create` is
    "file") relative to its parent's fd, then opened again the same way."""
    if path.startswith("/") and not in_root:
        raise OSError(errno.EXDEV, "an absolute path cannot stay beneath the directory", path)
    parts = [c for c in path.split("/") if c not in ("", ".")]
    stack = [os.dup(base_fd)]   # fds of the directories walked so far
    links = races = 0
    made = None   # the component just made, if it is the one being opened
    try:
        while parts:
            part = parts.pop(0)
            if part == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                elif not in_root:
                    raise OSError(errno.EXDEV, '".." leads out of the directory', path)
                continue
            try:
                fd = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=stack[-1])
            except FileNotFoundError:
                races += made == part   # made, and gone again before it was opened
                if not create or races > MAX_SYMLINKS:
                    raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), path) from None
                _make(stack[-1], part, create if not parts else "dir")
                made = part
                parts.insert(0, part)   # open what is there now, whatever made it
                continue
            made = None
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode):
                target = os.readlink("", dir_fd=fd)
                os.close(fd)
                links += 1
                if links > MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                if target.startswith("/"):
                    if not in_root:
                        raise OSError(errno.EXDEV, f"symlink to {target} leads out of the "
                                      "directory", path)
                    while len(stack) > 1:
                        os.close(stack.pop())
                parts = [c for c in target.split("/") if c not in ("", ".")] + parts
                continue
            if parts and not stat.S_ISDIR(mode):
                os.close(fd)
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
            stack.append(fd)
        return stack.pop() if len(stack) > 1 else os.dup(stack[0])
    finally:
        for fd in stack:
            os.close(fd)


def _make(parent_fd: int, name: str, kind: str) -> None:
    """Make `name` in the directory parent_fd names; someone else making it
    first is fine (the caller opens what is there). Neither call follows a
    symlink at `name`."""
    try:
        if kind == "dir":
            os.mkdir(name, 0o755, dir_fd=parent_fd)
        else:
            os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o644, dir_fd=parent_fd))
    except FileExistsError:
        pass


def check_inside(fd: int, root_fd: int, what: str) -> None:
    """Fail with EXDEV unless the object fd names is below root_fd's directory.

    What the kernel says the fd is (readlink /proc/self/fd/N, as runc's
    WithProcfd checks), not what was asked for: a belt to the walk's braces."""
    root = os.readlink(f"/proc/self/fd/{root_fd}")
    where = os.readlink(f"/proc/self/fd/{fd}")
    if where != root and not where.startswith(root.rstrip("/") + "/"):
        raise OSError(errno.EXDEV, f"{what} resolved to {where}, outside {root}", where)


def _populate_dev(p: RootfsPlan, root_fd: int) -> None:
    """The device nodes and symlinks of /dev, made relative to an fd of the
    tmpfs just mounted (found by the same walk as its mount point, which now
    crosses into it), never through a path string an image symlink bends."""
    parents: dict[str, int] = {}
    try:
        def parent(path: str) -> tuple[int, str]:
            d, name = os.path.split(path)
            if d not in parents:
                parents[d] = open_in_root(root_fd, d, create="dir")
            return parents[d], name
        for d in p.devices:
            dir_fd, name = parent(d.path)
            try:
                os.mknod(name, stat.S_IFCHR | d.mode, os.makedev(d.major, d.minor),
                         dir_fd=dir_fd)
                os.chmod(name, d.mode, dir_fd=dir_fd)  # mknod applied the umask
            except OSError as e:
                raise OSError(e.errno, f"mknod {d.path} c {d.major} {d.minor}: {e.strerror}",
                              p.merged + d.path)
        for link, target in p.symlinks.items():
            dir_fd, name = parent(link)
            os.symlink(target, name, dir_fd=dir_fd)
    finally:
        for fd in parents.values():
            os.close(fd)


def resolve_in_root(root: str, path: str) -> str:
    """The host path of `path` as seen from inside `root`, symlinks included
    (the string form of open_in_root, for showing; `apply` never mounts by it).

    Symlinks in the image are followed the way they will be inside the
    container: an absolute target restarts at `root`, and `..` never climbs
    above it (like runc's securejoin). Without this, an image with
    /data -> /etc would turn a volume at /data/x into a mount over the
    host's /etc/x."""
    parts = [p for p in path.split("/") if p]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        if os.path.islink(candidate):
            links += 1
            if links > 40:
                raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def pivot(new_root: str) -> None:
    """pivot_root(".", "."), then detach the old root stacked underneath.

    The trick from runc (and lxc): with both arguments ".", the old root ends
    up mounted on top of the new one; a lazy unmount of "." removes it
    without needing a directory for it inside the container."""
    os.chdir(new_root)
    mount.pivot_root(".", ".")
    mount.umount(".", MNT_DETACH)
    os.chdir("/")
