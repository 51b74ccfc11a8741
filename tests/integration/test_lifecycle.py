"""Restarts, back-off, events and describe, as a kubectl user reads them."""
from __future__ import annotations

import time

import pytest

from podhelpers import pod_manifest

pytestmark = pytest.mark.integration


def test_always_restarts_a_crashing_container_with_back_off(minipod, tmp_path):
    # MINIPOD_BACKOFF_BASE=1 in the suite: delays 1 s, 2 s, 4 s…
    minipod.run_manifest(pod_manifest("crasher", "echo run; exit 2"), tmp_path)
    pod = minipod.wait_for("crasher", lambda p: p["status"]["containerStatuses"][0]
                           ["restartCount"] >= 2, timeout=30)
    cs = pod["status"]["containerStatuses"][0]
    assert cs["lastState"]["terminated"]["exitCode"] == 2
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    row = minipod("get", "pods").stdout.splitlines()[1].split()
    assert row[0] == "crasher" and row[3] >= "2"
    described = minipod("describe", "pod", "crasher").stdout
    assert "Restart Count:  " in described and "BackOff" in described
    assert "Back-off restarting failed container main in pod crasher" in described
    assert "Started container main" in described
    previous = minipod("logs", "crasher", "--previous").stdout
    assert previous == "run\n"
    minipod("delete", "pod", "crasher", "--now")


def test_back_off_doubles(minipod, tmp_path):
    minipod.run_manifest(pod_manifest("doubler", "exit 1"), tmp_path)
    starts = []
    deadline = time.monotonic() + 30
    seen = -1
    while len(starts) < 4 and time.monotonic() < deadline:
        n = minipod.pod("doubler")["status"]["containerStatuses"][0]["restartCount"]
        if n != seen:
            starts.append(time.monotonic())
            seen = n
        time.sleep(0.05)
    gaps = [b - a for a, b in zip(starts[1:], starts[2:])]
    assert len(gaps) == 2, "expected at least three restarts in 30 s"
    assert gaps[1] > gaps[0] * 1.5, f"back-off must grow: {gaps}"
    minipod("delete", "pod", "doubler", "--now")


def test_on_failure_does_not_restart_a_completed_container(minipod, tmp_path):
    minipod.run_manifest(pod_manifest("once", "echo done", restartPolicy="OnFailure"), tmp_path)
    pod = minipod.wait_for("once", lambda p: p["status"]["phase"] == "Succeeded")
    time.sleep(1.5)
    pod = minipod.pod("once")
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
    assert minipod("get", "pods").stdout.splitlines()[1].split()[2] == "Completed"
    minipod("delete", "pod", "once")


def test_never_leaves_a_failed_container_failed(minipod, tmp_path):
    minipod.run_manifest(pod_manifest("never", "exit 9", restartPolicy="Never"), tmp_path)
    pod = minipod.wait_for("never", lambda p: p["status"]["phase"] == "Failed")
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
    minipod("delete", "pod", "never")
