"""Images from files: a root file system, an OCI image layout, `docker save`.

- `import_rootfs(store, src, name)`: a directory or a tar (plain or gzip)
  becomes a one-layer image, like `docker import`. A directory is tarred
  (sorted, numeric owners, modes, mtimes, hardlinks; no xattrs), so the
  same tree gives the same layer and is stored once.
- `load(store, path)`: detects the format and imports every image in it:
  * an OCI image layout (image-spec "image-layout.md"): `oci-layout`,
    `index.json`, `blobs/sha256/<hex>`; a directory, or a tar of one.
    Names come from the index's annotations: containerd's
    `io.containerd.image.name` (a full name), else
    `org.opencontainers.image.ref.name`, which is a full name
    ("busybox:1.36", as skopeo writes) or only a tag ("latest"). A bare tag
    gets the repository `localhost/<file name>` unless `name` is given.
    An image index picks this host's platform.
  * a docker-archive (what `docker save` writes): `manifest.json` =
    [{"Config": path, "RepoTags": [...], "Layers": [paths]}], classic
    (<id>/layer.tar, symlinks for repeated layers) or Docker 25's
    blobs/sha256/ names. Docker 25 writes an OCI layout in the same tar;
    manifest.json wins because its RepoTags are full names. A docker-archive
    has no manifest blob: an OCI manifest is made for it, so the image's
    digest here is not Docker's (its image id, the config digest, is).
  A tar is read once, front to back (it may be gzip'd: `docker save | gzip`),
  spooling its files into the store; every blob is checked against its
  digest, every layer against the config's diff_ids. The archive's files are
read through minipod.rootfs.archivefiles (a directory or a tar, read once).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tarfile
import tempfile
import time
from pathlib import Path

from minipod.rootfs import reference as _reference
from minipod.rootfs.archivefiles import (ArchiveError, DirSource, TarSource, clean_path,
                                         digest_from_path, read_json)
from minipod.rootfs.store import (
    DOCKER_MANIFEST, INDEX_TYPES, OCI_CONFIG, OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD,
    OCI_MANIFEST, Image, ImageStore, host_platform, select_manifest,
)

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"


# -- import_rootfs ------------------------------------------------------------

def import_rootfs(store: ImageStore, src: Path, name: str, config: dict | None = None) -> Image:
    """Import directory or tar `src` as a one-layer image named `name`.

    `config` becomes the image config's "config" object (Entrypoint, Cmd,
    Env, WorkingDir, User, …); {} if not given, like `docker import`.
    """
    src = Path(src)
    key = _reference.normalize(name)           # a bad name fails before any work
    try:
        with store.writing():
            if src.is_dir():
                layer_digest, size = _tar_directory_blob(store, src)
            elif src.is_file():
                with open(src, "rb") as f:
                    layer_digest, size = store.write_blob(f, source=str(src))
            else:
                raise FileNotFoundError(errno.ENOENT, "no such directory or tar file", str(src))
            diff_id = "sha256:" + store.ensure_layer(layer_digest).name
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            arch, variant = host_platform()
            doc = {
                "created": now,
                "architecture": arch,
                "os": "linux",
                "config": dict(config or {}),
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                "history": [{"created": now, "created_by": f"minipod image import {src.name}"}],
            }
            if variant:
                doc["variant"] = variant
            manifest_digest = _write_manifest(store, doc, [(layer_digest, size)])
            return store.add_image(key, manifest_digest)
    except BaseException:
        _collect_quietly(store)
        raise


def _collect_quietly(store: ImageStore) -> None:
    """After a failed import: drop its blobs, unless that fails or must wait."""
    with contextlib.suppress(Exception):   # the import's own error is the one to report
        store.gc(wait=False)


def _tar_directory_blob(store: ImageStore, src: Path) -> tuple[str, int]:
    """Tar `src`'s contents into a blob: sorted, numeric owners, no user names."""
    def norm(ti: tarfile.TarInfo) -> tarfile.TarInfo:
        ti.uname = ti.gname = ""   # host user names mean nothing in an image
        return ti

    fd, tmp = tempfile.mkstemp(dir=store.tmp, prefix="import-")
    try:
        with os.fdopen(fd, "wb") as out, \
                tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            # tarfile.add recurses in sorted order, keeps symlinks as
            # symlinks (dereference=False) and records hardlinks once.
            for entry in sorted(os.listdir(src)):
                tar.add(os.path.join(src, entry), arcname=entry, filter=norm)
        return store.adopt_blob(Path(tmp))
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _layer_media_type(store: ImageStore, digest: str) -> str:
    with open(store.blob_path(digest), "rb") as f:
        head = f.read(4)
    if head.startswith(b"\x1f\x8b"):
        return OCI_LAYER_GZIP
    if head == b"\x28\xb5\x2f\xfd":
        return OCI_LAYER_ZSTD
    return OCI_LAYER


