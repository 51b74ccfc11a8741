"""The content-addressed image store: blobs, unpacked layers, and names.

An OCI image is a graph of blobs named by their sha256 (OCI image spec,
"manifest.md", "config.md", "descriptor.md"):

    reference --refs.json--> manifest --config--> config (Env, Cmd, diff_ids…)
                                      --layers--> layer blobs (tar, maybe gzip)

Layout under the store root (default /var/lib/minipod/images):

    blobs/sha256/<hex>          every blob, verified against its digest
    layers/sha256/<diff_id hex> each layer unpacked once: overlay lowerdirs
    refs.json                   {"schemaVersion": 1, "refs": {ref: digest}}
    refs.lock, gc.lock          flock(2) files
    tmp/                        blobs and layers being written

Rules that keep it consistent when a process is killed at any moment
(the blobs' and layers' own rules are in minipod.rootfs.blobs: written to
tmp/, checked, then renamed):
- refs.json is rewritten whole (temp file, fsync, rename) under an
  exclusive flock on refs.lock, so concurrent imports never lose a name.
- Imports hold a shared flock on gc.lock; garbage collection (after
  `remove`) takes it exclusively, so it never deletes the blobs of an
  import that has not yet written its name.

The root and layers/ are mode 0700: layers hold the images' setuid
binaries, which host users must not reach.

Caller's duty: `remove` deletes layer directories no remaining name uses;
the runtime must not remove an image whose layers are mounted by a
running container (as `docker rmi` refuses).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from minipod.linux import files
from minipod.rootfs import reference as _reference
from minipod.rootfs.blobs import BlobError, BlobStore, digest_hex

# Media types (OCI image spec "media-types.md"; Docker's "manifest v2, schema 2").
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = OCI_LAYER + "+gzip"
OCI_LAYER_ZSTD = OCI_LAYER + "+zstd"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)

REFS_SCHEMA = 1

# os.uname().machine -> GOARCH (and variant), the names image indexes use.
_GOARCH = {
    "x86_64": ("amd64", None), "amd64": ("amd64", None),
    "aarch64": ("arm64", None), "arm64": ("arm64", None),
    "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"),
    "i386": ("386", None), "i686": ("386", None),
    "ppc64le": ("ppc64le", None), "s390x": ("s390x", None), "riscv64": ("riscv64", None),
}


@dataclass
class Image:
    """One named image, ready to run: config plus unpacked layers."""

    reference: str             # normalised, e.g. "docker.io/luksa/kubia:latest"
    digest: str                # manifest digest "sha256:…"
    config: dict               # the config's "config" object (Entrypoint, Cmd, Env…), {} if absent
    layer_dirs: list[Path]     # unpacked layers, bottom -> top: overlay lowerdirs
    size: int                  # bytes of the layer blobs
    created: str | None
    config_digest: str = ""    # the image id Docker shows ("sha256:…" of the config)
    platform: str = ""         # "linux/amd64", from the config's os and architecture
    labels: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        """Docker's short image id: 12 hex digits of the config digest."""
        return self.config_digest.split(":", 1)[-1][:12]


class ImageNotFound(LookupError):
    """No image under this name (or id) in the store."""

    def __init__(self, ref: str):
        self.reference = ref
        super().__init__(
            f'image "{ref}" is not in the store; import it with '
            "`minipod image import DIR|TAR NAME` or `minipod image load FILE`")


def host_platform() -> tuple[str, str | None]:
    """This machine as (GOARCH, variant): ("amd64", None) on x86_64."""
    machine = os.uname().machine
    return _GOARCH.get(machine, (machine, None))


def select_manifest(index: dict, where: str = "image index",
                    platform: tuple[str, str | None] | None = None) -> dict:
    """Pick the linux/<host arch> manifest descriptor from an image index.

    Attestation manifests (platform unknown/unknown) are skipped; an arm
    variant must match when the host has one. ValueError lists what there is.
    """
    arch, variant = platform or host_platform()
    seen = []
    for desc in index.get("manifests") or []:
        plat = desc.get("platform") or {}
        seen.append("/".join(x for x in (plat.get("os"), plat.get("architecture"),
                                         plat.get("variant")) if x) or "unknown")
        if plat.get("os") != "linux" or plat.get("architecture") != arch:
            continue
        if variant and plat.get("variant") not in (None, variant):
            continue
        return desc
    raise ValueError(f"{where} has no manifest for linux/{arch}"
                     f"{'/' + variant if variant else ''}; it has: {', '.join(seen) or 'none'}")


