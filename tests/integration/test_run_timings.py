"""--timings: each step of a real start and delete, from the code doing it."""
from __future__ import annotations

import re

import pytest

from podhelpers import pod_manifest

pytestmark = pytest.mark.integration

ROW = re.compile(r"^\s*([\d.]+)ms\s+([\d.]+)ms\s+(.+)$")


def rows(out: str) -> list[tuple[float, float, str]]:
    return [(float(m[1]), float(m[2]), m[3]) for m in map(ROW.match, out.splitlines()) if m]


def total(out: str) -> float:
    return float(re.search(r"^\s*([\d.]+)ms\s+total$", out, re.M)[1])


def test_run_and_delete_timings_name_every_step_in_order(minipod, tmp_path):
    path = tmp_path / "pod.yaml"
    path.write_text(pod_manifest("timed", "sleep 100000"))
    out = minipod("run", "--timings", str(path)).stdout
    assert out.startswith("pod/timed created\npod/timed: where the start went\n")
    steps = rows(out)
    names = [s for _, _, s in steps]
    for expected in ("CLI: read the manifest", "agent: read and validate the manifest",
                     "sandbox: net, ipc, uts namespaces made and pinned", "IPAM: lease an IP",
                     "veth: pair made, pod side addressed, host side on the bridge",
                     "container timed/main: fork [1:SETNS]",
                     "container timed/main: [2:INIT] mounts, pivot_root",
                     "container timed/main: [2:INIT] security (caps, seccomp, user)",
                     "container timed/main: exec (the status pipe closes)",
                     "CLI: the agent's answer arrives"):
        assert expected in names, f"{expected!r} missing from:\n{out}"
    # one timeline: the agent's steps between the CLI's, the children's between
    # the agent's fork and the end of its wait for exec, no gaps, no overlaps
    assert names.index("IPAM: lease an IP") < names.index("container timed/main: fork [1:SETNS]")
    assert names.index("container timed/main: [2:INIT] mounts, pivot_root") < \
        names.index("container timed/main: exec (the status pipe closes)")
    for (at, took, _), (next_at, _, _) in zip(steps, steps[1:]):
        assert abs(at + took - next_at) < 0.2, out
    assert all(took >= 0 for _, took, _ in steps)
    assert abs(sum(took for _, took, _ in steps) - total(out)) < 0.1 * len(steps)
    gone = minipod("delete", "pod", "timed", "--timings", "--grace-period", "0").stdout
    names = [s for _, _, s in rows(gone)]
    assert gone.startswith('pod "timed" deleted\npod/timed: where the delete went\n')
    assert names.index("remove veth") < names.index("release IP") < names.index("remove state")


def test_without_timings_nothing_is_printed(minipod, tmp_path):
    path = tmp_path / "pod.yaml"
    path.write_text(pod_manifest("untimed", "sleep 100000"))
    out = minipod("run", str(path)).stdout
    assert out == "pod/untimed created\n"
    minipod("delete", "pod", "untimed", "--now")
