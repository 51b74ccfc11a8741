"""`minipod pull` against real Distribution registries on 127.0.0.1.

Debian's `docker-registry` (Distribution 2.8) runs four ways for this
module: anonymous plain HTTP, htpasswd basic auth, TLS with a test CA,
and token auth with a token server of the test's own (registry_server.py).
Images are built from busybox-static (tests/imagebuild.py) and pushed over
the distribution API: a base layer, a layer adding files, and a layer
deleting one of them with a whiteout. Every registry process is stopped by
its pid when the module ends.
"""
from __future__ import annotations

import base64
import io
import json
import os
import signal
import stat
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

import registry_server as rs
from podhelpers import pod_manifest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import imagebuild  # noqa: E402

from minipod.rootfs.store import ImageStore, host_platform  # noqa: E402

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not rs.REGISTRY_BIN.exists(),
                       reason="needs Debian's docker-registry (/usr/bin/docker-registry)"),
    pytest.mark.skipif(not imagebuild.BUSYBOX.exists(), reason="needs busybox-static"),
]

HOST_ARCH = host_platform()[0]
OTHER_ARCH = "arm64" if HOST_ARCH != "arm64" else "amd64"


def tar_files(entries: dict[str, bytes | None]) -> bytes:
    """A layer tar: path -> content (None: a directory), owner 0:0, fixed mtime."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data in entries.items():
            ti = tarfile.TarInfo(path)
            ti.mtime = imagebuild.FIXED_MTIME
            if data is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o644
                tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture(scope="module")
def layers(tmp_path_factory):
    rootfs = imagebuild.build_busybox_rootfs(tmp_path_factory.mktemp("bb") / "rootfs")
    base = imagebuild.tar_directory(rootfs)
    two = tar_files({"data": None, "data/a": b"a\n", "data/b": b"b\n",
                     "etc/motd": b"layer two\n"})
    three = tar_files({"data": None, "data/.wh.a": b"", "etc/motd": b"layer three\n"})
    return [base, two, three]


class Registries:
    """The module's registries and what was pushed into them."""


@pytest.fixture(scope="module")
def reg(tmp_path_factory, layers):
    d = tmp_path_factory.mktemp("registries")
    r = Registries()
    started = []
    r.cdn = rs.BlobCDN()
    r.token_server = rs.TokenServer(d / "token-server", {"alice": "wonderland"})
    try:
        r.plain = rs.RegistryServer(d / "plain", allow_urls=r"^http://127\.0\.0\.3:")
        started.append(r.plain)
        r.basic = rs.RegistryServer(d / "basic", users={"bob": "s3cret-pw"})
        started.append(r.basic)
        r.ca = rs.make_ca(d / "ca")
        r.tls = rs.RegistryServer(d / "tls", tls=r.ca)
        started.append(r.tls)
        r.token = rs.RegistryServer(d / "token", token=r.token_server)
        started.append(r.token)

        p = r.plain.pusher()
        r.busybox, _ = p.image("t/busybox", "1", layers)
        r.docker, _ = p.image("t/docker", "1", layers, docker=True)
        other = p.image("t/multi", None, layers[:1], arch=OTHER_ARCH)
        mine = p.image("t/multi", None, layers, arch=HOST_ARCH)
        p.index("t/multi", "1", [(OTHER_ARCH, *other), (HOST_ARCH, *mine)])
        r.multi_host = mine[0]
        other = p.image("t/list", None, layers[:1], arch=OTHER_ARCH, docker=True)
        mine = p.image("t/list", None, layers, arch=HOST_ARCH, docker=True)
        p.index("t/list", "1", [(OTHER_ARCH, *other), (HOST_ARCH, *mine)], docker=True)
        r.list_host = mine[0]
        p.image("t/other-arch", "1", layers[:1], arch=OTHER_ARCH)
        r.foreign, _ = p.image("t/foreign", "1", layers, foreign_urls={1: r.cdn.base},
                               cdn=r.cdn)
        r.zstd = None
        try:
            import zstandard  # noqa: F401
            r.zstd, _ = p.image("t/zstd", "1", layers, compression="zstd")
        except ImportError:
            pass
        r.basic.pusher("bob").image("t/busybox", "1", layers)
        r.tls.pusher().image("t/busybox", "1", layers)
        alice = r.token.pusher("alice", r.token_server)
        alice.image("public/busybox", "1", layers)
        alice.image("private/busybox", "1", layers)
        yield r
    finally:
        for server in started:
            server.stop()
        r.token_server.stop()
        r.cdn.stop()


