"""Fault injection: the agent or the CLI killed (SIGKILL) at each named step
of create and delete; the next agent repairs, and nothing of the pod stays.

MINIPOD_FAULT=NAME (runtime/faults.py) makes the process reaching step NAME
kill itself there, with no cleanup at all."""
from __future__ import annotations

import glob
import os
import subprocess
import sys
import time

import pytest

from podhelpers import pod_manifest

pytestmark = pytest.mark.integration

CREATE_STEPS = ["create:state", "create:namespaces", "create:ip", "create:veth",
                "create:cgroup", "create:volumes", "create:containers"]
TEARDOWN_STEPS = ["delete:marked", "teardown:remove hostPort rules", "teardown:remove veth",
                  "teardown:release IP", "teardown:unpin namespaces", "teardown:remove cgroups",
                  "teardown:remove container dirs", "teardown:remove state"]


def with_fault(minipod, fault, *args):
    """Restart the agent with MINIPOD_FAULT set, then run the command."""
    stop_agent(minipod)
    env = dict(minipod.env, MINIPOD_FAULT=fault)
    return subprocess.run([sys.executable, "-m", "minipod", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def stop_agent(minipod):
    pid = minipod.agent_pid()
    if pid:
        minipod("agent", "stop")
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.02)


def traces_of(minipod, name: str, uid: str | None) -> list[str]:
    """Everything a pod may leave: state, pins, veth, lease, cgroup, dirs."""
    from minipod.runtime.paths import Paths
    paths = Paths(str(minipod.root))
    left = []
    if paths.pod_dir(name).exists():
        left.append(f"state dir {paths.pod_dir(name)}")
    if paths.netns_path(name).exists():
        left.append(f"netns {paths.netns_path(name)}")
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    links = [line.split(":")[1].strip().split("@")[0] for line in links.splitlines()]
    left += [f"link {link}" for link in links if link.startswith("mp")]
    leases = [p for p in os.listdir(paths.ipam) if not p.startswith(".") and p != "lock"] \
        if paths.ipam.exists() else []
    left += [f"lease {p}" for p in leases]
    if uid:
        left += glob.glob(f"/sys/fs/cgroup/*/{paths.cgroup_parent}/pod{uid}")
        left += glob.glob(f"/sys/fs/cgroup/{paths.cgroup_parent}/pod{uid}")
        if (paths.containers / uid).exists():
            left.append(f"container dir {paths.containers / uid}")
    return left


def uid_of(minipod, name):
    from minipod.runtime import state
    from minipod.runtime.paths import Paths
    try:
        return state.read(Paths(str(minipod.root)).pod_dir(name))["uid"]
    except FileNotFoundError:
        return None


@pytest.mark.parametrize("step", CREATE_STEPS)
def test_agent_killed_during_create_is_repaired(minipod, tmp_path, step):
    path = tmp_path / "pod.yaml"
    path.write_text(pod_manifest("victim", "sleep 100000", terminationGracePeriodSeconds=0))
    proc = with_fault(minipod, step, "run", str(path))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "agent" in proc.stderr  # the answer never came: says so in one line
    uid = uid_of(minipod, "victim")
    minipod("agent", "start")  # a new agent re-adopts or removes what it finds
    if step == "create:containers":
        # the pod was complete: it keeps running, and deletes cleanly
        assert minipod.pod("victim")["status"]["phase"] == "Running"
        minipod("delete", "pod", "victim")
    assert minipod("get", "pods", "-o", "name").stdout == ""
    assert traces_of(minipod, "victim", uid) == []


@pytest.mark.parametrize("step", TEARDOWN_STEPS)
def test_agent_killed_during_delete_is_finished(minipod, tmp_path, step):
    path = tmp_path / "pod.yaml"
    path.write_text(pod_manifest("doomed", "sleep 100000", terminationGracePeriodSeconds=0))
    # the agent that will die is started by this run (with the fault in its environment)
    run = with_fault(minipod, step, "run", str(path))
    assert run.returncode == 0, run.stderr
    uid = uid_of(minipod, "doomed")
    env = dict(minipod.env, MINIPOD_FAULT=step)
    proc = subprocess.run([sys.executable, "-m", "minipod", "delete", "pod", "doomed"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    minipod("agent", "start")
    minipod("delete", "pod", "doomed", "--ignore-not-found")
    assert minipod("get", "pods", "-o", "name").stdout == ""
    assert traces_of(minipod, "doomed", uid) == []


def test_cli_killed_after_sending_run_leaves_a_consistent_pod(minipod, tmp_path):
    path = tmp_path / "pod.yaml"
    path.write_text(pod_manifest("orphaned", "sleep 100000", terminationGracePeriodSeconds=0))
    env = dict(minipod.env, MINIPOD_FAULT="cli:sent")
    proc = subprocess.run([sys.executable, "-m", "minipod", "run", str(path)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9
    pod = minipod.wait_for("orphaned", lambda p: p["status"]["phase"] == "Running")
    assert pod["status"]["podIP"]
    uid = uid_of(minipod, "orphaned")
    minipod("delete", "pod", "orphaned")
    assert traces_of(minipod, "orphaned", uid) == []
