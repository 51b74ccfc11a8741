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


def test_get_pods_watch_prints_a_row_on_each_change(minipod, tmp_path):
    import subprocess
    import sys
    watch = subprocess.Popen([sys.executable, "-m", "minipod", "get", "pods", "-w"],
                             env=minipod.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    try:
        time.sleep(0.5)
        minipod.run_manifest(pod_manifest("watched", "sleep 1; exit 1",
                                          restartPolicy="Never"), tmp_path)
        minipod.wait_for("watched", lambda p: p["status"]["phase"] == "Failed")
        time.sleep(0.6)
    finally:
        watch.terminate()
    out = watch.communicate(timeout=10)[0]
    statuses = [line.split()[2] for line in out.splitlines() if line.startswith("watched")]
    assert "Running" in statuses and statuses[-1] == "Error", out
    minipod("delete", "pod", "watched")


def test_image_prune_removes_only_what_no_pod_uses(minipod, tmp_path):
    from imagebuild import build_busybox_rootfs
    rootfs = build_busybox_rootfs(tmp_path / "r")
    (rootfs / "extra").write_text("x" * 100000)
    minipod("image", "import", str(rootfs), "minipod.test/prunable:1")
    minipod.run_manifest(pod_manifest("user", "sleep 100000"), tmp_path)  # uses the busybox image
    out = minipod("image", "prune", "-a").stdout
    assert "Untagged: minipod.test/prunable:1" in out and "Total reclaimed space" in out
    images = minipod("images").stdout
    assert "prunable" not in images
    assert "minipod.test/busybox" in images, "an image a pod uses must stay"
    minipod("delete", "pod", "user", "--now")
