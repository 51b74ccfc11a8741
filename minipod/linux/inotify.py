"""inotify(7): an fd that becomes readable when a watched file changes.

The agent's output relay (runtime/agent) and `minipod logs -f` wait on it
instead of polling. By hand: `inotifywait -m FILE`.
"""
from __future__ import annotations

import errno
import os
import struct

from minipod.linux.clib import fail, ffi, lib

CDEF = """
    int inotify_init1(int flags);
    int inotify_add_watch(int fd, const char *pathname, uint32_t mask);
    int inotify_rm_watch(int fd, int wd);
"""

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


def inotify_init1(flags: int = IN_NONBLOCK | IN_CLOEXEC) -> int:
    """A new inotify instance (man 7 inotify): an fd that becomes readable
    when a watched file changes."""
    fd = lib.inotify_init1(flags)
    if fd == -1:
        fail("inotify_init1")
    return fd


def inotify_add_watch(fd: int, path: str, mask: int) -> int:
    """Watch `path` for the events in mask; returns the watch descriptor."""
    wd = lib.inotify_add_watch(fd, os.fsencode(path), mask)
    if wd == -1:
        fail("inotify_add_watch", path)
    return wd


def inotify_rm_watch(fd: int, wd: int) -> None:
    """Stop a watch (EINVAL: it is gone already, e.g. its file was removed)."""
    if lib.inotify_rm_watch(fd, wd) == -1 and ffi.errno != errno.EINVAL:
        fail(f"inotify_rm_watch {wd}")


def inotify_events(data: bytes) -> list[tuple[int, int]]:
    """(wd, mask) of each struct inotify_event in what read() returned."""
    out, pos = [], 0
    while pos + 16 <= len(data):
        wd, mask, _cookie, length = struct.unpack_from("iIII", data, pos)
        out.append((wd, mask))
        pos += 16 + length
    return out