MINIPOD = [sys.executable, "-m", "minipod"]


def cli(root: Path, *args: str, input: str | None = None, env: dict | None = None,
        check: bool = False) -> subprocess.CompletedProcess:
    e = dict(os.environ, MINIPOD_ROOT=str(root), HOME=str(root / "home"))
    e.pop("REGISTRY_AUTH_FILE", None)
    e.pop("XDG_RUNTIME_DIR", None)
    e.update(env or {})
    proc = subprocess.run([*MINIPOD, *args], env=e, input=input,
                          capture_output=True, text=True, timeout=120)
    if check and proc.returncode:
        raise AssertionError(f"minipod {' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout}{proc.stderr}")
    return proc


def store_of(root: Path) -> ImageStore:
    return ImageStore(root / "lib" / "images")


def assert_three_layers(image) -> None:
    base, two, three = image.layer_dirs
    assert os.readlink(base / "bin/sh") == "/bin/busybox"
    assert (two / "data/a").read_text() == "a\n"
    st = os.lstat(three / "data/a")          # the whiteout, as overlayfs wants it
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert (three / "etc/motd").read_text() == "layer three\n"


def error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    return lines[-1]


# -- anonymous, formats, platforms -----------------------------------------------------------

def test_anonymous_pull_of_three_layers_with_a_whiteout_then_up_to_date(reg, tmp_path):
    ref = f"{reg.plain.host}/t/busybox:1"
    proc = cli(tmp_path, "pull", ref, check=True)
    assert proc.stdout == ref + "\n"
    assert "Pull complete" in proc.stderr and f"Digest: {reg.busybox}" in proc.stderr
    image = store_of(tmp_path).get(ref)
    assert image.digest == reg.busybox
    assert_three_layers(image)
    again = cli(tmp_path, "pull", ref, check=True)
    assert again.stderr.count("Already exists") == 3
    assert "Image is up to date" in again.stderr
    quiet = cli(tmp_path, "pull", "-q", ref, check=True)
    assert (quiet.stdout, quiet.stderr) == (ref + "\n", "")


def test_docker_schema2_image_pulls(reg, tmp_path):
    ref = f"{reg.plain.host}/t/docker:1"
    cli(tmp_path, "pull", ref, check=True)
    image = store_of(tmp_path).get(ref)
    assert image.digest == reg.docker
    assert_three_layers(image)


@pytest.mark.parametrize("repo", ["t/multi", "t/list"])
def test_an_index_or_manifest_list_picks_the_host_platform(reg, tmp_path, repo):
    ref = f"{reg.plain.host}/{repo}:1"
    cli(tmp_path, "pull", ref, check=True)
    image = store_of(tmp_path).get(ref)
    assert image.digest == (reg.multi_host if repo == "t/multi" else reg.list_host)
    assert image.platform == f"linux/{HOST_ARCH}"
    assert len(image.layer_dirs) == 3       # the other platform's image has one layer


def test_an_image_of_another_platform_pulls_with_a_warning(reg, tmp_path):
    proc = cli(tmp_path, "pull", f"{reg.plain.host}/t/other-arch:1", check=True)
    assert (f"warning: the image's platform (linux/{OTHER_ARCH}) does not match this "
            f"host's (linux/{HOST_ARCH})") in proc.stderr


