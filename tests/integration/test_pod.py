"""End to end, through the real CLI: pods on real namespaces, overlay and bridge."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from podhelpers import REPO, http_get, http_get_when_up, pod_manifest

pytestmark = pytest.mark.integration


def running(pod):
    return pod["status"]["phase"] == "Running" and all(
        "running" in c["state"] for c in pod["status"]["containerStatuses"])


def terminated(pod):
    return all("terminated" in c["state"] for c in pod["status"]["containerStatuses"])


def test_kubia_example_answers_over_its_pod_ip(minipod):
    """The user's notes, end to end: the example pod answers on its own IP."""
    build = subprocess.run([str(REPO / "examples/images/kubia/build.sh")], env=dict(
        minipod.env, PATH=f"{Path(os.sys.executable).parent}:{os.environ['PATH']}"),
        capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    out = minipod("run", str(REPO / "examples/kubia.yaml")).stdout
    assert out.strip() == "pod/kubia-manual created"
    pod = minipod.wait_for("kubia-manual", running)
    ip = pod["status"]["podIP"]
    assert ip.startswith("10.89.")
    answer = http_get_when_up(f"http://{ip}:8080/")
    assert answer == "You've hit kubia-manual\n"
    table = minipod("get", "pods", "-o", "wide").stdout.splitlines()
    assert table[0].split()[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    row = table[1].split()
    assert row[:4] == ["kubia-manual", "1/1", "Running", "0"] and ip in row
    assert "Kubia server starting..." in minipod("logs", "kubia-manual").stdout
    netns = pod_netns_name(minipod, "kubia-manual")
    assert netns in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                   text=True).stdout
    assert minipod("delete", "pod", "kubia-manual").stdout.strip() == \
        'pod "kubia-manual" deleted'
    assert not (minipod.root / "run/pods/kubia-manual").exists()
    assert not Path("/run/netns", netns).exists()
    gone = minipod("get", "pod", "kubia-manual", check=False)
    assert gone.returncode == 1
    assert gone.stderr.strip() == 'error: Error from server (NotFound): pods "kubia-manual" not found'


def pod_netns_name(minipod, name):
    from minipod.runtime.paths import Paths
    return Paths(str(minipod.root)).netns_name(name)


def test_the_seeds_broken_example_names_both_fixes_and_creates_nothing(minipod):
    proc = minipod("run", str(REPO / "examples/kubia-manual-broken.yaml"), check=False)
    assert proc.returncode == 1
    assert 'line 2' in proc.stderr or ':2:' in proc.stderr
    assert 'did you mean "Pod"' in proc.stderr
    assert 'unknown field "images"' in proc.stderr and 'did you mean "image"' in proc.stderr
    assert minipod("get", "pods", "-o", "name").stdout == ""


def test_container_is_pid_1_with_the_pod_hostname_and_own_root(minipod, tmp_path):
    # Kubernetes turns "$$" into "$" in command (escape of "$(VAR)"): "$$$$" is sh's "$$".
    minipod.run_manifest(pod_manifest(
        "probe", "echo pid=$$$$ host=$(hostname); ls /; cat /etc/hostname; "
                 "grep ' / ' /proc/mounts", restartPolicy="Never"), tmp_path)
    minipod.wait_for("probe", terminated)
    out = minipod("logs", "probe").stdout
    assert "pid=1 host=probe" in out
    assert "overlay / overlay" in out
    assert out.count("probe") >= 2
    pod = minipod.pod("probe")
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    minipod("delete", "pod", "probe")


def test_exit_code_and_status_are_recorded(minipod, tmp_path):
    minipod.run_manifest(pod_manifest("fails", "echo bye >&2; exit 3",
                                      restartPolicy="Never"), tmp_path)
    pod = minipod.wait_for("fails", terminated)
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 3 and term["reason"] == "Error"
    assert pod["status"]["phase"] == "Failed"
    assert minipod("get", "pods").stdout.splitlines()[1].split()[:3] == ["fails", "0/1", "Error"]
    assert minipod("logs", "fails").stdout == "bye\n"
    minipod("delete", "pod", "fails")


def test_a_missing_binary_is_a_start_error_with_errno(minipod, tmp_path):
    text = pod_manifest("nobin", "true", restartPolicy="Never").replace(
        '["sh", "-c", "true"]', '["/no/such/binary"]')
    proc = minipod.run_manifest(text, tmp_path, check=False)
    assert proc.returncode == 1
    assert "failed to start" in proc.stderr and "errno 2" in proc.stderr
    state = minipod.pod("nobin")["status"]["containerStatuses"][0]["state"]["terminated"]
    assert state["reason"] == "StartError" and "/no/such/binary" in state["message"]
    minipod("delete", "pod", "nobin")


def test_pods_reach_each_other_and_the_host_by_ip(minipod, tmp_path):
    minipod.run_manifest(pod_manifest(
        "server", "mkdir /www; echo hello-from-server > /www/index.html; "
                  "exec httpd -f -p 80 -h /www"), tmp_path)
    ip = minipod.wait_for("server", running)["status"]["podIP"]
    minipod.run_manifest(pod_manifest(
        "client", f"for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://{ip}/ && exit 0; "
                  "sleep 0.2; done; exit 1", restartPolicy="Never"), tmp_path)
    pod = minipod.wait_for("client", terminated)
    assert pod["status"]["podIP"] != ip
    assert minipod("logs", "client").stdout == "hello-from-server\n"
    assert http_get(f"http://{ip}/") == "hello-from-server\n"
    minipod("delete", "pod", "client", "--grace-period", "0")
    minipod("delete", "pod", "server", "--grace-period", "0")


def test_create_twice_is_already_exists_and_run_twice_is_unchanged(minipod, tmp_path):
    path = tmp_path / "pod.yaml"
    path.write_text(pod_manifest("twice", "sleep 1000"))
    minipod("create", "-f", str(path))
    again = minipod("create", "-f", str(path), check=False)
    assert again.returncode == 1
    assert 'Error from server (AlreadyExists): pods "twice" already exists' in again.stderr
    assert minipod("run", str(path)).stdout.strip() == "pod/twice unchanged"
    minipod("delete", "-f", str(path), "--grace-period", "0")


def test_delete_waits_the_grace_period_then_kills(minipod, tmp_path):
    # sh as PID 1 ignores SIGTERM (no handler): only SIGKILL ends it.
    minipod.run_manifest(pod_manifest("stubborn", "trap '' TERM; while :; do sleep 1; done",
                                      terminationGracePeriodSeconds=1), tmp_path)
    minipod.wait_for("stubborn", running)
    t = time.monotonic()
    minipod("delete", "pod", "stubborn")
    assert 0.9 <= time.monotonic() - t < 10


def test_agent_killed_pods_keep_running_and_are_readopted(minipod, tmp_path):
    minipod.run_manifest(pod_manifest(
        "survivor", "i=0; while :; do i=$((i+1)); echo line $i; sleep 0.1; done"), tmp_path)
    pod = minipod.wait_for("survivor", running)
    agent = minipod.agent_pid()
    os.kill(agent, signal.SIGKILL)  # the agent this suite started
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{agent}") and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)  # the container keeps writing while no agent reads
    assert running(minipod.pod("survivor")), "the pod must keep running without the agent"
    # Any command that needs the agent starts a new one, which re-adopts the pod.
    minipod.run_manifest(pod_manifest("other", "sleep 1000"), tmp_path)
    assert minipod.agent_pid() not in (None, agent)
    time.sleep(0.3)
    numbers = [int(line.split()[1]) for line in minipod("logs", "survivor").stdout.split("\n")
               if line.startswith("line ")]
    assert numbers == list(range(1, len(numbers) + 1)), "no line lost across the agent restart"
    assert pod["status"]["containerStatuses"][0]["containerID"]
    minipod("delete", "pod", "survivor", "other", "--grace-period", "0")
    assert minipod("get", "pods", "-o", "name").stdout == ""


def test_not_root_gets_a_one_line_sudo_hint(minipod):
    proc = subprocess.run([os.sys.executable, "-m", "minipod", "run",
                           str(REPO / "examples/kubia.yaml")], env=minipod.env,
                          capture_output=True, text=True, user=65534)
    assert proc.returncode == 3
    assert proc.stderr.count("\n") == 1 and "sudo" in proc.stderr
