"""The container restart back-off, timed as the kubelet times it (pure).

The kubelet keeps one back-off entry per container (kuberuntime_manager.go
`doBackOff`, over client-go's flowcontrol.Backoff, no jitter):

    exit 1 (no entry)      restart at once;  entry = base (10 s)
    exit 2                 wait entry (10 s) counted from the exit,
                           then restart;     entry = 2 × entry (20 s)
    exit 3                 wait 20 s …       entry doubles up to the cap (5 min)
    an exit more than 2 × cap (10 min) after the entry's last restart
                           counts as the first again: restart at once

So CrashLoopBackOff (a waiting back-off) starts with the second exit, and
a container that ran ten minutes before failing restarts at once. An entry
is a small dict kept in the container's state record, so a new agent goes
on where the old one stopped:

    {"seconds": 20.0, "since": 1764633600.0}   # back-off, time of last restart

Image pulls back off the same way (the kubelet's image back-off has the
same base and cap): one `Backoff(base, cap)` times both, its entry kept in
the container's record ("backoff" for restarts, "pullBackoff" for pulls).
MINIPOD_BACKOFF_BASE moves the base (the test suites use 1 s).
"""
from __future__ import annotations

import os

from minipod.runtime.api.record import BackoffEntry

BACKOFF_BASE = float(os.environ.get("MINIPOD_BACKOFF_BASE", "10"))
BACKOFF_MAX = 300.0  # the cap; 2 × cap (10 min) after a restart, an exit starts over


def expired(entry: BackoffEntry, event: float, cap: float) -> bool:
    """flowcontrol's hasExpired: stable for more than twice the cap."""
    return event - entry["since"] > 2 * cap


def wait(entry: BackoffEntry | None, finished: float, now: float, cap: float) -> float:
    """Seconds still to wait before restarting a container that ended at
    `finished` (IsInBackOffSince); 0 means restart now."""
    if not isinstance(entry, dict) or expired(entry, finished, cap):
        return 0.0
    return max(0.0, entry["seconds"] - (now - finished))


def next_entry(entry: BackoffEntry | None, finished: float, now: float, base: float,
               cap: float) -> BackoffEntry:
    """The entry after a restart at `now` (flowcontrol's Next): a new one at
    the base, or the old one doubled up to the cap."""
    if not isinstance(entry, dict) or expired(entry, finished, cap):
        return {"seconds": base, "since": now}
    return {"seconds": min(entry["seconds"] * 2, cap), "since": now}


def go_duration(seconds: float) -> str:
    """A duration as Go prints it (the kubelet's message): 10s, 1m20s, 5m0s, 500ms."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, secs = divmod(seconds, 60)
    text = f"{secs:g}s"
    if minutes >= 60:
        hours, minutes = divmod(minutes, 60)
        return f"{hours:.0f}h{minutes:.0f}m{text}"
    return f"{minutes:.0f}m{text}" if minutes else text


class Backoff:
    """The back-off of one kind of retry: `base` seconds, doubling, at most
    `cap`; the functions above with the policy bound."""

    def __init__(self, base: float = BACKOFF_BASE, cap: float = BACKOFF_MAX):
        self.base, self.cap = base, cap

    def wait(self, entry: BackoffEntry | None, finished: float, now: float) -> float:
        """Seconds still to wait after a failure at `finished`; 0: retry now."""
        return wait(entry, finished, now, self.cap)

    def next(self, entry: BackoffEntry | None, finished: float, now: float) -> BackoffEntry:
        """The entry after a retry at `now`."""
        return next_entry(entry, finished, now, self.base, self.cap)
