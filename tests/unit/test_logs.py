"""The CRI log format: what the agent writes and what `logs` prints."""
import re

from minipod.runtime import logs

CRI = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) [FP] ")


def test_lines_are_cri_formatted_and_partial_lines_wait(tmp_path):
    w = logs.LogWriter(tmp_path / "c" / "0.log")
    w.write("stdout", b"hello\nwor")
    w.write("stderr", b"oops\n")
    w.write("stdout", b"ld\n")
    w.write("stdout", b"no newline at the end")
    w.close()
    lines = (tmp_path / "c" / "0.log").read_bytes().splitlines(keepends=True)
    assert all(CRI.match(line) for line in lines)
    assert [logs.render(line) for line in lines] == [
        b"hello\n", b"oops\n", b"world\n", b"no newline at the end\n"]
    assert lines[1].split(b" ")[1] == b"stderr"


def test_long_lines_are_split_into_partial_pieces(tmp_path):
    w = logs.LogWriter(tmp_path / "0.log")
    w.write("stdout", b"x" * (logs.MAX_LINE * 2 + 5) + b"\n")
    w.close()
    lines = (tmp_path / "0.log").read_bytes().splitlines(keepends=True)
    assert [line.split(b" ")[2] for line in lines] == [b"P", b"P", b"F"]
    assert b"".join(logs.render(line) for line in lines) == b"x" * (logs.MAX_LINE * 2 + 5) + b"\n"


def test_timestamps_option_prefixes_the_time():
    line = b"2026-11-25T12:00:00.000000001Z stdout F hi\n"
    assert logs.render(line, timestamps=True) == b"2026-11-25T12:00:00.000000001Z hi\n"


def test_rotation_keeps_at_most_max_files_and_loses_no_line(tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "MAX_SIZE", 500)
    monkeypatch.setattr(logs, "MAX_FILES", 3)
    path = tmp_path / "c" / "0.log"
    w = logs.LogWriter(path)
    reader = open(path, "rb")
    seen = []
    for i in range(100):
        w.write("stdout", b"line %d\n" % i)
        # a follower: read to the end, and switch files after a rotation
        seen += reader.read().splitlines()
        import os
        if os.stat(path).st_ino != os.fstat(reader.fileno()).st_ino:
            seen += reader.read().splitlines()
            reader.close()
            reader = open(path, "rb")
    seen += reader.read().splitlines()
    w.close()
    assert [logs.render(line + b"\n") for line in seen] == [b"line %d\n" % i for i in range(100)]
    files = sorted(p.name for p in path.parent.iterdir())
    assert len(files) == 3 and "0.log" in files


def test_a_new_instance_keeps_only_the_previous_one_within_one_cap(tmp_path, monkeypatch):
    # kubelet: the current and the previous instance (for `logs -p`), older
    # ones go; MAX_FILES is one cap for the container, not one per restart
    monkeypatch.setattr(logs, "MAX_SIZE", 500)
    monkeypatch.setattr(logs, "MAX_FILES", 3)
    d = tmp_path / "c"
    for restart in range(6):
        w = logs.LogWriter(d / f"{restart}.log")
        for i in range(40):
            w.write("stdout", b"instance %d line %d\n" % (restart, i))
        w.close()
        files = sorted(p.name for p in d.iterdir())
        assert len(files) <= 3 and sum((d / f).stat().st_size for f in files) <= 3 * 500
        assert all(f.split(".")[0] in (str(restart), str(restart - 1)) for f in files), files
    assert "5.log" in files and "4.log" in files
    # the previous instance's last file ends with its last line
    last = (d / "4.log").read_bytes().splitlines()[-1]
    assert logs.render(last + b"\n") == b"instance 4 line 39\n"


def test_no_file_grows_past_the_size(tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "MAX_SIZE", 1000)
    w = logs.LogWriter(tmp_path / "0.log")
    w.write("stdout", b"".join(b"line %03d\n" % i for i in range(300)))  # one big chunk
    w.close()
    assert all(p.stat().st_size <= 1000 for p in tmp_path.iterdir())


def test_a_writer_wants_an_instance_file_name(tmp_path):
    import pytest
    with pytest.raises(ValueError, match="RESTART.log"):
        logs.LogWriter(tmp_path / "main.log")
