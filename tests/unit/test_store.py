"""The image store and the archive loaders, with real busybox images.

The images are built by tests/imagebuild.py from Debian's busybox-static,
in the formats the OCI image-layout spec and `docker save` define.
"""
import gzip
import io
import json
import os
import stat
import sys
import tarfile
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import imagebuild  # noqa: E402  (tests/imagebuild.py)

from minipod.rootfs import archive  # noqa: E402
from minipod.rootfs.blobs import BlobError  # noqa: E402
from minipod.rootfs.store import ImageNotFound, ImageStore, host_platform  # noqa: E402
from minipod.rootfs.unpack import LayerError  # noqa: E402

pytestmark = pytest.mark.skipif(not imagebuild.BUSYBOX.exists(),
                                reason="needs /bin/busybox (Debian's busybox-static)")


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory):
    return imagebuild.build_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


@pytest.fixture(scope="module")
def layer(rootfs):
    return imagebuild.tar_directory(rootfs)


@pytest.fixture
def store(tmp_path):
    return ImageStore(tmp_path / "images")


def layer_count(store):
    return len(list(store.layers.iterdir()))


def assert_busybox_layer(path: Path):
    assert os.access(path / "bin/busybox", os.X_OK)
    assert os.readlink(path / "bin/sh") == "/bin/busybox"
    assert "nobody" in (path / "etc/passwd").read_text()
    assert stat.S_IMODE((path / "tmp").stat().st_mode) == 0o1777


# -- import_rootfs, get, list ----------------------------------------------------------

def test_import_directory_then_get_and_list(store, rootfs):
    image = archive.import_rootfs(store, rootfs, "mybox", {"Cmd": ["sh"], "WorkingDir": "/tmp"})
    assert image.reference == "docker.io/library/mybox:latest"
    assert image.config == {"Cmd": ["sh"], "WorkingDir": "/tmp"}
    assert len(image.layer_dirs) == 1
    assert_busybox_layer(image.layer_dirs[0])
    assert image.size > 1_000_000 and image.created

    for name in ("mybox", "mybox:latest", "docker.io/library/mybox:latest",
                 image.id, image.digest, image.digest[:20], image.config_digest):
        got = store.get(name)
        assert (got.reference, got.digest) == (image.reference, image.digest), name
    assert [i.reference for i in store.list()] == ["docker.io/library/mybox:latest"]
    # The store keeps setuid binaries of images away from host users.
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700
    assert list(store.tmp.iterdir()) == []


def test_same_content_twice_is_one_layer(store, rootfs):
    a = archive.import_rootfs(store, rootfs, "one")
    b = archive.import_rootfs(store, rootfs, "two:v1")
    assert a.layer_dirs == b.layer_dirs
    assert layer_count(store) == 1
    assert [i.reference for i in store.list()] == ["docker.io/library/one:latest",
                                                   "docker.io/library/two:v1"]


def test_import_gzip_tar(store, layer, tmp_path):
    tgz = tmp_path / "rootfs.tar.gz"
    tgz.write_bytes(gzip.compress(layer))
    image = archive.import_rootfs(store, tgz, "localhost:5000/team/box:1")
    assert image.reference == "localhost:5000/team/box:1"
    assert_busybox_layer(image.layer_dirs[0])
    # The layer dir is named by the diff_id: sha256 of the uncompressed tar.
    assert image.layer_dirs[0].name == imagebuild.sha256(layer).split(":")[1]


def test_image_not_found_message(store):
    with pytest.raises(ImageNotFound) as e:
        store.get("luksa/kubia")
    assert str(e.value) == (
        'image "docker.io/luksa/kubia:latest" is not in the store; import it with '
        "`minipod image import DIR|TAR NAME` or `minipod image load FILE`")
    assert isinstance(e.value, LookupError)
    with pytest.raises(ValueError, match="must be lowercase"):
        store.get("Not/Valid")