def test_pull_by_digest(reg, tmp_path):
    ref = f"{reg.plain.host}/t/busybox@{reg.busybox}"
    cli(tmp_path, "pull", ref, check=True)
    assert store_of(tmp_path).get(ref).digest == reg.busybox


def test_zstd_layers(reg, tmp_path):
    if reg.zstd is None:
        pytest.skip("the Python package zstandard is not installed")
    ref = f"{reg.plain.host}/t/zstd:1"
    cli(tmp_path, "pull", ref, check=True)
    assert_three_layers(store_of(tmp_path).get(ref))


def test_foreign_layer_is_fetched_from_its_urls(reg, tmp_path):
    ref = f"{reg.plain.host}/t/foreign:1"
    before = len(reg.cdn.seen)
    cli(tmp_path, "pull", ref, check=True)
    assert len(reg.cdn.seen) > before
    assert_three_layers(store_of(tmp_path).get(ref))


# -- errors a user (and the agent) can act on ------------------------------------------------

def test_missing_image_is_ErrImagePull_not_found(reg, tmp_path):
    line = error_line(cli(tmp_path, "pull", f"{reg.plain.host}/t/nope:1"))
    assert line.startswith(f"error: ErrImagePull: image {reg.plain.host}/t/nope:1 "
                           "not found in registry"), line


def test_unreachable_registry_names_host_port_and_errno(tmp_path):
    port = rs.free_port()
    line = error_line(cli(tmp_path, "pull", f"127.0.0.1:{port}/t/x:1"))
    assert line.startswith("error: ErrImagePull: cannot reach 127.0.0.1 port "
                           f"{port}"), line
    assert "Connection refused (errno 111)" in line


def test_invalid_reference_is_InvalidImageName(tmp_path):
    line = error_line(cli(tmp_path, "pull", "Not/Valid"))
    assert line.startswith("error: InvalidImageName: invalid image reference"), line


# -- big layers: unpacked while they download, each in a process of its own ------------------

def test_big_layers_unpack_while_they_download(reg, layers, tmp_path):
    from minipod.rootfs import pull
    # Random bytes do not compress: each layer's blob is over the threshold.
    one, two = (os.urandom(pull.UNPACK_IN_CHILD + (512 << 10)) for _ in range(2))
    big1 = tar_files({"data": None, "data/one": one, "etc/motd": b"big one\n"})
    big2 = tar_files({"data": None, "data/two": two, "data/.wh.one": b""})
    reg.plain.pusher().image("t/big", "1", [layers[0], big1, big2])
    ref = f"{reg.plain.host}/t/big:1"
    proc = cli(tmp_path, "pull", ref, check=True)
    assert proc.stderr.count("Pull complete") == 3
    store = store_of(tmp_path)
    base, first, second = store.get(ref).layer_dirs
    assert os.readlink(base / "bin/sh") == "/bin/busybox"
    assert (first / "data/one").read_bytes() == one
    assert (first / "etc/motd").read_text() == "big one\n"
    assert (second / "data/two").read_bytes() == two
    st = os.lstat(second / "data/one")          # the whiteout, as overlayfs wants it
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert list(store.tmp.iterdir()) == []
    again = cli(tmp_path, "pull", ref, check=True)
    assert again.stderr.count("Already exists") == 3


def test_a_hostile_big_layer_is_refused_and_leaves_nothing(reg, layers, tmp_path):
    from minipod.rootfs import pull
    canary = tmp_path / "escaped"
    pad = os.urandom(pull.UNPACK_IN_CHILD + (512 << 10))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("pad", pad), ("../" * 12 + str(canary).lstrip("/"), b"pwned")):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, imagebuild.FIXED_MTIME
            tar.addfile(ti, io.BytesIO(data))
    reg.plain.pusher().image("t/evil-big", "1", [layers[0], buf.getvalue()])
    ref = f"{reg.plain.host}/t/evil-big:1"
    line = error_line(cli(tmp_path, "pull", ref))
    assert "path leaves the layer root" in line and '"../../' in line, line
    assert not canary.exists()
    store = store_of(tmp_path)
    assert not (store.refs_file.exists() and "evil-big" in store.refs_file.read_text())
    assert len(list(store.layers.iterdir())) <= 1          # at most the busybox base
    assert list(store.tmp.iterdir()) == []


