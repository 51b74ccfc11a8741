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
move_mount, so the object checked is the object mounted. The fd walks are
minipod.rootfs.fdpath.
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
from minipod.rootfs.fdpath import check_inside, open_in_root, open_source


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


def pivot(new_root: str) -> None:
    """pivot_root(".", "."), then detach the old root stacked underneath.

    The trick from runc (and lxc): with both arguments ".", the old root ends
    up mounted on top of the new one; a lazy unmount of "." removes it
    without needing a directory for it inside the container."""
    os.chdir(new_root)
    mount.pivot_root(".", ".")
    mount.umount(".", MNT_DETACH)
    os.chdir("/")
