"""--timings: where the time of a start (or a delete) goes, step by step.

The code that performs a step marks its end, right where it acts, with one
line:

    timings.mark("IPAM: lease an IP")

A mark is (step, CLOCK_MONOTONIC in ns). A step lasts from the mark before
it to its own, so a list of marks is a timeline with no gaps: the CLI, the
agent and the forked children (which report their marks over the status
pipe before exec, runtime/container.py) all read the same clock, and their
marks merge into one list by time. Like `systemd-analyze blame` for a boot,
but in the order things happen.

Off unless a request asked for it (`minipod run --timings`): then mark()
is one comparison. The agent returns its marks in its answer; the CLI adds
its own and prints them (render()).
"""
from __future__ import annotations

import time

_marks: list[tuple[str, int]] | None = None


def start(marks: list | None = None) -> None:
    """Collect marks from now on (continuing `marks`, if given)."""
    global _marks
    _marks = [tuple(m) for m in marks] if marks else []


def stop() -> list[tuple[str, int]]:
    """Stop collecting; the marks so far, in the order of time."""
    global _marks
    marks, _marks = _marks or [], None
    return sorted(marks, key=lambda m: m[1])


def active() -> bool:
    return _marks is not None


def mark(step: str) -> None:
    """The step `step` ends now."""
    if _marks is not None:
        _marks.append((step, time.monotonic_ns()))


def since(n: int) -> list[tuple[str, int]]:
    """The marks after the first n (what a forked child adds to its copy)."""
    return (_marks or [])[n:]


def count() -> int:
    return len(_marks) if _marks is not None else 0


def add(marks) -> None:
    """Marks another process made (a child, the agent), merged by time."""
    global _marks
    if _marks is not None and marks:
        _marks = sorted(_marks + [(str(s), int(t)) for s, t in marks], key=lambda m: m[1])


def durations(marks, origin: int | None = None) -> list[tuple[str, float, float]]:
    """[(step, start ms after origin, duration ms)] of a merged list of marks;
    origin: when the first step began (default: the first mark, which then
    only sets the start)."""
    marks = sorted(((str(s), int(t)) for s, t in marks), key=lambda m: m[1])
    if not marks:
        return []
    if origin is None:
        origin, marks = marks[0][1], marks[1:]
    out, prev = [], origin
    for step, t in marks:
        out.append((step, (prev - origin) / 1e6, (t - prev) / 1e6))
        prev = t
    return out


def render(marks, origin: int | None = None, title: str = "") -> str:
    """The timeline as text: start, duration, step; then the total."""
    rows = durations(marks, origin)
    lines = [title] if title else []
    lines.append(f"{'at':>9}  {'took':>9}  step")
    for step, at, took in rows:
        lines.append(f"{at:7.1f}ms  {took:7.2f}ms  {step}")
    total = rows[-1][1] + rows[-1][2] if rows else 0.0
    lines.append(f"{'':9}  {total:7.1f}ms  total")
    return "\n".join(lines)
