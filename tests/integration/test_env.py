"""exec, exec probes and exec hooks run with the container's environment,
the one minipod computed at start, whatever the process did to its own;
and HOME for a non-root user comes from the image's /etc/passwd.

A server may overwrite the memory /proc/PID/environ shows (nginx and redis
write their process titles there); here the container's process replaces
its environment for real, with `env -i`, so /proc/1/environ is empty.
"""
from __future__ import annotations

import json
import time

import pytest

from podhelpers import BUSYBOX_IMAGE

pytestmark = pytest.mark.integration

EMPTY_ENVIRON = "exec env -i sleep 100000"


def _pod(name: str, command: str, extra: str = "", spec: str = "", grace: int = 0) -> str:
    return f"""apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: {grace}
{spec}  containers:
  - name: main
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", {json.dumps(command)}]
    env:
    - {{name: MYVAR, value: from-the-manifest}}
{extra}"""


def test_exec_sees_the_manifest_env_when_the_process_emptied_its_own(minipod, tmp_path):
    minipod.run_manifest(_pod("envless", EMPTY_ENVIRON), tmp_path)
    minipod.wait_for("envless", lambda p: p["status"]["phase"] == "Running")
    try:
        assert minipod("exec", "envless", "--", "cat", "/proc/1/environ").stdout == "", \
            "the test's premise: PID 1 has no environment left"
        out = minipod("exec", "envless", "--", "sh", "-c", 'echo "$MYVAR $HOSTNAME $HOME"')
        assert out.stdout.split() == ["from-the-manifest", "envless", "/root"]
        path = minipod("exec", "envless", "--", "sh", "-c", "echo $PATH").stdout.strip()
        assert "/bin" in path.split(":")
        assert minipod("exec", "envless", "--", "ls", "/").returncode == 0  # found on PATH
    finally:
        minipod("delete", "pod", "envless", "--grace-period", "0")


def test_exec_of_a_pod_from_older_state_recomputes_the_env(minipod, tmp_path):
    """A record written before minipod stored the env: exec computes it from
    the manifest and the image again, not from /proc/1/environ."""
    minipod.run_manifest(_pod("oldstate", EMPTY_ENVIRON), tmp_path)
    minipod.wait_for("oldstate", lambda p: p["status"]["phase"] == "Running")
    try:
        minipod("agent", "stop")  # the agent rewrites the record; with it away, ours stays
        deadline = time.monotonic() + 10
        while minipod("agent", "status", check=False).returncode == 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        path = minipod.root / "run" / "pods" / "oldstate" / "pod.json"
        record = json.loads(path.read_text())
        assert all("env" in cs for cs in record["containers"])
        for cs in record["containers"]:
            del cs["env"]
        path.write_text(json.dumps(record))
        out = minipod("exec", "oldstate", "--", "sh", "-c", 'echo "$MYVAR $HOME"')
        assert out.stdout.split() == ["from-the-manifest", "/root"]
    finally:
        minipod("delete", "pod", "oldstate", "--grace-period", "0")


def test_exec_probe_and_hook_see_the_containers_env(minipod, tmp_path):
    minipod.run_manifest(_pod("envprobe", EMPTY_ENVIRON, """    lifecycle:
      postStart:
        exec: {command: [sh, -c, 'echo "$MYVAR" > /tmp/hook']}
    readinessProbe:
      exec: {command: [sh, -c, '[ "$MYVAR" = from-the-manifest ]']}
      periodSeconds: 1
""", grace=10), tmp_path)  # the agent gives postStart the grace period as its timeout
    try:
        pod = minipod.wait_for("envprobe", lambda p: p["status"].get("containerStatuses")
                               and p["status"]["containerStatuses"][0]["ready"], timeout=30)
        assert pod["status"]["containerStatuses"][0]["restartCount"] == 0, \
            minipod("describe", "pod", "envprobe").stdout
        assert minipod("exec", "envprobe", "--", "cat", "/tmp/hook").stdout == \
            "from-the-manifest\n"
    finally:
        minipod("delete", "pod", "envprobe", "--grace-period", "0")


@pytest.mark.parametrize("uid,home", [(65534, "/nonexistent"), (4242, "/"), (0, "/root")])
def test_home_comes_from_the_images_passwd(minipod, tmp_path, uid, home):
    # busybox image's /etc/passwd: root (/root) and nobody (/nonexistent); 4242 has no entry
    name = f"home{uid}"
    minipod.run_manifest(_pod(name, 'echo "HOME=$HOME"; exec sleep 100000',
                              spec=f"  securityContext: {{runAsUser: {uid}}}\n"), tmp_path)
    try:
        minipod.wait_for(name, lambda p: p["status"]["phase"] == "Running")
        deadline = time.monotonic() + 10
        while "HOME=" not in (logs := minipod("logs", name).stdout):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert logs.split() == [f"HOME={home}"]
        assert minipod("exec", name, "--", "sh", "-c", "echo $HOME").stdout == f"{home}\n"
    finally:
        minipod("delete", "pod", name, "--grace-period", "0")


def test_exec_runs_with_the_groups_of_the_containers_process(minipod, tmp_path):
    """The image's /etc/group makes user 1000 a member of group 2000: the
    container's process has it, and so has what exec runs (exec used to
    derive the user again without /etc/group, and lost 2000)."""
    import shutil
    from imagebuild import build_busybox_rootfs
    rootfs = build_busybox_rootfs(tmp_path / "rootfs")
    (rootfs / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\napp:x:1000:\nstaff:x:2000:app\n")
    image = "minipod.test/groups:1"
    minipod("image", "import", str(rootfs), image, "--cmd", '["sh"]')
    shutil.rmtree(rootfs)
    manifest = _pod("groups", "exec sleep 100000", spec="  securityContext: {runAsUser: 1000}\n")
    minipod.run_manifest(manifest.replace(BUSYBOX_IMAGE, image), tmp_path)
    try:
        minipod.wait_for("groups", lambda p: p["status"]["phase"] == "Running")
        own = minipod("exec", "groups", "--", "grep", "^Groups:", "/proc/1/status").stdout
        assert own.split()[1:] == ["1000", "2000"], own
        execd = minipod("exec", "groups", "--", "id", "-G").stdout
        assert execd.split() == ["1000", "2000"]
    finally:
        minipod("delete", "pod", "groups", "--grace-period", "0")
        minipod("image", "rm", image, check=False)
