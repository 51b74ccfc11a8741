"""Secure layer unpacking, against hand-made hostile layers."""
import gzip
import hashlib
import io
import os
import stat
import tarfile
import threading

import pytest

from minipod.rootfs.unpack import LayerError, unpack_layer

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod, chown, trusted.* xattrs)")

MTIME = 1_600_000_000


# -- building layers -------------------------------------------------------------

def reg(name, data=b"", mode=0o644, uid=0, gid=0, xattrs=None):
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.uid, ti.gid, ti.mtime = len(data), mode, uid, gid, MTIME
    if xattrs:
        ti.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
    return ti, data


def dir_(name, mode=0o755, uid=0, gid=0):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.uid, ti.gid, ti.mtime = tarfile.DIRTYPE, mode, uid, gid, MTIME
    return ti, None


def sym(name, target, uid=0, gid=0):
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.uid, ti.gid, ti.mtime = tarfile.SYMTYPE, target, uid, gid, MTIME
    return ti, None


def hard(name, target):
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mtime = tarfile.LNKTYPE, target, MTIME
    return ti, None


def node(name, kind, major=0, minor=0, mode=0o666):
    ti = tarfile.TarInfo(name)
    ti.type, ti.devmajor, ti.devminor, ti.mode, ti.mtime = kind, major, minor, mode, MTIME
    return ti, None


