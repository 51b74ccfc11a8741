"""The directories a pod owns, under this root's own dirs (ours by place):

    PodDirs        paths.pods/KEY: the state (pod.json), the pins' dir, the
                   /etc files; kinds "pod-dir" (removed) and "state" (an
                   unreadable pod.json: never removed, only reported)
    ContainerDirs  paths.containers/UID: upper and work dirs, the volumes
                   (emptyDirs, tmpfs for medium Memory)
    LogDirs        paths.pod_logs/KEY: the CRI log files

Each is removed by rm -rf after unmounting whatever is still mounted in
it; a missing dir is fine.
"""
from __future__ import annotations

import re
from pathlib import Path

from minipod.runtime.api.record import PodRecord
from minipod.runtime.owners.base import Keep, Listing, Node, Orphan, Owner, PodDir, rmtree, subdirs
from minipod.runtime.paths import Paths

_UID_IN_TEXT = re.compile(rb'"uid"\s*:\s*"([0-9a-f-]{36})"')


# ---- the pod's side: create_pod and teardown ----------------------------------------------

def remove_pod_dir(paths: Paths, key: str, ignore_errors: bool = False) -> None:
    rmtree(str(paths.pod_dir(key)), ignore_errors)


def remove_container_dir(paths: Paths, uid: str, ignore_errors: bool = False) -> None:
    rmtree(str(paths.containers / uid), ignore_errors)


def remove_log_dir(paths: Paths, key: str, ignore_errors: bool = False) -> None:
    rmtree(str(paths.pod_logs / key), ignore_errors)


def unmount_volumes(paths: Paths, uid: str) -> None:
    """Unmount the pod's memory-backed emptyDirs (volumes.release); the
    dirs go with the container dir."""
    from minipod.runtime import volumes
    volumes.release(paths.containers / uid / "volumes")


# ---- gc -----------------------------------------------------------------------------------

class PodDirs(Owner):
    kinds = ("pod-dir", "state")

    def scan(self, node: Node, listing: Listing) -> None:
        from minipod.runtime import state
        paths = node.paths
        for name in subdirs(paths.pods):
            d = paths.pod_dir(name)
            try:
                listing.pod_dirs.append(PodDir(name, record=state.read_record(d)))
            except FileNotFoundError:
                listing.pod_dirs.append(PodDir(name))
            except state.StateError as e:
                uid = _salvage_uid(d / state.RECORD)
                listing.pod_dirs.append(PodDir(name, record=PodRecord(uid=uid) if uid else None,
                                               error=str(e)))

    def orphans(self, paths: Paths, keep: Keep, listing: Listing) -> list[Orphan]:
        out = []
        for d in listing.pod_dirs:
            if d.name in keep.live:
                continue
            if d.error is not None:
                out.append(Orphan("state", str(paths.pod_dir(d.name)),
                                  f"kept, not removed: {d.error}; fix or remove it by hand",
                                  remove=False))
            elif d.record is not None:
                out.append(Orphan("pod-dir", str(paths.pod_dir(d.name)),
                                  "pod record the agent does not manage (half-created or "
                                  "half-deleted pod)"))
            else:
                out.append(Orphan("pod-dir", str(paths.pod_dir(d.name)),
                                  "pod dir without pod.json (killed before its first save, "
                                  "or during removal)"))
        return out

    def remove_orphan(self, node: Node, orphan: Orphan) -> None:
        from minipod.runtime.owners import pins
        pins.remove(node.paths, Path(orphan.name).name)
        rmtree(orphan.name)


class _Tree(Owner):
    """A dir tree of one pod: removed by rm -rf (what is mounted in it first)."""

    def remove_orphan(self, node: Node, orphan: Orphan) -> None:
        rmtree(orphan.name)


class ContainerDirs(_Tree):
    kinds = ("container-dir",)

    def scan(self, node: Node, listing: Listing) -> None:
        listing.container_dirs = subdirs(node.paths.containers)

    def orphans(self, paths: Paths, keep: Keep, listing: Listing) -> list[Orphan]:
        return [keep.by_uid("container-dir", str(paths.containers / uid),
                            f"container dirs of pod uid {uid}, which no live pod owns")
                for uid in sorted(listing.container_dirs) if uid not in keep.uids]


class LogDirs(_Tree):
    kinds = ("log-dir",)

    def scan(self, node: Node, listing: Listing) -> None:
        listing.log_dirs = subdirs(node.paths.pod_logs)

    def orphans(self, paths: Paths, keep: Keep, listing: Listing) -> list[Orphan]:
        return [Orphan("log-dir", str(paths.pod_logs / pod), f"logs of pod {pod}, which is gone")
                for pod in sorted(listing.log_dirs) if pod not in keep.names]


def _salvage_uid(path: Path) -> str | None:
    """The uid a damaged pod.json still shows (`"uid": "…"`), if any."""
    try:
        m = _UID_IN_TEXT.search(path.read_bytes())
    except OSError:
        return None
    return m.group(1).decode() if m else None
