"""minipod.linux: syscall numbers, the fork helper, /proc readers, files."""
import errno
import fcntl
import os

import pytest

from minipod.linux import clib, explain, files, fork, proc


def test_a_syscall_number_unknown_on_a_machine_is_said_not_guessed():
    assert clib.syscall_number("pivot_root", "x86_64") == 155
    assert clib.syscall_number("openat2", "aarch64") == 437
    with pytest.raises(OSError) as e:
        clib.syscall_number("openat2", "mips")      # mips adds 4000: never the generic 437
    assert e.value.errno == errno.ENOSYS
    assert "openat2" in str(e.value) and "mips" in str(e.value)
    with pytest.raises(OSError, match="pivot_root.*sparc64"):
        clib.syscall_number("pivot_root", "sparc64")


def test_fork_call_returns_the_childs_message_or_raises_its_error():
    assert fork.call(lambda: (0, f"pid {os.getpid()}")) != f"pid {os.getpid()}"

    def fails():
        raise FileNotFoundError(errno.ENOENT, "open config: No such file", "/nonexistent")
    with pytest.raises(OSError, match=r"open config: No such file: '/nonexistent'"):
        fork.call(fails)
    with pytest.raises(OSError, match="ValueError: bad"):
        fork.call(lambda: (_ for _ in ()).throw(ValueError("bad")))


def test_fork_spawn_reports_before_it_holds():
    r, w = os.pipe()

    def ready():
        os.close(w)      # the parent's end: only the parent's close may free us
        return 0, "ready"
    child = fork.spawn(ready, then=lambda: os.read(r, 1))
    os.close(r)
    assert child.read() == "ready"           # the child is still there, holding
    assert proc.start_time(child.pid) is not None
    os.close(w)                              # lets it go
    _, status = os.waitpid(child.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_the_child_is_not_dumpable():
    import prctl
    assert fork.call(lambda: (0, str(prctl.get_dumpable()))) in ("False", "0")


def test_proc_readers_on_this_process():
    me = os.getpid()
    assert proc.alive(me, proc.start_time(me))
    assert not proc.alive(me, (proc.start_time(me) or 0) + 1)
    assert proc.ns_inode(me, "net") == os.stat("/proc/self/ns/net").st_ino
    assert proc.status(me)["Pid"] == [str(me)]
    assert proc.comm(me) and proc.cgroup_paths(me)
    assert "/" in [m.mount_point for m in proc.mountinfo("self")]
    assert proc.start_time(2 ** 22 + 1) is None and proc.ns_inode(2 ** 22 + 1, "net") is None


def test_replace_file_makes_the_mode_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "secret"
    files.replace_file(target, b"one", 0o600)
    files.replace_file(target, b"two", 0o600)
    assert target.read_bytes() == b"two" and (target.stat().st_mode & 0o777) == 0o600
    assert os.listdir(tmp_path) == ["secret"]
    with pytest.raises(FileNotFoundError):
        files.replace_file(tmp_path / "no-such-dir" / "f", b"x")


def test_a_held_lock_refuses_a_second_holder(tmp_path):
    with files.locked(tmp_path / "lock"):
        with pytest.raises(BlockingIOError):
            files.lock(tmp_path / "lock", fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.close(files.lock(tmp_path / "lock", fcntl.LOCK_EX | fcntl.LOCK_NB))
    with pytest.raises(OSError, match="cannot open test lock"):
        files.lock(tmp_path / "no-such-dir" / "lock", what="test lock")


def test_the_explain_recorder_collects_only_when_started():
    rec = explain.Recorder()
    rec.step("ip link", "ignored: not started")
    rec.start()
    rec.step("ip link add br0 type bridge", "a bridge")
    assert rec.active() and rec.stop() == [("ip link add br0 type bridge", "a bridge")]
    assert not rec.active() and rec.stop() == []
    assert explain.render([("true", "why")]) == "# why\n$ true"
