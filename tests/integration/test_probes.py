"""Probes run by the agent (no curl in the image needed) and lifecycle hooks."""
from __future__ import annotations

import time

import pytest

from podhelpers import BUSYBOX_IMAGE

pytestmark = pytest.mark.integration


def pod(name, command, extra, grace=0, volumes=""):
    return f"""apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: {grace}
{volumes}  containers:
  - name: main
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", {command!r}]
    ports: [{{containerPort: 8080, name: http}}]
{extra}"""


def ready_column(minipod, name):
    return minipod("get", "pods", name).stdout.splitlines()[1].split()[1]


def test_readiness_http_probe_drives_ready(minipod, tmp_path):
    # The server answers 404 until /www/ready exists, then 200.
    minipod.run_manifest(pod("readyweb", "mkdir -p /www; httpd -f -p 8080 -h /www",
                             """    readinessProbe:
      httpGet: {path: /ready, port: http}
      periodSeconds: 1
"""), tmp_path)
    minipod.wait_for("readyweb", lambda p: p["status"]["phase"] == "Running")
    time.sleep(2.5)
    assert ready_column(minipod, "readyweb") == "0/1"
    assert "Readiness probe failed: HTTP probe failed with statuscode: 404" in \
        minipod("describe", "pod", "readyweb").stdout
    minipod("exec", "readyweb", "--", "touch", "/www/ready")
    minipod.wait_for("readyweb", lambda p: p["status"]["containerStatuses"][0]["ready"])
    assert ready_column(minipod, "readyweb") == "1/1"
    minipod("delete", "pod", "readyweb")


def test_liveness_exec_failure_restarts_the_container(minipod, tmp_path):
    minipod.run_manifest(pod("unlive", "touch /tmp/alive; sleep 1; rm /tmp/alive; sleep 100000",
                             """    livenessProbe:
      exec: {command: [test, -e, /tmp/alive]}
      periodSeconds: 1
      failureThreshold: 2
"""), tmp_path)
    p = minipod.wait_for("unlive", lambda p: p["status"]["containerStatuses"][0]
                         ["restartCount"] >= 1, timeout=30)
    assert p["status"]["containerStatuses"][0]["restartCount"] >= 1
    described = minipod("describe", "pod", "unlive").stdout
    assert "Container main failed liveness probe, will be restarted" in described
    minipod("delete", "pod", "unlive")


def test_startup_probe_holds_liveness_until_the_port_opens(minipod, tmp_path):
    minipod.run_manifest(pod("slowstart", "sleep 2; exec httpd -f -p 8080",
                             """    startupProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
      failureThreshold: 10
    livenessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
      failureThreshold: 1
"""), tmp_path)
    p = minipod.wait_for("slowstart", lambda p: p["status"]["containerStatuses"][0]["started"],
                         timeout=20)
    time.sleep(2)
    p = minipod.pod("slowstart")
    assert p["status"]["containerStatuses"][0]["restartCount"] == 0, \
        "liveness must not run (and kill) before the startup probe succeeds"
    minipod("delete", "pod", "slowstart")


def test_pre_stop_runs_before_sigterm(minipod, tmp_path):
    out = tmp_path / "hook"
    out.mkdir()
    volumes = f"""  volumes:
  - name: out
    hostPath: {{path: {out}, type: Directory}}
"""
    minipod.run_manifest(pod("hooks",
                             "trap 'echo term >> /out/order; exit 0' TERM; "
                             "while :; do sleep 0.1; done",
                             """    volumeMounts: [{name: out, mountPath: /out}]
    lifecycle:
      postStart:
        exec: {command: [sh, -c, "echo poststart >> /out/order"]}
      preStop:
        exec: {command: [sh, -c, "echo prestop >> /out/order"]}
""", grace=10, volumes=volumes), tmp_path)
    minipod.wait_for("hooks", lambda p: p["status"]["phase"] == "Running")
    deadline = time.monotonic() + 5
    while not (out / "order").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    minipod("delete", "pod", "hooks")
    assert (out / "order").read_text().split() == ["poststart", "prestop", "term"]


def test_failing_post_start_hook_kills_the_container(minipod, tmp_path):
    minipod.run_manifest(pod("badhook", "sleep 100000", """    lifecycle:
      postStart:
        exec: {command: ["false"]}
"""), tmp_path)
    minipod.wait_for("badhook", lambda p: p["status"]["containerStatuses"][0]
                     ["restartCount"] >= 1, timeout=20)
    assert "FailedPostStartHook" in minipod("describe", "pod", "badhook").stdout
    minipod("delete", "pod", "badhook")
