"""One JSON record per pod, written atomically, read without locks.

The agent is the only writer. A record is replaced whole: written to a temp
file in the same directory, fsynced (unless on tmpfs), then renamed over
the old one (rename(2) is atomic: minipod.linux.files.replace_file), so a
reader (`minipod get`) sees the old record or the new one, never half of
one. Pids are stored with their start time (field 22 of /proc/PID/stat,
minipod.linux.proc.start_time) so a reused pid cannot fool a reader.
"""
from __future__ import annotations

import json
import os

from minipod.runtime.api.record import SCHEMA_VERSION, ContainerState, PodRecord, RecordError

RECORD = "pod.json"


class StateError(Exception):
    """A state file that cannot be read: reported with its path, never dropped."""


def write(pod_dir, record: PodRecord | dict) -> None:
    """Replace the pod's record in pod_dir (a Path) with `record` (a
    PodRecord, or the JSON object of one); a
    record equal to the one this process wrote last, still in place (same
    inode), is not written again."""
    if isinstance(record, PodRecord):
        record = record.to_dict()
    record = dict(record, version=SCHEMA_VERSION)
    path = pod_dir / RECORD
    data = json.dumps(record, indent=1, sort_keys=True).encode()
    last = _written.get(path)
    if last is not None and last[0] == data:
        try:
            if os.stat(path).st_ino == last[1]:
                return
        except FileNotFoundError:
            pass
    from minipod.linux import files    # here: readers (`get`) never write
    files.replace_file(path, data)
    if len(_written) > 512:      # pods come and go: keep this small
        _written.clear()
    _written[path] = (data, os.stat(path).st_ino)


_written: dict = {}   # what write() left at each path: (data, inode)


def read(pod_dir) -> dict:
    """The record in pod_dir (a Path or a str) as stored (a JSON object of
    this schema version); FileNotFoundError if there is none, StateError if
    it cannot be read. Readers use read_record: the same, typed. Paths are
    joined as strings: `get` need not import pathlib."""
    path = os.path.join(pod_dir, RECORD)
    try:
        with open(path, "rb") as f:
            record = json.loads(f.read())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as e:
        raise StateError(f"cannot read pod state {path}: {e}") from None
    if not isinstance(record, dict) or record.get("version") != SCHEMA_VERSION:
        raise StateError(f"cannot read pod state {path}: schema version "
                         f"{record.get('version') if isinstance(record, dict) else '?'}, "
                         f"this minipod reads version {SCHEMA_VERSION}")
    return record


def read_record(pod_dir) -> PodRecord:
    """The pod's record, typed (read, then PodRecord.from_dict); a record of
    the wrong shape is a StateError that names the file and the key."""
    record = read(pod_dir)
    try:
        return PodRecord.from_dict(record)
    except RecordError as e:
        raise StateError(f"cannot read pod state {os.path.join(pod_dir, RECORD)}: {e}") from None


def read_records(pods_dir) -> tuple[list[PodRecord], list[str]]:
    """Every pod record (typed) in pods_dir (a Path or a str), sorted by
    name, and the errors of unreadable ones."""
    records, errors = [], []
    try:
        names = sorted(os.listdir(pods_dir))
    except FileNotFoundError:
        return [], []
    for name in names:
        try:
            records.append(read_record(os.path.join(pods_dir, name)))
        except FileNotFoundError:
            continue  # a pod being created or removed right now
        except StateError as e:
            errors.append(str(e))
    return records, errors


def refreshed(record: PodRecord) -> PodRecord:
    """The PodRecord with the kernel's word on its running containers: one
    whose process is gone (while the agent was away) is terminated, reason
    Unknown, its exit unknown. Readers that do not go through the agent
    (get, the API server when no agent runs) apply it, so a stale record
    never shows as running."""
    from minipod.linux import proc
    for cs in record.all_containers():
        if cs.state == ContainerState.RUNNING and not proc.alive(cs.pid, cs.pid_start):
            cs.state, cs.reason, cs.exit_code = ContainerState.TERMINATED, "Unknown", None
            cs.message = "the process is gone and the agent has not seen it end"
    return record
