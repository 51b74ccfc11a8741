"""What a kubectl user reads: restart timing, STATUS, run's errors, describe's sections.

The suite's agent runs with MINIPOD_BACKOFF_BASE=1: back-offs of 1 s, 2 s, 4 s…
"""
from __future__ import annotations

import calendar
import time

import pytest

from podhelpers import BUSYBOX_IMAGE, pod_manifest

pytestmark = pytest.mark.integration

BASE = 1.0


def iso(stamp: str) -> int:
    return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))


def row(minipod, name: str) -> list[str]:
    return minipod("get", "pods", name).stdout.splitlines()[1].split()


def test_first_restart_is_immediate_and_the_back_off_starts_with_the_second(minipod, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    # each run notes when it started and ended, by the host's clock (/proc/uptime)
    minipod.run_manifest(pod_manifest(
        "bouncer", "read t _ < /proc/uptime; echo start $t >> /out/runs; sleep 1.5; "
                   "read t _ < /proc/uptime; echo end $t >> /out/runs; exit 2",
        terminationGracePeriodSeconds=0,
        volumes=f"[{{name: out, hostPath: {{path: {out}, type: Directory}}}}]").replace(
        "    command:", "    volumeMounts: [{name: out, mountPath: /out}]\n    command:"),
        tmp_path)
    # the second run, seen by `get -o json`: it started the moment the first ended
    pod = minipod.wait_for("bouncer", lambda p: p["status"]["containerStatuses"][0]
                           ["restartCount"] == 1, timeout=20)
    cs = pod["status"]["containerStatuses"][0]
    assert "running" in cs["state"], cs
    gap = iso(cs["state"]["running"]["startedAt"]) - \
        iso(cs["lastState"]["terminated"]["finishedAt"])
    assert gap <= 1, f"restart 1 came {gap}s after the exit: {cs}"
    minipod.wait_for("bouncer", lambda p: p["status"]["containerStatuses"][0]
                     ["restartCount"] >= 3, timeout=40)
    runs = [line.split() for line in (out / "runs").read_text().splitlines()]
    starts = [float(t) for kind, t in runs if kind == "start"]
    ends = [float(t) for kind, t in runs if kind == "end"]
    waits = [b - a for a, b in zip(ends, starts[1:])]
    assert len(waits) >= 3, runs
    assert waits[0] < BASE, f"the first restart must not wait for the back-off: {waits}"
    assert waits[1] >= BASE - 0.05, f"the second restart waits the base: {waits}"
    assert waits[2] >= 2 * BASE - 0.05, f"then twice the base: {waits}"
    described = minipod("describe", "pod", "bouncer").stdout
    assert "Back-off restarting failed container main in pod bouncer" in described
    minipod("delete", "pod", "bouncer", "--now")


def test_a_failing_liveness_probe_kills_once_while_the_container_stops(minipod, tmp_path):
    # PID 1 ignores SIGTERM (no handler), so it lives through the grace period
    text = pod_manifest("stubborn", "exec sleep 100000", terminationGracePeriodSeconds=6)
    text += "    livenessProbe:\n      exec: {command: [\"false\"]}\n" \
            "      periodSeconds: 1\n      failureThreshold: 1\n"
    minipod.run_manifest(text, tmp_path)
    deadline = time.monotonic() + 15
    while "failed liveness probe" not in minipod("describe", "pod", "stubborn").stdout:
        assert time.monotonic() < deadline, "no Killing event"
        time.sleep(0.2)
    time.sleep(3)  # three probe periods inside the six seconds of grace
    pod = minipod.pod("stubborn")
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
    events = [line for line in minipod("describe", "pod", "stubborn").stdout.splitlines()
              if "Unhealthy" in line or "Killing" in line]
    assert len(events) == 2 and not any("(x" in e for e in events), \
        "probing must stop while the container is being killed:\n" + "\n".join(events)
    assert "Container main failed liveness probe, will be restarted" in events[1]
    minipod("delete", "pod", "stubborn", "--grace-period", "0")


TWO = f"""apiVersion: v1
kind: Pod
metadata:
  name: {{name}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 0
  containers:
  - name: server
    image: {BUSYBOX_IMAGE}
    command: ["sleep", "100000"]
  - name: job
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", "exit {{code}}"]
"""


@pytest.mark.parametrize("name,code,status", [("halfdone", 0, "NotReady"),
                                              ("halffailed", 3, "Error")])
def test_a_pod_with_one_of_two_containers_ended(minipod, tmp_path, name, code, status):
    minipod.run_manifest(TWO.format(name=name, code=code), tmp_path)
    minipod.wait_for(name, lambda p: "terminated" in p["status"]["containerStatuses"][1]
                     ["state"])
    assert row(minipod, name)[:3] == [name, "1/2", status]
    assert minipod.pod(name)["status"]["phase"] == "Running"
    minipod("delete", "pod", name)


def test_run_prints_why_a_container_could_not_start(minipod, tmp_path):
    text = pod_manifest("typo", "true").replace('["sh", "-c", "true"]', '["redis-servr"]')
    proc = minipod.run_manifest(text, tmp_path, check=False)
    assert proc.returncode == 1
    assert 'exec "redis-servr": executable file not found in $PATH' in proc.stderr, proc.stderr
    assert "back-off" not in proc.stderr
    minipod("delete", "pod", "typo", "--now")


def test_describe_has_an_init_containers_section(minipod, tmp_path):
    minipod.run_manifest(f"""apiVersion: v1
kind: Pod
metadata:
  name: initdesc
spec:
  terminationGracePeriodSeconds: 0
  initContainers:
  - name: setup
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", "echo ready"]
  containers:
  - name: app
    image: {BUSYBOX_IMAGE}
    command: ["sleep", "100000"]
""", tmp_path)
    minipod.wait_for("initdesc", lambda p: "running" in p["status"]["containerStatuses"][0]
                     ["state"])
    lines = minipod("describe", "pod", "initdesc").stdout.splitlines()
    init, main = lines.index("Init Containers:"), lines.index("Containers:")
    assert init < main
    section = lines[init + 1:main]
    assert section[0] == "  setup:"
    assert "    Image:          minipod.test/busybox:1" in section
    assert "    State:          Terminated" in section
    assert "      Reason:       Completed" in section
    assert "      Exit Code:    0" in section
    assert "    Restart Count:  0" in section
    assert lines[main + 1] == "  app:"
    assert row(minipod, "initdesc")[2] == "Running"
    minipod("delete", "pod", "initdesc")
