"""mount(2), umount2(2), pivot_root(2), and the fd-based mount calls.

Each raises OSError(errno, "STEP: strerror", path) and a mount error names
its flags the way runc prints them (`MS_BIND|MS_REC`), with source,
target and fstype.

Check an object, then use that same object: a path a container can
change (anything in a volume it shares) must not be checked by its string
and then used by its string again: the container can swap a directory for
a symlink in between (CVE-2017-1002101, CVE-2021-25741). openat2(2)
resolves a path once, under rules the kernel enforces on every step, and
hands back an fd; open_tree(2) and move_mount(2) then make the mount from
and onto fds.
"""
from __future__ import annotations

import errno
import os

from minipod.linux.clib import fail, ffi, lib, long, retry, syscall

CDEF = """
    int mount(const char *source, const char *target, const char *fstype,
              unsigned long flags, const void *data);
    int umount2(const char *target, int flags);
    struct open_how { uint64_t flags; uint64_t mode; uint64_t resolve; };
"""

# <linux/mount.h>
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MNT_DETACH = 2

_MS_NAMES = [
    (MS_RDONLY, "MS_RDONLY"), (MS_NOSUID, "MS_NOSUID"), (MS_NODEV, "MS_NODEV"),
    (MS_NOEXEC, "MS_NOEXEC"), (MS_REMOUNT, "MS_REMOUNT"), (MS_BIND, "MS_BIND"),
    (MS_MOVE, "MS_MOVE"), (MS_REC, "MS_REC"), (MS_PRIVATE, "MS_PRIVATE"),
    (MS_SLAVE, "MS_SLAVE"), (MS_SHARED, "MS_SHARED"),
]

# <linux/openat2.h>
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02   # no /proc/PID/fd/N style jumps
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08         # every step stays below dirfd; absolute paths refused
RESOLVE_IN_ROOT = 0x10         # dirfd acts as "/" (a chroot for this one lookup)
_RESOLVE_NAMES = [(RESOLVE_NO_XDEV, "RESOLVE_NO_XDEV"),
                  (RESOLVE_NO_MAGICLINKS, "RESOLVE_NO_MAGICLINKS"),
                  (RESOLVE_NO_SYMLINKS, "RESOLVE_NO_SYMLINKS"),
                  (RESOLVE_BENEATH, "RESOLVE_BENEATH"), (RESOLVE_IN_ROOT, "RESOLVE_IN_ROOT")]

# <linux/mount.h>, <fcntl.h>
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
MOVE_MOUNT_F_EMPTY_PATH = 0x04
MOVE_MOUNT_T_EMPTY_PATH = 0x40


def mount_flag_names(flags: int) -> str:
    """`MS_BIND|MS_REC` for 0x5000: how runc prints mount flags in errors."""
    names = [name for bit, name in _MS_NAMES if flags & bit]
    return "|".join(names) or "0"


def mount(source: str | None, target: str, fstype: str | None = None,
          flags: int = 0, data: str | None = None) -> None:
    """mount(2); the error names source, target, fstype and flags by name."""
    src = source.encode() if source is not None else ffi.NULL
    fs = fstype.encode() if fstype is not None else ffi.NULL
    dat = data.encode() if data is not None else ffi.NULL
    if retry(lambda: lib.mount(src, target.encode(), fs, flags, dat)) == -1:
        fail(f"mount {source or 'none'} type {fstype or '-'} "
             f"flags {mount_flag_names(flags)}" + (f" data {data}" if data else ""), target)


def umount(target: str, flags: int = 0) -> None:
    """umount2(2); MNT_DETACH for a lazy unmount of a busy mount."""
    if retry(lambda: lib.umount2(target.encode(), flags)) == -1:
        fail("umount", target)


def pivot_root(new_root: str, put_old: str) -> None:
    """Make new_root the root of this mount namespace (man 2 pivot_root).

    Kernel rules that bite: new_root must be a mount point, put_old must be
    under new_root, and neither may be on a shared mount (make / private
    first). pivot_root(".", ".") stacks the old root on the new one, so it
    can be unmounted from "/" without a directory for it (runc does this).
    No glibc wrapper: syscall(2), whose number differs per architecture."""
    try:
        rc = syscall("pivot_root", ffi.new("char[]", new_root.encode()),
                     ffi.new("char[]", put_old.encode()))
    except OSError as e:
        raise OSError(e.errno, e.strerror, new_root) from None
    if rc == -1:
        fail("pivot_root", new_root)


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2): open `path` relative to dirfd under the RESOLVE_* rules; an fd.

    The rules hold for every component, checked by the kernel during this
    one lookup, so a rename or symlink swap cannot slip between check and
    use. Fails with EXDEV when the path would leave dirfd (RESOLVE_BENEATH),
    ELOOP on a symlink (RESOLVE_NO_SYMLINKS), EAGAIN when a concurrent rename
    raced a ".." (retried here), ENOSYS before Linux 5.6."""
    how = ffi.new("struct open_how *", {"flags": flags, "mode": mode, "resolve": resolve})
    cpath = ffi.new("char[]", path.encode())
    for _ in range(16):
        fd = syscall("openat2", long(dirfd), cpath, how, long(ffi.sizeof("struct open_how")))
        if fd != -1 or ffi.errno != errno.EAGAIN:
            break
    if fd == -1:
        names = "|".join(n for bit, n in _RESOLVE_NAMES if resolve & bit) or "0"
        fail(f"openat2 resolve {names}", path)
    return fd


def open_tree(dirfd: int, path: str, flags: int) -> int:
    """open_tree(2): with OPEN_TREE_CLONE, a detached copy of the mount at
    dirfd/path (AT_RECURSIVE: with its submounts): a bind mount not yet
    attached anywhere, as an fd. Linux 5.2; ENOSYS before."""
    fd = syscall("open_tree", long(dirfd), ffi.new("char[]", path.encode()), long(flags))
    if fd == -1:
        fail("open_tree", path or f"fd {dirfd}")
    return fd


def move_mount(from_dirfd: int, from_path: str, to_dirfd: int, to_path: str,
               flags: int) -> None:
    """move_mount(2): attach the mount from_dirfd/from_path at to_dirfd/to_path.

    With MOVE_MOUNT_F_EMPTY_PATH|MOVE_MOUNT_T_EMPTY_PATH both ends are the
    fds themselves (an open_tree fd onto an O_PATH fd of the mount point):
    no path is looked up at all. Linux 5.2."""
    rc = syscall("move_mount", long(from_dirfd), ffi.new("char[]", from_path.encode()),
                 long(to_dirfd), ffi.new("char[]", to_path.encode()), long(flags))
    if rc == -1:
        fail("move_mount", to_path or f"fd {to_dirfd}")
