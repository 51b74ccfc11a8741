"""Reaching a real pod from outside it: hostPort and port-forward, via the CLI."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from podhelpers import BUSYBOX_IMAGE, http_get_when_up

pytestmark = pytest.mark.integration


def web(name, host_port=None, bind="0.0.0.0"):
    hp = f", hostPort: {host_port}" if host_port else ""
    return f"""apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: web
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", "mkdir /www; echo hello from {name} > /www/index.html; exec httpd -f -p {bind}:8080 -h /www"]
    ports: [{{containerPort: 8080, name: http{hp}}}]
"""


def test_host_port_reaches_the_pod_and_a_second_claim_is_refused(minipod, tmp_path):
    minipod.run_manifest(web("hp1", host_port=18081), tmp_path)
    minipod.wait_for("hp1", lambda p: p["status"]["phase"] == "Running")
    assert http_get_when_up("http://127.0.0.1:18081/") == "hello from hp1\n"
    second = minipod.run_manifest(web("hp2", host_port=18081), tmp_path, check=False)
    assert second.returncode == 1 and "Conflict" in second.stderr and "hp1" in second.stderr
    assert minipod("get", "pods", "-o", "name").stdout.split() == ["pod/hp1"]
    minipod("delete", "pod", "hp1")
    from minipod.netns import hostport
    assert hostport.rules() == []


def test_port_forward_reaches_a_server_on_the_pods_loopback(minipod, tmp_path):
    minipod.run_manifest(web("pf", bind="127.0.0.1"), tmp_path)
    minipod.wait_for("pf", lambda p: p["status"]["phase"] == "Running")
    fwd = subprocess.Popen([sys.executable, "-m", "minipod", "port-forward", "pod/pf",
                            ":http"], env=minipod.env, stdout=subprocess.PIPE, text=True)
    try:
        line = fwd.stdout.readline()
        assert line.startswith("Forwarding from 127.0.0.1:") and line.rstrip().endswith("-> 8080")
        port = int(line.split(":")[1].split()[0])
        assert http_get_when_up(f"http://127.0.0.1:{port}/") == "hello from pf\n"
        minipod("delete", "pod", "pf")
        assert fwd.wait(timeout=10) == 1, "the forwarder ends when the pod is deleted"
    finally:
        if fwd.poll() is None:
            os.kill(fwd.pid, signal.SIGKILL)
            fwd.wait()
