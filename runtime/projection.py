"""The files of configMap, secret, downwardAPI and projected volumes, and
the kubelet's atomic writer that updates them while containers read.

A volume is a directory minipod owns on the host
(LIB/containers/POD_UID/volumes/NAME; a tmpfs when it holds a Secret, so
secret bytes never reach the disk, as the kubelet does), bind-mounted
read-only into each container that names it: no container can create,
replace or remove anything in it. Its layout is the kubelet's
(pkg/volume/util/atomic_writer.go):

    ..2026_12_02_03_04_05.123456789/   the files of one version, with their modes
    ..data -> ..2026_12_02_03_04_05.123456789
    KEY -> ..data/KEY                  one symlink per top-level name

An update writes a new timestamped directory, points a new `..data_tmp`
symlink at it and renames that over `..data` (rename(2) is atomic): a
reader that opens KEY follows ..data and sees the old version or the new
one, never a mix. Then top-level names no longer in the payload are
removed, and the old version's directory last. A container that mounted
one file by subPath holds that file's inode: it never sees an update (as
in Kubernetes).

`payload()` computes {relative path: (bytes, mode)} for one volume;
one function per projected source kind (SOURCES), so another source
(serviceAccountToken) is one more entry.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from minipod.runtime import configobjects
from minipod.runtime.api import configobject

KINDS = ("configMap", "secret", "downwardAPI", "projected")
DATA = "..data"


class NotReady(Exception):
    """A volume's object or key is missing (kubelet: FailedMount): the message."""


# ---------------------------------------------------------------------------
# What a volume holds

def _objects_files(paths, kind: str, namespace: str, ref: dict, default_mode: int,
                   out: dict) -> None:
    """configMap or secret keys as files: every key, or ref["items"]."""
    found = configobjects.read(paths, configobject.KINDS[kind], namespace, ref["name"])
    if found is None:
        if ref.get("optional"):
            return
        raise NotReady(f'{kind.lower()} "{ref["name"]}" not found')
    values = configobject.values(found)
    items = ref.get("items")
    if items is None:
        for key, value in values.items():
            out[key] = (value, default_mode)
        return
    for item in items:
        if item["key"] not in values:
            if ref.get("optional"):
                continue
            raise NotReady(f'configmap references non-existent config key: {item["key"]}'
                           if kind == "ConfigMap" else
                           f'references non-existent secret key: {item["key"]}')
        out[item["path"]] = (values[item["key"]],
                             default_mode if item.get("mode") is None else item["mode"])


def _downward_files(paths, record, pod, items: list, default_mode: int,
                    out: dict) -> None:
    for item in items:
        if "fieldRef" in item:
            value = configobjects.field_value(record, pod, item["fieldRef"]["fieldPath"])
        else:
            value = configobjects.resource_value(item["resourceFieldRef"], pod)
        out[item["path"]] = (value.encode(),
                             default_mode if item.get("mode") is None else item["mode"])


def _configmap_source(paths, record, pod, src: dict, mode: int, out: dict) -> None:
    _objects_files(paths, "ConfigMap", pod.namespace, src, mode, out)


def _secret_source(paths, record, pod, src: dict, mode: int, out: dict) -> None:
    _objects_files(paths, "Secret", pod.namespace, src, mode, out)


def _downward_source(paths, record, pod, src: dict, mode: int, out: dict) -> None:
    _downward_files(paths, record, pod, src["items"], mode, out)


# One function per projected source: (paths, pod record, Pod, the checked
# source, the volume's defaultMode, the payload to add to).
SOURCES = {
    "configMap": _configmap_source,
    "secret": _secret_source,
    "downwardAPI": _downward_source,
}


def payload(paths, record, pod, volume) -> dict[str, tuple[bytes, int]]:
    """{relative path: (bytes, mode)} of one volume now; NotReady if a
    required object or key is missing."""
    src, out = volume.source, {}
    mode = src["defaultMode"]
    if volume.kind == "configMap":
        _objects_files(paths, "ConfigMap", pod.namespace, src, mode, out)
    elif volume.kind == "secret":
        _objects_files(paths, "Secret", pod.namespace, src, mode, out)
    elif volume.kind == "downwardAPI":
        _downward_files(paths, record, pod, src["items"], mode, out)
    else:
        for source in src["sources"]:
            for kind, body in source.items():
                SOURCES[kind](paths, record, pod, body, mode, out)
    return out


def holds_secret(volume) -> bool:
    if volume.kind == "secret":
        return True
    return volume.kind == "projected" and any(
        "secret" in s for s in volume.source["sources"])


# ---------------------------------------------------------------------------
# The atomic writer

def _current(target: Path) -> str | None:
    try:
        return os.readlink(target / DATA)
    except (FileNotFoundError, OSError):
        return None


def _same(version: Path, files: dict[str, tuple[bytes, int]]) -> bool:
    """Does the version directory hold exactly these files and modes?"""
    found = {}
    for root, dirs, names in os.walk(version):
        for n in names:
            p = Path(root) / n
            found[str(p.relative_to(version))] = p
    if set(found) != set(files):
        return False
    for rel, (data, mode) in files.items():
        st = os.lstat(found[rel])
        if (st.st_mode & 0o7777) != mode or found[rel].read_bytes() != data:
            return False
    return True


def write(target: Path, files: dict[str, tuple[bytes, int]], gid: int | None = None) -> bool:
    """Make `target` show exactly `files` ({relative path: (bytes, mode)}),
    switching all at once; False if it showed them already.

    Paths were checked relative with no ".." (configrefs); nothing in
    target is reachable by a container for writing (read-only mounts)."""
    for rel in files:   # checked by configrefs already; a writer never trusts that alone
        if not rel or rel.startswith("/") or ".." in rel.split("/") or rel.startswith(".."):
            raise ValueError(f"refusing to write {rel!r}: not a path inside the volume")
    target.mkdir(parents=True, exist_ok=True)
    old = _current(target)
    if old is not None and _same(target / old, files):
        return False
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()) + f"{time.time_ns() % 10**9:09d}"
    version = target / stamp
    n = 0
    while version.exists():
        n += 1
        version = target / f"{stamp}{n}"
    version.mkdir(mode=0o755)
    for rel, (data, mode) in sorted(files.items()):
        p = version / rel
        p.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW,
                     0o600)
        try:
            os.write(fd, data)
            os.fchmod(fd, mode)     # exactly the mode asked for, umask or not
            if gid is not None:
                os.fchown(fd, -1, gid)
        finally:
            os.close(fd)
    tmp = target / (DATA + "_tmp")
    with_suppress_unlink(tmp)
    os.symlink(version.name, tmp)
    os.rename(tmp, target / DATA)        # the switch
    top = {rel.split("/")[0] for rel in files}
    for name in os.listdir(target):
        if name.startswith(".."):
            continue
        p = target / name
        if not os.path.islink(p) and os.path.isdir(p):
            # a directory a subPath of a key not there yet made: it goes, so
            # the key's link can be made (the subPath's mount keeps what it had)
            shutil.rmtree(p, ignore_errors=True)
        elif name not in top:
            with_suppress_unlink(p)
    for name in sorted(top):
        link = target / name
        if not os.path.lexists(link):
            os.symlink(f"{DATA}/{name}", link)
    for name in os.listdir(target):
        if name.startswith("..") and name not in (DATA, version.name) and \
                not name.startswith(DATA):
            shutil.rmtree(target / name, ignore_errors=True)
    return True


def with_suppress_unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
