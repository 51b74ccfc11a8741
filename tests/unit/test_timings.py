"""--timings: marks from several processes make one gapless timeline."""
from __future__ import annotations

import os

import pytest

from minipod.linux import files
from minipod.runtime import timings
from minipod.netns.ipam import IPAM
from minipod.runtime import state


def test_steps_last_from_the_mark_before():
    marks = [("CLI: start", 1_000_000), ("parse", 3_000_000), ("agent", 10_000_000)]
    assert timings.durations(marks) == [("parse", 0.0, 2.0), ("agent", 2.0, 7.0)]


def test_marks_of_another_process_merge_by_time():
    timings.start()
    try:
        timings.mark("before")
        n = timings.count()
        pid = os.fork()
        if pid == 0:
            timings.mark("in the child")
            os._exit(0 if timings.since(n)[0][0] == "in the child" else 1)
        assert os.waitpid(pid, 0)[1] == 0
        timings.add([("child", 5), ("late child", 2**62)])
        timings.mark("after")
    finally:
        marks = timings.stop()
    assert [m[0] for m in marks] == ["child", "before", "after", "late child"]
    assert not timings.active()
    timings.mark("ignored when off")
    assert timings.stop() == []


def test_render_shows_each_step_and_the_total():
    text = timings.render([("start", 0), ("a", 1_500_000), ("b", 4_000_000)], title="pod/x")
    lines = text.splitlines()
    assert lines[0] == "pod/x"
    assert lines[2].split() == ["0.0ms", "1.50ms", "a"]
    assert lines[3].split() == ["1.5ms", "2.50ms", "b"]
    assert lines[-1].split() == ["4.0ms", "total"]


def test_statfs_names_the_file_system():
    assert files.statfs_type("/proc") == 0x9FA0           # PROC_SUPER_MAGIC
    assert not files.in_memory_only("/proc")
    with pytest.raises(FileNotFoundError):
        files.statfs_type("/nonexistent/minipod")


@pytest.fixture
def fsyncs(monkeypatch):
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    return calls


def tmpfs_dir(tmp_path_factory):
    if not os.path.isdir("/dev/shm") or not files.in_memory_only("/dev/shm"):
        pytest.skip("no tmpfs at /dev/shm")
    import tempfile
    return tempfile.mkdtemp(prefix="minipod-test-", dir="/dev/shm")


def test_no_fsync_on_tmpfs(tmp_path_factory, fsyncs):
    import shutil
    from pathlib import Path
    d = Path(tmpfs_dir(tmp_path_factory))
    try:
        IPAM(d / "ipam", "10.99.0.0/24").allocate("pod-a")
        state.write(d, {"name": "a"})
        assert fsyncs == []
    finally:
        shutil.rmtree(d)


def test_fsync_on_a_disk(tmp_path, fsyncs):
    if files.in_memory_only(tmp_path):
        pytest.skip(f"{tmp_path} is on tmpfs here")
    ip = IPAM(tmp_path / "ipam", "10.99.0.0/24").allocate("pod-a")
    assert (tmp_path / "ipam" / str(ip)).read_text() == "pod-a"
    n = len(fsyncs)
    assert n >= 2                # the lease's content and the index entry (+ the dir)
    state.write(tmp_path, {"name": "a"})
    assert len(fsyncs) == n + 1


def test_an_unchanged_record_is_not_written_again(tmp_path):
    state.write(tmp_path, {"name": "a", "phase": "Pending"})
    ino = os.stat(tmp_path / state.RECORD).st_ino
    state.write(tmp_path, {"name": "a", "phase": "Pending"})
    assert os.stat(tmp_path / state.RECORD).st_ino == ino
    state.write(tmp_path, {"name": "a", "phase": "Running"})
    assert os.stat(tmp_path / state.RECORD).st_ino != ino
    assert state.read(tmp_path)["phase"] == "Running"
