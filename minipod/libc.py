"""The few Linux syscalls Python 3.11 lacks, through cffi in ABI mode.

No compiler is needed: cffi opens the C library already loaded and calls
its wrappers. Each function raises OSError(errno, strerror, object) with the
step in the message, so callers can catch FileNotFoundError and a user reads
what failed, on what, and why.

    unshare(2)      unshare(flags)
    setns(2)        setns(fd, nstype)
    mount(2)        mount(source, target, fstype, flags, data)
    umount2(2)      umount(target, flags)
    pivot_root(2)   pivot_root(new_root, put_old)   (no glibc wrapper: syscall)
    mknod(2)        os.mknod exists; not needed here
"""
from __future__ import annotations

import errno as _errno
import os

import cffi

_ffi = cffi.FFI()
_ffi.cdef(
    """
    int unshare(int flags);
    int setns(int fd, int nstype);
    int mount(const char *source, const char *target, const char *fstype,
              unsigned long flags, const void *data);
    int umount2(const char *target, int flags);
    long syscall(long number, ...);
    """
)
_lib = _ffi.dlopen(None)

# <linux/sched.h>
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

NAMESPACE_FLAGS = {
    "mnt": CLONE_NEWNS, "uts": CLONE_NEWUTS, "ipc": CLONE_NEWIPC,
    "pid": CLONE_NEWPID, "net": CLONE_NEWNET, "cgroup": CLONE_NEWCGROUP,
    "user": CLONE_NEWUSER,
}

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

_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(os.uname().machine, 155)


def mount_flag_names(flags: int) -> str:
    """`MS_BIND|MS_REC` for 0x5000: how runc prints mount flags in errors."""
    names = [name for bit, name in _MS_NAMES if flags & bit]
    return "|".join(names) or "0"


def _raise(step: str, obj: str | None = None) -> None:
    err = _ffi.errno
    raise OSError(err, f"{step}: {os.strerror(err)}", obj)


def _retry(call):
    """Call until it does not fail with EINTR (man 7 signal)."""
    while True:
        rc = call()
        if rc != -1 or _ffi.errno != _errno.EINTR:
            return rc


def unshare(flags: int) -> None:
    """Move the calling process into new namespaces (man 2 unshare).

    CLONE_NEWPID does not move the caller: its next child becomes PID 1 of
    the new namespace. Only safe in a single-threaded process."""
    if _retry(lambda: _lib.unshare(flags)) == -1:
        _raise(f"unshare({_ns_names(flags)})")


def setns(fd: int, nstype: int = 0, what: str | None = None) -> None:
    """Join the namespace that fd (an open /proc/PID/ns/X or pinned file) names."""
    if _retry(lambda: _lib.setns(fd, nstype)) == -1:
        _raise(f"setns({_ns_names(nstype) or 'any'})", what)


def mount(source: str | None, target: str, fstype: str | None = None,
          flags: int = 0, data: str | None = None) -> None:
    """mount(2); the error names source, target, fstype and flags by name."""
    src = source.encode() if source is not None else _ffi.NULL
    fs = fstype.encode() if fstype is not None else _ffi.NULL
    dat = data.encode() if data is not None else _ffi.NULL
    if _retry(lambda: _lib.mount(src, target.encode(), fs, flags, dat)) == -1:
        _raise(f"mount {source or 'none'} type {fstype or '-'} "
               f"flags {mount_flag_names(flags)}"
               + (f" data {data}" if data else ""), target)


def umount(target: str, flags: int = 0) -> None:
    """umount2(2); MNT_DETACH for a lazy unmount of a busy mount."""
    if _retry(lambda: _lib.umount2(target.encode(), flags)) == -1:
        _raise("umount", target)


def pivot_root(new_root: str, put_old: str) -> None:
    """Make new_root the root of this mount namespace (man 2 pivot_root).

    Kernel rules that bite: new_root must be a mount point, put_old must be
    under new_root, and neither may be on a shared mount (make / private
    first). pivot_root(".", ".") stacks the old root on the new one, so it
    can be unmounted from "/" without a directory for it (runc does this)."""
    rc = _retry(lambda: _lib.syscall(_ffi.cast("long", _SYS_PIVOT_ROOT),
                                     _ffi.new("char[]", new_root.encode()),
                                     _ffi.new("char[]", put_old.encode())))
    if rc == -1:
        _raise("pivot_root", new_root)


def _ns_names(flags: int) -> str:
    return "|".join(("CLONE_NEWNS" if n == "mnt" else f"CLONE_NEW{n.upper()}")
                    for n, bit in NAMESPACE_FLAGS.items() if flags & bit)