def layer_bytes(*members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for ti, data in members:
            tar.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


@pytest.fixture(autouse=True)
def no_leaks():
    """Every unpack, failed or not, closes its fds and stops its reader thread."""
    import threading
    fds, threads = len(os.listdir("/proc/self/fd")), threading.active_count()
    yield
    assert len(os.listdir("/proc/self/fd")) == fds
    assert threading.active_count() == threads


@pytest.fixture
def root(tmp_path):
    d = tmp_path / "root"
    d.mkdir()
    return d


def unpack(root, *members, compress=False):
    data = layer_bytes(*members)
    if compress:
        data = gzip.compress(data)
    return unpack_layer(io.BytesIO(data), root, "layer sha256:ab12…")


def refused(root, *members):
    with pytest.raises(LayerError) as e:
        unpack(root, *members)
    return str(e.value)


# -- ordinary layers ----------------------------------------------------------------

def test_files_dirs_symlinks(root):
    unpack(root,
           dir_("etc/", 0o755),
           reg("etc/hostname", b"box\n", 0o644),
           reg("usr/bin/tool", b"#!/bin/sh\n", 0o755),      # parents made implicitly
           sym("bin/sh", "/bin/busybox"),                    # absolute: fine, not followed
           sym("lib", "usr/lib"),
           dir_("ro", 0o555),
           reg("ro/file", b"x"))
    assert (root / "etc/hostname").read_bytes() == b"box\n"
    assert stat.S_IMODE((root / "usr/bin/tool").stat().st_mode) == 0o755
    assert os.readlink(root / "bin/sh") == "/bin/busybox"
    assert os.readlink(root / "lib") == "usr/lib"
    assert (root / "etc/hostname").stat().st_mtime == MTIME
    assert os.lstat(root / "bin/sh").st_mtime == MTIME
    # Directory mode and mtime set at the end: the read-only dir got its file.
    assert stat.S_IMODE((root / "ro").stat().st_mode) == 0o555
    assert (root / "ro/file").read_bytes() == b"x"
    assert (root / "etc").stat().st_mtime == MTIME


def test_returns_diff_id_plain_and_gzip(tmp_path):
    members = [reg("a", b"hello"), dir_("d"), reg("d/b", b"x" * 100_000)]
    plain = layer_bytes(*members)
    want = "sha256:" + hashlib.sha256(plain).hexdigest()
    (tmp_path / "p").mkdir()
    (tmp_path / "g").mkdir()
    assert unpack_layer(io.BytesIO(plain), tmp_path / "p") == want
    assert unpack_layer(io.BytesIO(gzip.compress(plain)), tmp_path / "g") == want
    assert (tmp_path / "g/d/b").read_bytes() == b"x" * 100_000


def test_empty_layers(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert unpack_layer(io.BytesIO(b"\0" * 1024), tmp_path / "a") == \
        "sha256:" + hashlib.sha256(b"\0" * 1024).hexdigest()
    assert unpack_layer(io.BytesIO(b""), tmp_path / "b") == "sha256:" + hashlib.sha256().hexdigest()


# -- path escapes -------------------------------------------------------------------

def test_dotdot_traversal_refused(tmp_path, root):
    msg = refused(root, reg("../../etc/passwd", b"pwned"))
    assert msg == 'layer sha256:ab12…: member "../../etc/passwd": path leaves the layer root'
    assert not (tmp_path / "etc").exists()
    assert b"pwned" not in open("/etc/passwd", "rb").read()


def test_dotdot_inside_is_cleaned_but_climbing_out_is_not(root):
    unpack(root, reg("a/../b", b"ok"))
    assert (root / "b").read_bytes() == b"ok"
    assert "leaves the layer root" in refused(root, reg("a/../../x", b"no"))


def test_absolute_path_is_contained(root):
    before = open("/etc/passwd", "rb").read()
    unpack(root, reg("/etc/passwd", b"root::0:0::/:/bin/sh\n"))
    assert (root / "etc/passwd").read_bytes() == b"root::0:0::/:/bin/sh\n"
    assert open("/etc/passwd", "rb").read() == before


def test_file_over_symlink_to_outside_replaces_the_symlink(tmp_path, root):
    outside = tmp_path / "outside"
    outside.write_bytes(b"precious")
    unpack(root, sym("f", str(outside)), reg("f", b"evil"))
    assert outside.read_bytes() == b"precious"
    assert not (root / "f").is_symlink()
    assert (root / "f").read_bytes() == b"evil"


def test_file_through_symlink_to_outside_dir_refused(tmp_path, root):
    outside = tmp_path / "outside"
    outside.mkdir()
    msg = refused(root, sym("escape", str(outside)), reg("escape/planted", b"evil"))
    assert 'member "escape/planted"' in msg and "symlink" in msg
    assert list(outside.iterdir()) == []


def test_file_under_symlinked_dir_refused(tmp_path, root):
    # Even a symlink that stays inside the root is not written through.
    msg = refused(root, dir_("usr/lib"), sym("lib", "usr/lib"), reg("lib/libc.so", b"x"))
    assert 'parent "lib" is a symlink' in msg
    assert not (root / "usr/lib/libc.so").exists()
    # And the classic escape: a relative symlink climbing out.
    root2 = tmp_path / "root2"
    root2.mkdir()
    with pytest.raises(LayerError):
        unpack(root2, sym("up", "../.."), reg("up/tmp/x", b"evil"))
    assert not (tmp_path.parent / "tmp" / "x").exists()


def test_hardlink_to_host_file_refused(root):
    nlink = os.stat("/etc/passwd").st_nlink
    msg = refused(root, hard("passwd", "/etc/passwd"))
    assert 'hardlink target "/etc/passwd" is not in the layer' in msg
    msg = refused(root, hard("passwd", "../../../../etc/passwd"))
    assert "leaves the layer root" in msg
    assert os.stat("/etc/passwd").st_nlink == nlink
    assert not (root / "passwd").exists()


def test_hardlink_through_symlink_refused(root):
    nlink = os.stat("/etc/passwd").st_nlink
    msg = refused(root, sym("etc", "/etc"), hard("passwd", "etc/passwd"))
    assert 'parent "etc" is a symlink' in msg
    assert os.stat("/etc/passwd").st_nlink == nlink


def test_hardlink_inside_layer(root):
    unpack(root, reg("bin/busybox", b"BB", 0o755), hard("bin/sh", "bin/busybox"),
           hard("bin/ls", "/bin/busybox"))   # tar writes absolute link names too
    assert os.stat(root / "bin/sh").st_ino == os.stat(root / "bin/busybox").st_ino
    assert os.stat(root / "bin/ls").st_ino == os.stat(root / "bin/busybox").st_ino


def test_hardlink_to_symlink_links_the_symlink(tmp_path, root):
    unpack(root, sym("s", "/etc/passwd"), hard("t", "s"))
    assert os.readlink(root / "t") == "/etc/passwd"


def test_rewriting_a_hardlinked_file_does_not_change_the_other_name(root):
    unpack(root, reg("a", b"one"), hard("b", "a"), reg("a", b"two"))
    assert (root / "a").read_bytes() == b"two"
    assert (root / "b").read_bytes() == b"one"


# -- replacing entries ----------------------------------------------------------------

def test_type_changes_replace_and_dir_over_dir_keeps(root):
    unpack(root,
           dir_("x"), reg("x/inner", b"1"), reg("x", b"now a file"),
           reg("y", b"file"), dir_("y"), reg("y/z", b"2"),
           dir_("k"), reg("k/keep", b"3"), dir_("k", 0o700),
           sym("s", "a"), dir_("s"))
    assert (root / "x").read_bytes() == b"now a file"
    assert (root / "y/z").read_bytes() == b"2"
    assert (root / "k/keep").read_bytes() == b"3"
    assert stat.S_IMODE((root / "k").stat().st_mode) == 0o700
    assert (root / "s").is_dir() and not (root / "s").is_symlink()


# -- metadata -------------------------------------------------------------------------

@root_only
def test_setuid_and_ownership_kept(root):
    unpack(root,
           reg("bin/su", b"SU", 0o4755, uid=0, gid=0),
           reg("bin/mine", b"M", 0o6755, uid=1234, gid=4321),
           sym("bin/link", "su", uid=1234, gid=4321),
           dir_("home/u", 0o1770, uid=1234, gid=4321))
    assert stat.S_IMODE(os.stat(root / "bin/su").st_mode) == 0o4755
    st = os.stat(root / "bin/mine")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o6755, 1234, 4321)
    lst = os.lstat(root / "bin/link")
    assert (lst.st_uid, lst.st_gid) == (1234, 4321)
    dst = os.stat(root / "home/u")
    assert (stat.S_IMODE(dst.st_mode), dst.st_uid) == (0o1770, 1234)


@root_only
def test_device_nodes_and_fifo(root):
    unpack(root, node("dev/null", tarfile.CHRTYPE, 1, 3, 0o666),
           node("dev/loop9", tarfile.BLKTYPE, 7, 9, 0o660),
           node("run/fifo", tarfile.FIFOTYPE, mode=0o600))
    st = os.lstat(root / "dev/null")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
    assert stat.S_IMODE(st.st_mode) == 0o666
    assert stat.S_ISBLK(os.lstat(root / "dev/loop9").st_mode)
    assert stat.S_ISFIFO(os.lstat(root / "run/fifo").st_mode)


@root_only
def test_whiteout_and_opaque_become_overlay_format(root):
    unpack(root,
           dir_("etc"), reg("etc/.wh.motd"),
           dir_("var/cache"), reg("var/cache/.wh..wh..opq"), reg("var/cache/new", b"n"),
           reg(".wh..wh.plnk"))                          # aufs metadata: ignored
    st = os.lstat(root / "etc/motd")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)
    assert not (root / "etc/.wh.motd").exists()
    assert os.getxattr(root / "var/cache", "trusted.overlay.opaque") == b"y"
    assert not (root / "var/cache/.wh..wh..opq").exists()
    assert (root / "var/cache/new").read_bytes() == b"n"
    assert sorted(os.listdir(root)) == ["etc", "var"]