# -- load: OCI layout -----------------------------------------------------------------

def test_load_oci_layout_dir(store, layer, tmp_path):
    oci = imagebuild.write_oci_layout(tmp_path / "oci", [layer],
                                      ref_name="busybox:1.36", config={"Cmd": ["httpd", "-f"]})
    [image] = archive.load(store, oci)
    assert image.reference == "docker.io/library/busybox:1.36"
    assert store.get("busybox:1.36").config == {"Cmd": ["httpd", "-f"]}
    assert_busybox_layer(image.layer_dirs[0])
    # The manifest digest is the one index.json names.
    index = json.loads((oci / "index.json").read_text())
    assert image.digest == index["manifests"][0]["digest"]


def test_load_oci_layout_tag_only_names(store, layer, tmp_path):
    oci = imagebuild.write_oci_layout(tmp_path / "My Box", [layer], ref_name="v2")
    [image] = archive.load(store, oci)
    assert image.reference == "localhost/my-box:v2"        # no repository in the layout
    [named] = archive.load(store, oci, name="example.com/me/box:3")
    assert named.reference == "example.com/me/box:3"
    oci2 = imagebuild.write_oci_layout(tmp_path / "ctr", [layer], ref_name="latest",
                                       image_name="docker.io/library/busybox:ctr")
    assert archive.load(store, oci2)[0].reference == "docker.io/library/busybox:ctr"
    assert layer_count(store) == 1


def test_load_oci_multi_platform_picks_host(store, layer, tmp_path):
    oci = imagebuild.write_oci_layout(tmp_path / "multi", [layer],
                                      ref_name="docker.io/library/busybox:multi",
                                      multi_platform=True)
    [image] = archive.load(store, oci)
    assert image.platform == "linux/" + host_platform()[0]
    # The other platform's manifest and config were not kept.
    blobs = {p.name for p in store.blobs.iterdir()}
    assert len(blobs) == 3      # manifest, config, layer


def test_load_oci_layout_in_a_tar(store, layer, tmp_path):
    oci = imagebuild.write_oci_layout(tmp_path / "oci", [layer], ref_name="busybox:tarred")
    tar_path = tmp_path / "oci.tar"
    with tarfile.open(tar_path, "w") as tar:
        for entry in sorted(os.listdir(oci)):
            tar.add(oci / entry, arcname=entry)
    [image] = archive.load(store, tar_path)
    assert image.reference == "docker.io/library/busybox:tarred"
    assert_busybox_layer(image.layer_dirs[0])


def test_blob_digest_mismatch_refused(store, layer, tmp_path):
    oci = imagebuild.write_oci_layout(tmp_path / "oci", [layer], ref_name="busybox:bad")
    index = json.loads((oci / "index.json").read_text())
    manifest_hex = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((oci / "blobs/sha256" / manifest_hex).read_text())
    layer_digest = manifest["layers"][0]["digest"]
    blob = oci / "blobs/sha256" / layer_digest.split(":")[1]
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF                        # one flipped byte, same size
    blob.write_bytes(bytes(data))
    with pytest.raises(BlobError) as e:
        archive.load(store, oci)
    msg = str(e.value)
    assert f"blob {layer_digest}" in msg and "digest mismatch" in msg and str(blob) in msg
    with pytest.raises(ImageNotFound):
        store.get("busybox:bad")
    # Nothing of the bad blob under its name, no half layer, no litter.
    assert not (store.blobs / layer_digest.split(":")[1]).exists()
    assert layer_count(store) == 0
    assert list(store.tmp.iterdir()) == []


# -- load: docker-archive ---------------------------------------------------------------

