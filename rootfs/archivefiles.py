"""An image archive read as named files: a directory, or a tar read once.

`minipod image load` reads OCI layouts and `docker save` tarballs
(minipod.rootfs.archive) through one small interface, `has(rel)`,
`read(rel)` and `blob(rel, digest, size)`:

    DirSource   an unpacked layout: each path is checked to stay inside it
    TarSource   a tar (maybe gzip'd), read front to back once: small files
                kept in memory, big ones written into the store as blobs;
                symlinks and hardlinks between members followed inside it

A path that leaves the archive ("..", absolute) is an ArchiveError.
"""

from __future__ import annotations

import json
import os
import re
import tarfile
from pathlib import Path
from typing import BinaryIO

from minipod.rootfs.blobs import BlobError
from minipod.rootfs.store import ImageStore

_SMALL = 1 << 20          # tar members up to this size are kept in memory
_SMALL_TOTAL = 64 << 20   # ... up to this much in all


class ArchiveError(ValueError):
    """The file is not a usable image archive; the message says where and why."""


def clean_path(rel: str, where: str) -> str:
    """A path inside the archive; "..", absolute and empty paths are refused."""
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts or rel.startswith("/"):
        raise ArchiveError(f'{where}: path "{rel}" is not inside the archive')
    return "/".join(parts)


class DirSource:
    """An unpacked archive: OCI layout directory (or an extracted docker save)."""

    def __init__(self, store: ImageStore, root: Path):
        self.store, self.root, self.where = store, root, str(root)

    def has(self, rel: str) -> bool:
        return (self.root / rel).is_file()

    def _path(self, rel: str) -> Path:
        path = (self.root / clean_path(rel, self.where)).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ArchiveError(f'{self.where}: "{rel}" points outside the archive')
        return path

    def read(self, rel: str) -> bytes:
        try:
            return self._path(rel).read_bytes()
        except FileNotFoundError:
            raise ArchiveError(f'{self.where}: "{rel}" is missing') from None

    def blob(self, rel: str, expected: str | None = None, size: int | None = None) -> tuple[str, int]:
        if expected is not None and self.store.has_blob(expected):
            return expected, self.store.blob_path(expected).stat().st_size
        try:
            with open(self._path(rel), "rb") as f:
                return self.store.write_blob(f, expected, size, source=f"{self.where}/{rel}")
        except FileNotFoundError:
            raise ArchiveError(f'{self.where}: "{rel}" is missing') from None


class TarSource:
    """A tar archive, read once front to back.

    Small files stay in memory; big ones go straight into the store as
    blobs (checked against their name when it is blobs/sha256/<hex>).
    Symlinks and hardlinks between members (classic `docker save` links
    repeated layers) are followed inside the archive.
    """

    def __init__(self, store: ImageStore, path: Path):
        self.store, self.where = store, str(path)
        self.small: dict[str, bytes] = {}
        self.blobs: dict[str, tuple[str, int]] = {}
        self.links: dict[str, str] = {}
        kept = 0
        try:
            with tarfile.open(path, mode="r|*") as tar:
                for m in tar:
                    try:
                        name = clean_path(m.name, self.where)
                    except ArchiveError:
                        continue   # "./" and the like: nothing we need
                    if m.issym():
                        self.links[name] = os.path.normpath(
                            os.path.join(os.path.dirname(name), m.linkname))
                    elif m.islnk():
                        self.links[name] = os.path.normpath(m.linkname.lstrip("/"))
                    elif m.isreg():
                        f = tar.extractfile(m)
                        if m.size <= _SMALL and kept + m.size <= _SMALL_TOTAL:
                            self.small[name] = f.read()
                            kept += m.size
                        else:
                            self.blobs[name] = store.write_blob(
                                f, digest_from_path(name), m.size,
                                source=f"{self.where}:{name}")
        except tarfile.TarError as e:
            raise ArchiveError(f"{self.where}: not a readable tar archive: {e}") from None

    def _follow(self, rel: str) -> str:
        name = clean_path(rel, self.where)
        for _ in range(16):
            if name not in self.links:
                return name
            name = clean_path(self.links[name], self.where)
        raise ArchiveError(f'{self.where}: "{rel}": too many levels of links')

    def has(self, rel: str) -> bool:
        name = self._follow(rel)
        return name in self.small or name in self.blobs

    def read(self, rel: str) -> bytes:
        name = self._follow(rel)
        if name in self.small:
            return self.small[name]
        if name in self.blobs:
            return self.store.read_blob(self.blobs[name][0])
        raise ArchiveError(f'{self.where}: "{rel}" is missing')

    def blob(self, rel: str, expected: str | None = None, size: int | None = None) -> tuple[str, int]:
        name = self._follow(rel)
        where = f"{self.where}:{name}"
        if name in self.small:
            data = self.small[name]
            digest, n = self.store.write_blob(_bytes_io(data), expected, size, source=where)
            return digest, n
        if name not in self.blobs:
            raise ArchiveError(f'{self.where}: "{rel}" is missing')
        digest, n = self.blobs[name]
        if expected is not None and digest != expected:
            raise BlobError(f"blob {expected} from {where}: digest mismatch: "
                            f"the content hashes to {digest}")
        if size is not None and n != size:
            raise BlobError(f"blob {digest} from {where}: {n} bytes, its descriptor says {size}")
        return digest, n


def _bytes_io(data: bytes) -> BinaryIO:
    import io
    return io.BytesIO(data)


def digest_from_path(name: str) -> str | None:
    """"blobs/sha256/<hex>" (OCI, Docker 25) or "<hex>.json" (classic config) -> digest."""
    m = re.fullmatch(r"(?:.*/)?blobs/sha256/([0-9a-f]{64})|([0-9a-f]{64})\.json", name)
    if not m:
        return None
    return "sha256:" + (m.group(1) or m.group(2))


def read_json(source, rel: str) -> object:
    try:
        return json.loads(source.read(rel))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArchiveError(f'{source.where}: "{rel}" is not valid JSON: {e}') from None
