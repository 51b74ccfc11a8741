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
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from minipod import libc
from minipod.libc import (MNT_DETACH, MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID,
                          MS_PRIVATE, MS_RDONLY, MS_REC, MS_REMOUNT)


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

    def shell(self, root: str) -> str:
        """The same step as a command a learner could type."""
        opts = [{"MS_RDONLY": "ro"}.get(n, n.removeprefix("MS_").lower()) for n in
                libc.mount_flag_names(self.flags).split("|") if n != "0"]
        opts = [o for o in opts if o not in ("bind", "rec")]
        if self.data:
            opts.append(self.data)
        if self.remount_ro:
            opts.append("ro")
        kind = "--rbind" if self.flags & MS_REC and self.flags & MS_BIND else \
            "--bind" if self.flags & MS_BIND else f"-t {self.fstype}"
        o = f" -o {','.join(opts)}" if opts else ""
        return f"mount {kind}{o} {self.source or 'none'} {root}{self.target}"


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
                            kind="file" if b.is_file else "dir", remount_ro=b.read_only))
    return RootfsPlan(merged, mounts, list(DEFAULT_DEVICES), dict(DEV_SYMLINKS))


def apply(p: RootfsPlan) -> None:
    """Perform the plan in this (fresh, private) mount namespace, then
    pivot_root into it. Raises OSError naming the step and path."""
    libc.mount(None, "/", None, MS_REC | MS_PRIVATE)
    for m in p.mounts:
        target = p.merged
        if m.target:
            target = resolve_in_root(p.merged, m.target)
            _ensure(target, m.kind)
        libc.mount(m.source, target, m.fstype, m.flags, m.data)
        if m.remount_ro:
            libc.mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | m.flags)
        if m.target == "/dev":
            _populate_dev(p)
    pivot(p.merged)


def _populate_dev(p: RootfsPlan) -> None:
    for d in p.devices:
        path = p.merged + d.path
        try:
            os.mknod(path, stat.S_IFCHR | d.mode, os.makedev(d.major, d.minor))
        except OSError as e:
            raise OSError(e.errno, f"mknod {d.path} c {d.major} {d.minor}: {e.strerror}", path)
        os.chmod(path, d.mode)  # mknod applies the umask
    for link, target in p.symlinks.items():
        os.symlink(target, p.merged + link)


def resolve_in_root(root: str, path: str) -> str:
    """The host path of `path` as seen from inside `root`, symlinks included.

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
                raise OSError(40, "too many levels of symbolic links", path)
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def _ensure(path: str, kind: str) -> None:
    """Create a mount point inside the new root if the image lacks it.

    The path is already resolved inside the root (resolve_in_root), so this
    writes to the container's upper dir only."""
    if kind == "dir":
        os.makedirs(path, exist_ok=True)
    elif not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


def pivot(new_root: str) -> None:
    """pivot_root(".", "."), then detach the old root stacked underneath.

    The trick from runc (and lxc): with both arguments ".", the old root ends
    up mounted on top of the new one; a lazy unmount of "." removes it
    without needing a directory for it inside the container."""
    os.chdir(new_root)
    libc.pivot_root(".", ".")
    libc.umount(".", MNT_DETACH)
    os.chdir("/")