def test_xattrs_from_pax_best_effort(root):
    unpack(root, reg("f", b"x", xattrs={"user.note": "hello",
                                        "trusted.overlay.redirect": "/etc"}))
    try:
        assert os.getxattr(root / "f", "user.note") == b"hello"
    except OSError:
        pytest.skip("this file system has no user xattrs")
    # overlay's own xattrs are never taken from a layer
    assert "trusted.overlay.redirect" not in os.listxattr(root / "f")


# -- broken input ---------------------------------------------------------------------

def test_truncated_gzip_and_garbage(tmp_path):
    data = gzip.compress(layer_bytes(reg("a", os.urandom(200_000))))
    (tmp_path / "t").mkdir()
    with pytest.raises(LayerError) as e:
        unpack_layer(io.BytesIO(data[: len(data) // 2]), tmp_path / "t", "layer X")
    assert str(e.value).startswith("layer X")
    (tmp_path / "g").mkdir()
    with pytest.raises(LayerError) as e:
        unpack_layer(io.BytesIO(b"this is not a tar archive" * 100), tmp_path / "g", "layer Y")
    assert str(e.value).startswith("layer Y")


def _error_of(fn):
    try:
        fn()
    except Exception as e:
        return e
    return None


@pytest.mark.parametrize("inflater", ["zlib", "isal"])
def test_a_bad_gzip_checksum_or_body_is_refused(tmp_path, monkeypatch, inflater):
    import zlib

    from minipod.rootfs import layerstream as unpack_mod
    if inflater == "isal":
        isal_zlib = pytest.importorskip("isal.isal_zlib")
        monkeypatch.setattr(unpack_mod, "_gzip_zlib", isal_zlib)
    else:
        monkeypatch.setattr(unpack_mod, "_gzip_zlib", zlib)
    good = bytearray(gzip.compress(layer_bytes(reg("a", b"x" * 300_000))))
    crc = bytearray(good)
    crc[-8] ^= 1                          # the CRC32 in the gzip trailer
    body = bytearray(good)
    body[len(body) // 2] ^= 0xFF          # a byte inside the deflate stream
    for i, bad in enumerate((crc, body)):
        (tmp_path / str(i)).mkdir()
        # In a thread: before the fix, a small layer whose first chunk
        # failed to inflate made the unpack wait forever for more.
        got = []
        worker = threading.Thread(target=lambda: got.append(_error_of(
            lambda: unpack_layer(io.BytesIO(bytes(bad)), tmp_path / str(i), "layer Z"))),
            daemon=True)
        worker.start()
        worker.join(60)
        assert not worker.is_alive(), "the unpack of a corrupt gzip layer hung"
        assert isinstance(got[0], LayerError), got
        assert str(got[0]).startswith("layer Z"), str(got[0])
    (tmp_path / "ok").mkdir()
    assert unpack_layer(io.BytesIO(bytes(good)), tmp_path / "ok").startswith("sha256:")


def test_zstd_without_module_is_a_clear_error(tmp_path):
    import importlib.util
    if importlib.util.find_spec("zstandard") is not None:
        pytest.skip("zstandard is installed")
    with pytest.raises(LayerError) as e:
        unpack_layer(io.BytesIO(b"\x28\xb5\x2f\xfd" + b"\0" * 100), tmp_path, "layer Z")
    assert "zstandard" in str(e.value)


def test_many_and_deep_directories(root):
    # More directories than the unpacker keeps open, links across them, and
    # a path deeper than its fd cache: fds are recycled without mix-ups.
    members = []
    for i in range(150):
        members.append(reg(f"d{i}/f", str(i).encode()))
    for i in range(150):
        members.append(hard(f"d{149 - i}/link", f"d{i}/f"))
    deep = "/".join(f"l{i}" for i in range(100))
    members += [reg(f"{deep}/bottom", b"deep"), hard("top", f"{deep}/bottom")]
    unpack(root, *members)
    for i in range(150):
        assert (root / f"d{149 - i}/link").read_bytes() == str(i).encode()
    assert (root / "top").read_bytes() == b"deep"
    assert os.stat(root / "top").st_ino == os.stat(root / deep / "bottom").st_ino


# -- in a child process (UnpackProcess: what a pull uses for a big layer) ---------------

def feed_child(dest, data, chunk=65536):
    from minipod.rootfs.unpackchild import UnpackProcess
    child = UnpackProcess(dest, "layer sha256:cd34…")
    for i in range(0, len(data), chunk):
        child.feed(data[i:i + chunk])
    return child.finish()


def test_a_child_process_unpacks_the_same_tree_and_diff_id(tmp_path):
    members = [dir_("etc/", 0o755), reg("etc/hostname", b"box\n"),
               reg("big", os.urandom(3 << 20), 0o600), sym("bin/sh", "/bin/busybox"),
               hard("etc/name", "etc/hostname"), dir_("ro", 0o555), reg("ro/f", b"x")]
    data = gzip.compress(layer_bytes(*members))
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    want = unpack_layer(io.BytesIO(data), here)
    assert feed_child(there, data) == want
    for rel in ("etc/hostname", "big", "ro/f", "etc/name"):
        assert (there / rel).read_bytes() == (here / rel).read_bytes()
    assert stat.S_IMODE((there / "big").stat().st_mode) == 0o600
    assert stat.S_IMODE((there / "ro").stat().st_mode) == 0o555
    assert os.readlink(there / "bin/sh") == "/bin/busybox"
    assert (there / "etc/name").stat().st_ino == (there / "etc/hostname").stat().st_ino


def test_a_child_process_refuses_an_escape_with_the_same_error(tmp_path, root):
    data = layer_bytes(reg("ok", b"fine"), reg("../../escaped", b"pwned"))
    with pytest.raises(LayerError) as e:
        feed_child(root, data)
    assert str(e.value) == ('layer sha256:cd34…: member "../../escaped": '
                            "path leaves the layer root")
    assert (e.value.member, e.value.reason) == ("../../escaped", "path leaves the layer root")
    assert not (tmp_path / "escaped").exists() and not (root.parent / "escaped").exists()


def test_a_child_process_fed_a_truncated_stream_fails(root):
    data = gzip.compress(layer_bytes(reg("f", os.urandom(200_000))))
    with pytest.raises(LayerError, match="truncated|ends inside|not a tar"):
        feed_child(root, data[:len(data) // 2])
