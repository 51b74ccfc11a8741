"""--explain: each kernel step, as the shell command a learner could type.

The code that performs a step also describes it here, right where it acts,
so the printed steps can never drift from what minipod does. Off unless a
request asked for it (a list to collect into); the agent returns the list
to the CLI, which prints it.
"""
from __future__ import annotations

_steps: list[tuple[str, str]] | None = None


def start() -> None:
    global _steps
    _steps = []


def stop() -> list[tuple[str, str]]:
    global _steps
    steps, _steps = _steps or [], None
    return steps


def step(command: str, why: str) -> None:
    """Record `command` (what to type) and `why` (one short line)."""
    if _steps is not None:
        _steps.append((command, why))


def active() -> bool:
    return _steps is not None


def render(steps) -> str:
    return "\n".join(f"# {why}\n$ {command}" for command, why in steps)
