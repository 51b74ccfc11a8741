"""A layer's root directory as an fd, and the path checks of every member.

A member name is cleaned lexically (`clean_member_path`: a leading "/" is
dropped, a ".." that climbs above the root is refused); its parent
directories are then walked one component at a time with
`openat(dirfd, part, O_NOFOLLOW|O_DIRECTORY)` from an fd of the root
(`Tree.dir_fd`), so a symlink already in the tree is never followed while
writing: the openat2(RESOLVE_BENEATH) idea done by hand. `Refused` says
why a member is refused; the unpacker (minipod.rootfs.unpack) turns it
into a LayerError naming the member.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

_DIR_FD_CACHE = 64         # open directory fds kept between members

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Refused(Exception):
    """This member is refused; the message is the reason (the unpacker adds the name)."""


class Missing(Refused):
    """A directory on the path does not exist (and may not be made)."""


def clean_member_path(name: str) -> tuple[str, ...]:
    """Split a member name into path components inside the layer root.

    "/etc/passwd" -> ("etc", "passwd") (absolute paths are contained);
    "a/./b/../c" -> ("a", "c"); "../x" raises Refused. () is the root.
    """
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise Refused("path leaves the layer root")
            parts.pop()
        else:
            parts.append(part)
    return tuple(parts)


class Tree:
    """The layer root as a directory fd, plus safe openat-style walking.

    Keeps recently used directory fds open (keyed by path) because
    consecutive members usually share directories. An fd dropped from the
    cache (too many, or its directory removed by `forget()`) is only
    closed by `release()`, between members: a number in use during one
    member is never closed and reused under it.
    """

    def __init__(self, root: Path):
        self.root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._fds: dict[tuple[str, ...], int] = {}   # in least-recently-used order
        self._retired: list[int] = []

    def release(self) -> None:
        """Close the fds dropped from the cache; call between members."""
        while self._retired:
            os.close(self._retired.pop())

    def close(self) -> None:
        self._retired.extend(self._fds.values())
        self._fds.clear()
        self.release()
        os.close(self.root_fd)

    def dir_fd(self, parts: tuple[str, ...], create: bool = True) -> int:
        """An fd of directory `parts`, walking with O_NOFOLLOW from the root.

        Missing directories are made (0755, like tar's implicit parents) when
        `create`; a symlink or non-directory on the way raises Refused.
        The fd belongs to the cache: do not close it.
        """
        if not parts:
            return self.root_fd
        fd = self._fds.pop(parts, None)
        if fd is not None:
            self._fds[parts] = fd       # most recently used goes last
            return fd
        parent = self.dir_fd(parts[:-1], create)
        name = parts[-1]
        try:
            fd = os.open(name, _O_DIR, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise Missing(f'"{"/".join(parts)}" does not exist in the layer') from None
            os.mkdir(name, 0o755, dir_fd=parent)
            fd = os.open(name, _O_DIR, dir_fd=parent)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
                kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"
                raise Refused(f'parent "{"/".join(parts)}" is {kind}; '
                               "refusing to write through it") from None
            raise
        if len(self._fds) >= _DIR_FD_CACHE:
            oldest = next(iter(self._fds))
            self._retired.append(self._fds.pop(oldest))
        self._fds[parts] = fd
        return fd

    def forget(self, parts: tuple[str, ...]) -> None:
        """Drop cached fds of `parts` and everything under it (being removed)."""
        n = len(parts)
        for key in [k for k in self._fds if k[:n] == parts]:
            self._retired.append(self._fds.pop(key))


def lstat_or_none(name: str, dir_fd: int) -> os.stat_result | None:
    """lstat of `name` in `dir_fd`, None if it does not exist."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None

