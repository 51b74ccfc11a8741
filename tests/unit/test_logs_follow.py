"""`logs -f` follows on inotify: every line arrives though nothing polls,
across a rotation and a restart's new file, and it ends when the pod goes.

The follower runs in a thread with its timer fallbacks set to an hour, so
a line it missed would never come: each wait below is a hang guard, not a
speed figure.
"""
import argparse
import shutil
import threading

import pytest

from minipod.runtime import logs, state

from minipod.runtime import logreader
from minipod.runtime.paths import Paths

GUARD = 20  # seconds: far beyond any wake-up; reaching it means a lost event


class Out:
    """The follower's stdout: the lines printed, and a way to wait for them."""

    def __init__(self):
        self.lines, self.cond = [], threading.Condition()

    def write(self, data: bytes) -> None:
        with self.cond:
            self.lines += data.decode().splitlines()
            self.cond.notify_all()

    def flush(self) -> None:
        pass

    def wait_for(self, n: int) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.lines) >= n, GUARD), \
                f"follower printed {len(self.lines)} of {n} lines: {self.lines[-3:]}"


def record(restarts: int, st: str = "running") -> dict:
    return {"name": "p", "restartPolicy": "Always",
            "containers": [{"name": "c", "state": st, "restartCount": restarts}]}


@pytest.fixture
def pod(tmp_path, monkeypatch):
    monkeypatch.setattr(logreader, "FOLLOW_POLL", 3600)
    monkeypatch.setattr(logreader, "FOLLOW_SAFETY", 3600)
    paths = Paths(str(tmp_path))
    paths.pod_dir("p").mkdir(parents=True)
    state.write(paths.pod_dir("p"), record(0))
    return paths


def start(paths, out, **opts):
    args = argparse.Namespace(prefix=False, timestamps=False, since_stamp=None, **opts)
    stream = logreader.Stream(paths, "p", record(0)["containers"][0], False, args)
    waker = logreader.Waker([stream.log_dir, paths.pod_dir("p")])
    assert waker.fd is not None, "no inotify here: the test would poll"
    stream.backlog(out, -1)
    t = threading.Thread(target=logreader.follow, args=([stream], out, waker), daemon=True)
    t.start()
    return t


def test_follows_rotation_and_a_restart_and_ends_with_the_pod(pod, monkeypatch):
    monkeypatch.setattr(logs, "MAX_SIZE", 300)  # a rotation every few lines
    monkeypatch.setattr(logs, "MAX_FILES", 100)
    w = logs.LogWriter(pod.log_path("p", "c", 0))
    w.write("stdout", b"before the follower\n")
    out = Out()
    follower = start(pod, out)
    out.wait_for(1)
    want = ["before the follower"]
    for i in range(30):  # one line at a time: each must wake the follower
        w.write("stdout", b"first instance %d\n" % i)
        want.append("first instance %d" % i)
        out.wait_for(len(want))
    assert len(list(pod.log_path("p", "c", 0).parent.glob("0.log.*"))) >= 3  # it rotated
    # a burst with rotations inside it, then the container restarts
    for i in range(30):
        w.write("stdout", b"burst %d\n" % i)
        want.append("burst %d" % i)
    w.close()
    state.write(pod.pod_dir("p"), record(1))
    w = logs.LogWriter(pod.log_path("p", "c", 1))
    for i in range(5):
        w.write("stderr", b"second instance %d\n" % i)
        want.append("second instance %d" % i)
        out.wait_for(len(want))
    w.close()
    assert out.lines == want  # no line lost, none twice, in order
    shutil.rmtree(pod.pod_dir("p"))  # the pod is deleted
    follower.join(GUARD)
    assert not follower.is_alive(), "the follower did not end when the pod was deleted"


def test_bursts_of_rotations_lose_no_file(pod, monkeypatch):
    # The writer renames the full file aside and creates the next one while
    # the follower lists the rotated files and opens the next: a rotation
    # between its listing and its open once skipped a whole file. Many
    # bursts, each of many rotations, give that window many chances.
    monkeypatch.setattr(logs, "MAX_SIZE", 300)
    monkeypatch.setattr(logs, "MAX_FILES", 10_000)
    w = logs.LogWriter(pod.log_path("p", "c", 0))
    out = Out()
    follower = start(pod, out)
    want = []
    for burst in range(40):
        for i in range(40):
            w.write("stdout", b"burst %d line %d\n" % (burst, i))
            want.append("burst %d line %d" % (burst, i))
        out.wait_for(len(want))
    w.close()
    assert out.lines == want
    shutil.rmtree(pod.pod_dir("p"))
    follower.join(GUARD)
    assert not follower.is_alive()


def test_a_restart_file_that_appears_late_is_found(pod):
    w = logs.LogWriter(pod.log_path("p", "c", 0))
    out = Out()
    follower = start(pod, out)
    w.write("stdout", b"one\n")
    out.wait_for(1)
    w.close()
    # the agent records the restart before the new instance writes its file
    state.write(pod.pod_dir("p"), record(1))
    w = logs.LogWriter(pod.log_path("p", "c", 1))
    w.write("stdout", b"two\n")
    out.wait_for(2)
    w.close()
    state.write(pod.pod_dir("p"), dict(record(1, "terminated"), restartPolicy="Never"))
    follower.join(GUARD)
    assert not follower.is_alive(), "the follower did not end with the container"
    assert out.lines == ["one", "two"]


def test_without_inotify_it_polls(pod, monkeypatch):
    monkeypatch.setattr(logreader, "FOLLOW_POLL", 0.01)
    from minipod.linux import inotify

    def no_instances(flags=0):
        import errno
        raise OSError(errno.EMFILE, "inotify_init1: Too many open files")
    monkeypatch.setattr(inotify, "inotify_init1", no_instances)
    waker = logreader.Waker([pod.pod_dir("p")])
    assert waker.fd is None
    waker.wait()  # a short sleep, not a hang
