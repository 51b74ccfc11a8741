"""Build small real images for tests and the demo, from Debian's busybox-static.

No Docker needed: the formats are written by hand with tarfile, json and
hashlib, so the loaders are tested against the documents the specs define,
not against our own loader's idea of them.

- `build_busybox_rootfs(dest)`: a directory with bin/busybox, an absolute
  symlink per applet ("bin/sh -> /bin/busybox", as real images have),
  /etc/passwd and /etc/group (root, nobody), and empty /tmp /proc /sys /dev.
- `tar_directory(src)`: a deterministic layer tar of a directory (sorted,
  owner 0:0, whole-second mtimes), so the same tree gives the same diff_id.
- `write_oci_layout(dest, layers, …)`: an OCI image layout directory
  (image-spec "image-layout.md": oci-layout, index.json, blobs/sha256/…),
  optionally with a multi-platform index (amd64 + arm64).
- `write_docker_archive(dest, layers, …)`: what `docker save` writes
  (manifest.json with Config/RepoTags/Layers, repositories, and either the
  classic <id>/layer.tar layout or Docker 25's blobs/sha256/ layout).

Run `python tests/imagebuild.py DIR` to make DIR/rootfs, DIR/oci and
DIR/busybox-docker.tar for a demo.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
FIXED_MTIME = 1_700_000_000   # 2023-11-14: fixed, so builds are reproducible

# Applets the tests and examples rely on; every other applet busybox lists
# gets a symlink too. (Debian's busybox-static has no `ipcs`.)
WANTED_APPLETS = [
    "sh", "ls", "cat", "echo", "sleep", "httpd", "nc", "hostname", "ip", "ps",
    "mount", "wget", "id", "env", "true", "false", "grep", "sed", "touch",
    "mkdir", "rm", "ipcs", "kill", "head", "tail", "wc", "printf", "test",
]

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
REF_NAME = "org.opencontainers.image.ref.name"


def busybox_applets() -> list[str]:
    """The applets this busybox binary has (`busybox --list`)."""
    out = subprocess.run([str(BUSYBOX), "--list"], check=True, capture_output=True, text=True)
    return sorted(set(out.stdout.split()))


def build_busybox_rootfs(dest: Path) -> Path:
    """Make a busybox root file system in `dest` (created if missing); return it."""
    dest = Path(dest)
    for d in ("bin", "etc", "dev", "proc", "sys", "tmp", "root", "var", "home"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    os.chmod(dest / "tmp", 0o1777)
    os.chmod(dest / "root", 0o700)
    shutil.copyfile(BUSYBOX, dest / "bin" / "busybox")
    os.chmod(dest / "bin" / "busybox", 0o755)
    available = set(busybox_applets())
    for applet in sorted(available):
        if applet == "busybox":
            continue
        link = dest / "bin" / applet
        if not link.is_symlink():
            os.symlink("/bin/busybox", link)   # absolute, as in real images
    (dest / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (dest / "etc" / "group").write_text("root:x:0:\nnobody:x:65534:\n")
    # Fixed mtimes, deepest first so setting a child leaves its parent alone.
    for root, dirs, files in os.walk(dest, topdown=False):
        for name in dirs + files:
            os.utime(os.path.join(root, name), (FIXED_MTIME, FIXED_MTIME), follow_symlinks=False)
    os.utime(dest, (FIXED_MTIME, FIXED_MTIME))
    return dest


def tar_directory(src: Path) -> bytes:
    """A layer tar of `src`'s contents: sorted, owner 0:0, integer mtimes."""
    def norm(ti: tarfile.TarInfo) -> tarfile.TarInfo:
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        ti.mtime = int(ti.mtime)
        return ti

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(os.listdir(src)):
            tar.add(os.path.join(src, name), arcname=name, filter=norm)
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_config(layers: list[bytes], config: dict | None = None,
                 architecture: str = "amd64") -> bytes:
    """An OCI image config (image-spec "config.md") for these uncompressed layers."""
    doc = {
        "created": "2023-11-14T22:13:20Z",
        "architecture": architecture,
        "os": "linux",
        "config": config if config is not None else {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
        },
        "rootfs": {"type": "layers", "diff_ids": [sha256(layer) for layer in layers]},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "tests/imagebuild.py"}
                    for _ in layers],
    }
    return json.dumps(doc, sort_keys=True).encode()


def _compress(layer: bytes, compression: str | None) -> tuple[bytes, str]:
    if compression == "gzip":
        return gzip.compress(layer, mtime=0), OCI_LAYER + "+gzip"
    if compression is None:
        return layer, OCI_LAYER
    raise ValueError(f"unknown compression {compression!r}")


def _put_blob(blobs: Path, data: bytes) -> dict:
    digest = sha256(data)
    (blobs / digest.split(":", 1)[1]).write_bytes(data)
    return {"digest": digest, "size": len(data)}


