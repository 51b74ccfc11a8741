"""The container root's mount plan, checked without root (pure)."""
from minipod import libc
from minipod.rootfs import mounts


def test_overlay_lists_the_top_layer_first():
    assert mounts.overlay_options(["/l/base", "/l/top"], "/u", "/w") == \
        "lowerdir=/l/top:/l/base,upperdir=/u,workdir=/w"


def test_plan_order_and_flags():
    p = mounts.plan(["/l/1"], "/u", "/w", "/m", {"/etc/hosts": "/pod/hosts"})
    targets = [m.target for m in p.mounts]
    assert targets == ["", "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys",
                       "/etc/hosts"]
    assert p.mounts[0].flags & libc.MS_NODEV, "image device nodes must not work"
    sysfs = p.mounts[6]
    assert sysfs.flags & libc.MS_RDONLY, "/sys must be read-only"
    assert p.mounts[1].flags & libc.MS_NOSUID and p.mounts[1].flags & libc.MS_NOEXEC
    assert p.mounts[-1].flags == libc.MS_BIND and p.mounts[-1].kind == "file"
    assert {d.path for d in p.devices} >= {"/dev/null", "/dev/zero", "/dev/urandom", "/dev/tty"}


def test_shell_form_reads_like_the_mount_command():
    p = mounts.plan(["/l/1"], "/u", "/w", "/m", {"/etc/hosts": "/pod/hosts"})
    assert p.mounts[0].shell("/m") == \
        "mount -t overlay -o nodev,lowerdir=/l/1,upperdir=/u,workdir=/w overlay /m"
    assert p.mounts[6].shell("/m") == "mount -t sysfs -o ro,nosuid,nodev,noexec sysfs /m/sys"
    assert p.mounts[-1].shell("/m") == "mount --bind /pod/hosts /m/etc/hosts"


def test_mount_errors_name_flags_source_and_target():
    try:
        libc.mount("/nonexistent-src", "/nonexistent-dst", None, libc.MS_BIND | libc.MS_REC)
    except OSError as e:
        assert e.errno in (2, 1)
        assert "MS_BIND|MS_REC" in str(e) and "/nonexistent-dst" in str(e)
    else:
        raise AssertionError("mount of a missing path succeeded")
