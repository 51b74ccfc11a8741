"""`minipod logs POD [-c C] [-f] [-p] [--tail N] [--since 5m] [--timestamps]
[--all-containers] [--prefix]`.

Reads the CRI log files the agent writes (no agent needed). With -f it
follows the file, moves on to the next file when the container restarts,
and stops when the container has ended for good or the pod is deleted.

Following wakes on the write, not on a timer: an inotify instance
(man 7 inotify) watches each container's log directory (a write to the
file, a rotation's rename, a new restart's file) and the pod's state
directory (the agent records a restart or the end; the directory goes when
the pod is deleted). Each round first empties the inotify queue, then reads
every file to its end, then sleeps on the queue: a change after the read
leaves an event in the queue, so none is slept through. Where inotify
cannot be had (the user's instances or watches are used up) it polls every
FOLLOW_POLL seconds, as before.
"""
from __future__ import annotations

import errno
import os
import re
import sys
import time

from minipod.runtime.api import podstatus
from minipod.runtime.cli.cmdutil import CommandError, add_namespace, namespace_of, pod_key_of

FOLLOW_POLL = 0.05  # seconds between looks at a followed file, without inotify
# With inotify, a look anyway this often: a change no watch sees (the pod
# deleted and made again under the same name) still ends the wait.
FOLLOW_SAFETY = 1.0


def register(sub) -> None:
    p = sub.add_parser("logs", help="print a container's logs",
                       description="Like `kubectl logs POD [-c CONTAINER] [-f]`.")
    p.add_argument("pod", metavar="POD")
    p.add_argument("container_arg", nargs="?", metavar="CONTAINER")
    p.add_argument("-c", "--container")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-p", "--previous", action="store_true",
                   help="the previous instance of the container (before its last restart)")
    p.add_argument("--tail", type=int, default=-1, metavar="N")
    p.add_argument("--since", metavar="DURATION", help="only lines newer than 5s, 2m, 3h")
    p.add_argument("--timestamps", action="store_true")
    p.add_argument("--all-containers", action="store_true")
    p.add_argument("--prefix", action="store_true", help="start lines with [pod/POD/CONTAINER]")
    add_namespace(p)
    p.set_defaults(func=run)


