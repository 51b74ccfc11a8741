"""--explain: each kernel step, as the shell command a learner could type.

The code that performs a step also describes it, right where it acts
(`explain.step("ip link add …", "why")`), so the printed steps can never
drift from what minipod does. The steps go to a Recorder: off unless a
request asked for one (start()), then a list to collect into; the agent
returns the list to the CLI, which prints it (render()).

One recorder per process (RECORDER; the module functions are its
methods): the agent serves one request at a time. It lives on this floor
because netns/ and rootfs/ describe their steps too, and they import
nothing above minipod.linux.
"""
from __future__ import annotations


class Recorder:
    """Collects (command, why) steps while started; a no-op otherwise."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, str]] | None = None

    def start(self) -> None:
        """Collect from now on (what was collected before is dropped)."""
        self.steps = []

    def stop(self) -> list[tuple[str, str]]:
        """Stop collecting; the steps so far."""
        steps, self.steps = self.steps or [], None
        return steps

    def step(self, command: str, why: str) -> None:
        """Record `command` (what to type) and `why` (one short line)."""
        if self.steps is not None:
            self.steps.append((command, why))

    def active(self) -> bool:
        return self.steps is not None


RECORDER = Recorder()
start, stop, step, active = RECORDER.start, RECORDER.stop, RECORDER.step, RECORDER.active


def render(steps) -> str:
    """The steps as a learner types them: "# why" then "$ command"."""
    return "\n".join(f"# {why}\n$ {command}" for command, why in steps)
