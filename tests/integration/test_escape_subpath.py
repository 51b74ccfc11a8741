"""The subPath and mount-target escapes (CVE-2021-25741, CVE-2017-1002101 and
runc's CVE-2021-30465 class), run for real against a canary directory.

A container that shares a volume with its neighbour can change the paths
in it at any moment. If the runtime checks a path and later mounts (or
creates a mount point) by the same string, the attacker swaps a directory
for a symlink to a host directory in between, and the host directory ends
up bind-mounted read-write into the neighbour (or written to by the
runtime itself). Here the attacker loops that swap while victims are
started over and over; the canary, a directory this test made on the
host, must stay as it was.
"""
from __future__ import annotations

import errno
import json
import os
import time

import pytest

from podhelpers import BUSYBOX_IMAGE

pytestmark = pytest.mark.integration

SECRET = "host secret, never to be seen by a container\n"
VICTIMS = 8          # started together, each restarted with back-off 1, 2, 4 s
STARTS = 32          # victim starts (each a try of the race) before the verdict

# The attacker flips `x` in the shared volume through: a directory, nothing,
# a symlink to the host's canary, nothing. The symlink is absolute: it means
# the host's canary only to a runtime that follows it on the host.
ATTACK = ("cd /vol && while :; do mkdir x; rm -rf x; ln -s \"$CANARY\" x; rm -f x; done")


def _canary(tmp_path):
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "secret.txt").write_text(SECRET)
    return canary


def _pod(name: str, canary, victim_mounts: str, victim_script: str) -> str:
    victims = "".join(f"""
  - name: victim{i}
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", {json.dumps(victim_script)}]
    volumeMounts:{victim_mounts}
    - {{name: report, mountPath: /report}}
""" for i in range(VICTIMS))
    return f"""apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 0
  restartPolicy: Always
  volumes:
  - name: shared
    emptyDir: {{}}
  - name: other
    emptyDir: {{}}
  - name: report
    emptyDir: {{}}
  containers:
  - name: attacker
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", {json.dumps(ATTACK)}]
    env: [{{name: CANARY, value: "{canary}"}}]
    volumeMounts:
    - {{name: shared, mountPath: /vol}}
{victims}"""


def _race(minipod, tmp_path, name: str, canary, manifest: str) -> tuple[int, int, str]:
    """Run the pod until the victims were started STARTS times (or the
    canary changed); returns (victim starts, starts that got their mounts
    and ran, what the victims saw), after deleting the pod."""
    minipod.run_manifest(manifest, tmp_path, check=False)
    try:
        uid = minipod.pod(name)["metadata"]["uid"]
        report = minipod.root / "lib" / "containers" / uid / "volumes" / "report"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            statuses = minipod.pod(name)["status"]["containerStatuses"]
            starts = sum(s["restartCount"] + 1 for s in statuses
                         if s["name"].startswith("victim"))
            if starts >= STARTS or sorted(p.name for p in canary.iterdir()) != ["secret.txt"]:
                break
            time.sleep(0.2)
        runs_file, seen_file = report / "runs", report / "seen"
        runs = len(runs_file.read_text().splitlines()) if runs_file.exists() else 0
        seen = seen_file.read_text() if seen_file.exists() else ""
    finally:
        minipod("delete", "pod", name, "--now")
    return starts, runs, seen


def _assert_canary_untouched(canary):
    assert sorted(p.name for p in canary.iterdir()) == ["secret.txt"], \
        f"the host's canary was written through the volume: {sorted(canary.iterdir())}"
    assert (canary / "secret.txt").read_text() == SECRET


def test_a_sub_path_swapped_for_a_symlink_never_mounts_the_host(minipod, tmp_path):
    canary = _canary(tmp_path)
    # each victim mounts subPath x of the shared volume, tries to read the
    # canary's secret through it and to write into it, and exits
    script = ("echo ran >> /report/runs; cat /data/secret.txt >> /report/seen 2>/dev/null; "
              "touch /data/written-by-$HOSTNAME-victim; sleep 1")
    mounts = "\n    - {name: shared, mountPath: /data, subPath: x}"
    starts, runs, seen = _race(minipod, tmp_path, "subpath-race", canary,
                               _pod("subpath-race", canary, mounts, script))
    _assert_canary_untouched(canary)
    assert SECRET not in seen, "a victim read the host's canary through its subPath"
    assert starts >= STARTS, f"only {starts} tries of the race"
    assert runs > 0, "no victim ever got its subPath: the fix refuses what it should mount"


def test_a_mount_target_swapped_for_a_symlink_is_never_made_on_the_host(minipod, tmp_path):
    canary = _canary(tmp_path)
    # each victim has the shared volume at /vol and a second volume deep
    # below /vol/x: the mount point and the directories above it are
    # created, then mounted on, inside whatever /vol/x is at that moment
    # (deep, so that a runtime which checks the path and then creates it by
    # its string gives the attacker a window it can hit)
    script = "echo ran >> /report/runs; sleep 1"
    mounts = ("\n    - {name: shared, mountPath: /vol}"
              "\n    - {name: other, mountPath: /vol/x/" + "d/" * 30 + "made}")
    starts, runs, _ = _race(minipod, tmp_path, "target-race", canary,
                         _pod("target-race", canary, mounts, script))
    _assert_canary_untouched(canary)
    # a victim may fail to start while the attacker deletes its mount
    # point's parents under it (an error, not an escape): only the tries count
    assert starts >= STARTS, f"only {starts} tries of the race"


