"""Volumes: the only way files cross between containers (and from the host)."""
from __future__ import annotations

import os

import pytest

from podhelpers import BUSYBOX_IMAGE, http_get_when_up

pytestmark = pytest.mark.integration

# The Kubernetes docs' "two containers sharing a volume" example, with busybox:
# one container writes a page into an emptyDir, the other serves it.
SHARED = f"""apiVersion: v1
kind: Pod
metadata:
  name: two-containers
spec:
  terminationGracePeriodSeconds: 0
  volumes:
  - name: shared-data
    emptyDir: {{}}
  containers:
  - name: web
    image: {BUSYBOX_IMAGE}
    command: ["httpd", "-f", "-p", "80", "-h", "/usr/share/nginx/html"]
    volumeMounts:
    - name: shared-data
      mountPath: /usr/share/nginx/html
  - name: writer
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", "echo Hello from the writer container > /pod-data/index.html; sleep 100000"]
    volumeMounts:
    - name: shared-data
      mountPath: /pod-data
"""


def test_shared_volume_example_is_served_to_the_host(minipod, tmp_path):
    minipod.run_manifest(SHARED, tmp_path)
    ip = minipod.wait_for("two-containers", lambda p: p["status"]["phase"] == "Running")[
        "status"]["podIP"]
    page = http_get_when_up(f"http://{ip}/index.html")
    assert page == "Hello from the writer container\n"
    described = minipod("describe", "pod", "two-containers").stdout
    assert "/pod-data from shared-data (rw)" in described
    minipod("delete", "pod", "two-containers")


def test_host_path_memory_empty_dir_sub_path_and_read_only(minipod, tmp_path):
    host_dir = tmp_path / "host-data"
    host_dir.mkdir()
    (host_dir / "from-host.txt").write_text("hello from the host\n")
    manifest = f"""apiVersion: v1
kind: Pod
metadata:
  name: vols
spec:
  terminationGracePeriodSeconds: 0
  volumes:
  - name: host
    hostPath: {{path: {host_dir}, type: Directory}}
  - name: made
    hostPath: {{path: {tmp_path}/made/deeper, type: DirectoryOrCreate}}
  - name: mem
    emptyDir: {{medium: Memory, sizeLimit: 1Mi}}
  containers:
  - name: main
    image: {BUSYBOX_IMAGE}
    command: ["sleep", "100000"]
    volumeMounts:
    - {{name: host, mountPath: /host, readOnly: true}}
    - {{name: made, mountPath: /made}}
    - {{name: mem, mountPath: /mem}}
    - {{name: mem, mountPath: /sub, subPath: a/b}}
"""
    minipod.run_manifest(manifest, tmp_path)
    minipod.wait_for("vols", lambda p: p["status"]["phase"] == "Running")

    def sh(cmd, check=True):
        return minipod("exec", "vols", "--", "sh", "-c", cmd, check=check)

    assert sh("cat /host/from-host.txt").stdout == "hello from the host\n"
    ro = sh("touch /host/x", check=False)
    assert ro.returncode != 0 and "Read-only file system" in ro.stderr
    sh("echo made > /made/file")
    assert (tmp_path / "made/deeper/file").read_text() == "made\n"
    assert "tmpfs" in sh("grep ' /mem ' /proc/mounts").stdout
    full = sh("dd if=/dev/zero of=/mem/big bs=1024 count=2048", check=False)
    assert full.returncode != 0, "a 1Mi Memory emptyDir must refuse 2 MiB"
    sh("rm /mem/big")
    sh("echo sub > /sub/f")
    assert sh("cat /mem/a/b/f").stdout == "sub\n"
    minipod("delete", "pod", "vols")
    assert (host_dir / "from-host.txt").exists(), "a hostPath outlives the pod"


def test_a_missing_host_path_is_a_clear_error_and_creates_nothing(minipod, tmp_path):
    manifest = f"""apiVersion: v1
kind: Pod
metadata:
  name: badvol
spec:
  volumes:
  - name: gone
    hostPath: {{path: {tmp_path}/does-not-exist, type: Directory}}
  containers:
  - name: main
    image: {BUSYBOX_IMAGE}
    command: ["true"]
    volumeMounts:
    - {{name: gone, mountPath: /gone}}
"""
    proc = minipod.run_manifest(manifest, tmp_path, check=False)
    assert proc.returncode == 1
    assert "FailedMount" in proc.stderr and "does not exist" in proc.stderr
    assert "DirectoryOrCreate" in proc.stderr
    assert minipod("get", "pods", "-o", "name").stdout == ""
    assert not os.path.exists(f"/run/netns/{minipod.root.name}")


def test_a_volume_through_an_image_symlink_stays_inside_the_container(minipod, tmp_path):
    # /data -> /etc inside the image: the mount must land on the container's
    # /etc/x, never on the host's.
    manifest = f"""apiVersion: v1
kind: Pod
metadata:
  name: symlinked
spec:
  terminationGracePeriodSeconds: 0
  volumes:
  - name: v
    emptyDir: {{}}
  initContainers:
  - name: prepare
    image: {BUSYBOX_IMAGE}
    command: ["true"]
  containers:
  - name: main
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", "ls -d /etc/minipod-probe && sleep 100000"]
    volumeMounts:
    - {{name: v, mountPath: /etc/minipod-probe}}
"""
    minipod.run_manifest(manifest, tmp_path)
    minipod.wait_for("symlinked", lambda p: p["status"]["phase"] == "Running")
    assert not os.path.exists("/etc/minipod-probe")
    minipod("delete", "pod", "symlinked")
