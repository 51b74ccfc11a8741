"""The output relay: container output files into CRI log files.

    relay = OutputRelay(loop, paths)
    relay.path(uid, name, "stdout")     the file a container writes to
    relay.open(rc, uid, fresh=True)     start reading it (fresh: a new start)
    relay.close(rc, drain, ended)       stop; ended: the container is gone too

A container's stdout and stderr are two plain files the relay reads when
inotify says they grew (the long comment below says why and how); read
blocks are given back with fallocate(PUNCH_HOLE); CDIR/output.pos keeps
how far each was read, so the next agent goes on from there. The relay
knows nothing of pods: it holds the RunningContainers it reads for, and
writes their lines with each one's LogWriter.
"""
from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from minipod.runtime.agent.loop import log
from minipod.runtime.agent.running import RunningContainer


class OutputRelay:
    """Reads every live container's output (see the module doc)."""

    # ---- container output: files that never block ---------------------------
    #
    # A container's stdout and stderr are two plain files, CDIR/stdout and
    # CDIR/stderr (CDIR = LIB/containers/UID/NAME), which it holds open with
    # O_APPEND: a write never blocks and never fails with EPIPE, whether an
    # agent runs or not (a pipe blocks its writer once 64 KiB wait unread, so
    # a server that logs froze while the agent was down). The agent reads
    # each file from where it left off, when inotify says it grew, and turns
    # the bytes into CRI lines (logs.LogWriter: the timestamps are those of
    # reading, so output written while no agent ran is stamped when the next
    # agent reads it). CDIR/output.pos keeps how far it got, up to the last
    # full line, so the next agent continues there: no line is lost (one
    # killed between writing lines and saving the position writes those lines
    # twice). What is read is given back to the file system with
    # fallocate(PUNCH_HOLE): the file keeps its size, not its blocks, so the
    # disk holds only output that no agent read yet.
    # Pods started by an agent before this had FIFOs in their pod dir; those
    # are still read the old way until their container ends.

    PUNCH_EVERY = 1 << 20       # give read blocks back once this much was read
    TAIL = 32                   # bytes kept of what was read last (_rewritten)
    DRAIN_BUDGET = 4 << 20      # bytes per turn of the loop, then the others' turn

    def __init__(self, loop, paths):
        self.loop, self.paths = loop, paths
        self._inotify: int | None = None
        self._out_watch: dict[int, tuple[RunningContainer, int]] = {}  # wd -> (rc, fd)
        self._fifos: dict[int, RunningContainer] = {}   # legacy FIFO fd -> its container

    def path(self, uid: str, name: str, stream: str) -> Path:
        return self.paths.container_dir(uid, name) / stream

    def shutdown(self) -> None:
        """Close the inotify fd (call close() for each container first)."""
        if self._inotify is not None:
            self.loop.sel.unregister(self._inotify)
            os.close(self._inotify)
            self._inotify = None

    def open(self, rc: RunningContainer, uid: str, fresh: bool = True) -> None:
        """Open the container's output for reading: fresh=True (a start)
        makes new empty files first; otherwise (adoption) it opens what the
        container writes to and continues from the saved position."""
        rc.uid = uid
        fifo = self.paths.pod_dir(rc.pod) / f"{rc.name}.stdout"
        if not fresh and not self.path(uid, rc.name, "stdout").exists() \
                and fifo.exists():
            return self._open_fifos(rc)
        if self._inotify is None:
            from minipod.linux import inotify
            self._inotify = inotify.inotify_init1()
            self.loop.add_reader(self._inotify, self._on_output)
        from minipod.linux import inotify
        cdir = self.paths.container_dir(uid, rc.name)
        cdir.mkdir(parents=True, exist_ok=True)
        pos_path = cdir / "output.pos"
        saved = [0, 0]
        if fresh:
            for stream in ("stdout", "stderr"):
                path = cdir / stream
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                                 0o600))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(pos_path)
        else:
            with contextlib.suppress(OSError, ValueError):
                saved = [int(n) for n in pos_path.read_text().split()[:2]] + [0, 0]
        rc.pos_fd = os.open(pos_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        for i, stream in enumerate(("stdout", "stderr")):
            path = cdir / stream
            # O_RDWR: fallocate needs a writable fd; we only ever pread
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            rc.fifo_fds[fd] = stream
            rc.out_pos[fd] = saved[i]
            # watch first, then read: nothing written in between is missed
            wd = inotify.inotify_add_watch(self._inotify, str(path), inotify.IN_MODIFY)
            rc.out_wd[fd] = wd
            self._out_watch[wd] = (rc, fd)
        if not fresh:
            for fd in list(rc.fifo_fds):
                self._drain(rc, fd)     # what it wrote while no agent ran

    def _open_fifos(self, rc: RunningContainer) -> None:
        """A container started before output files: its FIFOs, read+write and
        non-blocking (as a writer ourselves we never see end-of-file)."""
        pod_dir = self.paths.pod_dir(rc.pod)
        for stream in ("stdout", "stderr"):
            fd = os.open(pod_dir / f"{rc.name}.{stream}", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            rc.fifo_fds[fd] = stream
            self._fifos[fd] = rc
            self.loop.add_reader(fd, self._on_output)

    def _on_output(self, fd: int) -> None:
        """inotify says output files grew (or a legacy FIFO has data)."""
        if fd == self._inotify:
            ready = []
            while True:
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    break
                from minipod.linux import inotify
                for wd, _mask in inotify.inotify_events(data):
                    if wd == -1:      # IN_Q_OVERFLOW: events were dropped; read all
                        ready += [t for t in self._out_watch.values() if t not in ready]
                    target = self._out_watch.get(wd)
                    if target is not None and target not in ready:
                        ready.append(target)
            for rc, out_fd in ready:
                if out_fd in rc.fifo_fds:
                    self._drain(rc, out_fd)
            return
        rc = self._fifos.get(fd)
        if rc is None:
            with contextlib.suppress(KeyError, ValueError):
                self.loop.sel.unregister(fd)
            return
        self._drain(rc, fd)

    def _rewritten(self, rc: RunningContainer, fd: int, pos: int) -> bool:
        """Was the output file emptied (O_TRUNC) and written again since the
        last read? Its size below what was read says so, and so do the bytes
        just before that point when they are not the ones read there: a busy
        agent may come back only after the file grew past it again."""
        if os.fstat(fd).st_size < pos:
            return True
        tail = rc.tail.get(fd)
        if not tail or pos < len(tail):
            return False
        punched = rc.punched.get(fd, 0)
        if punched != float("inf") and punched > pos - len(tail):
            return False            # given back as a hole: it reads as zeros now
        return os.pread(fd, len(tail), pos - len(tail)) != tail

    def _drain(self, rc: RunningContainer, fd: int) -> None:
        """Turn what the container wrote since the last read into log lines."""
        if fd not in rc.out_pos:            # a legacy FIFO
            while True:
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    return
                if not data:
                    return
                rc.writer.write(rc.fifo_fds[fd], data)
        stream = rc.fifo_fds[fd]
        pos = rc.out_pos[fd]
        if self._rewritten(rc, fd, pos):
            # the container opened its /dev/stdout again with O_TRUNC (a
            # shell's `> /dev/stdout`): what it writes starts again at 0
            log(f"pod {rc.pod} container {rc.name}: {stream} was truncated; reading it "
                "from the start")
            pos = 0
            rc.tail.pop(fd, None)
        tail = rc.tail.get(fd, b"")
        budget = self.DRAIN_BUDGET
        while budget > 0:
            # Read data, never holes: a hole is not output (the container
            # grew its file with ftruncate, which a pipe would not allow).
            try:
                data_at = os.lseek(fd, pos, os.SEEK_DATA)
                # skip only what reads as zeros: a file system may show a
                # region being written as a hole for a moment, and output
                # must never be stepped over (then it is read as data below)
                misreported = data_at > pos and not _reads_as_zeros(fd, pos, data_at)
                if not misreported and data_at > pos:
                    pos, tail = data_at, b""     # stepped over a hole
            except OSError as e:
                if e.errno != errno.ENXIO:  # ENXIO: only hole (or nothing) after pos
                    raise
                data_at = os.fstat(fd).st_size
                if data_at <= pos or _reads_as_zeros(fd, pos, data_at):
                    if data_at > pos:
                        pos, tail = data_at, b""
                    break
                misreported = True          # bytes the file system calls a hole
            size = os.fstat(fd).st_size             # first: an append after it makes end > size
            end = data_at if misreported else os.lseek(fd, pos, os.SEEK_HOLE)  # data's end
            while pos < end and budget > 0:
                data = os.pread(fd, min(65536, end - pos), pos)
                if not data:
                    break
                tail = (tail + data[-self.TAIL:])[-self.TAIL:]
                pos += len(data)
                if pos == end and end < size:
                    # the zeros that fill the last block before a hole are
                    # not output either (appends never leave holes)
                    data = data.rstrip(b"\0")
                rc.writer.write(stream, data)
                budget -= len(data) or 1
            if pos >= size:
                break
        rc.out_pos[fd] = pos
        rc.tail[fd] = tail
        self._save_output_pos(rc)
        if budget <= 0:                     # more to read: after the others' turn
            self.loop.call_later(0, self._drain_more, rc, fd)
        done = pos - len(rc.writer.partial.get(stream, b""))
        block = done - done % (64 << 10)
        if block - rc.punched.get(fd, 0) >= self.PUNCH_EVERY:
            from minipod.linux import files
            try:
                files.punch_hole(fd, 0, block, f"{stream} of {rc.pod}/{rc.name}")
                rc.punched[fd] = block
            except OSError as e:
                # a file system without holes: the file just keeps its blocks
                rc.punched[fd] = float("inf")
                log(f"pod {rc.pod} container {rc.name}: cannot free read output: {e}")

    def _drain_more(self, rc: RunningContainer, fd: int) -> None:
        if fd in rc.fifo_fds and rc.writer is not None:
            self._drain(rc, fd)

    def _save_output_pos(self, rc: RunningContainer) -> None:
        """CDIR/output.pos: how far each stream was read, up to its last
        full line (a partial line is read again by the next agent)."""
        if rc.pos_fd is None:
            return
        done = {stream: rc.out_pos[fd] - len(rc.writer.partial.get(stream, b""))
                for fd, stream in rc.fifo_fds.items() if fd in rc.out_pos}
        os.pwrite(rc.pos_fd, b"%020d %020d\n" % (done.get("stdout", 0),
                                                  done.get("stderr", 0)), 0)

    def close(self, rc: RunningContainer, drain: bool, ended: bool) -> None:
        """Stop reading a container's output. If the container has ended,
        the last partial lines are written and its output files removed; if
        it still runs (the agent stops), its files and saved positions stay
        for the next agent."""
        for fd in list(rc.fifo_fds):
            if drain and rc.writer:
                self._drain(rc, fd)
            wd = rc.out_wd.pop(fd, None)
            if wd is not None:
                from minipod.linux import inotify
                self._out_watch.pop(wd, None)
                with contextlib.suppress(OSError):
                    inotify.inotify_rm_watch(self._inotify, wd)
            else:
                self._fifos.pop(fd, None)
                with contextlib.suppress(KeyError, ValueError):
                    self.loop.sel.unregister(fd)
            os.close(fd)
        had_files = bool(rc.out_pos)
        rc.fifo_fds.clear()
        rc.out_pos.clear()
        rc.punched.clear()
        rc.tail.clear()
        if rc.pos_fd is not None:
            os.close(rc.pos_fd)
            rc.pos_fd = None
        if rc.writer:
            if not ended and had_files:
                rc.writer.partial = {k: b"" for k in rc.writer.partial}  # read again later
            rc.writer.close()
            rc.writer = None
        if ended and had_files:     # (a deleted pod's dir is gone already)
            cdir = self.paths.container_dir(rc.uid, rc.name)
            for name in ("stdout", "stderr", "output.pos"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(cdir / name)

def _reads_as_zeros(fd: int, start: int, end: int, probe: int = 64 << 10) -> bool:
    """Does [start, end) of fd read as zeros (a hole)? Its first and last
    `probe` bytes are read, so a 1 GiB hole costs two small reads."""
    spans = [(start, min(end, start + probe)), (max(start, end - probe), end)]
    return all(not os.pread(fd, b - a, a).strip(b"\0") for a, b in spans if b > a)
