"""Several containers in one pod: network, IPC and UTS shared; root and PIDs not."""
from __future__ import annotations

import json

import pytest

from podhelpers import BUSYBOX_IMAGE

pytestmark = pytest.mark.integration

TWO = f"""apiVersion: v1
kind: Pod
metadata:
  name: pair
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: web
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", "mkdir /www; echo from-web > /www/index.html; touch /only-in-web; exec httpd -f -p 8080 -h /www"]
  - name: side
    image: {BUSYBOX_IMAGE}
    command: ["sleep", "100000"]
"""


@pytest.fixture
def pair(minipod, tmp_path):
    minipod.run_manifest(TWO, tmp_path)
    minipod.wait_for("pair", lambda p: all("running" in c["state"]
                                           for c in p["status"]["containerStatuses"]))
    yield "pair"
    minipod("delete", "pod", "pair", "--grace-period", "0")


def test_containers_share_network_ipc_uts_but_not_mnt_or_pid(minipod, pair):
    report = json.loads(minipod("inspect", "pod", pair, "-o", "json").stdout)
    web, side = report["containers"]
    for ns in ("net", "ipc", "uts"):
        assert web["namespaces"][ns] == side["namespaces"][ns], ns
        assert web["namespaces"][ns] != report["hostNamespaces"][ns], ns
    for ns in ("mnt", "pid"):
        assert web["namespaces"][ns] != side["namespaces"][ns], ns
    assert web["overlay"]["upperdir"] != side["overlay"]["upperdir"]
    assert web["overlay"]["lowerdir"] == side["overlay"]["lowerdir"], "image layers are shared"


def test_one_container_reaches_the_other_on_localhost(minipod, pair):
    out = minipod("exec", pair, "-c", "side", "--", "wget", "-qO-", "http://127.0.0.1:8080/")
    assert out.stdout == "from-web\n"


def test_files_are_not_shared_without_a_volume(minipod, pair):
    assert minipod("exec", pair, "-c", "web", "--", "test", "-e", "/only-in-web").returncode == 0
    proc = minipod("exec", pair, "-c", "side", "--", "test", "-e", "/only-in-web", check=False)
    assert proc.returncode == 1


def test_a_second_bind_on_a_used_port_fails(minipod, pair):
    proc = minipod("exec", pair, "-c", "side", "--", "nc", "-l", "-p", "8080", check=False)
    assert proc.returncode != 0
    assert "in use" in proc.stderr.lower()


def test_each_container_is_pid_1_of_its_own_tree(minipod, pair):
    out = minipod("exec", pair, "-c", "side", "--", "cat", "/proc/1/cmdline").stdout
    assert out.split("\0")[0] == "sleep"
    assert "httpd" not in minipod("exec", pair, "-c", "side", "--", "ps").stdout


def test_logs_of_a_two_container_pod_need_a_container_name(minipod, pair):
    proc = minipod("logs", pair, check=False)
    assert proc.returncode == 1
    assert "a container name must be specified for pod pair, choose one of: [web side]" \
        in proc.stderr


def test_share_process_namespace_shows_every_containers_processes(minipod, tmp_path):
    text = TWO.replace("name: pair", "name: shared").replace(
        "spec:\n", "spec:\n  shareProcessNamespace: true\n", 1)
    minipod.run_manifest(text, tmp_path)
    minipod.wait_for("shared", lambda p: all("running" in c["state"]
                                             for c in p["status"]["containerStatuses"]))
    ps = minipod("exec", "shared", "-c", "side", "--", "ps", "-o", "pid,comm").stdout
    assert "httpd" in ps and "sleep" in ps
    assert minipod("exec", "shared", "-c", "side", "--", "cat", "/proc/1/comm").stdout \
        == "minipod-pause\n"
    report = json.loads(minipod("inspect", "pod", "shared", "-o", "json").stdout)
    web, side = report["containers"]
    assert web["namespaces"]["pid"] == side["namespaces"]["pid"]
    minipod("delete", "pod", "shared", "--grace-period", "0")


def test_inspect_check_proves_each_claim_of_the_notes(minipod, tmp_path):
    text = TWO.replace("name: pair", "name: checked").replace(
        "  containers:\n", "  volumes: [{name: shared, emptyDir: {}}]\n  containers:\n", 1)
    text = text.replace('    command: ["sleep", "100000"]\n',
                        '    command: ["sleep", "100000"]\n'
                        '    volumeMounts: [{name: shared, mountPath: /shared}]\n')
    text = text.replace("touch /only-in-web; exec", "touch /only-in-web; exec")
    text = text.replace('''    image: minipod.test/busybox:1
    command: ["sh", "-c", "mkdir''', '''    image: minipod.test/busybox:1
    volumeMounts: [{name: shared, mountPath: /data}]
    command: ["sh", "-c", "mkdir''')
    minipod.run_manifest(text, tmp_path)
    minipod.wait_for("checked", lambda p: all("running" in c["state"]
                                              for c in p["status"]["containerStatuses"]))
    out = minipod("inspect", "pod", "checked", "--check").stdout
    assert out.count("✓") == 5 and "✗" not in out, out
    assert "EADDRINUSE" in out and "no NAT" in out
    assert "on volume shared" in out and "is visible" in out.replace("it is visible", "is visible")
    minipod("delete", "pod", "checked", "--grace-period", "0")
