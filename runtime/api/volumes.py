"""The checks of a pod's volumes and of a container's volume mounts.

    check_volumes(spec, check) -> (valid volumes, every declared name)
    check_volume_mounts(container, path, check, names) -> [VolumeMount]

A volume has a name and exactly one source: emptyDir (medium, sizeLimit),
hostPath (an absolute path, a type), or one of configrefs.VOLUME_SOURCES
(configMap, secret, downwardAPI, projected: checked there). No source
means emptyDir, as SetDefaults_Volume has it. Other sources are errors,
not warnings: the pod could not work without them. A mount names a
declared volume, at an absolute mountPath unique in its container.
"""
from __future__ import annotations

import math
import posixpath

from minipod.runtime.api import configrefs
from minipod.runtime.api.checker import Checker, suggest
from minipod.runtime.api.fields import EMPTY_DIR_MEDIA, HOST_PATH_TYPES, NOT_IMPLEMENTED
from minipod.runtime.api.names import check_label, check_path
from minipod.runtime.api.podtypes import Volume, VolumeMount
from minipod.runtime.api.quantity import check_quantity


def check_volumes(spec: dict, check: Checker) -> tuple[list[Volume],
                                                         list[str]]:
    """spec.volumes: the valid volumes, and every name declared.

    A volume with an error still declares its name, so that its mounts are
    not reported a second time as naming no volume.
    """
    volumes: list[Volume] = []
    names: list[str] = []
    first: dict[str, tuple] = {}
    containers = [c.get("name") for key in ("containers", "initContainers")
                  for c in (spec.get(key) if isinstance(spec.get(key), list) else [])
                  if isinstance(c, dict)]
    for where, item in check.maps(spec, "volumes", ("spec",),
                                  "a volume (a map with a name and a source such as emptyDir)"):
        volume = _check_volume(item, where, check, containers)
        name = item.get("name")
        if isinstance(name, str):
            if name in first:
                check.error(where + ("name",), f'duplicate volume name '
                            f'"{name}" (first at {check.where(first[name])})')
            else:
                first[name] = where + ("name",)
                names.append(name)
        if volume is not None:
            volumes.append(volume)
    return volumes, names


def _check_volume(obj: dict, path: tuple, check: Checker,
                  containers: list | None = None) -> Volume | None:
    """Volume: a name and exactly one source: emptyDir, hostPath, or one
    of configrefs.VOLUME_SOURCES."""
    before = len(check.errors)
    suggested = check.fields(obj, path, "volume", warn=False)
    name = check.require(obj, "name", path, str, suggested)
    if name is not None:
        check_label(name, path + ("name",), check)
    sources = [key for key in obj if key in NOT_IMPLEMENTED["volume"]
               or key in ("emptyDir", "hostPath") + configrefs.VOLUME_SOURCES]
    for key in sources:
        if key in NOT_IMPLEMENTED["volume"]:
            check.error(path + (key,), f'volume source "{key}" is not '
                        "supported by minipod yet (the pod could not work "
                        "without it); minipod has emptyDir, hostPath, configMap, "
                        "secret, downwardAPI and projected")
    for key in sources[1:]:
        check.error(path + (key,), f'a volume has exactly one source, and '
                    f'"{sources[0]}" ({check.where(path + (sources[0],))}) '
                    "is set too; declare another volume for this one")
    # A volume without a source is an emptyDir (SetDefaults_Volume).
    kind = sources[0] if sources else "emptyDir"
    volume = Volume(name=name, kind=kind)
    if kind == "emptyDir":
        _check_empty_dir(obj, path, check, volume)
    elif kind == "hostPath":
        _check_host_path(obj, path, check, volume)
    elif kind in configrefs.VOLUME_SOURCES:
        volume.source = configrefs.check_volume_source(obj, kind, path, check,
                                                       containers or [])
    return volume if len(check.errors) == before else None


