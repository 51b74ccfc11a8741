"""Container logs in the CRI format, the one the kubelet reads:

    2026-11-25T12:00:00.123456789Z stdout F Kubia server starting...
    TIMESTAMP                      STREAM TAG MESSAGE

TAG is F for a full line, P for a partial one (a line longer than
MAX_LINE is cut into P pieces ended by an F). One file per container
start: /var/log/minipod/pods/POD/CONTAINER/RESTART.log.

Rotation, like the kubelet's containerLogMaxSize/containerLogMaxFiles: a
file never grows past MINIPOD_LOG_MAX_SIZE bytes (default 10 MiB): before
a line that would not fit, it is renamed to RESTART.log.TIMESTAMP and a new
one is started. A follower notices the rename (the path names another
inode), reads the old file to its end, then moves on: no line is lost.

What is kept is what the kubelet keeps, the current instance and the
previous one (so `logs -p` works), and within one cap per container, not
per restart: at most MINIPOD_LOG_MAX_FILES files (default 5, at least 2)
across both, so at most MAX_SIZE x MAX_FILES bytes however often the
container restarts. On each start and each rotation, `prune` keeps, in
this order: the current file, the previous instance's last file, the
current instance's rotated files (newest first), the previous instance's;
older instances' files go.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

MAX_LINE = 16 * 1024
MAX_SIZE = int(os.environ.get("MINIPOD_LOG_MAX_SIZE", str(10 << 20)))
MAX_FILES = max(2, int(os.environ.get("MINIPOD_LOG_MAX_FILES", "5")))
# RESTART.log, or RESTART.log.TIMESTAMP once rotated
LOG_FILE = re.compile(r"(\d+)\.log(?:\.(.+))?")


def timestamp(ns: int | None = None) -> str:
    ns = time.time_ns() if ns is None else ns
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


class LogWriter:
    """Turns chunks of a stream into CRI lines appended to one file,
    RESTART.log in the container's log directory."""

    def __init__(self, path: Path):
        m = LOG_FILE.fullmatch(path.name)
        if m is None or m.group(2) is not None:
            raise ValueError(f"log file {path}: the name must be RESTART.log")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.instance = path, int(m.group(1))
        self.fd = self._open()
        self.size = os.fstat(self.fd).st_size
        self.partial = {"stdout": b"", "stderr": b""}
        prune(path.parent, self.instance)  # a new instance: older ones go

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)

    def _append(self, lines: list[bytes]) -> None:
        """Append whole lines; the file is rotated before a line that would
        take it past MAX_SIZE (only a line larger than MAX_SIZE on its own
        goes into a file by itself, whole)."""
        batch, room = [], MAX_SIZE - self.size
        for line in lines:
            if len(line) > room and (batch or self.size):
                self._write(batch)
                batch = []
                self.rotate()
                room = MAX_SIZE
            batch.append(line)
            room -= len(line)
        self._write(batch)

    def _write(self, batch: list[bytes]) -> None:
        if batch:
            data = b"".join(batch)
            os.write(self.fd, data)
            self.size += len(data)

    def rotate(self) -> None:
        """Rename the full file aside, start a new one, drop what is over the cap."""
        ns = time.time_ns()  # one reading: seconds and nanoseconds of the same instant
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}"
        os.rename(self.path, f"{self.path}.{stamp}")
        os.close(self.fd)
        self.fd = self._open()
        self.size = 0
        prune(self.path.parent, self.instance)

    def write(self, stream: str, data: bytes) -> None:
        buf = self.partial[stream] + data
        prefix = b"%s %s " % (timestamp().encode(), stream.encode())
        out = []
        *lines, rest = buf.split(b"\n")
        for line in lines:
            while len(line) > MAX_LINE:
                out.append(prefix + b"P " + line[:MAX_LINE] + b"\n")
                line = line[MAX_LINE:]
            out.append(prefix + b"F " + line + b"\n")
        while len(rest) >= MAX_LINE:
            out.append(prefix + b"P " + rest[:MAX_LINE] + b"\n")
            rest = rest[MAX_LINE:]
        self.partial[stream] = rest
        if out:
            self._append(out)

    def flush(self) -> None:
        """At the container's end: an unterminated last line is still a line."""
        for stream, rest in self.partial.items():
            if rest:
                self._append([b"%s %s F %s\n" % (timestamp().encode(), stream.encode(), rest)])
                self.partial[stream] = b""

    def close(self) -> None:
        self.flush()
        os.close(self.fd)


def prune(directory: Path, current: int) -> list[str]:
    """Remove the log files of one container that are not kept (see the
    module docstring); returns the names removed. `current` is the
    restart number of the instance writing now."""
    rotated: dict[int, list[str]] = {current: [], current - 1: []}
    others = []
    for name in os.listdir(directory):
        m = LOG_FILE.fullmatch(name)
        if m is None:
            continue
        n = int(m.group(1))
        if m.group(2) is not None and n in rotated:
            rotated[n].append(name)
        elif n not in (current, current - 1):
            others.append(name)
    previous = f"{current - 1}.log"
    order = [previous] if os.path.exists(directory / previous) else []
    order += sorted(rotated[current], reverse=True) + sorted(rotated[current - 1], reverse=True)
    removed = order[MAX_FILES - 1:] + others  # one place is the current file's
    for name in removed:
        try:
            os.unlink(directory / name)
        except FileNotFoundError:
            pass  # a reader of ours, or another writer, was first
    return removed


def parse_line(line: bytes) -> tuple[str, str, bool, bytes] | None:
    """(timestamp, stream, full, message) of one CRI line, None if malformed."""
    parts = line.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3:
        return None
    message = parts[3] if len(parts) == 4 else b""
    return parts[0].decode(), parts[1].decode(), parts[2] == b"F", message


def render(line: bytes, timestamps: bool = False) -> bytes:
    """What `logs` prints for one CRI line: the message (and a newline if full)."""
    parsed = parse_line(line)
    if parsed is None:
        return b""
    stamp, _stream, full, message = parsed
    out = message + (b"\n" if full else b"")
    return (stamp.encode() + b" " + out) if timestamps else out
