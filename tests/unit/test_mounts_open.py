"""Opening mount sources and targets by fd (rootfs/fdpath.py, for rootfs/mounts.py), without root.

The walk and openat2 decide what a volume's subPath or a mount target is;
these tests build the trees a hostile container or image could leave and
check what the fd names (readlink /proc/self/fd/N) and that nothing was
made outside.
"""
from __future__ import annotations

import errno
import os

import pytest

from minipod.linux import mount
from minipod.rootfs import fdpath, mounts


def where(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


@pytest.fixture(params=["openat2", "walk"])
def beneath(request, monkeypatch):
    """open_beneath as it runs on this kernel, and as it runs before Linux
    5.6 (openat2 answering ENOSYS: the O_PATH|O_NOFOLLOW walk)."""
    if request.param == "walk":
        def no_openat2(*args):
            raise OSError(errno.ENOSYS, "openat2: Function not implemented")
        monkeypatch.setattr(mount, "openat2", no_openat2)
    return fdpath.open_beneath


@pytest.fixture
def volume(tmp_path):
    """A volume with a directory, a symlink that stays inside, and the
    escapes a container can plant; plus a canary outside it."""
    canary = tmp_path / "canary"
    canary.mkdir()
    vol = tmp_path / "vol"
    (vol / "real" / "deep").mkdir(parents=True)
    (vol / "inside").symlink_to("real/deep")
    (vol / "absolute").symlink_to(canary)
    (vol / "climbs").symlink_to("../canary")
    (vol / "loop").symlink_to("loop")
    fd = os.open(vol, os.O_PATH | os.O_DIRECTORY)
    yield vol, fd, canary
    os.close(fd)


def test_a_symlink_that_stays_inside_the_volume_is_followed(beneath, volume):
    vol, fd, _ = volume
    assert where(beneath(fd, "inside")) == f"{vol}/real/deep"
    assert where(beneath(fd, "real/../inside/.")) == f"{vol}/real/deep"


@pytest.mark.parametrize("sub", ["absolute", "absolute/x", "climbs", "real/../../canary",
                                 "/etc"])
def test_a_path_out_of_the_volume_is_refused(beneath, volume, sub):
    _, fd, canary = volume
    with pytest.raises(OSError) as e:
        os.close(beneath(fd, sub, create="dir"))
    assert e.value.errno == errno.EXDEV
    assert os.listdir(canary) == [], "nothing may be made outside the volume"


def test_a_symlink_loop_is_eloop(beneath, volume):
    _, fd, _ = volume
    with pytest.raises(OSError) as e:
        os.close(beneath(fd, "loop"))
    assert e.value.errno == errno.ELOOP


def test_missing_directories_are_made_below_the_volume(beneath, volume):
    vol, fd, _ = volume
    assert where(beneath(fd, "inside/a/b", create="dir")) == f"{vol}/real/deep/a/b"
    assert (vol / "real/deep/a/b").is_dir()
    with pytest.raises(FileNotFoundError):
        beneath(fd, "not/there")


def test_open_source_names_the_sub_path_that_leads_out(volume):
    vol, _, canary = volume
    with pytest.raises(OSError, match='subPath "absolute" leads out of the volume') as e:
        fdpath.open_source(str(vol), "absolute")
    assert e.value.errno == errno.EXDEV and os.listdir(canary) == []
    assert where(fdpath.open_source(str(vol), "real")) == f"{vol}/real"


@pytest.fixture
def root(tmp_path):
    """An image root whose symlinks point out of it, as an image's may."""
    canary = tmp_path / "canary"
    canary.mkdir()
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "data").symlink_to("/etc")                 # absolute: the container's /etc
    (r / "up").symlink_to("../../../../../tmp")     # climbs: stops at the root
    (r / "dev").symlink_to(canary)                  # a host path, by its name
    fd = os.open(r, os.O_PATH | os.O_DIRECTORY)
    yield r, fd, canary
    os.close(fd)


def test_targets_resolve_as_inside_the_container_and_are_made_there(root):
    r, fd, canary = root
    assert where(fdpath.open_in_root(fd, "/data", create="dir")) == f"{r}/etc"
    assert where(fdpath.open_in_root(fd, "/data/x", create="dir")) == f"{r}/etc/x"
    assert where(fdpath.open_in_root(fd, "/up/y", create="file")) == f"{r}/tmp/y"
    assert (r / "tmp/y").is_file()
    assert where(fdpath.open_in_root(fd, "/../../etc", create="dir")) == f"{r}/etc"
    assert where(fdpath.open_in_root(fd, "/dev/pts", create="dir")) == f"{r}{canary}/pts"
    assert os.listdir(canary) == [], "the host's directory the image named is untouched"
    assert where(fdpath.open_in_root(fd, "/")) == str(r)


def test_a_component_swapped_for_a_symlink_is_resolved_as_that_symlink(root):
    # what a neighbour sharing a volume does between a check and a use: here
    # the swap is already done, and the walk sees the symlink (absolute: it
    # restarts at the root), never the host path its string names
    r, fd, canary = root
    (r / "vol").mkdir()
    (r / "vol" / "x").symlink_to(canary)
    assert where(fdpath.open_in_root(fd, "/vol/x/made", create="dir")) == \
        f"{r}{canary}/made"
    assert os.listdir(canary) == []


def test_check_inside_refuses_an_fd_outside_the_root(root, tmp_path):
    r, fd, canary = root
    out = os.open(canary, os.O_PATH)
    try:
        with pytest.raises(OSError, match="outside") as e:
            fdpath.check_inside(out, fd, "mount target /dev")
        assert e.value.errno == errno.EXDEV
    finally:
        os.close(out)
    inside = os.open(r / "etc", os.O_PATH)
    try:
        fdpath.check_inside(inside, fd, "mount target /etc")
    finally:
        os.close(inside)


def test_a_sub_path_bind_shows_the_path_it_mounts():
    p = mounts.plan(["/l"], "/u", "/w", "/m", {}, [
        mounts.BindMount("/vol/a", "/data", read_only=True, sub_path="x/y")])
    m = p.mounts[-1]
    assert m.sub_path == "x/y" and m.source == "/vol/a"
    assert m.shell("/m") == "mount --rbind -o ro /vol/a/x/y /m/data"


def test_a_deep_missing_path_is_made_whole(volume):
    vol, fd, _ = volume
    deep = "/".join(["d"] * 100)
    assert where(fdpath.open_in_root(fd, deep, create="file")) == f"{vol}/{deep}"
    assert (vol / deep).is_file()
