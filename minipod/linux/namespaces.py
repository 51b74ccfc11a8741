"""unshare(2) and setns(2), which Python 3.11 lacks, and the CLONE_NEW* flags.

Only safe in a single-threaded process: minipod calls them in a freshly
forked child (fork.py, runtime/container.py). By hand: `unshare --net
--ipc --uts CMD`, `nsenter --net=/run/netns/NAME CMD`.
"""
from __future__ import annotations

from minipod.linux.clib import fail, lib, retry

CDEF = """
    int unshare(int flags);
    int setns(int fd, int nstype);
"""

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


def unshare(flags: int) -> None:
    """Move the calling process into new namespaces (man 2 unshare).

    CLONE_NEWPID does not move the caller: its next child becomes PID 1 of
    the new namespace. Only safe in a single-threaded process."""
    if retry(lambda: lib.unshare(flags)) == -1:
        fail(f"unshare({flag_names(flags)})")


def setns(fd: int, nstype: int = 0, what: str | None = None) -> None:
    """Join the namespace that fd (an open /proc/PID/ns/X or pinned file) names."""
    if retry(lambda: lib.setns(fd, nstype)) == -1:
        fail(f"setns({flag_names(nstype) or 'any'})", what)


def flag_names(flags: int) -> str:
    """`CLONE_NEWNET|CLONE_NEWUTS` for those bits of flags."""
    return "|".join(("CLONE_NEWNS" if n == "mnt" else f"CLONE_NEW{n.upper()}")
                    for n, bit in NAMESPACE_FLAGS.items() if flags & bit)
