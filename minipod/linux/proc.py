"""Readers of /proc/PID/* (man 5 proc): what the kernel says about a process.

    start_time(pid)    field 22 of /proc/PID/stat; None once it is gone
    alive(pid, start)  still the process we started (a pid can be reused)
    ns_inode(pid, ns)  the identity of one of its namespaces (`ls -i`)
    status(pid)        /proc/PID/status as {"Uid": ["0", "0", ...], ...}
    comm(pid)          its command name (what `ps -o comm` prints)
    cgroup_paths(pid)  the cgroup of each line of /proc/PID/cgroup
    mountinfo(pid)     the mounts its mount namespace has, parsed

pid may be an int, a string, or "self". A reader never trusts what a
container could write (its environ, its argv) for anything but display.
"""
from __future__ import annotations

import os
import re
from collections import namedtuple


def start_time(pid: int) -> int | None:
    """Start time of pid in clock ticks since boot, or None if it is gone
    (or a zombie: it has ended, only its exit status is left)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm (field 2) may hold spaces and parens: split after the last ')'.
    fields = stat[stat.rindex(b")") + 2:].split()
    if fields[0] == b"Z":
        return None
    return int(fields[19])


def alive(pid: int | None, start: int | None) -> bool:
    """Is pid still the process we started (same start time)?"""
    return bool(pid) and start_time(pid) == start


def ns_inode(pid: int | str, ns: str) -> int | None:
    """The inode of /proc/PID/ns/NS, which names the namespace; None if the
    process is gone (or hides it: a non-dumpable process of another user)."""
    try:
        return os.stat(f"/proc/{pid}/ns/{ns}").st_ino
    except OSError:
        return None


def status(pid: int | str) -> dict[str, list[str]]:
    """/proc/PID/status, each line's fields after its "Key:" (Uid: real,
    effective, saved, fs; NSpid: the pid in each nested PID namespace)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.split()
    return out


def comm(pid: int | str) -> str | None:
    """The process's command name (man 5 proc, /proc/PID/comm); None if gone."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def cgroup_paths(pid: int | str) -> list[str]:
    """The cgroups a process is in, one path per hierarchy line of
    /proc/PID/cgroup ("0::/minipod-1a2b3c4d/pod<uid>/web" on v2, one line
    per controller on v1), each once; [] if the process is gone."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            text = f.read()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and parts[2] not in out:
            out.append(parts[2])
    return out


# One line of /proc/PID/mountinfo (man 5 proc_pid_mountinfo): root (field 4,
# the part of the file system mounted here), mount_point (field 5; both
# unescaped: \\040 is a space), then after the " - " separator fstype, source
# and super_options ("lowerdir=…,upperdir=…" for an overlay). A namedtuple:
# the CLI imports this module, and dataclasses cost every command.
Mount = namedtuple("Mount", "root mount_point fstype source super_options")


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mountinfo(pid: int | str = "self") -> list[Mount]:
    """The mounts of pid's mount namespace, in the kernel's order; OSError
    if it is gone."""
    out = []
    with open(f"/proc/{pid}/mountinfo") as f:
        for line in f:
            head, sep, tail = line.rstrip("\n").partition(" - ")
            fields, rest = head.split(" "), tail.split(" ")
            if not sep or len(fields) < 5 or len(rest) < 3:
                continue
            out.append(Mount(_unescape(fields[3]), _unescape(fields[4]), rest[0],
                             _unescape(rest[1]), rest[2]))
    return out
