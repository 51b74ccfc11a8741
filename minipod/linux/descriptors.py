"""close_range(2): no fd of the caller reaches a container.

Helpers that enter a container close every fd above 2 but the ones they
need before they exec or act (runc closes all but its sync pipe the same
way, libcontainer/utils CloseExecFrom).
"""
from __future__ import annotations

import errno
import os
import resource  # here, not in close_fds: it runs after a setns(mnt)

from minipod.linux.clib import fail, ffi, syscall


def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    """Close every fd from first to last, inclusive (man 2 close_range,
    Linux 5.9; flags 0, or CLOSE_RANGE_CLOEXEC = 4 to only mark them).

    One system call, whatever the fds are: no reading of /proc/self/fd,
    which a container could have mounted over."""
    rc = syscall("close_range", ffi.cast("unsigned int", first),
                 ffi.cast("unsigned int", last), ffi.cast("unsigned int", flags))
    if rc == -1:
        fail(f"close_range({first}, {last:#x}, {flags})")


def close_fds(keep=()) -> None:
    """Close every fd above 2 except those in `keep`.

    A kernel without close_range (or a machine whose number for it minipod
    does not know: ENOSYS) falls back to os.closerange up to the highest fd
    the process may hold (RLIMIT_NOFILE's hard limit)."""
    first = 3
    for fd in sorted(set(k for k in keep if k > 2)) + [None]:
        last = 0xFFFFFFFF if fd is None else fd - 1
        if last >= first:
            try:
                close_range(first, last)
            except OSError as e:
                if e.errno not in (errno.ENOSYS, errno.EINVAL):
                    raise
                hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
                top = 1 << 20 if hard == resource.RLIM_INFINITY else hard
                os.closerange(first, min(last, top) + 1)
        if fd is not None:
            first = fd + 1
