"""The image store's blobs and unpacked layers, content-addressed.

    blobs/sha256/<hex>          every blob, verified against its digest
    layers/sha256/<diff_id hex> each layer unpacked once: overlay lowerdirs
    tmp/                        blobs and layers being written
    gc.lock                     flock(2): shared by every write

Rules that keep it consistent when a process is killed at any moment:
- A blob is written to tmp/ while hashed, fsync'd, checked, then renamed
  to its final name: nothing partial or wrong is ever under blobs/.
- A layer is unpacked into tmp/ and renamed into layers/ only when its
  diff_id (sha256 of the uncompressed tar) matches the config's
  rootfs.diff_ids; a layer shared by images is unpacked once.

`BlobStore` is the lower half of minipod.rootfs.store.ImageStore, which
adds the names (refs.json), the images and garbage collection.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from minipod.linux import files
from minipod.rootfs import reference as _reference
from minipod.rootfs.unpack import LayerError, unpack_layer
from minipod.rootfs.unpackchild import UnpackProcess

_CHUNK = 1 << 20


class BlobError(ValueError):
    """A blob is missing, malformed, or its bytes do not match its digest."""


def short(digest: str) -> str:
    """"sha256:0123456789ab…" for messages."""
    return digest[:19] + "…" if len(digest) > 19 else digest


def digest_hex(digest: str) -> str:
    """The hex part of a sha256 digest, after checking it (it becomes a file name)."""
    _reference.validate_digest(digest)
    algorithm, hexpart = digest.split(":", 1)
    if algorithm != "sha256":
        raise BlobError(f"{digest}: only sha256 digests are supported")
    return hexpart


class BlobStore:
    """Blobs and unpacked layers under `root` (see the module docstring)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.blobs = self.root / "blobs" / "sha256"
        self.layers = self.root / "layers" / "sha256"
        self.tmp = self.root / "tmp"
        self.refs_file = self.root / "refs.json"
        self._ready = False

    def _ensure(self) -> None:
        """Create the directories on first write (0700: see the module docstring)."""
        if self._ready:
            return
        for d in (self.root, self.blobs.parent, self.blobs,
                  self.layers.parent, self.layers, self.tmp):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._ready = True

    # -- locks ---------------------------------------------------------------
    def _flock(self, name: str, how: int):
        self._ensure()
        return files.locked(self.root / name, how, what=f"image store {name}")

    def writing(self):
        """Held (shared) by every import: garbage collection waits for it."""
        return self._flock("gc.lock", fcntl.LOCK_SH)

    # -- blobs ---------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        return self.blobs / digest_hex(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def write_blob(self, src: BinaryIO, expected: str | None = None,
                   size: int | None = None, source: str = "") -> tuple[str, int]:
        """Copy `src` into the store, hashing as it goes; return (digest, size).

        With `expected` (and `size`), the bytes must match or BlobError is
        raised and nothing is stored. The blob appears under its final name
        only complete and fsync'd (temp file + fsync + rename).
        """
        with self.writing():
            return self._write_blob(src, expected, size, source)

    def _write_blob(self, src: BinaryIO, expected: str | None, size: int | None,
                    source: str, sink=None) -> tuple[str, int]:
        """write_blob's work; `sink(chunk)`, if given, gets every chunk as
        well (fetch_layer's unpack), so the blob is read even if stored."""
        where = f" from {source}" if source else ""
        if expected is not None and sink is None:
            final = self.blob_path(expected)
            if final.is_file():
                return expected, final.stat().st_size   # content-addressed: already here
        fd, tmp = tempfile.mkstemp(dir=self.tmp, prefix="blob-")
        try:
            sha = hashlib.sha256()
            n = 0
            with os.fdopen(fd, "wb") as out:
                while True:
                    chunk = src.read(_CHUNK)
                    if not chunk:
                        break
                    n += len(chunk)
                    if size is not None and n > size:
                        raise BlobError(f"blob {expected or ''}{where}: more than the "
                                        f"{size} bytes its descriptor says")
                    sha.update(chunk)
                    out.write(chunk)
                    if sink is not None:
                        sink(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = "sha256:" + sha.hexdigest()
            if expected is not None and digest != expected:
                raise BlobError(f"blob {expected}{where}: digest mismatch: "
                                f"the content hashes to {digest}")
            if size is not None and n != size:
                raise BlobError(f"blob {digest}{where}: {n} bytes, its descriptor says {size}")
            os.rename(tmp, self.blobs / digest_hex(digest))
            files.fsync_dir(self.blobs)
            return digest, n
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def adopt_blob(self, path: Path) -> tuple[str, int]:
        """Move a finished file from tmp/ into the store as a blob; return (digest, size).

        For blobs we write ourselves (a tar of a directory): hash, fsync, rename.
        """
        sha = hashlib.sha256()
        n = 0
        with open(path, "rb+") as f:
            while chunk := f.read(_CHUNK):
                sha.update(chunk)
                n += len(chunk)
            os.fsync(f.fileno())
        digest = "sha256:" + sha.hexdigest()
        os.rename(path, self.blobs / digest_hex(digest))
        files.fsync_dir(self.blobs)
        return digest, n

    def write_blob_bytes(self, data: bytes, expected: str | None = None, source: str = "") -> str:
        import io
        return self.write_blob(io.BytesIO(data), expected, len(data) if expected else None,
                               source)[0]

    def read_blob(self, digest: str) -> bytes:
        try:
            return self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise BlobError(f"blob {digest} is not in the store") from None

    def read_json(self, digest: str, what: str = "blob") -> dict:
        try:
            doc = json.loads(self.read_blob(digest))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BlobError(f"{what} {digest} is not valid JSON: {e}") from None
        if not isinstance(doc, dict):
            raise BlobError(f"{what} {digest} is not a JSON object")
        return doc

    # -- layers --------------------------------------------------------------
    def layer_dir(self, diff_id: str) -> Path:
        return self.layers / digest_hex(diff_id)

    def ensure_layer(self, blob_digest: str, diff_id: str | None = None) -> Path:
        """Unpack layer blob `blob_digest` once, as layers/sha256/<diff_id hex>/.

        Unpacks into tmp/, checks the uncompressed stream hashes to
        `diff_id`, then renames: a killed unpack leaves only tmp/ litter.
        With `diff_id` None (a layer we made ourselves), the unpack's own
        hash names the directory. The path's name is the diff_id's hex.
        """
        if diff_id is not None:
            final = self.layer_dir(diff_id)
            if final.is_dir():
                return final
        if not self.has_blob(blob_digest):
            raise BlobError(f"layer blob {blob_digest} is not in the store")
        with self.writing():
            work = self._layer_work_dir()
            try:
                what = f"layer {short(blob_digest)}"
                with open(self.blob_path(blob_digest), "rb") as f:
                    got = unpack_layer(f, work, what)
                return self._install_layer(work, got, diff_id, what)
            finally:
                if work.exists():
                    shutil.rmtree(work, ignore_errors=True)

    def fetch_layer(self, src: BinaryIO | None, blob_digest: str, diff_id: str,
                    size: int | None = None, source: str = "") -> Path:
        """Store layer blob `blob_digest` from `src` and unpack it while it streams.

        The bytes read from `src` go to the blob file (hashed, as
        write_blob) and, at the same time, to an UnpackProcess unpacking
        into tmp/: the download and the unpack overlap, and several
        layers fetched in threads unpack on several cores. With `src`
        None the blob is in the store already and is fed from its file.
        Only when the blob's digest is right (BlobError otherwise) and
        the unpacked stream hashes to `diff_id` (LayerError) is the
        directory renamed into layers/; on any failure it is removed.
        """
        final = self.layer_dir(diff_id)
        if final.is_dir():
            if src is not None:
                self.write_blob(src, expected=blob_digest, size=size, source=source)
            return final
        what = f"layer {short(blob_digest)}"
        with self.writing():
            work = self._layer_work_dir()
            child = UnpackProcess(work, what)
            try:
                if src is None:
                    try:
                        with open(self.blob_path(blob_digest), "rb") as f:
                            while chunk := f.read(_CHUNK):
                                child.feed(chunk)
                    except FileNotFoundError:
                        raise BlobError(f"layer blob {blob_digest} is not in the store") \
                            from None
                else:
                    self._write_blob(src, blob_digest, size, source, sink=child.feed)
                got = child.finish()
                child = None
                return self._install_layer(work, got, diff_id, what)
            finally:
                if child is not None:
                    child.abort()
                if work.exists():
                    shutil.rmtree(work, ignore_errors=True)

    def _layer_work_dir(self) -> Path:
        self._ensure()
        work = Path(tempfile.mkdtemp(dir=self.tmp, prefix="layer-"))
        # The layer root is the container's "/" where no upper dir
        # covers it; mkdtemp's 0700 would lock out non-root users.
        # A "./" member in the tar overrides this.
        os.chmod(work, 0o755)
        return work

    def _install_layer(self, work: Path, got: str, diff_id: str | None, what: str) -> Path:
        """Rename an unpacked layer from tmp/ into layers/ once its diff_id is checked."""
        if diff_id is not None and got != diff_id:
            raise LayerError(what, None, f"diff_id mismatch: the image config says "
                             f"{diff_id}, the uncompressed layer hashes to {got}")
        final = self.layer_dir(got)
        try:
            os.rename(work, final)
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            # Another import unpacked the same layer first: keep theirs.
        else:
            files.fsync_dir(self.layers)
        return final