# ---- Check an object, then use that same object: openat2, open_tree, move_mount ----
#
# A path a container can change (anything in a volume it shares) must not be
# checked by its string and then used by its string again: the container can
# swap a directory for a symlink in between (CVE-2017-1002101, CVE-2021-25741).
# These calls resolve a path once, under rules the kernel enforces on every
# step, and hand back an fd; the mount is then made from and onto fds.

_ffi.cdef(
    """
    struct open_how { uint64_t flags; uint64_t mode; uint64_t resolve; };
    """
)

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

# Syscalls added after 4.20 have the same number on every architecture.
_SYS_OPEN_TREE, _SYS_MOVE_MOUNT, _SYS_OPENAT2 = 428, 429, 437


def _long(value: int):
    return _ffi.cast("long", value)


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2): open `path` relative to dirfd under the RESOLVE_* rules; an fd.

    The rules hold for every component, checked by the kernel during this
    one lookup, so a rename or symlink swap cannot slip between check and
    use. Fails with EXDEV when the path would leave dirfd (RESOLVE_BENEATH),
    ELOOP on a symlink (RESOLVE_NO_SYMLINKS), EAGAIN when a concurrent rename
    raced a ".." (retried here), ENOSYS before Linux 5.6."""
    how = _ffi.new("struct open_how *", {"flags": flags, "mode": mode, "resolve": resolve})
    cpath = _ffi.new("char[]", path.encode())
    for _ in range(16):
        fd = _retry(lambda: _lib.syscall(_long(_SYS_OPENAT2), _long(dirfd), cpath, how,
                                         _long(_ffi.sizeof("struct open_how"))))
        if fd != -1 or _ffi.errno != _errno.EAGAIN:
            break
    if fd == -1:
        names = "|".join(n for bit, n in _RESOLVE_NAMES if resolve & bit) or "0"
        _raise(f"openat2 resolve {names}", path)
    return fd


def open_tree(dirfd: int, path: str, flags: int) -> int:
    """open_tree(2): with OPEN_TREE_CLONE, a detached copy of the mount at
    dirfd/path (AT_RECURSIVE: with its submounts): a bind mount not yet
    attached anywhere, as an fd. Linux 5.2; ENOSYS before."""
    fd = _retry(lambda: _lib.syscall(_long(_SYS_OPEN_TREE), _long(dirfd),
                                     _ffi.new("char[]", path.encode()), _long(flags)))
    if fd == -1:
        _raise("open_tree", path or f"fd {dirfd}")
    return fd


def move_mount(from_dirfd: int, from_path: str, to_dirfd: int, to_path: str,
               flags: int) -> None:
    """move_mount(2): attach the mount from_dirfd/from_path at to_dirfd/to_path.

    With MOVE_MOUNT_F_EMPTY_PATH|MOVE_MOUNT_T_EMPTY_PATH both ends are the
    fds themselves (an open_tree fd onto an O_PATH fd of the mount point):
    no path is looked up at all. Linux 5.2."""
    rc = _retry(lambda: _lib.syscall(_long(_SYS_MOVE_MOUNT), _long(from_dirfd),
                                     _ffi.new("char[]", from_path.encode()), _long(to_dirfd),
                                     _ffi.new("char[]", to_path.encode()), _long(flags)))
    if rc == -1:
        _raise("move_mount", to_path or f"fd {to_dirfd}")


# ---- inotify: wake on a change instead of polling (logs -f) ----

_ffi.cdef(
    """
    int inotify_init1(int flags);
    int inotify_add_watch(int fd, const char *pathname, uint32_t mask);
    """
)

# <sys/inotify.h>
IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC


def inotify_init1(flags: int = IN_NONBLOCK | IN_CLOEXEC) -> int:
    """inotify_init1(2): a new inotify instance, as an fd to read events
    from (man 7 inotify). EMFILE when the user's instances are used up
    (/proc/sys/fs/inotify/max_user_instances)."""
    fd = _lib.inotify_init1(flags)
    if fd == -1:
        _raise("inotify_init1")
    return fd


def inotify_add_watch(fd: int, path: str, mask: int) -> int:
    """inotify_add_watch(2): report the IN_* events of `mask` on `path`
    (for a directory: on the entries in it too) to the instance fd; the
    watch descriptor. ENOSPC when the user's watches are used up."""
    wd = _lib.inotify_add_watch(fd, os.fsencode(path), mask)
    if wd == -1:
        _raise("inotify_add_watch", str(path))
    return wd
