"""Pod volumes on the host side: where each one lives, made before any container.

The only way files are shared between a pod's containers (each has its own
root): a directory on the host bind-mounted into every container that
names it in volumeMounts.

    emptyDir            /var/lib/minipod/containers/POD_UID/volumes/NAME  (a plain dir)
    emptyDir Memory     the same dir with a tmpfs on it:
                        mount -t tmpfs -o size=SIZE,mode=1777 tmpfs DIR
    hostPath            the host path itself, checked (or created) by its type

Then, in each container (rootfs/mounts.py): mount --rbind DIR[/SUBPATH]
ROOT/MOUNTPATH, and `mount -o remount,bind,ro` for readOnly.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from minipod import explain, libc


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
                libc.mount("tmpfs", str(d), "tmpfs", libc.MS_NOSUID | libc.MS_NODEV,
                           f"mode=1777{size}")
                explain.step(f"mount -t tmpfs -o nosuid,nodev,mode=1777{size} tmpfs {d}",
                             "medium: Memory: the volume lives in RAM, capped at sizeLimit")
            paths[v.name] = str(d)
        else:
            paths[v.name] = _host_path(v)
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


def release(base: Path) -> None:
    """Unmount memory-backed emptyDirs; the dirs go with the pod's dir."""
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        return
    for name in names:
        d = str(base / name)
        if os.path.ismount(d):
            libc.umount(d, libc.MNT_DETACH)


def source_for(host_path: str, sub_path: str | None, volume: str) -> str:
    """The host path a volumeMount binds: the volume, or a subPath inside it.

    A subPath is resolved with symlinks followed but never out of the
    volume (a symlink planted by a container must not reach the host)."""
    if not sub_path:
        return host_path
    root = os.path.realpath(host_path)
    target = os.path.realpath(os.path.join(root, sub_path))
    if target != root and not target.startswith(root + os.sep):
        raise VolumeError(f'volume "{volume}": subPath "{sub_path}" leads out of the volume '
                          f"(to {target})")
    if not os.path.exists(target):
        os.makedirs(target, 0o755, exist_ok=True)  # the kubelet creates it too
    return target