# -- basic auth, login, credential files -------------------------------------------------

def test_basic_auth_needs_login_wrong_password_refused_right_one_works(reg, tmp_path):
    host = reg.basic.host
    ref = f"{host}/t/busybox:1"
    line = error_line(cli(tmp_path, "pull", ref))
    assert "ErrImagePull: unauthorized" in line and f"minipod login {host}" in line, line

    bad = cli(tmp_path, "login", host, "-u", "bob", "--password-stdin", input="wrong\n")
    assert bad.returncode == 1 and "unauthorized" in bad.stderr
    assert "wrong" not in bad.stderr + bad.stdout
    assert not (tmp_path / "lib/auth.json").exists()

    ok = cli(tmp_path, "login", host, "-u", "bob", "--password-stdin", input="s3cret-pw\n",
             check=True)
    assert ok.stdout == "Login Succeeded\n"
    auth = tmp_path / "lib/auth.json"
    assert stat.S_IMODE(auth.stat().st_mode) == 0o600
    proc = cli(tmp_path, "pull", ref, check=True)
    assert "s3cret" not in proc.stdout + proc.stderr
    assert_three_layers(store_of(tmp_path).get(ref))

    assert cli(tmp_path, "logout", host, check=True).stdout.startswith("Removed login")
    cli(tmp_path, "image", "rm", ref, check=True)
    assert "unauthorized" in error_line(cli(tmp_path, "pull", ref))


def test_a_wrong_stored_password_says_where_it_came_from(reg, tmp_path):
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    config = home / ".docker/config.json"
    config.write_text(json.dumps({"auths": {reg.basic.host: {
        "auth": base64.b64encode(b"bob:not-it").decode()}}}))
    line = error_line(cli(tmp_path, "pull", f"{reg.basic.host}/t/busybox:1"))
    assert "unauthorized" in line and str(config) in line and "not-it" not in line, line


def test_credentials_from_docker_config_json(reg, tmp_path):
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    (home / ".docker/config.json").write_text(json.dumps({"auths": {
        f"https://{reg.basic.host}/v1/": {"auth": base64.b64encode(b"bob:s3cret-pw").decode()}}}))
    cli(tmp_path, "pull", f"{reg.basic.host}/t/busybox:1", check=True)


# -- TLS ---------------------------------------------------------------------------------

def test_tls_registry_with_its_ca_in_certs_d(reg, tmp_path):
    certs = tmp_path / "etc/certs.d" / reg.tls.host
    certs.mkdir(parents=True)
    (certs / "ca.crt").write_bytes(reg.ca["ca"].read_bytes())
    ref = f"{reg.tls.host}/t/busybox:1"
    cli(tmp_path, "pull", ref, check=True)
    assert_three_layers(store_of(tmp_path).get(ref))


def test_tls_without_the_ca_says_where_to_put_it(reg, tmp_path):
    line = error_line(cli(tmp_path, "pull", f"{reg.tls.host}/t/busybox:1"))
    assert "ErrImagePull: TLS handshake with" in line, line
    assert str(tmp_path / "etc/certs.d" / reg.tls.host / "ca.crt") in line, line


def test_tls_marked_insecure_skips_verification(reg, tmp_path):
    cli(tmp_path, "pull", "--insecure", f"{reg.tls.host}/t/busybox:1", check=True)


# -- token auth ----------------------------------------------------------------------------

