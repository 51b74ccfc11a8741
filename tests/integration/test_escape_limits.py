"""A hostile pod against the node's limits (issue 16, items 5-7): it fills
its disk, floods its logs across restarts, and reads the host's cgroup
layout. Each test runs the attack for real against the suite's own root."""
from __future__ import annotations

import json
import os
import re
import time

import pytest

from podhelpers import BUSYBOX_IMAGE

pytestmark = pytest.mark.integration

MiB = 1 << 20
EVICTION_WAIT = 60  # seconds: the agent measures every 10 s, as the kubelet does


def _pod(name: str, containers: str, volumes: str = "") -> str:
    return (f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n"
            f"  terminationGracePeriodSeconds: 30\n{volumes}  containers:\n{containers}")


def _container(name: str, command: str, extra: str = "") -> str:
    return (f"  - name: {name}\n    image: {BUSYBOX_IMAGE}\n"
            f"    command: [\"sh\", \"-c\", {json.dumps(command)}]\n{extra}")


FILL_EMPTY_DIR = _pod("fill-empty-dir", _container(
    "main", "dd if=/dev/zero of=/scratch/fill bs=1M count=20; sync; sleep 100000",
    "    volumeMounts:\n    - name: scratch\n      mountPath: /scratch\n"),
    "  volumes:\n  - name: scratch\n    emptyDir:\n      sizeLimit: 1Mi\n")

FILL_LAYER = _pod("fill-layer", _container(
    "main", "dd if=/dev/zero of=/tmp/fill bs=1M count=20; sync; sleep 100000",
    "    resources:\n      limits:\n        ephemeral-storage: 10Mi\n"))

# The pod's total (110Mi) holds; container a's own limit does not.
FILL_ONE_CONTAINER = _pod("fill-one", _container(
    "a", "dd if=/dev/zero of=/fill bs=1M count=20; sync; sleep 100000",
    "    resources:\n      limits:\n        ephemeral-storage: 10Mi\n") + _container(
    "b", "sleep 100000", "    resources:\n      limits:\n        ephemeral-storage: 100Mi\n"))


@pytest.mark.parametrize("manifest,message", [
    (FILL_EMPTY_DIR, 'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi".'),
    (FILL_LAYER, "Pod ephemeral local storage usage exceeds the total limit of containers 10Mi."),
    (FILL_ONE_CONTAINER, 'Container a exceeded its local ephemeral storage limit "10Mi".'),
], ids=["emptyDir-sizeLimit", "pod-ephemeral-storage", "container-ephemeral-storage"])
def test_a_pod_over_its_storage_limit_is_evicted(minipod, tmp_path, manifest, message):
    name = re.search(r"name: (\S+)", manifest).group(1)
    minipod.run_manifest(manifest, tmp_path)
    try:
        report = json.loads(minipod("inspect", "pod", name, "-o", "json").stdout)
        pids = [c["hostPID"] for c in report["containers"]]
        assert all(pids), report["containers"]
        pod = minipod.wait_for(name, lambda p: p["status"]["phase"] == "Failed",
                               timeout=EVICTION_WAIT)
        assert pod["status"]["reason"] == "Evicted"
        assert pod["status"]["message"] == message
        # every container is stopped, with a 1 s grace (sh as PID 1 ignores
        # SIGTERM: SIGKILL ends it), not the pod's 30 s
        pod = minipod.wait_for(name, lambda p: all(
            "terminated" in c["state"] for c in p["status"]["containerStatuses"]), timeout=15)
        for pid in pids:
            assert not os.path.exists(f"/proc/{pid}"), f"container process {pid} still there"
        describe = minipod("describe", "pod", name).stdout
        assert re.search(r"Warning\s+Evicted\s+.*" + re.escape(message), describe), describe
        assert "Reason:           Evicted" in describe
        # restartPolicy Always, back-off 1 s: an evicted pod still restarts nothing
        time.sleep(3)
        pod = minipod.pod(name)
        assert pod["status"]["phase"] == "Failed"
        assert [c["restartCount"] for c in pod["status"]["containerStatuses"]] == \
            [0] * len(pids)
        assert all("terminated" in c["state"] for c in pod["status"]["containerStatuses"])
    finally:
        minipod("delete", "pod", name, "--grace-period", "0", check=False)


# Each instance counts itself in an emptyDir, prints ~180 KiB and fails.
FLOOD = ('n=$(cat /state/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /state/n; '
         'i=0; while [ $i -lt 1500 ]; do '
         'echo "instance $n line $i padding-padding-padding-padding-padding-padding"; '
         'i=$((i+1)); done; echo "instance $n end"; exit 1')


def test_logs_of_a_crash_looping_chatty_container_stay_within_one_cap(minipod, tmp_path):
    # The suite's agent: MINIPOD_LOG_MAX_SIZE 64 KiB x MINIPOD_LOG_MAX_FILES 3.
    cap = 64 * 1024 * 3
    manifest = _pod("log-flood", _container(
        "main", FLOOD, "    volumeMounts:\n    - name: state\n      mountPath: /state\n"),
        "  volumes:\n  - name: state\n    emptyDir: {}\n")
    minipod.run_manifest(manifest, tmp_path)
    try:
        minipod.wait_for("log-flood", lambda p: p["status"]["containerStatuses"][0]
                         ["restartCount"] >= 4, timeout=90)
        log_dir = minipod.root / "log" / "pods" / "log-flood" / "main"
        files = {f: (log_dir / f).stat().st_size for f in os.listdir(log_dir)}
        assert sum(files.values()) <= cap, files
        assert len(files) <= 3, files
        # the previous instance's last lines are still there for `logs -p`
        previous = minipod("logs", "log-flood", "-p").stdout
        ends = re.findall(r"^instance (\d+) end$", previous, re.M)
        assert ends and int(ends[0]) >= 4, previous[-500:]
        assert set(re.findall(r"^instance (\d+) ", previous, re.M)) == {ends[0]}
        assert "instance" in minipod("logs", "log-flood").stdout
    finally:
        minipod("delete", "pod", "log-flood", "--grace-period", "0", check=False)


def _cgroup_paths(text: str) -> list[str]:
    """The path field of each /proc/PID/cgroup line (ID:CONTROLLERS:PATH)."""
    return [line.split(":", 2)[2] for line in text.splitlines() if line.count(":") >= 2]


def test_a_container_sees_its_own_cgroup_not_the_hosts_layout(minipod, tmp_path):
    manifest = _pod("cgroup-view", _container("main", "cat /proc/self/cgroup; sleep 100000"))
    minipod.run_manifest(manifest.replace("terminationGracePeriodSeconds: 30",
                                          "terminationGracePeriodSeconds: 0"), tmp_path)
    try:
        deadline = time.monotonic() + 10
        while not (logged := minipod("logs", "cgroup-view").stdout) and \
                time.monotonic() < deadline:
            time.sleep(0.1)
        host_view = open(f"/proc/{os.getpid()}/cgroup").read()
        assert logged and all(p == "/" for p in _cgroup_paths(logged)), \
            f"the container sees:\n{logged}\n(the host sees itself as:\n{host_view})"
        inside = minipod("exec", "cgroup-view", "--", "cat", "/proc/self/cgroup").stdout
        assert inside and all(p == "/" for p in _cgroup_paths(inside)), inside
        inspect = minipod("inspect", "pod", "cgroup-view").stdout
        assert re.search(r"cgroup\s+\d+\s+its own", inspect), inspect
    finally:
        minipod("delete", "pod", "cgroup-view", "--grace-period", "0", check=False)
