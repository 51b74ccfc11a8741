"""One JSON record per pod, written atomically, read without locks.

The agent is the only writer. A record is replaced whole: written to a temp
file in the same directory, fsynced (unless on tmpfs: replace_file), then renamed over the old one
(rename(2) is atomic), so a reader (`minipod get`) sees the old record or
the new one, never half of one. Pids are stored with their start time
(field 22 of /proc/PID/stat) so a reused pid cannot fool a reader.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from minipod.runtime.api.record import SCHEMA_VERSION, PodRecord, RecordError

RECORD = "pod.json"


class StateError(Exception):
    """A state file that cannot be read: reported with its path, never dropped."""


def write(pod_dir: Path, record: PodRecord | dict) -> None:
    """Replace the pod's record (a PodRecord, or the JSON object of one); a
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
    replace_file(path, data)
    if len(_written) > 512:      # pods come and go: keep this small
        _written.clear()
    _written[path] = (data, os.stat(path).st_ino)


_written: dict[Path, tuple[bytes, int]] = {}   # what write() left at each path


def replace_file(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to a temp file beside `path` (created with `mode`),
    fsync, rename over `path`: a reader sees the old file or the new one.

    The fsync is skipped where the directory is on tmpfs (RUN is /run, a
    tmpfs on every systemd machine; asked of the kernel with statfs, not
    assumed): there a crash of the kernel takes the file and every process
    it describes with it, and the rename alone keeps readers safe. On a
    disk (MINIPOD_ROOT on ext4, or a /run that is not tmpfs, as in some
    containers) the fsync stays: a record that survives a reboot must not
    come back empty, or the next agent could not read what it left."""
    from minipod import libc
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
        if not libc.in_memory_only(path.parent):
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read(pod_dir: Path) -> dict:
    """The pod's record as stored (a JSON object of this schema version);
    FileNotFoundError if there is none, StateError if it cannot be read.
    Readers use read_record: the same, typed."""
    path = pod_dir / RECORD
    try:
        record = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as e:
        raise StateError(f"cannot read pod state {path}: {e}") from None
    if not isinstance(record, dict) or record.get("version") != SCHEMA_VERSION:
        raise StateError(f"cannot read pod state {path}: schema version "
                         f"{record.get('version') if isinstance(record, dict) else '?'}, "
                         f"this minipod reads version {SCHEMA_VERSION}")
    return record


def read_record(pod_dir: Path) -> PodRecord:
    """The pod's record, typed (read, then PodRecord.from_dict); a record of
    the wrong shape is a StateError that names the file and the key."""
    record = read(pod_dir)
    try:
        return PodRecord.from_dict(record)
    except RecordError as e:
        raise StateError(f"cannot read pod state {pod_dir / RECORD}: {e}") from None


def read_records(pods_dir: Path) -> tuple[list[PodRecord], list[str]]:
    """Every pod record (typed), sorted by name, and the errors of unreadable ones."""
    return _read_each(pods_dir, read_record)


def read_all(pods_dir: Path) -> tuple[list[dict], list[str]]:
    """read_records, as stored JSON objects (for a caller that still holds dicts)."""
    return _read_each(pods_dir, read)


def _read_each(pods_dir: Path, reader) -> tuple[list, list[str]]:
    records, errors = [], []
    try:
        names = sorted(os.listdir(pods_dir))
    except FileNotFoundError:
        return [], []
    for name in names:
        try:
            records.append(reader(pods_dir / name))
        except FileNotFoundError:
            continue  # a pod being created or removed right now
        except StateError as e:
            errors.append(str(e))
    return records, errors


def proc_start_time(pid: int) -> int | None:
    """Start time of pid in clock ticks since boot, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm (field 2) may hold spaces and parens: split after the last ')'.
    fields = stat[stat.rindex(b")") + 2:].split()
    if fields[0] == b"Z":
        return None  # a zombie has ended: only its exit status is left
    return int(fields[19])


def alive(pid: int | None, start_time: int | None) -> bool:
    """Is pid still the process we started (same start time)?"""
    return bool(pid) and proc_start_time(pid) == start_time
