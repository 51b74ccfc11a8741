"""An image a pod uses stays, whichever of its containers uses it."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

POD = """apiVersion: v1
kind: Pod
metadata:
  name: init-user
spec:
  initContainers:
  - name: setup
    image: minipod.test/init-only:1
    command: ["sh", "-c", "true"]
  containers:
  - name: main
    image: minipod.test/busybox:1
    command: ["sh", "-c", "exec sleep 100000"]
"""


def test_an_image_only_an_init_container_uses_is_kept(minipod, tmp_path):
    from imagebuild import build_busybox_rootfs
    rootfs = build_busybox_rootfs(tmp_path / "r")
    minipod("image", "import", str(rootfs), "minipod.test/init-only:1")
    minipod.run_manifest(POD, tmp_path)
    try:
        minipod.wait_for("init-user", lambda p: p["status"]["phase"] == "Running")
        rmi = minipod("rmi", "minipod.test/init-only:1", check=False)
        assert rmi.returncode == 1
        assert "is used by pod(s) init-user" in rmi.stderr
        minipod("image", "prune", "-a")
        assert "init-only" in minipod("images").stdout, "prune removed an image a pod uses"
    finally:
        minipod("delete", "pod", "init-user", "--now")
    minipod("rmi", "minipod.test/init-only:1")
