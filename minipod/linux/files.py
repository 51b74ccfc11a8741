"""Files that survive a crash whole: atomic replace, flock, directory fsync.

    replace_file(path, data)   temp file beside path, fsync, rename(2) over
                               path: a reader sees the old file or the new one
    fsync_dir(path)            the names just made in a directory survive a crash
    lock(path) / locked(path)  flock(2) on a lock file: one holder at a time
    in_memory_only(path)       on tmpfs/ramfs (statfs(2)), where fsync buys nothing
    punch_hole(fd, off, len)   fallocate(2): give a file's blocks back, keep its size

By hand: `mv -T tmp file` is the rename; `flock FILE CMD` the lock;
`stat -f -c %T DIR` the file system type. cffi (statfs, fallocate) is
loaded on the first call that needs it, so a command that only writes a
file does not pay for it.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os

TMPFS_MAGIC = 0x01021994
RAMFS_MAGIC = 0x858458F6
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
_volatile: dict[int, bool] = {}     # st_dev -> lives in memory only
_clib = None


def replace_file(path, data: bytes, mode: int = 0o644, *, durable: bool | None = None,
                 tmp=None) -> None:
    """Write `data` to a temp file beside `path` (created with `mode`, so a
    secret is never readable by others, not even for a moment), fsync,
    rename over `path`: a reader sees the old file or the new one.

    durable: fsync or not; None (the default) skips it where the directory
    is on tmpfs (asked of the kernel with statfs, not assumed): there a crash
    of the kernel takes the file and every process it describes with it,
    and the rename alone keeps readers safe. tmp: the temp file's name, when
    the caller holds a lock that makes one fixed name safe (default: a name
    of its own, .NAME.PID.RANDOM.tmp). On a disk (MINIPOD_ROOT on ext4, or
    a /run that is not tmpfs, as in some containers) the fsync stays: a
    record that survives a reboot must not come back empty."""
    path = os.fspath(path)
    parent, name = os.path.split(path)
    if tmp is None:
        tmp = os.path.join(parent, f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        try:
            os.write(fd, data)
            if durable or (durable is None and not in_memory_only(parent or ".")):
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def fsync_dir(path) -> None:
    """fsync a directory so the names just created in it survive a crash
    (EINVAL: a file system that cannot fsync a directory; nothing to do)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
    finally:
        os.close(fd)


def lock(path, how: int = fcntl.LOCK_EX, mode: int = 0o600, what: str = "lock") -> int:
    """Open (creating it) and flock(2) the file `path`; the fd holds the lock.

    flock locks belong to the open file description, so the lock is gone
    the moment the fd is closed, even if the process is killed: no stale
    lock files to clean. With LOCK_NB, BlockingIOError when another holds
    it. Python retries EINTR (PEP 475). An error names `what` and the path."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, mode)
    except OSError as e:
        raise OSError(e.errno, f"cannot open {what}: {e.strerror}", str(path)) from None
    try:
        fcntl.flock(fd, how)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def locked(path, how: int = fcntl.LOCK_EX, mode: int = 0o600,
           what: str = "lock"):
    """lock() as a context manager: held for the block, released after."""
    fd = lock(path, how, mode, what)
    try:
        yield fd
    finally:
        os.close(fd)


CDEF = """
    int statfs(const char *path, void *buf);
    int fallocate(int fd, int mode, long offset, long len);
"""


def _c():
    """clib (cffi and the C library), on the first call that needs it."""
    global _clib
    if _clib is None:
        from minipod.linux import clib
        _clib = clib
    return _clib


def statfs_type(path: str) -> int:
    """f_type of the file system holding path (man 2 statfs: TMPFS_MAGIC …).
    The buffer is larger than struct statfs on every architecture; f_type
    is its first field, a long (__fsword_t)."""
    c = _c()
    buf = c.ffi.new("char[512]")
    if c.lib.statfs(os.fsencode(path), buf) == -1:
        c.fail("statfs", path)
    return c.ffi.cast("long *", buf)[0] & 0xFFFFFFFF


def in_memory_only(path) -> bool:
    """Is path on tmpfs or ramfs, whose files die with the kernel? There an
    fsync buys nothing: after a crash neither the file nor the processes it
    describes exist. Asked of the kernel (statfs), once per file system."""
    dev = os.stat(path).st_dev
    known = _volatile.get(dev)
    if known is None:
        known = _volatile[dev] = statfs_type(os.fspath(path)) in (TMPFS_MAGIC, RAMFS_MAGIC)
    return known


def punch_hole(fd: int, offset: int, length: int, what: str | None = None) -> None:
    """fallocate(FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE): give the blocks
    of [offset, offset+length) back to the file system; the file keeps its
    size and reads zeros there (man 2 fallocate)."""
    c = _c()
    if c.retry(lambda: c.lib.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                       offset, length)) == -1:
        c.fail(f"fallocate(PUNCH_HOLE, {offset}, {length})", what)
