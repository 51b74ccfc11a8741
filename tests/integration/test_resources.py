"""Resources and isolation through the real CLI: limits, OOMKilled, QoS, top,
securityContext. (The escape attempts one by one: test_security.py.)"""
from __future__ import annotations

import pytest

from podhelpers import BUSYBOX_IMAGE

pytestmark = pytest.mark.integration


def pod(name, command, resources="", security="", policy="Never"):
    return f"""apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  restartPolicy: {policy}
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", {command!r}]
{resources}{security}"""


def test_over_the_memory_limit_is_oom_killed_137(minipod, tmp_path):
    minipod.run_manifest(pod("hog", "x=$(yes | head -c 100000000); echo survived",
                             resources="""    resources:
      limits: {memory: 32Mi}
"""), tmp_path)
    p = minipod.wait_for("hog", lambda p: p["status"]["phase"] in ("Failed", "Succeeded"),
                         timeout=60)
    term = p["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["reason"] == "OOMKilled" and term["exitCode"] == 137
    assert "survived" not in minipod("logs", "hog").stdout
    assert minipod("get", "pods", "hog").stdout.split()[7] == "OOMKilled"
    minipod("delete", "pod", "hog")


def test_qos_class_and_limits_in_the_kernels_files(minipod, tmp_path):
    minipod.run_manifest(pod("guaranteed", "sleep 100000", resources="""    resources:
      requests: {cpu: 250m, memory: 64Mi}
      limits: {cpu: 250m, memory: 64Mi}
""", policy="Always"), tmp_path)
    p = minipod.wait_for("guaranteed", lambda p: p["status"]["phase"] == "Running")
    assert p["status"]["qosClass"] == "Guaranteed"
    # the container's own view: its cgroup is the root of its own cgroup
    # namespace (cgroup v1 here, v2 elsewhere), the host's layout is hidden
    out = minipod("exec", "guaranteed", "--", "cat", "/proc/self/cgroup").stdout
    assert out and all(line.split(":", 2)[2] == "/" for line in out.splitlines()), out
    top = minipod("top", "pod", "guaranteed", "--containers").stdout.splitlines()
    assert top[0].split()[:3] == ["POD", "NAME", "CPU(cores)"]
    assert top[1].split()[1] == "main" and top[1].split()[3].endswith("Mi")
    minipod("delete", "pod", "guaranteed")


def test_best_effort_without_resources(minipod, tmp_path):
    minipod.run_manifest(pod("besteffort", "true"), tmp_path)
    p = minipod.wait_for("besteffort", lambda p: p["status"]["phase"] == "Succeeded")
    assert p["status"]["qosClass"] == "BestEffort"
    minipod("delete", "pod", "besteffort")


def test_security_context_user_read_only_root_and_no_mount(minipod, tmp_path):
    minipod.run_manifest(pod("confined",
                             "id -u; id -g; touch /x 2>&1 || echo ro-root; "
                             "mount -t tmpfs t /tmp 2>&1 || echo no-mount; "
                             "grep -E 'CapEff|NoNewPrivs|Seccomp:' /proc/self/status",
                             security="""    securityContext:
      runAsUser: 1000
      runAsGroup: 1000
      readOnlyRootFilesystem: true
"""), tmp_path)
    minipod.wait_for("confined", lambda p: p["status"]["phase"] in ("Succeeded", "Failed"))
    out = minipod("logs", "confined").stdout
    lines = out.splitlines()
    assert lines[:2] == ["1000", "1000"]
    assert "ro-root" in out and "no-mount" in out
    assert "CapEff:\t0000000000000000" in out
    assert "NoNewPrivs:\t1" in out and "Seccomp:\t2" in out
    minipod("delete", "pod", "confined")


def test_run_as_non_root_refuses_a_root_image(minipod, tmp_path):
    minipod.run_manifest(pod("nonroot", "true", security="""    securityContext:
      runAsNonRoot: true
"""), tmp_path, check=False)
    p = minipod.wait_for("nonroot", lambda p: p["status"]["containerStatuses"][0]["state"]
                         .get("waiting", {}).get("reason") == "CreateContainerConfigError")
    assert "runAsNonRoot" in p["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
    minipod("delete", "pod", "nonroot")


def test_exec_gets_the_containers_cgroup_user_and_confinement(minipod, tmp_path):
    minipod.run_manifest(pod("execconf", "sleep 100000", security="""    securityContext:
      runAsUser: 1000
""", policy="Always"), tmp_path)
    minipod.wait_for("execconf", lambda p: p["status"]["phase"] == "Running")
    out = minipod("exec", "execconf", "--", "sh", "-c",
                  "id -u; grep memory /proc/self/cgroup; "
                  "grep -E 'CapEff|NoNewPrivs|Seccomp:' /proc/self/status").stdout
    assert out.splitlines()[0] == "1000"
    # in the container's cgroup namespace, only the container's own cgroup is "/"
    assert out.splitlines()[1].split(":", 2)[2] == "/", "exec joins the container's cgroup"
    assert "CapEff:\t0000000000000000" in out and "Seccomp:\t2" in out
    minipod("delete", "pod", "execconf")