def test_token_auth_anonymous_pull_asks_one_token_per_scope(reg, tmp_path):
    before = len(reg.token_server.requests)
    ref = f"{reg.token.host}/public/busybox:1"
    cli(tmp_path, "pull", ref, check=True)
    asked = reg.token_server.requests[before:]
    assert asked == [("repository:public/busybox:pull", None)]
    assert_three_layers(store_of(tmp_path).get(ref))


def test_token_auth_private_repository_needs_credentials(reg, tmp_path):
    ref = f"{reg.token.host}/private/busybox:1"
    line = error_line(cli(tmp_path, "pull", ref))
    assert "unauthorized" in line and f"minipod login {reg.token.host}" in line, line
    bad = cli(tmp_path, "login", reg.token.host, "-u", "alice", "--password-stdin",
              input="nope\n")
    assert bad.returncode == 1 and "unauthorized" in bad.stderr
    auth = tmp_path / "other-auth.json"
    auth.write_text(json.dumps({"auths": {reg.token.host: {
        "auth": base64.b64encode(b"alice:wonderland").decode()}}}))
    cli(tmp_path, "pull", ref, env={"REGISTRY_AUTH_FILE": str(auth)}, check=True)
    assert ("repository:private/busybox:pull", "alice") in reg.token_server.requests


# -- a flaky network, redirects, concurrency -------------------------------------------------

def test_a_dropped_blob_download_resumes_with_range(reg, tmp_path):
    proxy = rs.CuttingProxy(reg.plain.port, cut_after=200_000)
    try:
        ref = f"127.0.0.1:{proxy.port}/t/busybox:1"
        proc = cli(tmp_path, "pull", ref, check=True)
        assert proxy.cuts == 1
        assert b"Range: bytes=" in bytes(proxy.upstream)
        assert "Retrying" in proc.stderr
        assert_three_layers(store_of(tmp_path).get(ref))
    finally:
        proxy.stop()


def test_blob_redirect_to_another_host_gets_no_authorization(reg, tmp_path):
    front = rs.RedirectingFront(reg.basic, reg.cdn)
    try:
        auth = tmp_path / "auth.json"
        auth.write_text(json.dumps({"auths": {front.host: {
            "auth": base64.b64encode(b"bob:s3cret-pw").decode()}}}))
        before = len(reg.cdn.seen)
        ref = f"{front.host}/t/busybox:1"
        cli(tmp_path, "pull", ref, env={"REGISTRY_AUTH_FILE": str(auth)}, check=True)
        assert front.redirects == 4          # config + 3 layers
        seen = reg.cdn.seen[before:]
        assert len(seen) == 4
        assert not any(k.lower() == "authorization" for h in seen for k in h)
        assert_three_layers(store_of(tmp_path).get(ref))
    finally:
        front.stop()


def test_two_concurrent_pulls_of_the_same_image(reg, tmp_path):
    ref = f"{reg.plain.host}/t/busybox:1"
    results = []

    def one():
        results.append(cli(tmp_path, "pull", ref))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [p.returncode for p in results] == [0, 0], [p.stderr for p in results]
    store = store_of(tmp_path)
    assert len(list(store.layers.iterdir())) == 3
    assert_three_layers(store.get(ref))


