"""`minipod pull`: an image from a registry into the local store.

The steps, as `docker pull` takes them (registry.py speaks the protocol,
store.py keeps the bytes):

    1. parse the reference           busybox -> docker.io/library/busybox:latest
    2. find credentials              credentials.py (anonymous if none)
    3. GET the manifest              an index? pick linux/<this arch>, GET that one
    4. GET the config blob           its rootfs.diff_ids name the unpacked layers
    5. per layer:                    skip it if unpacked already ("Already exists"),
                                     else download (3 at a time, resuming on a
                                     dropped connection), verify, and unpack
                                     (a big layer while it downloads, in a
                                     process of its own)
    6. name the image                store.add_image: the name is written last

With skopeo and the same store layout, roughly:

    $ skopeo copy docker://busybox:latest oci:/tmp/bb:latest
    $ minipod image load /tmp/bb

Safety comes from the store: every blob is written to tmp/, hashed while
it streams, and renamed into blobs/ only if its digest matches; a layer is
renamed into layers/ only once fully unpacked and its diff_id checked. So
a pull killed at any moment leaves litter in tmp/ (the next gc removes
it), never a half layer; two pulls of the same image at once both finish
(the loser of a rename race keeps the winner's identical copy). The whole
pull holds the store's shared lock, so `gc` cannot delete its blobs
before the name is written.

Layers may be tar, tar+gzip or tar+zstd (unpack.py detects which from the
bytes; zstd needs the Python package `zstandard`). A foreign or
non-distributable layer (Windows base layers) is not served by the
registry: it is fetched from the URLs in its descriptor, if it has any.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import TextIO

from minipod.rootfs import credentials as _credentials
from minipod.rootfs import reference as _reference
from minipod.rootfs.registry import Registry
from minipod.rootfs.transport import DEFAULT_CERTS_DIR, is_insecure
from minipod.rootfs.blobs import BlobError
from minipod.rootfs.store import (DOCKER_CONFIG, INDEX_TYPES, OCI_CONFIG, Image,
                                  ImageNotFound, ImageStore, host_platform, select_manifest)

WORKERS = 3     # parallel layer downloads, as Docker's max-concurrent-downloads
UNPACK_IN_CHILD = 1 << 20   # compressed bytes from which a layer unpacks in a process
_LAYER_PREFIXES = ("application/vnd.oci.image.layer.", "application/vnd.docker.image.rootfs.")


class PullError(ValueError):
    """The image cannot be pulled for a reason that is not the registry's answer."""


class _Aborted(Exception):
    """Internal: the pull failed elsewhere; stop this download."""


# -- progress -------------------------------------------------------------------------

class Progress:
    """What a pull reports. This base class shows nothing (quiet)."""

    def message(self, text: str) -> None:
        """A line about the whole pull: "latest: Pulling from library/busybox"."""

    def layer(self, digest: str, status: str, current: int = 0, total: int = 0) -> None:
        """A layer's state: "Downloading" with bytes, "Pull complete", …"""

    def warn(self, text: str) -> None:
        """Something the user should know that does not stop the pull."""

    def close(self) -> None:
        """The pull is over (done or failed)."""


def layer_id(digest: str) -> str:
    """The 12 hex digits `docker pull` shows for a layer."""
    return digest.split(":", 1)[-1][:12]


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.4g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return str(n)


class LineProgress(Progress):
    """One line per state change (no byte counts): for logs and pipes."""

    def __init__(self, out: TextIO | None = None):
        self.out = out or sys.stderr
        self._lock = threading.Lock()
        self._last: dict[str, str] = {}

    def _write(self, line: str) -> None:
        with self._lock:
            self.out.write(line + "\n")
            self.out.flush()

    def message(self, text: str) -> None:
        self._write(text)

    def warn(self, text: str) -> None:
        self._write(f"warning: {text}")

    def layer(self, digest: str, status: str, current: int = 0, total: int = 0) -> None:
        if self._last.get(digest) == status:
            return
        self._last[digest] = status
        self._write(f"{layer_id(digest)}: {status}")


