"""Pod volumes on the host side: where each one lives, made before any container.

The only way files are shared between a pod's containers (each has its own
root): a directory on the host bind-mounted into every container that
names it in volumeMounts.

    emptyDir            /var/lib/minipod/containers/POD_UID/volumes/NAME  (a plain dir)
    emptyDir Memory     the same dir with a tmpfs on it:
                        mount -t tmpfs -o size=SIZE,mode=1777 tmpfs DIR
    hostPath            the host path itself, checked (or created) by its type
    configMap, secret,  the same dir as an emptyDir (a tmpfs, mode 0755, when it
    downwardAPI,        holds a Secret), its files written by minipod
    projected           (runtime/projection.py), mounted read-only

Then, in each container (rootfs/mounts.py): mount --rbind DIR[/SUBPATH]
ROOT/MOUNTPATH, and `mount -o remount,bind,ro` for readOnly; both ends
opened as fds first, a subPath never by its string (see bind_for).
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from minipod.linux import explain, mount
from minipod.rootfs import fdpath, mounts


class VolumeError(ValueError):
    """A volume cannot be prepared: the message names it and the fix."""


HOST_PATH_CHECKS = {
    "Directory": (stat.S_ISDIR, "a directory"),
    "File": (stat.S_ISREG, "a regular file"),
    "Socket": (stat.S_ISSOCK, "a unix socket"),
    "CharDevice": (stat.S_ISCHR, "a character device"),
    "BlockDevice": (stat.S_ISBLK, "a block device"),
}


def prepare(volumes, base: Path) -> dict[str, str]:
    """Make every volume ready; returns {name: host path}. On error, what
    was made is undone by `release` (the caller registers it first)."""
    paths = {}
    for v in volumes:
        if v.kind == "emptyDir":
            d = base / v.name
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o777)  # like the kubelet: any user of any container may write
            explain.step(f"mkdir -m 777 -p {d}", f'emptyDir "{v.name}": a directory the '
                                                 "pod's containers will share")
            if v.medium == "Memory":
                size = f",size={v.size_limit}" if v.size_limit else ""
                mount.mount("tmpfs", str(d), "tmpfs", mount.MS_NOSUID | mount.MS_NODEV,
                           f"mode=1777{size}")
                explain.step(f"mount -t tmpfs -o nosuid,nodev,mode=1777{size} tmpfs {d}",
                             "medium: Memory: the volume lives in RAM, capped at sizeLimit")
            paths[v.name] = str(d)
        elif v.kind == "hostPath":
            paths[v.name] = _host_path(v)
        else:
            paths[v.name] = _written(v, base / v.name)
    return paths


def _host_path(v) -> str:
    path, kind = v.path, v.host_path_type
    if kind == "DirectoryOrCreate":
        os.makedirs(path, 0o755, exist_ok=True)
    elif kind == "FileOrCreate":
        os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
    elif kind in HOST_PATH_CHECKS:
        test, what = HOST_PATH_CHECKS[kind]
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise VolumeError(f'volume "{v.name}": hostPath {path} does not exist '
                              f"(type {kind}); create it, or use type "
                              f"{'DirectoryOrCreate' if kind == 'Directory' else 'FileOrCreate'}"
                              if kind in ("Directory", "File") else
                              f'volume "{v.name}": hostPath {path} does not exist (type {kind})')
        if not test(st.st_mode):
            raise VolumeError(f'volume "{v.name}": hostPath {path} is not {what} (type {kind})')
    elif not os.path.exists(path):
        # type "": no check, as in Kubernetes; the bind mount needs something there
        os.makedirs(path, 0o755, exist_ok=True)
    return path


def _written(v, d: Path) -> str:
    """The directory of a volume whose files minipod writes (projection.py)."""
    from minipod.runtime import projection
    d.mkdir(mode=0o755, parents=True, exist_ok=True)
    os.chmod(d, 0o755)
    if projection.holds_secret(v) and not os.path.ismount(d):
        # like the kubelet: secret bytes live in memory, never on the node's disk
        mount.mount("tmpfs", str(d), "tmpfs", mount.MS_NOSUID | mount.MS_NODEV, "mode=0755")
        explain.step(f"mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs {d}",
                     f'{v.kind} volume "{v.name}": its secret files live in RAM')
    return str(d)


def release(base: Path) -> None:
    """Unmount memory-backed emptyDirs; the dirs go with the pod's dir."""
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        return
    for name in names:
        d = str(base / name)
        if os.path.ismount(d):
            mount.umount(d, mount.MNT_DETACH)


def bind_for(host_path: str, vm) -> mounts.BindMount:
    """The bind mount of one volumeMount: the volume, or vm.sub_path inside it.

    A subPath is checked here, before the container starts, so a bad one is
    a clear error: opened beneath the volume (fdpath.open_source: openat2
    RESOLVE_BENEATH, so a symlink is followed only while it stays inside,
    never to the host), missing directories made one at a time as the
    kubelet does. What it is (directory or file) is read from that fd. The
    container's init opens it again the same way when it mounts, and mounts
    from the fd it opened: a neighbour that swaps a directory for a symlink
    after this check gains nothing."""
    try:
        fd = fdpath.open_source(host_path, vm.sub_path)
    except OSError as e:
        what = f'volume "{vm.name}"' + (f' subPath "{vm.sub_path}"' if vm.sub_path else "")
        if e.errno in (errno.EXDEV, errno.ELOOP):   # the message says which subPath
            raise VolumeError(f'volume "{vm.name}": {e.strerror}') from e
        raise VolumeError(f"{what}: {e.strerror} ({e.filename or host_path}, "
                          f"errno {e.errno})") from e
    try:
        is_file = not stat.S_ISDIR(os.fstat(fd).st_mode)
    finally:
        os.close(fd)
    return mounts.BindMount(host_path, vm.mount_path, vm.read_only, is_file=is_file,
                            sub_path=vm.sub_path)