def _write_manifest(store: ImageStore, config_doc: dict | bytes,
                    layers: list[tuple[str, int]]) -> str:
    """Store a config (unless given as a digest's bytes) and an OCI manifest for it."""
    raw = config_doc if isinstance(config_doc, bytes) else json.dumps(config_doc).encode()
    config_digest = store.write_blob_bytes(raw)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(raw)},
        "layers": [{"mediaType": _layer_media_type(store, d), "digest": d, "size": n}
                   for d, n in layers],
    }
    return store.write_blob_bytes(json.dumps(manifest).encode())


# -- load -----------------------------------------------------------------------

def load(store: ImageStore, path: Path, name: str | None = None) -> list[Image]:
    """Import every image in an OCI layout (dir or tar) or a docker-archive tar.

    `name` names the image when the archive holds one image (it overrides
    names inside the archive) or gives none. Returns the images, in the
    archive's order.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "no such image archive", str(path))
    if name is not None:
        _reference.normalize(name)             # fail early on a bad name
    try:
        with store.writing():
            source = DirSource(store, path) if path.is_dir() else TarSource(store, path)
            if source.has("manifest.json"):
                images = _load_docker_archive(store, source, name)
            elif source.has("index.json"):
                images = _load_oci_layout(store, source, path, name)
            else:
                raise ArchiveError(f"{path}: neither an OCI image layout (no index.json) "
                                   "nor a docker-archive (no manifest.json)")
    except BaseException:
        _collect_quietly(store)
        raise
    # Drop blobs the archive brought but no image uses (other platforms,
    # classic <id>/json files…). Skipped if another import is running.
    store.gc(wait=False)
    return images


def _load_docker_archive(store: ImageStore, source, name: str | None) -> list[Image]:
    entries = read_json(source, "manifest.json")
    if not isinstance(entries, list) or not entries:
        raise ArchiveError(f"{source.where}: manifest.json is not a non-empty list")
    if name is not None and len(entries) != 1:
        raise ArchiveError(f"{source.where} holds {len(entries)} images; a name fits only one")
    images = []
    for i, entry in enumerate(entries):
        where = f"{source.where}: manifest.json entry {i}"
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) \
                or not isinstance(entry.get("Layers"), list):
            raise ArchiveError(f"{where}: needs Config and Layers")
        cfg_rel = entry["Config"]
        cfg_digest, _ = source.blob(cfg_rel, digest_from_path(clean_path(cfg_rel, where)))
        raw_config = store.read_blob(cfg_digest)
        layers = [source.blob(rel) for rel in entry["Layers"]]
        manifest_digest = _write_manifest(store, raw_config, layers)
        tags = [name] if name is not None else list(entry.get("RepoTags") or [])
        if not tags:
            raise ArchiveError(f"{where}: the image has no RepoTags; give it a name")
        image = store.add_image(tags[0], manifest_digest)
        for tag in tags[1:]:
            store.tag(tag, manifest_digest)
        images.append(image)
    return images


def _descriptor_path(desc: dict, where: str) -> str:
    digest = desc.get("digest") if isinstance(desc, dict) else None
    if not isinstance(digest, str):
        raise ArchiveError(f"{where}: a descriptor has no digest")
    try:
        _reference.validate_digest(digest)
    except ValueError as e:
        raise ArchiveError(f"{where}: {e}") from None
    algorithm, hexpart = digest.split(":", 1)
    return f"blobs/{algorithm}/{hexpart}"


def _fetch(source, desc: dict, where: str) -> str:
    """Put the blob a descriptor names into the store, checked; return its digest."""
    size = desc.get("size")
    return source.blob(_descriptor_path(desc, where), desc["digest"],
                       size if isinstance(size, int) else None)[0]


def _oci_name(desc: dict, fallback_repo: str) -> str:
    annotations = desc.get("annotations") or {}
    full = annotations.get(ANNOTATION_CONTAINERD_NAME)
    if full:
        return full
    ref_name = annotations.get(ANNOTATION_REF_NAME)
    if ref_name and any(c in ref_name for c in "/:@"):
        return ref_name                         # "busybox:1.36", "docker.io/x/y:1"
    return f"{fallback_repo}:{ref_name or 'latest'}"


def _load_oci_layout(store: ImageStore, source, path: Path, name: str | None) -> list[Image]:
    where = f"{source.where}: index.json"
    if source.has("oci-layout"):
        layout = read_json(source, "oci-layout")
        version = layout.get("imageLayoutVersion") if isinstance(layout, dict) else None
        if version != "1.0.0":
            raise ArchiveError(f"{source.where}: oci-layout imageLayoutVersion {version!r}, "
                               'only "1.0.0" is known')
    index = read_json(source, "index.json")
    descs = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(descs, list) or not descs:
        raise ArchiveError(f"{where}: no manifests")
    # Entries for other platforms side by side in index.json (skopeo --all):
    # keep this host's.
    arch, _ = host_platform()
    mine = [d for d in descs if not isinstance(d, dict) or not d.get("platform")
            or (d["platform"].get("os"), d["platform"].get("architecture")) == ("linux", arch)]
    if not mine:
        select_manifest(index, where)           # raises, listing the platforms
    if name is not None and len(mine) != 1:
        raise ArchiveError(f"{where} lists {len(mine)} images; a name fits only one")
    stem = re.sub(r"[^a-z0-9._-]+", "-", path.name.lower().removesuffix(".tar")).strip("._-")
    fallback_repo = "localhost/" + (stem or "image")
    images, names = [], set()
    for i, desc in enumerate(mine):
        here = f"{where} manifests[{i}]"
        ref = name if name is not None else _oci_name(desc, fallback_repo)
        key = _reference.normalize(ref)
        if key in names:
            raise ArchiveError(f"{here}: a second image named {key}; load it with a name")
        names.add(key)
        digest = _fetch(source, desc, here)
        doc = store.read_json(digest, "manifest")
        if desc.get("mediaType") in INDEX_TYPES or "manifests" in doc:
            inner = select_manifest(doc, f"{here} (image index {digest})")
            digest = _fetch(source, inner, here)
            doc = store.read_json(digest, "manifest")
        if doc.get("mediaType") not in (None, OCI_MANIFEST, DOCKER_MANIFEST):
            raise ArchiveError(f"{here}: unsupported manifest media type {doc.get('mediaType')!r}")
        if not isinstance(doc.get("config"), dict) or not isinstance(doc.get("layers"), list):
            raise ArchiveError(f"{here}: manifest {digest} has no config or layers")
        _fetch(source, doc["config"], here)
        for layer in doc["layers"]:
            _fetch(source, layer, here)
        images.append(store.add_image(key, digest))
    return images