def test_image_symlinks_at_mount_targets_stay_inside_the_root(minipod, tmp_path):
    # An image whose /dev and /data are absolute symlinks naming a directory
    # of the host: inside the container they lead to its own root, so /dev's
    # device nodes and the volume land there, and the host's canary stays as
    # it was.
    from imagebuild import build_busybox_rootfs
    canary = _canary(tmp_path)
    rootfs = build_busybox_rootfs(tmp_path / "rootfs")
    (rootfs / "dev").rmdir()
    (rootfs / "dev").symlink_to(canary)
    (rootfs / "data").symlink_to(f"{canary}/data")
    image = "minipod.test/symlinked-targets:1"
    minipod("image", "import", str(rootfs), image, "--cmd", '["sh"]')
    manifest = f"""apiVersion: v1
kind: Pod
metadata:
  name: symlinked-targets
spec:
  terminationGracePeriodSeconds: 0
  volumes:
  - name: v
    emptyDir: {{}}
  containers:
  - name: main
    image: {image}
    command: ["sleep", "100000"]
    volumeMounts:
    - {{name: v, mountPath: /data}}
"""
    try:
        minipod.run_manifest(manifest, tmp_path, check=False)
        _assert_canary_untouched(canary)
        minipod.wait_for("symlinked-targets", lambda p: p["status"]["phase"] == "Running")

        def sh(cmd):
            return minipod("exec", "symlinked-targets", "--", "sh", "-c", cmd).stdout
        assert sh("echo discarded > /dev/null && ls /dev/null /dev/zero") == \
            "/dev/null\n/dev/zero\n"
        sh("echo through-the-volume > /data/f")
        uid = minipod.pod("symlinked-targets")["metadata"]["uid"]
        vol = minipod.root / "lib" / "containers" / uid / "volumes" / "v"
        assert (vol / "f").read_text() == "through-the-volume\n"
        assert sh("cat /dev/secret.txt 2>&1 || true") != SECRET
    finally:
        minipod("delete", "pod", "symlinked-targets", "--now", check=False)
        minipod("image", "rm", image, check=False)
    _assert_canary_untouched(canary)


@pytest.mark.parametrize("kernel", ["this kernel", "without openat2 and open_tree"])
def test_binds_by_fd_on_this_kernel_and_on_old_ones(tmp_path, monkeypatch, kernel):
    """mounts.apply in a fresh mount namespace, with the new mount API and
    with its fallbacks (openat2 and open_tree answering ENOSYS: the fd walk
    and /proc/self/fd/N): a read-only subPath and a file land where the
    container sees them, through the root's own symlinks."""
    from minipod.linux import mount, namespaces
    from minipod.rootfs import mounts
    if kernel != "this kernel":
        def enosys(*args):
            raise OSError(errno.ENOSYS, "Function not implemented")
        monkeypatch.setattr(mount, "openat2", enosys)
        monkeypatch.setattr(mount, "open_tree", enosys)
    root, vol = tmp_path / "root", tmp_path / "vol"
    (root / "etc").mkdir(parents=True)
    (root / "data").symlink_to("/etc")
    (vol / "sub").mkdir(parents=True)
    (vol / "sub" / "f").write_text("in the subPath\n")
    (tmp_path / "file").write_text("a file\n")
    plan = mounts.RootfsPlan(str(root), [
        mounts.Mount(str(root), "", None, mount.MS_BIND),
        mounts.Mount(str(vol), "/data/v", None, mount.MS_BIND | mount.MS_REC,
                     remount_ro=True, sub_path="sub"),
        mounts.Mount(str(tmp_path / "file"), "/data/file", None, mount.MS_BIND)])
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            namespaces.unshare(namespaces.CLONE_NEWNS)
            mounts.apply(plan)
            try:
                open("/etc/v/new", "w")
                writable = "writable"
            except OSError as e:
                writable = e.strerror
            seen = [open("/etc/v/f").read(), open("/etc/file").read(), writable]
            os.write(w, json.dumps(seen).encode())
        except BaseException as e:
            os.write(w, json.dumps(repr(e)).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        seen = json.loads(f.read() or '"no report"')
    os.waitpid(pid, 0)
    assert seen == ["in the subPath\n", "a file\n", "Read-only file system"]
    assert not (root / "etc" / "v" / "new").exists()


def test_a_sub_path_through_a_symlink_out_of_the_volume_is_a_clear_error(minipod, tmp_path):
    canary = _canary(tmp_path)
    host = tmp_path / "host"
    host.mkdir()
    (host / "out").symlink_to(canary)
    manifest = f"""apiVersion: v1
kind: Pod
metadata:
  name: sub-out
spec:
  terminationGracePeriodSeconds: 0
  restartPolicy: Never
  volumes:
  - name: h
    hostPath: {{path: {host}, type: Directory}}
  containers:
  - name: main
    image: {BUSYBOX_IMAGE}
    command: ["true"]
    volumeMounts:
    - {{name: h, mountPath: /data, subPath: out}}
"""
    try:
        minipod.run_manifest(manifest, tmp_path, check=False)
        status = minipod.wait_for("sub-out", lambda p: p["status"]["containerStatuses"][0][
            "state"].get("terminated"))["status"]["containerStatuses"][0]
        message = status["state"]["terminated"]["message"]
        assert status["state"]["terminated"]["reason"] == "StartError"
        assert 'volume "h": subPath "out" leads out of the volume' in message, message
    finally:
        minipod("delete", "pod", "sub-out", "--now")
    _assert_canary_untouched(canary)
