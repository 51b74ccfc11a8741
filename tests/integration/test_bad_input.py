"""Bad input through the real CLI: one clear error, exit 1, nothing created.

Every manifest of the corpus (tests/fixtures/bad/) given to `minipod run`
exits 1 with one error naming the file, no traceback, and leaves no pod
dir, netns or link behind. Every broken image archive given to `minipod
image load` / `image import` exits 1 with a clear message and adds nothing
to the image store (no name, blob, layer or temp file).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BAD = Path(__file__).resolve().parent.parent / "fixtures" / "bad"
sys.path.insert(0, str(BAD))
import badcorpus  # noqa: E402


def machine(minipod) -> dict:
    """What a pod would add: state dirs, pinned netns, links, leases, container dirs."""
    from minipod.runtime.paths import Paths
    paths = Paths(str(minipod.root))

    def ls(d: Path) -> list[str]:
        return sorted(os.listdir(d)) if d.is_dir() else []

    return {"pods": ls(paths.pods), "containers": ls(paths.containers),
            "logs": ls(paths.pod_logs), "ipam": ls(paths.ipam),
            "netns": [n for n in ls(Path("/run/netns")) if n.startswith(paths.netns_prefix)],
            "links": sorted(n for _, n in socket.if_nameindex())}


def store(minipod) -> dict:
    """The image store: names, blobs, layers, temp files."""
    images = minipod.root / "lib" / "images"

    def ls(d: str) -> list[str]:
        return sorted(os.listdir(images / d)) if (images / d).is_dir() else []

    refs = images / "refs.json"
    return {"refs": json.loads(refs.read_text()) if refs.exists() else None,
            "blobs": ls("blobs/sha256"), "layers": ls("layers/sha256"), "tmp": ls("tmp")}


def one_clear_error(proc: subprocess.CompletedProcess, what: str) -> list[str]:
    """What is wrong with the answer to a bad input: [] if exit 1, one error, no traceback."""
    wrong = []
    if proc.returncode != 1:
        wrong.append(f"exit {proc.returncode}")
    if "Traceback" in proc.stderr:
        wrong.append("a traceback")
    elif not proc.stderr.startswith("error: ") or proc.stderr.count("error: ") != 1:
        wrong.append("not one error")
    if proc.stdout:
        wrong.append("output on stdout")
    return [f"{what}: {', '.join(wrong)}:\n{proc.stdout}{proc.stderr[-1500:]}"] if wrong else []


def remove_corpus_pods(minipod) -> None:
    """Should a bad manifest ever be accepted, leave no pod for the next one."""
    made = {n.removeprefix("pod/") for n in minipod("get", "pods", "-o", "name").stdout.split()}
    made &= set(badcorpus.NAMES)
    if made:
        minipod("delete", "pod", *made, "--grace-period", "0", check=False)


@pytest.fixture(scope="module")
def manifests(tmp_path_factory) -> dict[Path, badcorpus.Case]:
    d = tmp_path_factory.mktemp("bad-manifests")
    out = {badcorpus.MANIFESTS / n: c for n, c in badcorpus.committed().items()}
    out.update({d / n: c for n, c in badcorpus.generate_manifests(d).items()})
    return out


def test_every_bad_manifest_exits_1_with_one_error_and_creates_nothing(minipod, manifests):
    before = machine(minipod)
    failures = []
    try:
        for path, case in manifests.items():
            proc = minipod("run", str(path), check=False, timeout=60)
            wrong = one_clear_error(proc, path.name)
            if not wrong and str(path) not in proc.stderr:
                wrong.append(f"{path.name}: the error does not name the file:\n{proc.stderr}")
            if not wrong and case.says not in proc.stderr:
                wrong.append(f"{path.name}: {case.says!r} not said:\n{proc.stderr}")
            if not wrong and case.line is not None and f"{path}:{case.line}:" not in proc.stderr:
                wrong.append(f"{path.name}: line {case.line} not named:\n{proc.stderr}")
            if machine(minipod) != before:
                wrong.append(f"{path.name} created something")
                remove_corpus_pods(minipod)
            failures += wrong
    finally:
        remove_corpus_pods(minipod)
    assert not failures, f"{len(failures)} of {len(manifests)} bad manifests:\n\n" + \
        "\n\n".join(failures)


@pytest.mark.parametrize("args", [["create", "-f"], ["delete", "-f"]])
def test_create_and_delete_refuse_a_bad_manifest_the_same_way(minipod, args):
    before = machine(minipod)
    for name in ("truncated.yaml", "second-doc-broken.yaml", "billion-laughs.yaml"):
        path = badcorpus.MANIFESTS / name
        proc = minipod(*args, str(path), check=False)
        assert one_clear_error(proc, f"{' '.join(args)} {name}") == []
        assert badcorpus.EXPECT[name].says in proc.stderr
    assert machine(minipod) == before


def test_binary_junk_on_stdin_is_one_clear_error(minipod):
    before = machine(minipod)
    junk = bytes(range(256)) * 64
    proc = subprocess.run([sys.executable, "-m", "minipod", "run", "-"], env=minipod.env,
                          input=junk, capture_output=True, timeout=30)
    proc = subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(),
                                       proc.stderr.decode(errors="replace"))
    assert one_clear_error(proc, "run - < junk") == []
    assert "<stdin>" in proc.stderr and "not UTF-8" in proc.stderr
    assert machine(minipod) == before


def test_every_broken_image_archive_exits_1_and_adds_nothing_to_the_store(minipod, tmp_path):
    archives = badcorpus.generate_archives(tmp_path / "archives")
    before = store(minipod)
    failures = []
    for name, case in archives.items():
        path = tmp_path / "archives" / name
        if case.verb == "load":
            proc = minipod("image", "load", str(path), check=False)
        else:
            proc = minipod("image", "import", str(path), "bad-input/imported:1", check=False)
        wrong = one_clear_error(proc, f"image {case.verb} {name}")
        if not wrong and case.says not in proc.stderr:
            wrong.append(f"{name}: {case.says!r} not said:\n{proc.stderr}")
        if store(minipod) != before:
            wrong.append(f"{name} changed the image store")
            minipod("image", "rm", "bad-input/oci:1", "bad-input/docker:1",
                    "bad-input/imported:1", check=False)
        failures += wrong
    assert not failures, "\n\n".join(failures)


def test_a_host_port_on_the_api_servers_port_is_refused(minipod, tmp_path):
    """hostPort 6443 would DNAT 127.0.0.1:6443 and the pods' gateway to the
    pod, taking the API over from kubectl and from every pod: refused, and
    nothing made."""
    path = tmp_path / "apiport.yaml"
    path.write_text("""apiVersion: v1
kind: Pod
metadata: {name: apiport}
spec:
  containers:
  - name: main
    image: minipod.test/busybox:1
    command: [sleep, "100000"]
    ports: [{containerPort: 8080, hostPort: 6443}]
""")
    assert minipod.env.get("MINIPOD_API_PORT") in (None, "6443")
    # an agent started by an API server of another module saw that one's port:
    # this run starts one with the suite's environment (pods keep running)
    minipod("agent", "stop", check=False)
    deadline = time.monotonic() + 10
    while minipod("agent", "status", check=False).returncode == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    before = machine(minipod)   # (the stopping agent took the idle bridge with it)
    proc = minipod("run", str(path), check=False)
    assert one_clear_error(proc, "hostPort 6443") == []
    assert "hostPort 6443 is the port of minipod's Kubernetes API server" in proc.stderr
    after = machine(minipod)
    # the agent this run started may make its bridge again; no pod's link, nothing else
    assert set(after.pop("links")) - set(before.pop("links")) <= {"minipod0"}
    assert after == before
