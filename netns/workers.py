"""Reused daemon threads: port-forward's workers inside a pod's network namespace.

Worker threads are reused (a small pool, idle ones end after a minute):
starting a Python thread costs 100-250 us on a small VM, more than the
rest of a connection's setup.

A worker that entered a pod's namespace (setns on its own thread) stays
there, so a pool serves one pod only: minipod.netns.portforward makes
one pool per forwarder.
"""

from __future__ import annotations

import queue
import sys
import threading

WORKER_IDLE = 60.0           # seconds an idle worker thread waits for work before it ends


class Workers:
    """Daemon threads that run jobs and are reused: submit() hands a job to
    an idle worker, or starts a new one when none is idle. A worker idle
    for WORKER_IDLE seconds ends. Daemon threads: a relay blocked in splice
    never holds up the exit of the process."""

    def __init__(self):
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._idle = 0              # workers waiting for a job nobody reserved
        self._lock = threading.Lock()

    def submit(self, fn, *args) -> None:
        with self._lock:
            reuse = self._idle > 0
            if reuse:
                self._idle -= 1     # reserve it: the job below is its
        self._jobs.put((fn, args))
        if not reuse:
            threading.Thread(target=self._work, name="minipod:pf-worker", daemon=True).start()

    def _work(self) -> None:
        job = self._jobs.get()              # the job this worker was started for
        while job is not None:
            fn, args = job
            try:
                fn(*args)
            except BaseException as e:      # jobs report their own errors; this is a bug
                print(f"port-forward: internal error in {fn.__qualname__}: {e!r}",
                      file=sys.stderr, flush=True)
            with self._lock:
                self._idle += 1
            job = self._next()

    def _next(self):
        """The next job; None once idle for WORKER_IDLE with no job reserved."""
        while True:
            try:
                return self._jobs.get(timeout=WORKER_IDLE)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:      # no submit() is counting on us: end
                        self._idle -= 1
                        return None
                # else a job was reserved (idle taken) and is on its way
