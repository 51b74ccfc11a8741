"""The kernel calls the agent's output relay stands on (runtime/agent/output.py,
"container output"): inotify says an appended file grew, and a punched hole
gives read blocks back while the file keeps its size and its later bytes."""
from __future__ import annotations

import os

import pytest

from minipod.linux import files, inotify


def test_inotify_reports_each_watched_file_that_grew(tmp_path):
    ino = inotify.inotify_init1()
    try:
        out, err = tmp_path / "stdout", tmp_path / "stderr"
        out.touch()
        err.touch()
        wd_out = inotify.inotify_add_watch(ino, str(out), inotify.IN_MODIFY)
        wd_err = inotify.inotify_add_watch(ino, str(err), inotify.IN_MODIFY)
        with pytest.raises(BlockingIOError):
            os.read(ino, 4096)            # nothing written yet: nothing to say
        fd = os.open(err, os.O_WRONLY | os.O_APPEND)
        os.write(fd, b"oops\n")
        os.close(fd)
        assert [wd for wd, _ in inotify.inotify_events(os.read(ino, 4096))] == [wd_err]
        assert wd_out != wd_err
    finally:
        os.close(ino)


def test_a_punched_hole_frees_blocks_and_keeps_size_and_later_bytes(tmp_path):
    path = tmp_path / "stdout"
    data = b"".join(b"line %d\n" % i for i in range(200_000))
    path.write_bytes(data)
    fd = os.open(path, os.O_RDWR)
    try:
        before = os.fstat(fd).st_blocks
        cut = len(data) // 2 // 65536 * 65536
        try:
            files.punch_hole(fd, 0, cut, str(path))
        except OSError as e:
            pytest.skip(f"this file system punches no holes: {e}")
        st = os.fstat(fd)
        assert st.st_size == len(data)
        assert st.st_blocks * 512 <= before * 512 - cut + 65536
        assert os.pread(fd, 100, cut) == data[cut:cut + 100]
        assert os.pread(fd, 10, 0) == b"\0" * 10
    finally:
        os.close(fd)


def test_punch_hole_errors_name_the_file(tmp_path):
    fd = os.open(tmp_path / "f", os.O_RDONLY | os.O_CREAT)
    try:
        with pytest.raises(OSError, match="PUNCH_HOLE") as e:
            files.punch_hole(fd, 0, 4096, str(tmp_path / "f"))   # read-only fd: EBADF
        assert e.value.filename == str(tmp_path / "f")
    finally:
        os.close(fd)
