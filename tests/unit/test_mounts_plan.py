"""The container root's mount plan, checked without root (pure)."""
from minipod.linux import mount
from minipod.rootfs import fdpath, mounts


def test_overlay_lists_the_top_layer_first():
    assert mounts.overlay_options(["/l/base", "/l/top"], "/u", "/w") == \
        "lowerdir=/l/top:/l/base,upperdir=/u,workdir=/w"


def test_plan_order_and_flags():
    p = mounts.plan(["/l/1"], "/u", "/w", "/m", {"/etc/hosts": "/pod/hosts"})
    targets = [m.target for m in p.mounts]
    assert targets == ["", "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys",
                       "/etc/hosts"]
    assert p.mounts[0].flags & mount.MS_NODEV, "image device nodes must not work"
    sysfs = p.mounts[6]
    assert sysfs.flags & mount.MS_RDONLY, "/sys must be read-only"
    assert p.mounts[1].flags & mount.MS_NOSUID and p.mounts[1].flags & mount.MS_NOEXEC
    assert p.mounts[-1].flags == mount.MS_BIND and p.mounts[-1].kind == "file"
    assert {d.path for d in p.devices} >= {"/dev/null", "/dev/zero", "/dev/urandom", "/dev/tty"}


def test_shell_form_reads_like_the_mount_command():
    p = mounts.plan(["/l/1"], "/u", "/w", "/m", {"/etc/hosts": "/pod/hosts"})
    assert p.mounts[0].shell("/m") == \
        "mount -t overlay -o nodev,lowerdir=/l/1,upperdir=/u,workdir=/w overlay /m"
    assert p.mounts[6].shell("/m") == "mount -t sysfs -o ro,nosuid,nodev,noexec sysfs /m/sys"
    assert p.mounts[-1].shell("/m") == "mount --bind /pod/hosts /m/etc/hosts"


def test_mount_errors_name_flags_source_and_target():
    try:
        mount.mount("/nonexistent-src", "/nonexistent-dst", None, mount.MS_BIND | mount.MS_REC)
    except OSError as e:
        assert e.errno in (2, 1)
        assert "MS_BIND|MS_REC" in str(e) and "/nonexistent-dst" in str(e)
    else:
        raise AssertionError("mount of a missing path succeeded")


def test_symlinks_in_the_image_resolve_inside_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "data").symlink_to("/etc")              # absolute: the container's /etc
    (root / "up").symlink_to("../../../../../tmp")   # climbs: clamped at the root
    r = str(root)
    assert fdpath.resolve_in_root(r, "/data/x") == f"{r}/etc/x"
    assert fdpath.resolve_in_root(r, "/up/y") == f"{r}/tmp/y"
    assert fdpath.resolve_in_root(r, "/../../etc/hosts") == f"{r}/etc/hosts"
    assert fdpath.resolve_in_root(r, "/a/./b/../c") == f"{r}/a/c"


def test_volume_binds_are_recursive_and_read_only_when_asked():
    p = mounts.plan(["/l"], "/u", "/w", "/m", {}, [
        mounts.BindMount("/vol/a", "/data", read_only=True),
        mounts.BindMount("/vol/f", "/etc/x.conf", is_file=True)])
    data, conf = p.mounts[-2], p.mounts[-1]
    assert data.flags == mount.MS_BIND | mount.MS_REC and data.remount_ro and data.kind == "dir"
    assert conf.kind == "file" and not conf.remount_ro
