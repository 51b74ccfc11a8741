"""descriptors.close_fds: every fd above 2 goes, but the ones kept (close_range(2))."""
from __future__ import annotations

import os

from minipod.linux import descriptors


def _in_child(action) -> str:
    """Run action() in a forked child (closing fds must not hit pytest's),
    with a pipe as its fd 1 (close_fds keeps 0-2); return what it answered."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(w, 1)
            os.close(w)
            os.write(1, action().encode())
        finally:
            os._exit(0)
    os.close(w)
    out = os.read(r, 4096).decode()
    os.close(r)
    os.waitpid(pid, 0)
    return out


def _open_fds() -> list[int]:
    return sorted(int(n) for n in os.listdir("/proc/self/fd"))


def test_close_fds_keeps_stdio_and_the_kept_ones():
    def action():
        a = os.open("/dev/null", os.O_RDONLY)
        b = os.open("/dev/null", os.O_RDONLY)
        c = os.open("/dev/null", os.O_RDONLY)
        high = os.dup2(a, 1000)
        descriptors.close_fds([b, high])
        fds = [fd for fd in _open_fds() if fd > 2]
        return " ".join(map(str, fds)) + f"|{a} {b} {c} {high}"
    left, names = _in_child(action).split("|")
    left = set(map(int, left.split()))
    a, b, c, high = map(int, names.split())
    # listing /proc/self/fd opens one fd of its own: allow it beside the kept ones
    assert {b, high} <= left and len(left - {b, high}) <= 1
    assert a not in left and c not in left


def test_close_fds_with_nothing_kept_leaves_only_stdio():
    def action():
        opened = [os.open("/dev/null", os.O_RDONLY) for _ in range(5)] + [os.dup2(1, 500)]
        descriptors.close_fds()
        still = []
        for fd in opened:
            try:
                os.fstat(fd)
                still.append(fd)
            except OSError:
                pass
        return f"still open: {still}" if still else "closed"
    assert _in_child(action) == "closed"