def test_load_docker_archive_classic_gzip_layers(store, layer, tmp_path):
    tar_path = imagebuild.write_docker_archive(
        tmp_path / "busybox.tar", [layer], repo_tags=["busybox:latest", "luksa/kubia:v1"],
        config={"Entrypoint": ["/bin/httpd"], "ExposedPorts": {"8080/tcp": {}}})
    [image] = archive.load(store, tar_path)
    assert image.reference == "docker.io/library/busybox:latest"
    assert store.get("luksa/kubia:v1").digest == image.digest
    assert image.config["Entrypoint"] == ["/bin/httpd"]
    assert_busybox_layer(image.layer_dirs[0])
    # Docker's image id is the config digest: it survives the import.
    config_name = json.loads(tarfile.open(tar_path).extractfile("manifest.json").read())[0]["Config"]
    assert image.config_digest == "sha256:" + config_name.removesuffix(".json")
    # The classic <id>/json and VERSION files were not kept as blobs.
    assert len(list(store.blobs.iterdir())) == 3


def test_load_docker25_blobs_layout_and_gzipped_archive(store, layer, tmp_path):
    tar_path = imagebuild.write_docker_archive(tmp_path / "d25.tar", [layer],
                                               repo_tags=["box:25"], compression=None,
                                               blobs_layout=True)
    gz = tmp_path / "d25.tar.gz"                 # `docker save | gzip`
    gz.write_bytes(gzip.compress(tar_path.read_bytes()))
    [image] = archive.load(store, gz)
    assert image.reference == "docker.io/library/box:25"
    assert_busybox_layer(image.layer_dirs[0])


def test_multi_layer_with_whiteout(store, layer, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("whiteouts need root (mknod)")
    top = io.BytesIO()
    with tarfile.open(fileobj=top, mode="w") as tar:
        for name, data in (("etc/.wh.group", b""), ("etc/motd", b"hi\n")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    tar_path = imagebuild.write_docker_archive(tmp_path / "two.tar", [layer, top.getvalue()],
                                               repo_tags=["two:layers"])
    [image] = archive.load(store, tar_path)
    bottom, upper = image.layer_dirs
    assert_busybox_layer(bottom)
    assert stat.S_ISCHR(os.lstat(upper / "etc/group").st_mode)
    assert (upper / "etc/motd").read_text() == "hi\n"


def test_hostile_layer_leaves_nothing(store, tmp_path):
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as tar:
        ti = tarfile.TarInfo("../../escaped")
        ti.size = 4
        tar.addfile(ti, io.BytesIO(b"evil"))
    tar_path = imagebuild.write_docker_archive(tmp_path / "evil.tar", [evil.getvalue()],
                                               repo_tags=["evil:1"])
    with pytest.raises(LayerError) as e:
        archive.load(store, tar_path)
    assert 'member "../../escaped": path leaves the layer root' in str(e.value)
    assert str(e.value).startswith("layer sha256:")
    assert not (store.root.parent / "escaped").exists()
    assert layer_count(store) == 0 and list(store.tmp.iterdir()) == []
    assert store.list() == []


def test_layer_not_matching_diff_id_refused(store, layer, tmp_path):
    tar_path = imagebuild.write_docker_archive(tmp_path / "x.tar", [layer], repo_tags=["x:1"])
    # Rewrite manifest.json to point at a different layer than the config lists.
    other = imagebuild.tar_directory(tmp_path)  # any other tar
    with tarfile.open(tar_path) as src:
        members = [(m, src.extractfile(m).read() if m.isreg() else None) for m in src]
    rebuilt = tmp_path / "y.tar"
    with tarfile.open(rebuilt, "w") as out:
        for m, data in members:
            if m.name.endswith("layer.tar"):
                data = gzip.compress(other)
                m.size = len(data)
            out.addfile(m, io.BytesIO(data) if data is not None else None)
    with pytest.raises(LayerError, match="diff_id mismatch"):
        archive.load(store, rebuilt)
    assert store.list() == [] and layer_count(store) == 0


def test_get_unpacks_a_missing_layer_again(store, rootfs):
    import shutil
    image = archive.import_rootfs(store, rootfs, "heal")
    shutil.rmtree(image.layer_dirs[0])
    assert_busybox_layer(store.get("heal").layer_dirs[0])


# -- remove, gc, concurrency -------------------------------------------------------------

def test_remove_untags_and_collects(store, rootfs, layer, tmp_path):
    a = archive.import_rootfs(store, rootfs, "a")
    archive.import_rootfs(store, rootfs, "a2")              # shares a's layer
    oci = imagebuild.write_oci_layout(tmp_path / "oci", [layer], ref_name="busybox:x")
    b = archive.load(store, oci)[0]
    assert layer_count(store) == 2
    store.remove("a")
    assert a.layer_dirs[0].is_dir()                          # still used by a2
    store.remove("a2")
    assert not a.layer_dirs[0].exists()
    assert not (store.blobs / a.digest.split(":")[1]).exists()
    assert [i.reference for i in store.list()] == [b.reference]
    store.remove(b.id)                                       # by image id
    assert store.list() == [] and layer_count(store) == 0
    assert list(store.blobs.iterdir()) == [] and list(store.tmp.iterdir()) == []
    with pytest.raises(ImageNotFound):
        store.remove("a")


def test_concurrent_tags_are_not_lost(store, rootfs):
    image = archive.import_rootfs(store, rootfs, "base")
    errors = []

    def tag(i):
        try:
            ImageStore(store.root).tag(f"name{i}:t", image.digest)  # own store object, own fds
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=tag, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.list()) == 25


def test_import_of_a_non_tar_leaves_nothing(store, tmp_path):
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 64)
    with pytest.raises(LayerError, match="not a tar archive"):
        archive.import_rootfs(store, junk, "junk")
    assert list(store.blobs.iterdir()) == [] and layer_count(store) == 0
    with pytest.raises(FileNotFoundError):
        archive.import_rootfs(store, tmp_path / "missing", "x")