class ImageStore(BlobStore):
    """Names and images over the blobs and layers under `root` (see the module docstring)."""

    # -- names ---------------------------------------------------------------
    def _read_refs(self) -> dict[str, str]:
        try:
            doc = json.loads(self.refs_file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise BlobError(f"cannot read {self.refs_file}: {e}") from None
        if doc.get("schemaVersion") != REFS_SCHEMA:
            raise BlobError(f"{self.refs_file}: unknown schemaVersion {doc.get('schemaVersion')!r}")
        return dict(doc.get("refs") or {})

    @contextlib.contextmanager
    def _editing_refs(self) -> Iterator[dict[str, str]]:
        """Yield the refs dict under the lock; write it back atomically after."""
        with self._flock("refs.lock", fcntl.LOCK_EX):
            refs = self._read_refs()
            before = dict(refs)
            yield refs
            if refs == before:
                return
            data = json.dumps({"schemaVersion": REFS_SCHEMA, "refs": dict(sorted(refs.items()))},
                              indent=1).encode()
            files.replace_file(self.refs_file, data, 0o600, durable=True)
            files.fsync_dir(self.root)

    def tag(self, ref: str, manifest_digest: str) -> str:
        """Point name `ref` at a stored manifest; return the normalised name."""
        key = _reference.normalize(ref)
        digest_hex(manifest_digest)
        with self._editing_refs() as refs:
            refs[key] = manifest_digest
        return key

    # -- images --------------------------------------------------------------
    def _manifest(self, digest: str) -> dict:
        manifest = self.read_json(digest, "manifest")
        media_type = manifest.get("mediaType")
        if manifest.get("schemaVersion") == 1:
            raise BlobError(f"manifest {digest}: Docker schema 1 manifests are not supported")
        if media_type in INDEX_TYPES or "manifests" in manifest:
            raise BlobError(f"manifest {digest} is an image index, not an image manifest")
        if not isinstance(manifest.get("config"), dict) or not isinstance(manifest.get("layers"), list):
            raise BlobError(f"manifest {digest} has no config or layers")
        return manifest

    def _image(self, ref: str, digest: str) -> Image:
        """Build the Image for `digest` from the store's blobs (no unpacking)."""
        manifest = self._manifest(digest)
        config_digest = manifest["config"].get("digest", "")
        doc = self.read_json(config_digest, "image config")
        diff_ids = (doc.get("rootfs") or {}).get("diff_ids") or []
        layers = manifest["layers"]
        if len(diff_ids) != len(layers):
            raise BlobError(f"image {ref}: the manifest has {len(layers)} layers, "
                            f"the config lists {len(diff_ids)} diff_ids")
        cfg = doc.get("config") or {}
        return Image(
            reference=ref,
            digest=digest,
            config=cfg,
            layer_dirs=[self.layer_dir(d) for d in diff_ids],
            size=sum(int(layer.get("size", 0)) for layer in layers),
            created=doc.get("created"),
            config_digest=config_digest,
            platform="/".join(str(doc[k]) for k in ("os", "architecture", "variant") if doc.get(k)),
            labels=cfg.get("Labels") or {},
        )

    def add_image(self, ref: str, manifest_digest: str) -> Image:
        """Unpack the layers of a stored manifest, then name it `ref`.

        The manifest, config and layer blobs must already be in the store
        (write_blob). The name is written last, so a name always points at
        a complete image.
        """
        key = _reference.normalize(ref)
        with self.writing():
            manifest = self._manifest(manifest_digest)
            image = self._image(key, manifest_digest)
            diff_ids = [p.name for p in image.layer_dirs]
            for desc, diff_hex in zip(manifest["layers"], diff_ids):
                media_type = desc.get("mediaType", "")
                if "foreign" in media_type:
                    raise BlobError(f"image {key}: layer {desc.get('digest')} is a foreign "
                                    f"(Windows) layer ({media_type})")
                self.ensure_layer(desc["digest"], "sha256:" + diff_hex)
            self.tag(key, manifest_digest)
        return image

    def _resolve(self, ref: str, refs: dict[str, str]) -> tuple[list[str], str]:
        """(names, manifest digest) that `ref` means: a name, a digest or an id prefix."""
        text = ref.strip()
        key, parse_error = None, None
        try:
            parsed = _reference.parse(text)
            key = str(parsed)
        except ValueError as e:
            parsed, parse_error = None, e
        if key is not None and key in refs:
            return [key], refs[key]
        if parsed is not None and parsed.digest is not None:
            # "name@sha256:…" finds a tagged image with that manifest digest.
            for name, digest in sorted(refs.items()):
                if digest == parsed.digest and name.startswith(parsed.name + ":"):
                    return [name], digest
        m = re.fullmatch(r"(?:sha256:)?([0-9a-f]{1,64})", text)
        if m:
            prefix = m.group(1)
            hits: dict[str, list[str]] = {}
            for name, digest in sorted(refs.items()):
                ids = [digest]
                with contextlib.suppress(BlobError, ValueError):
                    ids.append(self._manifest(digest)["config"].get("digest", ""))
                if any(i.split(":", 1)[-1].startswith(prefix) for i in ids):
                    hits.setdefault(digest, []).append(name)
            if len(hits) > 1:
                raise ValueError(f'image id "{text}" is ambiguous: it matches '
                                 f"{', '.join(n[0] for n in hits.values())}")
            if hits:
                digest, names = next(iter(hits.items()))
                return names, digest
        if parse_error is not None:
            raise parse_error
        raise ImageNotFound(key)

    def get(self, ref: str) -> Image:
        """The image named `ref` (normalised like `docker pull`), or by digest / id prefix.

        A layer directory that has gone missing is unpacked again from its
        blob, so the returned layer_dirs always exist.
        """
        refs = self._read_refs()
        names, digest = self._resolve(ref, refs)
        image = self._image(names[0], digest)
        if not all(d.is_dir() for d in image.layer_dirs):
            for desc, path in zip(self._manifest(digest)["layers"], image.layer_dirs):
                self.ensure_layer(desc["digest"], "sha256:" + path.name)
        return image

    def list(self) -> list[Image]:
        """Every named image, sorted by name (a broken entry is skipped with a warning)."""
        images = []
        for name, digest in sorted(self._read_refs().items()):
            try:
                images.append(self._image(name, digest))
            except (BlobError, ValueError) as e:
                import warnings
                warnings.warn(f"image store {self.root}: skipping {name}: {e}", stacklevel=2)
        return images

    def remove(self, ref: str) -> None:
        """Untag `ref` (by id: every name of that image), then delete unused blobs and layers."""
        with self._editing_refs() as refs:
            names, _ = self._resolve(ref, refs)
            for name in names:
                del refs[name]
        self.gc()

    def gc(self, wait: bool = True) -> bool:
        """Delete blobs, layers and temp files no named image uses.

        Waits for running imports (their shared lock) unless `wait` is
        False; then it returns False at once if an import is running.
        """
        self._ensure()
        try:
            fd = files.lock(self.root / "gc.lock",
                            fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB,
                            what="image store gc.lock")
        except BlockingIOError:
            return False
        try:
            live_blobs: set[str] = set()
            live_layers: set[str] = set()
            for digest in set(self._read_refs().values()):
                live_blobs.add(digest_hex(digest))
                try:
                    manifest = self._manifest(digest)
                    config_digest = manifest["config"]["digest"]
                    live_blobs.add(digest_hex(config_digest))
                    live_blobs.update(digest_hex(d["digest"]) for d in manifest["layers"])
                    doc = self.read_json(config_digest)
                    live_layers.update(digest_hex(d) for d in doc["rootfs"]["diff_ids"])
                except (BlobError, ValueError, KeyError, TypeError):
                    continue  # broken image: keep whatever of it is there
            for path in self.blobs.iterdir():
                if path.name not in live_blobs:
                    path.unlink()
            for path in self.layers.iterdir():
                if path.name not in live_layers:
                    # Rename first: the layer vanishes from layers/ at once,
                    # even if deleting its files is interrupted.
                    trash = Path(tempfile.mkdtemp(dir=self.tmp, prefix="trash-"))
                    os.rename(path, trash / "layer")
            # No import runs (we hold the lock exclusively): tmp/ is litter.
            for path in self.tmp.iterdir():
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink()
            return True
        finally:
            os.close(fd)  # releases the lock