def write_oci_layout(dest: Path, layers: list[bytes], ref_name: str | None = "latest",
                     config: dict | None = None, compression: str | None = "gzip",
                     image_name: str | None = None, multi_platform: bool = False) -> Path:
    """Write an OCI image layout directory at `dest`; return `dest`.

    `layers` are uncompressed tars, bottom first. `ref_name` goes in the
    org.opencontainers.image.ref.name annotation (a tag like "latest", or a
    full name like "busybox:1.36" as skopeo writes); `image_name`, if
    given, in containerd's io.containerd.image.name. `multi_platform` puts
    the image behind an image index with a linux/amd64 and a linux/arm64
    manifest (the arm64 one shares the layers, its config says arm64).
    """
    dest = Path(dest)
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    layer_descs = []
    for layer in layers:
        data, media_type = _compress(layer, compression)
        layer_descs.append({"mediaType": media_type, **_put_blob(blobs, data)})

    def manifest_for(arch: str) -> dict:
        cfg = _put_blob(blobs, image_config(layers, config, arch))
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG, **cfg}, "layers": layer_descs}
        desc = _put_blob(blobs, json.dumps(manifest, sort_keys=True).encode())
        return {"mediaType": OCI_MANIFEST, **desc,
                "platform": {"architecture": arch, "os": "linux"}}

    annotations = {}
    if ref_name is not None:
        annotations[REF_NAME] = ref_name
    if image_name is not None:
        annotations["io.containerd.image.name"] = image_name
    if multi_platform:
        inner = {"schemaVersion": 2, "mediaType": OCI_INDEX,
                 "manifests": [manifest_for("arm64"), manifest_for("amd64")]}
        top = {"mediaType": OCI_INDEX,
               **_put_blob(blobs, json.dumps(inner, sort_keys=True).encode())}
    else:
        top = manifest_for("amd64")
        del top["platform"]
    if annotations:
        top["annotations"] = annotations
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [top]}
    (dest / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (dest / "index.json").write_text(json.dumps(index, sort_keys=True))
    return dest


def write_docker_archive(dest: Path, layers: list[bytes],
                         repo_tags: list[str] | tuple[str, ...] = ("busybox:latest",),
                         config: dict | None = None, compression: str | None = "gzip",
                         blobs_layout: bool = False) -> Path:
    """Write a `docker save` tar at `dest`; return `dest`.

    Classic layout (Docker <= 24): <config hex>.json, <layer id>/layer.tar
    (+ VERSION, json), manifest.json, repositories. `blobs_layout=True`
    writes Docker 25's names instead: every file under blobs/sha256/.
    `compression="gzip"` gzips the layer files (docker with the containerd
    image store keeps registry blobs compressed).
    """
    files: list[tuple[str, bytes]] = []
    cfg = image_config(layers, config)
    cfg_hex = sha256(cfg).split(":", 1)[1]
    cfg_path = f"blobs/sha256/{cfg_hex}" if blobs_layout else f"{cfg_hex}.json"
    files.append((cfg_path, cfg))
    layer_paths = []
    parent = ""
    for layer in layers:
        data, _ = _compress(layer, compression)
        if blobs_layout:
            path = "blobs/sha256/" + sha256(data).split(":", 1)[1]
        else:
            # Classic layer ids are made-up chain hashes; any hex will do.
            layer_id = hashlib.sha256((parent + sha256(layer)).encode()).hexdigest()
            files.append((f"{layer_id}/VERSION", b"1.0"))
            files.append((f"{layer_id}/json", json.dumps({"id": layer_id}).encode()))
            path = f"{layer_id}/layer.tar"
            parent = layer_id
        files.append((path, data))
        layer_paths.append(path)
    manifest = [{"Config": cfg_path, "RepoTags": list(repo_tags), "Layers": layer_paths}]
    files.append(("manifest.json", json.dumps(manifest).encode()))
    repos: dict[str, dict[str, str]] = {}
    for rt in repo_tags:
        repo, _, tag = rt.rpartition(":")
        repos.setdefault(repo, {})[tag] = parent or cfg_hex
    files.append(("repositories", json.dumps(repos).encode()))

    dest = Path(dest)
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        made = set()
        for path, data in files:
            for i in range(1, path.count("/") + 1):
                d = "/".join(path.split("/")[:i])
                if d not in made:
                    made.add(d)
                    ti = tarfile.TarInfo(d)
                    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, FIXED_MTIME
                    tar.addfile(ti)
            ti = tarfile.TarInfo(path)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, FIXED_MTIME
            tar.addfile(ti, io.BytesIO(data))
    return dest


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} DIR   (writes DIR/rootfs, DIR/oci, DIR/busybox-docker.tar)",
              file=sys.stderr)
        return 2
    out = Path(argv[1])
    rootfs = build_busybox_rootfs(out / "rootfs")
    layer = tar_directory(rootfs)
    write_oci_layout(out / "oci", [layer], ref_name="docker.io/library/busybox:latest")
    write_docker_archive(out / "busybox-docker.tar", [layer])
    print(f"wrote {rootfs}, {out / 'oci'}, {out / 'busybox-docker.tar'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
