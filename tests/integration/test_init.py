"""Init containers run to completion in order; sidecars run beside the main ones."""
from __future__ import annotations

import pytest

from podhelpers import BUSYBOX_IMAGE

pytestmark = pytest.mark.integration


def manifest(name, init, main="cat /work/log; sleep 100000", policy="Always"):
    inits = "".join(f"""  - name: {n}
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", "{cmd}"]
    volumeMounts: [{{name: work, mountPath: /work}}]
""" + ("    restartPolicy: Always\n" if sidecar else "") for n, cmd, sidecar in init)
    return f"""apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  restartPolicy: {policy}
  terminationGracePeriodSeconds: 0
  volumes: [{{name: work, emptyDir: {{}}}}]
  initContainers:
{inits}  containers:
  - name: main
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", "{main}"]
    volumeMounts: [{{name: work, mountPath: /work}}]
"""


def test_init_containers_run_in_order_before_the_main_container(minipod, tmp_path):
    minipod.run_manifest(manifest("ordered", [
        ("first", "echo first >> /work/log", False),
        ("second", "sleep 0.5; echo second >> /work/log", False)]), tmp_path)
    pod = minipod.wait_for("ordered", lambda p: p["status"]["phase"] == "Running")
    inits = pod["status"]["initContainerStatuses"]
    assert [i["state"]["terminated"]["reason"] for i in inits] == ["Completed", "Completed"]
    assert minipod.pod("ordered")["status"]["conditions"][1] == {
        "type": "Initialized", "status": "True",
        "lastTransitionTime": pod["metadata"]["creationTimestamp"]}
    minipod.wait_for("ordered", lambda p: "running" in p["status"]["containerStatuses"][0]
                     ["state"])
    import time
    time.sleep(0.3)
    assert minipod("logs", "ordered", "-c", "main").stdout == "first\nsecond\n"
    minipod("delete", "pod", "ordered")


def test_a_failing_init_container_with_never_fails_the_pod(minipod, tmp_path):
    minipod.run_manifest(manifest("initfail", [("bad", "exit 3", False)], policy="Never"),
                         tmp_path)
    pod = minipod.wait_for("initfail", lambda p: p["status"]["phase"] == "Failed")
    assert "waiting" in pod["status"]["containerStatuses"][0]["state"]
    assert minipod("get", "pods").stdout.splitlines()[1].split()[2] == "Init:Error"
    minipod("delete", "pod", "initfail")


def test_a_failing_init_container_is_retried_with_back_off(minipod, tmp_path):
    minipod.run_manifest(manifest("initretry", [("flaky", "exit 1", False)]), tmp_path)
    pod = minipod.wait_for("initretry", lambda p: p["status"]["initContainerStatuses"][0]
                           ["restartCount"] >= 1, timeout=15)
    assert pod["status"]["phase"] == "Pending"
    status = minipod("get", "pods").stdout.splitlines()[1].split()[2]
    assert status in ("Init:CrashLoopBackOff", "Init:0/1", "Init:Error")
    minipod("delete", "pod", "initretry", "--now")


def test_a_sidecar_starts_first_and_runs_beside_the_main_container(minipod, tmp_path):
    minipod.run_manifest(manifest("withsidecar", [
        ("logger", "echo sidecar-up >> /work/log; exec sleep 100000", True)]), tmp_path)
    pod = minipod.wait_for("withsidecar", lambda p: "running" in p["status"][
        "containerStatuses"][0]["state"])
    assert "running" in pod["status"]["initContainerStatuses"][0]["state"]
    row = minipod("get", "pods").stdout.splitlines()[1].split()
    assert row[1] == "2/2" and row[2] == "Running"
    minipod("delete", "pod", "withsidecar")


def test_sidecar_is_stopped_when_the_main_container_completes(minipod, tmp_path):
    minipod.run_manifest(manifest("jobsidecar", [
        ("helper", "exec sleep 100000", True)], main="echo done", policy="Never"), tmp_path)
    pod = minipod.wait_for("jobsidecar", lambda p: "terminated" in p["status"][
        "initContainerStatuses"][0]["state"], timeout=40)
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    minipod("delete", "pod", "jobsidecar")
