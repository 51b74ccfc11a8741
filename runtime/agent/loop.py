"""The agent's event loop: one selector, timers on a clock, nothing else.

    loop = Loop()
    loop.add_reader(fd, callback)     # callback(fd) when fd is readable
    loop.call_later(10, fn, a, b)     # fn(a, b) in 10 s (by loop.clock)
    while not stopped: loop.run_once()

No threads (the agent forks containers; fork and threads do not mix): a
handler or timer that raises is logged and the loop goes on. The clocks are
attributes, `clock` (monotonic, for timers) and `wall` (time.time, for what
is stored in records), so a test drives time by hand (tests/unit/
test_agent_lifecycle.py); `run_timers()` runs what is due and returns how
long the loop may sleep (at most 5 s).

Also here, as every manager uses them: `now_iso()`, `log()`, `find()`, `update()`,
`send_answer()` (the server's answers, and a delete's once the pod is gone) and
`RequestError` (an answer for the client: a Kubernetes-style code and a message).
"""
from __future__ import annotations

import contextlib
import heapq
import json
import itertools
import selectors
import sys
import time
import traceback

from minipod.runtime.api.record import ContainerRecord, PodRecord
from minipod.runtime.api.timestamps import now_iso



def log(msg: str) -> None:
    print(f"{now_iso()} {msg}", file=sys.stderr, flush=True)


def find(record: PodRecord, name: str) -> ContainerRecord:
    """Container NAME of a pod's record (runtime/api/record.py); it must be there."""
    return next(c for c in record.all_containers() if c.name == name)


def update(obj, **fields) -> None:
    """Set fields of a record (PodRecord, ContainerRecord) by name; a name
    the record does not have is an error, not a new attribute."""
    for name, value in fields.items():
        if not hasattr(obj, name):
            raise AttributeError(f"{type(obj).__name__} has no field {name!r}")
        setattr(obj, name, value)


def send_answer(conn, answer: dict) -> None:
    """Answer a client on its connection (one JSON line), then close it; a
    client that went away meanwhile is no error."""
    with contextlib.suppress(OSError):
        conn.sendall((json.dumps(answer) + "\n").encode())
    conn.close()


class RequestError(Exception):
    """An answer for the client: a Kubernetes-style code and a message."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class Loop:
    """A selector and a heap of timers (deadline, seq, fn, args)."""

    def __init__(self, clock=time.monotonic, wall=time.time):
        self.sel = selectors.DefaultSelector()
        self.timers: list = []
        self._seq = itertools.count()
        self.clock, self.wall = clock, wall

    def add_reader(self, fd, callback) -> None:
        self.sel.register(fd, selectors.EVENT_READ, callback)

    def call_later(self, delay: float, fn, *args) -> None:
        heapq.heappush(self.timers, (self.clock() + delay, next(self._seq), fn, args))

    def run_timers(self) -> float:
        while self.timers and self.timers[0][0] <= self.clock():
            _, _, fn, args = heapq.heappop(self.timers)
            try:
                fn(*args)
            except Exception:
                log("error in timer:\n" + traceback.format_exc())
        if self.timers:
            return max(0.0, min(5.0, self.timers[0][0] - self.clock()))
        return 5.0

    def run_once(self) -> None:
        """Run the due timers, then wait for fds until the next one is due."""
        timeout = self.run_timers()
        for key, _ in self.sel.select(timeout):
            try:
                key.data(key.fileobj)
            except Exception:
                log("error in event handler:\n" + traceback.format_exc())