def parse_duration(text: str) -> float:
    """Go's duration syntax as kubectl takes it: 1h30m, 5m, 10s, 250ms."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise CommandError(f'invalid duration "{text}": use e.g. 10s, 5m, 1h30m', 2)
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)


def pick_containers(record, wanted: str | None, all_containers: bool) -> list:
    """The ContainerRecords of PodRecord `record` whose logs to show."""
    names = [c.name for c in record.containers]
    if all_containers:
        return [c for c in record.all_containers() if c.restart_count or c.state != "waiting"]
    if wanted is None:
        if len(names) == 1:
            return record.containers
        raise CommandError(f"a container name must be specified for pod {record.name}, "
                           f"choose one of: [{' '.join(names)}]")
    c = record.container(wanted)
    if c is None:
        raise CommandError(f"container {wanted} is not valid for pod {record.name}")
    return [c]


def _record(paths, key: str, namespace: str | None = None, name: str | None = None):
    """The PodRecord in the pod dir of KEY (with NAMESPACE and NAME: only if
    it is that pod's), or None."""
    from minipod.runtime import state
    from minipod.runtime.cli.cmdutil import read_pod
    try:
        return read_pod(paths, namespace, name) if name else state.read_record(paths.pod_dir(key))
    except FileNotFoundError:
        return None


class Stream:
    """One container's log, possibly followed across restarts. `pod` is the
    pod's key (runtime/paths.py pod_key); `pod_name`, its name for messages."""

    def __init__(self, paths, pod: str, cs, previous: bool, opts,
                 pod_name: str | None = None):
        from minipod.runtime.api.record import as_container
        cs = as_container(cs)
        self.paths, self.pod, self.name, self.opts = paths, pod, cs.name, opts
        key, pod = pod, pod_name or pod
        self.restart = cs.restart_count
        if previous:
            if self.restart == 0:
                raise CommandError(f'previous terminated container "{self.name}" in pod '
                                   f'"{pod}" not found')
            self.restart -= 1
        path = paths.log_path(key, self.name, self.restart)
        self.log_dir = path.parent
        try:
            self.f = open(path, "rb")
        except FileNotFoundError:
            if cs.state == "waiting" and self.restart == 0:
                raise CommandError(f'container "{self.name}" in pod "{pod}" is waiting to '
                                   f"start: {cs.reason or 'ContainerCreating'}")
            raise CommandError(f"no log file for container {self.name} of pod {pod} ({path})")
        self.pending = b""
        self.done = False
        self.prefix = f"[pod/{pod}/{self.name}] ".encode() if opts.prefix else b""

    def _rotated(self) -> bool:
        """The file was renamed aside (rotation): we have read it to its
        end (the caller just saw no new data), so continue with the file
        written after it: the next rotated one, else the current one."""
        path = self.paths.log_path(self.pod, self.name, self.restart)
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            return False
        ours = os.fstat(self.f.fileno()).st_ino
        if current == ours:
            return False
        rest = self.f.read()
        if rest:
            self.pending += rest
            return True  # print it first; the next poll switches
        try:
            later = self._renamed_after(path, ours)
            if not later:
                new = open(path, "rb")
                # a rotation between the listing and this open would skip a
                # whole file: list again, and take the oldest after ours first
                later = self._renamed_after(path, ours)
                if later:
                    new.close()
            if later:
                new = open(path.parent / later[0], "rb")
        except FileNotFoundError:
            # renamed or pruned under us (the writer is between its rename
            # and its next create): look again at once
            return True
        self.f.close()
        self.f = new
        return True

    @staticmethod
    def _renamed_after(path, ours: int) -> list[str]:
        """The rotated files of `path` written after the file whose inode is
        `ours`, oldest first (if ours is already deleted, every one left).

        Ordered by the time stamp of each file's first line, then by name:
        the name's stamp alone misorders a file renamed as a second turns
        (LogWriter.rotate reads the second and the nanoseconds in two calls)."""
        entries = []
        for name in os.listdir(path.parent):
            if name.startswith(path.name + "."):
                with open(path.parent / name, "rb") as f:
                    first = f.read(40).partition(b" ")[0]
                    entries.append((first, name, os.fstat(f.fileno()).st_ino))
        entries.sort()
        inodes = [ino for _, _, ino in entries]
        start = inodes.index(ours) + 1 if ours in inodes else 0
        return [name for _, name, _ in entries[start:]]

    def emit(self, lines: list[bytes], out) -> None:
        from minipod.runtime import logs
        for line in lines:
            if self.opts.since_stamp and line[:20].decode(errors="replace") < self.opts.since_stamp:
                continue
            text = logs.render(line, self.opts.timestamps)
            if text:
                out.write(self.prefix + text)

    def backlog(self, out, tail: int) -> None:
        lines = self.f.readlines()
        if tail >= 0:
            lines = lines[-tail:] if tail else []
        self.emit(lines, out)

    def _behind(self) -> bool:
        """Once the record says our instance ended: are its files not yet
        read to the end? The check above may have looked in the middle of
        a rotation (the file renamed, the next not made yet) just before
        the instance ended; its writer is done now, so look again."""
        rest = self.f.read()
        if rest:
            self.pending += rest
            return True
        return self._rotated()

    def poll(self, out) -> bool:
        """Print what is new; False when nothing was new."""
        chunk = self.f.read()
        if chunk:
            self.pending += chunk
            *lines, self.pending = self.pending.split(b"\n")
            self.emit([line + b"\n" for line in lines], out)
            return True
        if self._rotated():
            return True
        record = _record(self.paths, self.pod)
        cs = record.container(self.name) if record else None
        if cs is None:
            self.done = True  # pod deleted
        elif cs.restart_count > self.restart:
            if self._behind():
                return True
            path = self.paths.log_path(self.pod, self.name, cs.restart_count)
            try:
                new = open(path, "rb")
            except FileNotFoundError:
                return False  # the next instance has not written yet
            self.f.close()
            self.f, self.restart = new, cs.restart_count
            return True
        elif cs.state == "terminated" and not podstatus.will_restart(record, cs):
            # the agent flushes the last lines before it records the exit
            if self._behind():
                return True
            if self.pending:
                self.emit([self.pending + b"\n"], out)
            self.done = True
        return False


def run(args, paths) -> int:
    name = args.pod.removeprefix("pod/")
    key = pod_key_of(args, name)
    record = _record(paths, key, namespace_of(args), name)
    if record is None:
        raise CommandError(f'Error from server (NotFound): pods "{name}" not found')
    args.since_stamp = None
    if args.since:
        t = time.time() - parse_duration(args.since)
        args.since_stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
    streams = [Stream(paths, key, cs, args.previous, args, pod_name=name)
               for cs in pick_containers(record, args.container or args.container_arg,
                                         args.all_containers)]
    following = args.follow and not args.previous
    # the watches go in before the first read, so no write falls between
    waker = Waker([s.log_dir for s in streams] + [paths.pod_dir(key)]) if following else None
    out = sys.stdout.buffer
    for s in streams:
        s.backlog(out, args.tail)
    out.flush()
    if waker:
        follow(streams, out, waker)
    return 0


def follow(streams: list[Stream], out, waker: Waker) -> None:
    """Print what the streams' files gain until every stream is done."""
    try:
        while True:
            waker.drain()  # before reading: a write after the read leaves a new event
            busy = False
            for s in streams:
                if not s.done:
                    busy |= s.poll(out)
            out.flush()
            if all(s.done for s in streams):
                return
            if not busy:
                waker.wait()
    finally:
        waker.close()


class Waker:
    """Sleeps until one of `dirs` (or an entry in it) changes: an inotify
    instance with one watch per directory; without inotify, a plain sleep
    of FOLLOW_POLL. The watches are placed when it is made, so make it
    before the files are first read."""

    def __init__(self, dirs: list):
        from minipod import libc  # cffi: only a follower pays its import
        self.fd = None
        # a write, a file made, renamed or removed in it; the directory itself removed
        mask = (libc.IN_MODIFY | libc.IN_CLOSE_WRITE | libc.IN_CREATE | libc.IN_MOVED_FROM
                | libc.IN_MOVED_TO | libc.IN_DELETE | libc.IN_DELETE_SELF | libc.IN_MOVE_SELF
                | libc.IN_ONLYDIR)
        try:
            self.fd = libc.inotify_init1()
            for d in dict.fromkeys(dirs):
                libc.inotify_add_watch(self.fd, str(d), mask)
        except OSError as e:
            # out of instances or watches (EMFILE, ENOSPC), or a directory
            # already gone (the poll then sees the pod deleted): poll instead
            if e.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOSPC, errno.ENOENT,
                               errno.ENOTDIR):
                raise
            self.close()

    def drain(self) -> None:
        """Forget the events queued so far (what they announce is about to be read)."""
        while self.fd is not None:
            try:
                if not os.read(self.fd, 65536):
                    return
            except BlockingIOError:
                return

    def wait(self) -> None:
        if self.fd is None:
            time.sleep(FOLLOW_POLL)
            return
        import select
        select.select([self.fd], [], [], FOLLOW_SAFETY)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

