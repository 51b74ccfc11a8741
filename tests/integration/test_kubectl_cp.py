"""`kubectl cp` (tar over exec) both ways, and `kubectl run`, with the real kubectl.

kubectl cp runs `tar cf - PATH` in the container to copy out, and `tar -xmf -
-C DIR` with its stdin to copy in: the busybox tar of the suite's image. The
copy in works only if the server closes the process's stdin when the client
ends it (v5.channel.k8s.io CLOSE, or the SPDY stdin stream's FIN), so tar
sees EOF and exits. Over WebSocket (kubectl >= 1.30), as exec: minipod
has no SPDY exec.
"""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from podhelpers import BUSYBOX_IMAGE
from test_kubectl import KUBECTLS, Api, Kubectl


@pytest.fixture(scope="module")
def api(minipod, tmp_path_factory):
    a = Api(minipod, tmp_path_factory.mktemp("api-cp"))
    yield a
    a.stop()


@pytest.fixture(scope="module", params=sorted(KUBECTLS))
def kubectl(request, api):
    binary = KUBECTLS[request.param]
    if not os.access(binary, os.X_OK):
        pytest.skip(f"no kubectl {request.param} on this machine ({binary})")
    return Kubectl(api, binary, request.param)


@pytest.fixture
def pod(kubectl):
    name = f"cp-{kubectl.version.replace('.', '')}"
    kubectl("run", name, f"--image={BUSYBOX_IMAGE}", "--restart=Never", "--",
            "sh", "-c", "trap 'exit 0' TERM; mkdir -p /data/sub; echo inside > /data/sub/a.txt;"
            " sleep 600 & wait")
    try:
        kubectl("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=60s")
        yield name
    finally:
        kubectl("delete", "pod", name, "--grace-period=0", check=False)


def test_cp_into_and_out_of_a_pod(kubectl, pod, tmp_path):
    src = tmp_path / "in"
    (src / "deep").mkdir(parents=True)
    (src / "hello.txt").write_text("hello from the host\n")
    blob = os.urandom(300_000)                  # more than one pipe buffer and one frame
    (src / "deep" / "blob.bin").write_bytes(blob)
    kubectl("cp", str(src / "hello.txt"), f"{pod}:/tmp/hello.txt", timeout=60)
    kubectl("cp", str(src), f"{pod}:/tmp/tree", timeout=60)
    got = kubectl("exec", pod, "--", "sh", "-c",
                  "cat /tmp/hello.txt; md5sum /tmp/tree/deep/blob.bin").stdout
    import hashlib
    assert got == f"hello from the host\n{hashlib.md5(blob).hexdigest()}  " \
                  "/tmp/tree/deep/blob.bin\n"
    out = tmp_path / "out"
    kubectl("cp", f"{pod}:/data", str(out), timeout=60)
    assert (out / "sub" / "a.txt").read_text() == "inside\n"
    kubectl("cp", f"{pod}:/tmp/tree/deep/blob.bin", str(tmp_path / "back.bin"), timeout=60)
    assert (tmp_path / "back.bin").read_bytes() == blob
    # (a missing source: tar writes an empty archive and exits 1; kubectl
    # ends when the archive ends, before it reads the exit status, and exits
    # 0 on a cluster too, so there is nothing of minipod's to check there)


def test_run_with_a_command_then_logs(kubectl):
    name = f"run-{kubectl.version.replace('.', '')}"
    out = kubectl("run", name, f"--image={BUSYBOX_IMAGE}", "--restart=Never", "--",
                  "sh", "-c", "echo ran $0 $HOSTNAME")
    assert out.stdout.strip() == f"pod/{name} created"
    try:
        kubectl("wait", "--for=jsonpath={.status.phase}=Succeeded", f"pod/{name}",
                "--timeout=60s")
        assert kubectl("logs", name).stdout == f"ran sh {name}\n"
        labels = kubectl("get", "pod", name, "-o", "jsonpath={.metadata.labels.run}").stdout
        assert labels == name
    finally:
        kubectl("delete", "pod", name, "--grace-period=0", check=False)
