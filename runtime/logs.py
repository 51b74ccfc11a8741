"""Container logs in the CRI format, the one the kubelet reads:

    2026-11-25T12:00:00.123456789Z stdout F Kubia server starting...
    TIMESTAMP                      STREAM TAG MESSAGE

TAG is F for a full line, P for a partial one (a line longer than
MAX_LINE is cut into P pieces ended by an F). One file per container
start: /var/log/minipod/pods/POD/CONTAINER/RESTART.log.

Rotation, like the kubelet's containerLogMaxSize/containerLogMaxFiles: when
the file passes MINIPOD_LOG_MAX_SIZE bytes (default 10 MiB) it is renamed
to RESTART.log.TIMESTAMP and a new one is started; at most
MINIPOD_LOG_MAX_FILES files (default 5) are kept per container. A follower
notices the rename (the path names another inode), reads the old file to
its end, then moves on: no line is lost.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

MAX_LINE = 16 * 1024
MAX_SIZE = int(os.environ.get("MINIPOD_LOG_MAX_SIZE", str(10 << 20)))
MAX_FILES = max(1, int(os.environ.get("MINIPOD_LOG_MAX_FILES", "5")))


def timestamp(ns: int | None = None) -> str:
    ns = time.time_ns() if ns is None else ns
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


class LogWriter:
    """Turns chunks of a stream into CRI lines appended to one file."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fd = self._open()
        self.size = os.fstat(self.fd).st_size
        self.partial = {"stdout": b"", "stderr": b""}

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)

    def _append(self, data: bytes) -> None:
        os.write(self.fd, data)
        self.size += len(data)
        if self.size >= MAX_SIZE:
            self.rotate()

    def rotate(self) -> None:
        """Rename the full file aside, start a new one, drop the oldest."""
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f".{time.time_ns() % 10**9:09d}"
        os.rename(self.path, f"{self.path}.{stamp}")
        os.close(self.fd)
        self.fd = self._open()
        self.size = 0
        rotated = sorted(p for p in os.listdir(self.path.parent)
                         if p.startswith(self.path.name + "."))
        for old in rotated[:max(0, len(rotated) - (MAX_FILES - 1))]:
            os.unlink(self.path.parent / old)

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
            self._append(b"".join(out))

    def flush(self) -> None:
        """At the container's end: an unterminated last line is still a line."""
        for stream, rest in self.partial.items():
            if rest:
                self._append(b"%s %s F %s\n" % (timestamp().encode(), stream.encode(), rest))
                self.partial[stream] = b""

    def close(self) -> None:
        self.flush()
        os.close(self.fd)


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
