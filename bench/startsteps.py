"""Where a warm pod start goes: `minipod run --timings`, step by step.

bench/run's warm starts run `minipod run --timings FILE` (the marks cost
microseconds: one clock read per step) and this module keeps each step's
duration per round; the medians go into bench/results/latest.json under
"breakdowns" and are printed after the table. The steps are the ones the
code marks where it acts (runtime/timings.py); one more row, "outside the
timeline", is the wall time the benchmark measured minus the timeline's
total: the CLI's Python start-up and imports before its first mark, and
its exit.

    sudo .venv/bin/minipod run --timings pod.yaml     # the same, by hand
"""
from __future__ import annotations

import statistics
import time

OUTSIDE = "outside the timeline: the CLI's Python start, imports, exit"


class Breakdown:
    """The steps of repeated starts of one pod: {step: [ms per round]}."""

    def __init__(self, title: str):
        self.title = title
        self.steps: dict[str, list[float]] = {}
        self.order: list[str] = []
        self.walls: list[float] = []

    def timed_run(self, mp, path) -> float:
        """`minipod run --timings PATH` on mp (common.Minipod); its wall time
        in ms, its steps kept."""
        t = time.perf_counter()
        proc = mp("run", "--timings", str(path))
        wall = (time.perf_counter() - t) * 1000
        steps = parse(proc.stdout)
        for step, took in steps.items():
            if step not in self.steps:
                self.steps[step] = []
                self.order.append(step)
            self.steps[step].append(took)
        self.walls.append(wall)
        inside = sum(steps.values())
        self.steps.setdefault(OUTSIDE, []).append(max(0.0, wall - inside))
        return wall

    def medians(self) -> dict[str, float]:
        rows = {s: statistics.median(self.steps[s]) for s in self.order}
        if OUTSIDE in self.steps:
            rows[OUTSIDE] = statistics.median(self.steps[OUTSIDE])
        return rows

    def as_json(self) -> dict:
        return {"title": self.title, "runs": len(self.walls),
                "wall_ms_median": round(statistics.median(self.walls), 3) if self.walls else None,
                "steps_ms_median": {k: round(v, 3) for k, v in self.medians().items()}}

    def text(self) -> str:
        """The medians, in the order of the steps, and the biggest first
        (systemd-analyze blame)."""
        if not self.walls:
            return f"{self.title}: no runs"
        med = self.medians()
        wall = statistics.median(self.walls)
        lines = [f"{self.title}: median of {len(self.walls)} runs, wall {wall:.1f} ms"]
        for step, ms in med.items():
            lines.append(f"  {ms:8.2f} ms  {100 * ms / wall:4.1f}%  {step}")
        lines.append("  the largest: " + "; ".join(
            f"{s} {ms:.1f} ms" for s, ms in sorted(med.items(), key=lambda x: -x[1])[:5]))
        return "\n".join(lines)


def parse(text: str) -> dict[str, float]:
    """{step: ms} from the lines `run --timings` prints ("  12.3ms   1.20ms  step",
    runtime/timings.py render()); a step named twice is summed."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[0].endswith("ms") and parts[1].endswith("ms"):
            try:
                float(parts[0][:-2])
                took = float(parts[1][:-2])
            except ValueError:
                continue
            out[parts[2]] = out.get(parts[2], 0.0) + took
    return out
