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

# pivot_root predates the unified syscall table: its number differs per
# architecture. An unknown one is said plainly at the call, never guessed.
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203,
                   "s390x": 217, "i686": 217, "armv7l": 218}.get(os.uname().machine)


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
    if _SYS_PIVOT_ROOT is None:
        raise OSError(_errno.ENOSYS, f"pivot_root: minipod does not know its syscall number "
                      f"on {os.uname().machine}", new_root)
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

# ---- close_range(2): no fd of the caller reaches a container ---------------

import resource as _resource  # here, not in close_fds: it runs after a setns(mnt)

_SYS_CLOSE_RANGE = 436           # the same number on x86_64 and aarch64


def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    """Close every fd from first to last, inclusive (man 2 close_range,
    Linux 5.9; flags 0, or CLOSE_RANGE_CLOEXEC = 4 to only mark them).

    One system call, whatever the fds are: no reading of /proc/self/fd,
    which a container could have mounted over."""
    rc = _retry(lambda: _lib.syscall(_ffi.cast("long", _SYS_CLOSE_RANGE),
                                     _ffi.cast("unsigned int", first),
                                     _ffi.cast("unsigned int", last),
                                     _ffi.cast("unsigned int", flags)))
    if rc == -1:
        _raise(f"close_range({first}, {last:#x}, {flags})")


def close_fds(keep=()) -> None:
    """Close every fd above 2 except those in `keep` (runc closes all but
    its sync pipe the same way before exec, libcontainer/utils CloseExecFrom).

    A kernel without close_range falls back to os.closerange up to the
    highest fd the process may hold (RLIMIT_NOFILE's hard limit)."""
    first = 3
    for fd in sorted(set(k for k in keep if k > 2)) + [None]:
        last = 0xFFFFFFFF if fd is None else fd - 1
        if last >= first:
            try:
                close_range(first, last)
            except OSError as e:
                if e.errno not in (_errno.ENOSYS, _errno.EINVAL):
                    raise
                hard = _resource.getrlimit(_resource.RLIMIT_NOFILE)[1]
                top = 1 << 20 if hard == _resource.RLIM_INFINITY else hard
                os.closerange(first, min(last, top) + 1)
        if fd is not None:
            first = fd + 1

# ---- inotify(7) and fallocate(2): the agent's output relay (runtime/agent/agent.py) -------

_ffi_io = cffi.FFI()
_ffi_io.cdef(
    """
    int inotify_init1(int flags);
    int inotify_add_watch(int fd, const char *pathname, uint32_t mask);
    int inotify_rm_watch(int fd, int wd);
    int fallocate(int fd, int mode, long offset, long len);
    """
)
_lib_io = _ffi_io.dlopen(None)

IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02


def _raise_io(step: str, obj: str | None = None) -> None:
    err = _ffi_io.errno
    raise OSError(err, f"{step}: {os.strerror(err)}", obj)


def inotify_init1(flags: int = IN_NONBLOCK | IN_CLOEXEC) -> int:
    """A new inotify instance (man 7 inotify): an fd that becomes readable
    when a watched file changes."""
    fd = _lib_io.inotify_init1(flags)
    if fd == -1:
        _raise_io("inotify_init1")
    return fd


def inotify_add_watch(fd: int, path: str, mask: int) -> int:
    """Watch `path` for the events in mask; returns the watch descriptor."""
    wd = _lib_io.inotify_add_watch(fd, os.fsencode(path), mask)
    if wd == -1:
        _raise_io("inotify_add_watch", path)
    return wd


def inotify_rm_watch(fd: int, wd: int) -> None:
    """Stop a watch (EINVAL: it is gone already, e.g. its file was removed)."""
    if _lib_io.inotify_rm_watch(fd, wd) == -1 and _ffi_io.errno != _errno.EINVAL:
        _raise_io(f"inotify_rm_watch {wd}")


def inotify_events(data: bytes) -> list[tuple[int, int]]:
    """(wd, mask) of each struct inotify_event in what read() returned."""
    import struct
    out, pos = [], 0
    while pos + 16 <= len(data):
        wd, mask, _cookie, length = struct.unpack_from("iIII", data, pos)
        out.append((wd, mask))
        pos += 16 + length
    return out


def punch_hole(fd: int, offset: int, length: int, what: str | None = None) -> None:
    """fallocate(FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE): give the blocks
    of [offset, offset+length) back to the file system; the file keeps its
    size and reads zeros there (man 2 fallocate)."""
    if _retry_io(lambda: _lib_io.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                           offset, length)) == -1:
        _raise_io(f"fallocate(PUNCH_HOLE, {offset}, {length})", what)


def _retry_io(call):
    while True:
        rc = call()
        if rc != -1 or _ffi_io.errno != _errno.EINTR:
            return rc


# ---- statfs(2): is a file's content lost with the kernel anyway? -------------------

_ffi_fs = cffi.FFI()
_ffi_fs.cdef("int statfs(const char *path, void *buf);")
_lib_fs = _ffi_fs.dlopen(None)
TMPFS_MAGIC = 0x01021994
RAMFS_MAGIC = 0x858458F6
_volatile: dict[int, bool] = {}     # st_dev -> lives in memory only


def statfs_type(path: str) -> int:
    """f_type of the file system holding path (man 2 statfs: TMPFS_MAGIC …).
    The buffer is larger than struct statfs on every architecture; f_type
    is its first field, a long (__fsword_t)."""
    buf = _ffi_fs.new("char[512]")
    if _lib_fs.statfs(os.fsencode(path), buf) == -1:
        err = _ffi_fs.errno
        raise OSError(err, f"statfs: {os.strerror(err)}", path)
    return _ffi_fs.cast("long *", buf)[0] & 0xFFFFFFFF


def in_memory_only(path) -> bool:
    """Is path on tmpfs or ramfs, whose files die with the kernel? There an
    fsync buys nothing: after a crash neither the file nor the processes it
    describes exist. Asked of the kernel (statfs), once per file system."""
    dev = os.stat(path).st_dev
    known = _volatile.get(dev)
    if known is None:
        known = _volatile[dev] = statfs_type(os.fspath(path)) in (TMPFS_MAGIC, RAMFS_MAGIC)
    return known