def test_a_pull_killed_half_way_leaves_no_image_and_a_new_pull_works(reg, layers, tmp_path):
    proxy = rs.CuttingProxy(reg.plain.port, delay=0.02)     # ~800 KB/s
    try:
        ref = f"127.0.0.1:{proxy.port}/t/busybox:1"
        e = dict(os.environ, MINIPOD_ROOT=str(tmp_path), HOME=str(tmp_path / "home"))
        proc = subprocess.Popen([*MINIPOD, "pull", ref], env=e,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        store = store_of(tmp_path)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:   # wait for a download under way
            sizes = [p.stat().st_size for p in store.tmp.glob("blob-*")] \
                if store.tmp.is_dir() else []
            if any(n > 100_000 for n in sizes):
                break
            time.sleep(0.02)
        else:
            raise AssertionError("the pull never started downloading")
        os.kill(proc.pid, signal.SIGKILL)    # the pull we started, by its pid
        proc.wait()
    finally:
        proxy.stop()
    assert not (store.refs_file.exists() and "t/busybox" in store.refs_file.read_text())
    # The base layer was half downloaded: neither its blob nor its directory exists.
    base_diff_id = imagebuild.sha256(layers[0])
    assert not store.layer_dir(base_diff_id).exists()
    assert any(store.tmp.iterdir())          # only litter in tmp/
    ref = f"{reg.plain.host}/t/busybox:1"
    cli(tmp_path, "pull", ref, check=True)
    assert_three_layers(store.get(ref))
    assert store.gc()
    assert not any(store.tmp.iterdir())      # the killed pull's litter is gone


# -- and a pod runs it ---------------------------------------------------------------------

def test_a_pulled_image_runs_in_a_pod(reg, minipod, tmp_path):
    ref = f"{reg.plain.host}/t/busybox:1"
    cli(minipod.root, "pull", ref, check=True)
    minipod.run_manifest(pod_manifest(
        "pulled", "cat /etc/motd; test -e /data/a && echo a-visible; cat /data/b",
        image=ref, restartPolicy="Never"), tmp_path)
    try:
        pod = minipod.wait_for("pulled", lambda p: p["status"].get("phase") in
                               ("Succeeded", "Failed"))
        assert pod["status"]["phase"] == "Succeeded", pod["status"]
        assert minipod("logs", "pulled").stdout == "layer three\nb\n"
    finally:
        minipod("delete", "pod", "pulled", "--now", check=False)
        minipod("image", "rm", ref, check=False)


def test_the_agent_pulls_an_image_the_store_lacks(reg, minipod, tmp_path):
    """imagePullPolicy IfNotPresent with an empty store: `run` waits while the
    agent pulls, then the container runs; the events tell the story."""
    ref = f"{reg.plain.host}/t/docker:1"
    text = pod_manifest("autopull", "cat /data/b; sleep 100000", image=ref).replace(
        f"image: {ref}", f"image: {ref}\n    imagePullPolicy: IfNotPresent")
    try:
        minipod.run_manifest(text, tmp_path)
        pod = minipod.wait_for("autopull", lambda p: p["status"]["phase"] == "Running")
        assert pod["status"]["containerStatuses"][0]["imageID"].startswith("sha256:")
        events = minipod("describe", "pod", "autopull").stdout
        assert f'Pulling image "{ref}"' in events and "Successfully pulled image" in events
    finally:
        minipod("delete", "pod", "autopull", "--now", check=False)
        minipod("image", "rm", ref, check=False)


def test_a_missing_image_is_err_image_pull_then_back_off(reg, minipod, tmp_path):
    ref = f"{reg.plain.host}/t/does-not-exist:1"
    proc = minipod.run_manifest(pod_manifest("nopull", "true", image=ref), tmp_path,
                                check=False)
    try:
        assert proc.returncode == 1
        assert "ErrImagePull" in proc.stderr and "not found" in proc.stderr
        pod = minipod.wait_for("nopull", lambda p: p["status"]["containerStatuses"][0]
                               ["state"]["waiting"].get("reason") == "ImagePullBackOff")
        assert pod["status"]["phase"] == "Pending"
        assert minipod("get", "pods", "nopull").stdout.split()[7] == "ImagePullBackOff"
    finally:
        minipod("delete", "pod", "nopull", "--now", check=False)


def test_never_with_a_missing_image_is_err_image_never_pull(minipod, tmp_path):
    text = pod_manifest("neverpull", "true", image="example.invalid/none:1").replace(
        "image: example.invalid/none:1", "image: example.invalid/none:1\n    imagePullPolicy: Never")
    proc = minipod.run_manifest(text, tmp_path, check=False)
    try:
        assert proc.returncode == 1 and "ErrImageNeverPull" in proc.stderr
    finally:
        minipod("delete", "pod", "neverpull", "--now", check=False)