class TerminalProgress(LineProgress):
    """`docker pull`'s display: one line per layer, redrawn in place.

    Each layer keeps its row; an update moves the cursor up to the row
    (ESC [ n A), clears it (ESC [ 2 K), writes, and moves back down.
    Byte counts are redrawn at most 10 times a second per layer.
    """

    BAR = 50

    def __init__(self, out: TextIO | None = None):
        super().__init__(out)
        self._rows: list[str] = []
        self._drawn: dict[str, float] = {}

    def _line(self, digest: str, status: str, current: int, total: int) -> str:
        text = f"{layer_id(digest)}: {status}"
        if status == "Downloading" and total:
            done = min(self.BAR, self.BAR * current // total)
            bar = "=" * done + (">" if done < self.BAR else "") + " " * (self.BAR - done - 1)
            text += f" [{bar}]  {_human(current)}/{_human(total)}"
        return text

    def layer(self, digest: str, status: str, current: int = 0, total: int = 0) -> None:
        with self._lock:
            now = time.monotonic()
            changed = self._last.get(digest) != status
            if not changed and now - self._drawn.get(digest, 0) < 0.1:
                return
            self._last[digest], self._drawn[digest] = status, now
            line = self._line(digest, status, current, total)
            if digest not in self._rows:
                self._rows.append(digest)
                self.out.write(line + "\n")
            else:
                up = len(self._rows) - self._rows.index(digest)
                self.out.write(f"\x1b[{up}A\x1b[2K\r{line}\x1b[{up}B\r")
            self.out.flush()


# -- the pull ---------------------------------------------------------------------------

def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(body: bytes, what: str) -> dict:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError) as e:
        raise PullError(f"{what} is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise PullError(f"{what} is not a JSON object")
    return doc


def _is_foreign(desc: dict) -> bool:
    media_type = desc.get("mediaType", "")
    return "foreign" in media_type or "nondistributable" in media_type


def _check_layers(name: str, layers: list) -> None:
    """Refuse what we cannot unpack before downloading anything."""
    zstd_ok = None
    for desc in layers:
        if not isinstance(desc, dict) or not desc.get("digest"):
            raise PullError(f"image {name}: a layer descriptor has no digest")
        media_type = desc.get("mediaType", "")
        if media_type and not media_type.startswith(_LAYER_PREFIXES):
            raise PullError(f"{name} is not a container image: it has a layer of type "
                            f"{media_type}")
        if media_type.endswith("zstd"):
            if zstd_ok is None:
                zstd_ok = importlib.util.find_spec("zstandard") is not None
            if not zstd_ok:
                raise PullError(f"image {name}: layer {desc['digest']} is zstd-compressed and "
                                f"the Python package zstandard is not installed "
                                f"(pip install zstandard)")
        if _is_foreign(desc) and not desc.get("urls"):
            raise PullError(f"image {name}: layer {desc['digest']} is a non-distributable "
                            f"({media_type}) layer: the registry does not serve it and its "
                            f"descriptor has no urls to fetch it from")


def pull(store: ImageStore, ref: str, *, progress: Progress | None = None,
         insecure: set[str] | frozenset[str] = frozenset(),
         certs_dir: Path | None = DEFAULT_CERTS_DIR, auth_file: Path | None = None,
         platform: tuple[str, str | None] | None = None, workers: int = WORKERS,
         env: dict | None = None) -> Image:
    """Pull image `ref` (like `docker pull`) into `store`; return the Image.

    `insecure`: registries (HOST[:PORT] or networks) that may use plain
    HTTP; loopback ones always may. `certs_dir`: the per-registry CA
    directory (certs.d/HOST[:PORT]/ca.crt). `auth_file`: minipod's own
    credentials file (see credentials.py for the others searched).
    Raises transport.RegistryError subclasses (NotFound, Unauthorized,
    Unreachable, TLSFailure), PullError, blobs.BlobError or
    unpack.LayerError; ValueError for a bad reference.
    """
    progress = progress or Progress()
    try:
        return _pull(store, ref, progress, insecure, certs_dir, auth_file, platform,
                     workers, env)
    finally:
        progress.close()


def _pull(store, ref, progress, insecure, certs_dir, auth_file, platform, workers, env):
    parsed = _reference.parse(ref)
    name = str(parsed)
    creds = _credentials.lookup(parsed.registry, parsed.repository, own=auth_file,
                                env=env, warn=progress.warn)
    client = Registry(parsed.registry, insecure=is_insecure(parsed.registry, set(insecure)),
                      certs_dir=certs_dir, credentials=creds)
    repo = parsed.repository
    try:
        before = store.get(name).digest
    except (ImageNotFound, BlobError, ValueError, OSError):
        before = None
    progress.message(f"{parsed.tag or parsed.digest}: Pulling from {repo}")
    try:
        with store.writing():
            digest, body, manifest = _fetch_manifest(client, parsed, name, platform)
            store.write_blob_bytes(body, expected=digest, source=f"{name} manifest")
            diff_ids = _fetch_config(store, client, repo, name, manifest, progress)
            layers = manifest["layers"]
            _check_layers(name, layers)
            _fetch_layers(store, client, repo, name, list(zip(layers, diff_ids)), progress,
                          workers)
            if any(_is_foreign(d) for d in layers):
                # store.add_image refuses foreign media types; the layers are
                # unpacked and checked already, so only the name is left.
                store.tag(name, digest)
                image = store.get(name)
            else:
                image = store.add_image(name, digest)
    finally:
        client.close_all()
    progress.message(f"Digest: {digest}")
    progress.message(f"Status: Image is up to date for {parsed.familiar}" if before == digest
                     else f"Status: Downloaded newer image for {parsed.familiar}")
    return image


def _fetch_manifest(client: Registry, parsed, name: str,
                    platform) -> tuple[str, bytes, dict]:
    """(digest, bytes, parsed) of the image manifest for this host's platform."""
    body, media_type = client.get_manifest(parsed.repository, parsed.digest or parsed.tag,
                                           where=name)
    digest = _sha256(body)
    if parsed.digest and digest != parsed.digest:
        raise BlobError(f"image {name}: the registry sent a manifest that hashes to {digest}")
    doc = _json(body, f"manifest of {name}")
    if doc.get("schemaVersion") == 1:
        raise PullError(f"image {name}: Docker schema 1 manifests are not supported "
                        f"(push the image again with a current tool)")
    if media_type in INDEX_TYPES or doc.get("mediaType") in INDEX_TYPES or (
            "manifests" in doc and "layers" not in doc):
        try:
            desc = select_manifest(doc, f"image index of {name}", platform)
        except ValueError as e:
            raise PullError(str(e)) from None
        want = desc.get("digest", "")
        body, media_type = client.get_manifest(parsed.repository, want, where=name)
        digest = _sha256(body)
        if digest != want:
            raise BlobError(f"image {name}: manifest {want} from the index hashes to {digest}")
        doc = _json(body, f"manifest {digest} of {name}")
        if "manifests" in doc:
            raise PullError(f"image {name}: the index points at another index ({want})")
    if not isinstance(doc.get("config"), dict) or not isinstance(doc.get("layers"), list):
        raise PullError(f"manifest {digest} of {name} has no config or layers "
                        f"(media type {media_type or doc.get('mediaType')})")
    return digest, body, doc


def _fetch_config(store: ImageStore, client: Registry, repo: str, name: str,
                  manifest: dict, progress: Progress) -> list[str]:
    """Store the config blob; return its rootfs.diff_ids (one per layer)."""
    desc = manifest["config"]
    media_type = desc.get("mediaType", "")
    if media_type not in (OCI_CONFIG, DOCKER_CONFIG):
        raise PullError(f"{name} is not a container image: its config is {media_type}")
    digest = desc.get("digest", "")
    if not store.has_blob(digest):
        with client.blob_reader(repo, digest, desc.get("size")) as reader:
            store.write_blob(reader, expected=digest, size=desc.get("size"),
                             source=f"{name} config")
    config = store.read_json(digest, "image config")
    arch = host_platform()[0]
    if config.get("architecture") not in (None, arch) or config.get("os") not in (None, "linux"):
        # As Docker warns: its programs will fail with "exec format error".
        progress.warn(f"the image's platform ({config.get('os')}/{config.get('architecture')}) "
                      f"does not match this host's (linux/{arch})")
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    if len(diff_ids) != len(manifest["layers"]):
        raise PullError(f"image {name}: the manifest has {len(manifest['layers'])} layers, "
                        f"the config lists {len(diff_ids)} diff_ids")
    return diff_ids


def _fetch_layers(store: ImageStore, client: Registry, repo: str, name: str,
                  layers: list[tuple[dict, str]], progress: Progress, workers: int) -> None:
    """Fetch the missing layers `workers` at a time, each unpacked as it downloads.

    A layer of UNPACK_IN_CHILD bytes or more streams from the registry
    into its blob file and, at the same time, into an unpack process of
    its own (store.fetch_layer): downloads overlap with unpacking, and
    layers unpack side by side on every core. (In threads of this process
    they would not: tar parsing holds the GIL, and two unpacks in threads
    took longer than one after the other, 2.4 s against 1.6-2.2 s for a
    177 MB image.) A smaller layer is not worth a process's start
    (~50 ms): it is downloaded, then unpacked here.
    """
    abort = threading.Event()

    def fetch(desc: dict, diff_id: str) -> None:
        digest, size = desc["digest"], desc.get("size")
        got = 0

        def on_bytes(n: int) -> None:
            nonlocal got
            if abort.is_set():
                raise _Aborted()
            got += n
            progress.layer(digest, "Downloading", got, size or 0)

        def on_retry(why: str) -> None:
            progress.layer(digest, f"Retrying ({why})")

        in_child = (size or 0) >= UNPACK_IN_CHILD
        if store.has_blob(digest):
            if in_child:
                progress.layer(digest, "Extracting")
                store.fetch_layer(None, digest, diff_id)
                progress.layer(digest, "Pull complete")
                return
        else:
            progress.layer(digest, "Downloading", 0, size or 0)
            urls = desc.get("urls") if _is_foreign(desc) else None
            with client.blob_reader(repo, digest, size, urls, on_bytes, on_retry) as reader:
                if in_child:
                    store.fetch_layer(reader, digest, diff_id, size, source=f"{name} layer")
                    progress.layer(digest, "Download complete")
                    progress.layer(digest, "Pull complete")
                    return
                store.write_blob(reader, expected=digest, size=size, source=f"{name} layer")
            progress.layer(digest, "Download complete")
        progress.layer(digest, "Extracting")
        store.ensure_layer(digest, diff_id)
        progress.layer(digest, "Pull complete")

    todo = []
    for desc, diff_id in layers:
        if store.layer_dir(diff_id).is_dir():
            progress.layer(desc["digest"], "Already exists")
        else:
            progress.layer(desc["digest"], "Pulling fs layer")
            todo.append((desc, diff_id))
    if not todo:
        return
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo))),
                              thread_name_prefix="minipod-pull")
    try:
        futures = [pool.submit(fetch, desc, diff_id) for desc, diff_id in todo]
        for f in as_completed(futures):
            f.result()                       # a layer's error stops the pull
    finally:
        abort.set()             # stops the other downloads at their next chunk
        pool.shutdown(wait=True, cancel_futures=True)