# -- fetch_layer: the blob streams into the store and an unpack process at once -----------

def test_fetch_layer_stores_the_blob_and_unpacks_it(store, layer):
    blob = gzip.compress(layer)
    digest = imagebuild.sha256(blob)
    diff_id = imagebuild.sha256(layer)
    path = store.fetch_layer(io.BytesIO(blob), digest, diff_id, len(blob))
    assert path == store.layer_dir(diff_id)
    assert_busybox_layer(path)
    assert store.read_blob(digest) == blob
    assert list(store.tmp.iterdir()) == []
    # Already there: the blob is read to the end and the directory kept.
    assert store.fetch_layer(io.BytesIO(blob), digest, diff_id, len(blob)) == path


def test_fetch_layer_from_a_stored_blob(store, layer):
    blob = gzip.compress(layer)
    digest, _ = store.write_blob(io.BytesIO(blob))
    diff_id = imagebuild.sha256(layer)
    assert_busybox_layer(store.fetch_layer(None, digest, diff_id))


def test_fetch_layer_with_wrong_bytes_keeps_neither_blob_nor_layer(store, layer):
    blob = gzip.compress(layer)
    digest = imagebuild.sha256(blob)
    diff_id = imagebuild.sha256(layer)
    other = gzip.compress(layer + b"\0" * 1024)     # unpacks fine, but not these bytes
    with pytest.raises(BlobError, match="digest mismatch"):
        store.fetch_layer(io.BytesIO(other), digest, diff_id, len(other))
    assert not store.has_blob(digest) and layer_count(store) == 0
    assert list(store.tmp.iterdir()) == []


def test_fetch_layer_not_matching_its_diff_id_keeps_no_layer(store, layer, tmp_path):
    blob = gzip.compress(layer)
    digest = imagebuild.sha256(blob)
    wrong = "sha256:" + "0" * 64
    with pytest.raises(LayerError, match="diff_id mismatch"):
        store.fetch_layer(io.BytesIO(blob), digest, wrong, len(blob))
    assert layer_count(store) == 0 and list(store.tmp.iterdir()) == []
