"""Paths opened beneath a directory by file descriptor, never by their string.

A container (or a neighbour sharing a volume) can swap a directory for a
symlink at any moment, so a mount target or a subPath is resolved once,
into an O_PATH fd, and everything after uses that fd:

    open_beneath   a path below a directory: openat2(RESOLVE_BENEATH), or
                   the fd walk; a volume's subPath (open_source)
    open_in_root   a path as the container will see it: the image's
                   symlinks followed with the root as "/" (runc's securejoin)
    walk           the fd walk behind both: one O_NOFOLLOW open per component,
                   symlinks read from their own fd, missing parts made by *at()
    check_inside   what the kernel says an fd is (/proc/self/fd), inside the root?

`resolve_in_root` is the string form of open_in_root, for showing only.
minipod.rootfs.mounts mounts onto and from the fds these return.
"""

from __future__ import annotations

import errno
import os
import stat

from minipod.linux import mount


def open_source(source: str, sub_path: str | None = None) -> int:
    """An O_PATH fd of a bind mount's source: `source` (a path on the host
    minipod or the pod's author chose), or `sub_path` beneath it, opened with
    open_beneath (made if missing, as the kubelet does). Raises OSError."""
    fd = os.open(source, os.O_PATH | os.O_CLOEXEC)
    if not sub_path:
        return fd
    try:
        sub = open_beneath(fd, sub_path, create="dir")
        try:
            check_inside(sub, fd, f'subPath "{sub_path}"')
        except OSError:
            os.close(sub)
            raise
        return sub
    except OSError as e:
        if e.errno in (errno.EXDEV, errno.ELOOP):
            raise OSError(e.errno, f'subPath "{sub_path}" leads out of the volume {source} '
                          f"({e.strerror})", f"{source}/{sub_path}") from e
        raise
    finally:
        os.close(fd)


OPEN_FLAGS = os.O_PATH | os.O_CLOEXEC
BENEATH = mount.RESOLVE_BENEATH | mount.RESOLVE_NO_MAGICLINKS


def open_beneath(dir_fd: int, path: str, create: str | None = None) -> int:
    """An O_PATH fd of relative `path` below dir_fd, never of anything outside.

    openat2(RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS): a symlink is followed
    only while it stays below dir_fd (one in the volume pointing inside it
    works, as on a cluster, where the kubelet evaluates it and checks the
    result); an absolute one, or a `..` out, fails with EXDEV. The kernel
    enforces it on each step of the one lookup, so no swap can get between.
    With `create` ("dir" or "file"), what is missing is made one component
    at a time by the fd walk (kubelet's doSafeMakeDir); the walk is also
    the fallback before Linux 5.6 (ENOSYS)."""
    try:
        return mount.openat2(dir_fd, path, OPEN_FLAGS, BENEATH)
    except OSError as e:
        if e.errno == errno.ENOSYS or (e.errno == errno.ENOENT and create):
            return walk(dir_fd, path, in_root=False, create=create)
        raise


def open_in_root(root_fd: int, path: str, create: str | None = None) -> int:
    """An O_PATH fd of `path` as the container will see it, with root_fd as "/".

    The image's symlinks are followed as they will be inside: an absolute
    target restarts at the root and `..` stops there (runc's securejoin),
    but by a walk of fds, so nothing is looked up twice. Missing components
    are made (`create`: "dir" or "file" for the last one)."""
    return walk(root_fd, path, in_root=True, create=create)


MAX_SYMLINKS = 40   # the kernel's limit (ELOOP)


def walk(base_fd: int, path: str, in_root: bool, create: str | None = None) -> int:
    """Resolve `path` from base_fd one component at a time; an O_PATH fd.

    Each component is opened with O_PATH|O_NOFOLLOW relative to the fd of
    its parent, so a component swapped for a symlink is seen as that
    symlink, never followed behind our back. A symlink's target (read from
    its own fd) is then resolved by the same walk: in_root, an absolute one
    restarts at base_fd and `..` stops there; otherwise both fail with
    EXDEV (the path would leave base_fd). A missing component is made with
    mkdirat (or created O_EXCL as a file, for the last one when `create` is
    "file") relative to its parent's fd, then opened again the same way."""
    if path.startswith("/") and not in_root:
        raise OSError(errno.EXDEV, "an absolute path cannot stay beneath the directory", path)
    parts = [c for c in path.split("/") if c not in ("", ".")]
    stack = [os.dup(base_fd)]   # fds of the directories walked so far
    links = races = 0
    made = None   # the component just made, if it is the one being opened
    try:
        while parts:
            part = parts.pop(0)
            if part == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                elif not in_root:
                    raise OSError(errno.EXDEV, '".." leads out of the directory', path)
                continue
            try:
                fd = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=stack[-1])
            except FileNotFoundError:
                races += made == part   # made, and gone again before it was opened
                if not create or races > MAX_SYMLINKS:
                    raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), path) from None
                _make(stack[-1], part, create if not parts else "dir")
                made = part
                parts.insert(0, part)   # open what is there now, whatever made it
                continue
            made = None
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode):
                target = os.readlink("", dir_fd=fd)
                os.close(fd)
                links += 1
                if links > MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                if target.startswith("/"):
                    if not in_root:
                        raise OSError(errno.EXDEV, f"symlink to {target} leads out of the "
                                      "directory", path)
                    while len(stack) > 1:
                        os.close(stack.pop())
                parts = [c for c in target.split("/") if c not in ("", ".")] + parts
                continue
            if parts and not stat.S_ISDIR(mode):
                os.close(fd)
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
            stack.append(fd)
        return stack.pop() if len(stack) > 1 else os.dup(stack[0])
    finally:
        for fd in stack:
            os.close(fd)


def _make(parent_fd: int, name: str, kind: str) -> None:
    """Make `name` in the directory parent_fd names; someone else making it
    first is fine (the caller opens what is there). Neither call follows a
    symlink at `name`."""
    try:
        if kind == "dir":
            os.mkdir(name, 0o755, dir_fd=parent_fd)
        else:
            os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o644, dir_fd=parent_fd))
    except FileExistsError:
        pass


def check_inside(fd: int, root_fd: int, what: str) -> None:
    """Fail with EXDEV unless the object fd names is below root_fd's directory.

    What the kernel says the fd is (readlink /proc/self/fd/N, as runc's
    WithProcfd checks), not what was asked for: a belt to the walk's braces."""
    root = os.readlink(f"/proc/self/fd/{root_fd}")
    where = os.readlink(f"/proc/self/fd/{fd}")
    if where != root and not where.startswith(root.rstrip("/") + "/"):
        raise OSError(errno.EXDEV, f"{what} resolved to {where}, outside {root}", where)

def resolve_in_root(root: str, path: str) -> str:
    """The host path of `path` as seen from inside `root`, symlinks included
    (the string form of open_in_root, for showing; `apply` never mounts by it).

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
                raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)