def _check_empty_dir(obj: dict, path: tuple, check: Checker,
                     volume: Volume) -> None:
    """emptyDir: medium "" (the node's disk) or "Memory" (tmpfs), sizeLimit."""
    where = path + ("emptyDir",)
    source = check.get(obj, "emptyDir", path, dict) or {}
    check.fields(source, where, "emptyDir")
    medium = check.get(source, "medium", where, str) or ""
    if medium.startswith("HugePages"):
        check.error(where + ("medium",), f'medium "{medium}" is not '
                    'supported by minipod yet; use "" (disk) or "Memory"')
    elif medium not in EMPTY_DIR_MEDIA:
        # Stricter than the API server: the kubelet fails such a pod at
        # mount time.
        message = (f'unsupported value "{medium}": must be "" (the node\'s '
                   'disk) or "Memory" (tmpfs, counted as the pod\'s memory)')
        if medium.lower() == "memory":
            message += '; values are case-sensitive: did you mean "Memory"?'
        check.error(where + ("medium",), message)
    volume.medium = medium
    size = check_quantity(source, "sizeLimit", where, check)
    if size:
        # Whole bytes, rounded up. A zero sizeLimit is no limit, as in the
        # kubelet (and tmpfs size=0 means "unlimited" to the kernel too).
        volume.size_limit = math.ceil(size)


def _check_host_path(obj: dict, path: tuple, check: Checker,
                     volume: Volume) -> None:
    """hostPath: an absolute path on the host, and its expected type."""
    where = path + ("hostPath",)
    source = check.get(obj, "hostPath", path, dict)
    if source is None:
        if obj.get("hostPath") is None:
            check.error(where, "needs a path, e.g. hostPath: {path: "
                        "/srv/data}")
        return
    suggested = check.fields(source, where, "hostPath")
    host_path = check.require(source, "path", where, str, suggested)
    if host_path is not None:
        # Absolute: stricter than the API server (which only refuses
        # ".."); a relative host path would depend on the agent's cwd.
        check_path(host_path, where + ("path",), check, absolute=True)
    volume.path = host_path
    volume.host_path_type = check.enum(source, "type", where,
                                       HOST_PATH_TYPES) or ""


def check_volume_mounts(obj: dict, path: tuple, check: Checker,
                         volume_names: list[str]) -> list[VolumeMount]:
    """Container volumeMounts: declared volumes, unique mount paths."""
    mounts: list[VolumeMount] = []
    first: dict[str, tuple] = {}
    for where, item in check.maps(obj, "volumeMounts", path,
                                  "a volume mount (a map with name and mountPath)"):
        suggested = check.fields(item, where, "volumeMount")
        name = check.require(item, "name", where, str, suggested)
        mount_path = check.require(item, "mountPath", where, str, suggested)
        read_only = check.get(item, "readOnly", where, bool)
        sub_path = check.get(item, "subPath", where, str) or None
        if name is not None and name not in volume_names:
            check.error(where + ("name",), _no_volume(name, volume_names))
        if mount_path is not None and check_path(
                mount_path, where + ("mountPath",), check, absolute=True):
            # "/data" and "/data/" are one mount point (the API server
            # compares the strings as written).
            key = posixpath.normpath(mount_path)
            if key in first:
                check.error(where + ("mountPath",), f'duplicate mountPath '
                            f'"{mount_path}" in this container (first at '
                            f"{check.where(first[key])})")
            else:
                first[key] = where + ("mountPath",)
        if sub_path is not None:
            check_path(sub_path, where + ("subPath",), check, absolute=False)
        mounts.append(VolumeMount(name=name, mount_path=mount_path,
                                  read_only=bool(read_only),
                                  sub_path=sub_path))
    return mounts


def _no_volume(name: str, declared: list[str]) -> str:
    """The message for a volume mount whose volume is not declared."""
    if not declared:
        return (f'no volume named "{name}": spec.volumes declares none; '
                f'add one, e.g. "volumes: [{{name: {name}, emptyDir: {{}}}}]"')
    listed = ", ".join(f'"{n}"' for n in declared)
    message = f'no volume named "{name}" in spec.volumes (it has {listed})'
    guess = suggest(name, declared)
    return message + (f'; did you mean "{guess}"?' if guess else "")
