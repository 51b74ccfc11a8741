"""Unpack one image layer (a tar, maybe gzip or zstd) into a directory, safely.

An image layer is a tar archive (OCI image spec, "layer.md"). It comes from
whoever built the image, so it is hostile input: a member named
"../../etc/passwd", a symlink "lib -> /" followed by "lib/etc/shadow", or a
hardlink to "/etc/shadow" must never touch the host. Python's own
`tarfile.extractall` filters do not fit: the 'data' filter refuses the
absolute symlinks every image has ("bin/sh -> /bin/busybox" is fine: it is
only resolved inside the container later), and the 'tar' filter followed a
hardlink to a host file in a test here. So tarfile only reads the headers
(in place over the decompressing reader, `r:`), and this module does every
file operation itself:

- A member path is cleaned lexically: a leading "/" is dropped (contained),
  "." and empty parts are dropped, a ".." that would climb above the layer
  root is refused.
- Parent directories are walked one component at a time with
  `openat(dirfd, part, O_NOFOLLOW|O_DIRECTORY)`, starting from an fd of the
  layer root: a symlink already in the tree is never followed while
  writing (it is refused: "parent is a symlink"), so nothing is created
  outside the root. This is the openat2(RESOLVE_BENEATH) idea done by hand.
  (containerd resolves such symlinks *inside* the root instead; a layer
  made by diffing a real filesystem never needs that.)
- The final component is created with the *at() calls (O_EXCL,
  AT_SYMLINK_NOFOLLOW), after removing an entry of another type that is in
  the way; a directory over a directory is kept.
- A hardlink's target is resolved the same way and must already be in the
  layer.
- Whiteouts become overlayfs whiteouts, as containerd's overlay
  snapshotter writes them (`archive/tar_opts_linux.go`): ".wh.NAME" -> a
  0/0 character device NAME; ".wh..wh..opq" -> xattr
  trusted.overlay.opaque=y on its directory.
- Ownership, modes (setuid included: chmod comes after chown, which clears
  it), mtimes and PAX xattrs (SCHILY.xattr.*, best effort) are kept.
  Directory modes and mtimes are set at the end, deepest first, as GNU tar
  does, so a read-only directory can still be filled and writing children
  does not disturb its mtime.

`unpack_layer` also hashes the uncompressed stream: that is the layer's
diff_id, which the image config lists in rootfs.diff_ids.

The pieces: minipod.rootfs.layerstream (decompression and the diff_id),
minipod.rootfs.layertree (the member path checks and the fd walk), this
module (the member types, whiteouts, ownership), and
minipod.rootfs.unpackchild (the same unpack in a child process fed while
the blob downloads).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from pathlib import Path
from typing import BinaryIO

from minipod.rootfs.layerstream import CHUNK, HashingReader, inflate_errors
from minipod.rootfs.layertree import Missing, Refused, Tree, clean_member_path, lstat_or_none

WHITEOUT_PREFIX = ".wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"


class LayerError(ValueError):
    """A layer could not be unpacked; names the layer and, if known, the member.

    `layer sha256:ab12…: member "../../etc/passwd": path leaves the layer root`
    """

    def __init__(self, what: str, member: str | None, reason: str):
        self.what, self.member, self.reason = what, member, reason
        where = f'{what}: member "{member}"' if member is not None else what
        super().__init__(f"{where}: {reason}")


# -- the unpacker -------------------------------------------------------------

class _Unpacker:
    def __init__(self, dest: Path):
        self.tree = Tree(dest)
        self.as_root = os.geteuid() == 0
        # parts -> (mode, mtime): applied at the end, deepest first
        self.dir_meta: dict[tuple[str, ...], tuple[int, float]] = {}

    def _create(self, parent: int, parts: tuple[str, ...], make):
        """make() the final component; if a name is in the way (EEXIST),
        remove it (_make_room) and make() again. Trying first saves an
        lstat per member: in a fresh layer nothing is ever in the way,
        and O_EXCL, symlink, mknod and link all refuse an existing name
        (a symlink included) without following it."""
        try:
            return make()
        except FileExistsError:
            self._make_room(parent, parts, keep_dir=False)
            return make()

    # Before a directory, or when _create found a name in the way.
    def _make_room(self, parent: int, parts: tuple[str, ...], keep_dir: bool) -> None:
        name = parts[-1]
        st = lstat_or_none(name, parent)
        if st is None:
            return
        if keep_dir and stat.S_ISDIR(st.st_mode):
            return
        self.tree.forget(parts)
        n = len(parts)
        for key in [k for k in self.dir_meta if k[:n] == parts]:
            del self.dir_meta[key]
        if stat.S_ISDIR(st.st_mode):
            # rmtree with dir_fd uses openat/unlinkat and never follows
            # symlinks (shutil's "symlink attack resistant" version).
            shutil.rmtree(name, dir_fd=parent)
        else:
            # Unlink, never truncate: the old file may be hardlinked elsewhere.
            os.unlink(name, dir_fd=parent)

    def _owner(self, m: tarfile.TarInfo, fd: int | None = None,
               name: str | None = None, parent: int | None = None) -> None:
        if not self.as_root:
            return  # like tar without --same-owner: files belong to us
        if fd is not None:
            os.fchown(fd, m.uid, m.gid)
        else:
            os.chown(name, m.uid, m.gid, dir_fd=parent, follow_symlinks=False)

    def _xattrs(self, m: tarfile.TarInfo, target: int | str) -> None:
        """Set SCHILY.xattr.* PAX records, best effort (ENOTSUP/EPERM skipped)."""
        for key, value in m.pax_headers.items():
            if not key.startswith("SCHILY.xattr."):
                continue
            attr = key[len("SCHILY.xattr."):]
            if attr.startswith(("trusted.overlay.", "user.overlay.")):
                # Only we write overlayfs' own xattrs (from whiteouts); a
                # layer carrying redirect/metacopy ones could steer lookups.
                continue
            # tarfile decoded the value with utf-8 + surrogateescape; undo it
            # to get the original bytes (security.capability is binary).
            raw = value.encode("utf-8", "surrogateescape")
            try:
                if isinstance(target, int):
                    os.setxattr(target, attr, raw)
                else:
                    os.setxattr(target, attr, raw, follow_symlinks=False)
            except OSError as e:
                if e.errno not in (errno.ENOTSUP, errno.EPERM, errno.EACCES, errno.EINVAL):
                    raise

    @staticmethod
    def _mtime_ns(m: tarfile.TarInfo) -> int:
        return int(m.mtime * 1_000_000_000)

    def member(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        self.tree.release()
        parts = clean_member_path(m.name)
        base = parts[-1] if parts else ""

        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(m, parts)
            return
        if m.isdir():
            self._directory(m, parts)
            return
        if not parts:
            raise Refused("only a directory may be the layer root")
        parent = self.tree.dir_fd(parts[:-1])
        if m.islnk():
            self._hardlink(m, parts, parent)
            return
        if m.isreg():
            self._regular(tar, m, parts, parent)
        elif m.issym():
            self._create(parent, parts, lambda: os.symlink(m.linkname, base, dir_fd=parent))
            self._owner(m, name=base, parent=parent)
            self._xattrs(m, f"/proc/self/fd/{parent}/{base}")
            os.utime(base, ns=(self._mtime_ns(m),) * 2, dir_fd=parent, follow_symlinks=False)
        elif m.ischr() or m.isblk() or m.isfifo():
            self._special(m, parts, parent)
        else:
            raise Refused(f"unsupported member type {m.type!r}")

    def _regular(self, tar: tarfile.TarFile, m: tarfile.TarInfo, parts: tuple[str, ...],
                 parent: int) -> None:
        fd = self._create(parent, parts, lambda: os.open(
            parts[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600, dir_fd=parent))
        try:
            if m.sparse is None and isinstance(tar.fileobj, HashingReader):
                # the data follows the header where tarfile left the reader
                tar.fileobj.seek(m.offset_data)
                if tar.fileobj.copy_to(fd, m.size) < m.size:
                    raise Refused("the archive ends inside this file")
            else:
                self._copy(tar.extractfile(m), fd, m.size)
            self._owner(m, fd=fd)
            os.fchmod(fd, m.mode & 0o7777)   # after chown, which clears setuid
            self._xattrs(m, fd)               # after chown, which clears file caps
            os.utime(fd, ns=(self._mtime_ns(m),) * 2)
        finally:
            os.close(fd)

    @staticmethod
    def _copy(src, fd: int, size: int) -> None:
        """tarfile's reader of a member (a sparse one: holes filled in) to fd."""
        while size > 0:
            chunk = src.read(min(CHUNK, size))
            if not chunk:
                raise Refused("the archive ends inside this file")
            size -= len(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]

    def _special(self, m: tarfile.TarInfo, parts: tuple[str, ...], parent: int) -> None:
        base = parts[-1]
        if m.isfifo():
            self._create(parent, parts, lambda: os.mkfifo(base, 0o600, dir_fd=parent))
        else:
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            try:
                self._create(parent, parts, lambda: os.mknod(
                    base, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=parent))
            except PermissionError:
                raise Refused("creating a device node needs root") from None
        self._owner(m, name=base, parent=parent)
        # Just created by us and not a symlink: chmod may follow safely.
        os.chmod(base, m.mode & 0o7777, dir_fd=parent)
        self._xattrs(m, f"/proc/self/fd/{parent}/{base}")
        os.utime(base, ns=(self._mtime_ns(m),) * 2, dir_fd=parent, follow_symlinks=False)

    def _directory(self, m: tarfile.TarInfo, parts: tuple[str, ...]) -> None:
        if parts:
            parent = self.tree.dir_fd(parts[:-1])
            self._make_room(parent, parts, keep_dir=True)
            try:
                os.mkdir(parts[-1], 0o700, dir_fd=parent)
            except FileExistsError:
                pass  # a directory over a directory: keep it and its contents
        fd = self.tree.dir_fd(parts)
        self._owner(m, fd=fd)
        self._xattrs(m, fd)
        self.dir_meta[parts] = (m.mode & 0o7777, m.mtime)

    def _hardlink(self, m: tarfile.TarInfo, parts: tuple[str, ...], parent: int) -> None:
        try:
            target = clean_member_path(m.linkname)
        except Refused:
            raise Refused(f'hardlink target "{m.linkname}" leaves the layer root') from None
        if not target:
            raise Refused("hardlink to the layer root")
        if target == parts:
            return  # a link to itself: nothing to do (GNU tar writes these)
        try:
            tparent = self.tree.dir_fd(target[:-1], create=False)
            st = lstat_or_none(target[-1], tparent)
        except Missing:
            st = None
        except Refused as e:
            raise Refused(f'hardlink target "{m.linkname}": {e}') from None
        if st is None:
            raise Refused(f'hardlink target "{m.linkname}" is not in the layer '
                           "(it must come earlier in the archive)")
        if stat.S_ISDIR(st.st_mode):
            raise Refused(f'hardlink target "{m.linkname}" is a directory')
        # follow_symlinks=False: linkat without AT_SYMLINK_FOLLOW links a
        # symlink itself, never the file it points to.
        self._create(parent, parts, lambda: os.link(
            target[-1], parts[-1], src_dir_fd=tparent, dst_dir_fd=parent,
            follow_symlinks=False))

    def _whiteout(self, m: tarfile.TarInfo, parts: tuple[str, ...]) -> None:
        base = parts[-1]
        dir_parts = parts[:-1]
        if base == WHITEOUT_OPAQUE:
            fd = self.tree.dir_fd(dir_parts)
            try:
                os.setxattr(fd, OVERLAY_OPAQUE_XATTR, b"y")
            except PermissionError:
                raise Refused(f"setting {OVERLAY_OPAQUE_XATTR} needs root") from None
            return
        if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return  # other ".wh..wh.*" names are aufs metadata: ignore (as Docker does)
        name = base[len(WHITEOUT_PREFIX):]
        if name in ("", ".", ".."):
            raise Refused("invalid whiteout name")
        parent = self.tree.dir_fd(dir_parts)
        try:
            self._create(parent, dir_parts + (name,), lambda: os.mknod(
                name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=parent))
        except PermissionError:
            raise Refused("a whiteout (0/0 character device) needs root") from None
        self._owner(m, name=name, parent=parent)

    def finish(self) -> None:
        """Set directory modes and mtimes, deepest first."""
        for parts in sorted(self.dir_meta, key=len, reverse=True):
            self.tree.release()
            mode, mtime = self.dir_meta[parts]
            try:
                fd = self.tree.dir_fd(parts, create=False)
            except Refused:
                continue  # replaced later by a non-directory
            os.fchmod(fd, mode)
            ns = int(mtime * 1_000_000_000)
            os.utime(fd, ns=(ns, ns))


def unpack_layer(fileobj: BinaryIO, dest: Path, what: str = "layer") -> str:
    """Unpack the layer in `fileobj` (tar, tar+gzip or tar+zstd) into `dest`.

    `dest` must be an existing directory, normally empty. Returns the
    layer's diff_id ("sha256:" + sha256 of the uncompressed tar), so the
    caller can check it against the image config's rootfs.diff_ids.
    Raises LayerError naming `what` and the member on anything refused or
    failed; `dest` may then hold a partial tree: unpack into a temporary
    directory and rename it when this returns.
    """
    try:
        reader = HashingReader(fileobj)
    except ValueError as e:
        raise LayerError(what, None, str(e)) from None
    unpacker = _Unpacker(Path(dest))
    name = None
    try:
        try:
            # "r:", not the stream mode "r|": tarfile then reads headers
            # and data from the reader in place (seek forward = read on)
            # instead of through its own buffer, a copy per 512-byte block
            tar = tarfile.open(fileobj=reader, mode="r:")
        except tarfile.ReadError as e:
            if reader.size == 0:       # a zero-byte layer: nothing to unpack
                reader.drain()
                return reader.digest()
            raise LayerError(what, None, f"not a tar archive: {e}") from None
        with tar:
            for m in tar:
                name = m.name
                unpacker.member(tar, m)
            name = None
            unpacker.finish()
        reader.drain()
    except Refused as e:
        raise LayerError(what, name, str(e)) from None
    except LayerError:
        raise
    except (OSError, tarfile.TarError, ValueError, EOFError, OverflowError,
            *inflate_errors()) as e:
        raise LayerError(what, name, _describe(e)) from e
    finally:
        reader.close()
        unpacker.tree.close()
    return reader.digest()


def _describe(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror} (errno {e.errno})"
    return str(e) or type(e).__name__
