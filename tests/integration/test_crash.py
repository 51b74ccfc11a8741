"""kill -9 at the worst moments, then the next command repairs.

Through the real CLI with the session's MINIPOD_ROOT. test_faults.py kills
the agent at each named step of create and teardown (MINIPOD_FAULT); this
file covers what those steps leave out:
- a pod that makes more (a pause process, a tmpfs volume) killed at
  create:volumes, and the window before the first record is saved (killed
  from outside, the moment the pod dir appears);
- the agent killed while an image is pulled, during a long graceful delete,
  and while a container ends during the grace period;
- an exit that happened while no agent ran: reason Unknown, exitCode null;
- the CLI killed in the middle of a delete;
- orphans collected by a restarted agent before any `gc` command, and a
  pod state file that cannot be read: reported with its path, kept.
After each, the next command must leave a consistent machine: the pod
finished (Running) or removed, `minipod gc` finding nothing more, nothing
of the pod left once it is deleted. (Pods surviving an agent kill while
they run is test_pod.py's.)
"""
from __future__ import annotations

import gzip
import hashlib
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from podhelpers import pod_manifest

pytestmark = pytest.mark.integration


# ---- helpers -----------------------------------------------------------------------

def paths_of(minipod):
    from minipod.runtime.paths import Paths
    return Paths(str(minipod.root))


def record_of(minipod, name: str) -> dict | None:
    try:
        return json.loads((paths_of(minipod).pod_dir(name) / "pod.json").read_text())
    except (FileNotFoundError, ValueError):
        return None


def ensure_agent(minipod) -> int:
    """The running agent's pid, starting one if needed."""
    pid = minipod.agent_pid()
    if pid is None:
        minipod("agent", "start")
        pid = minipod.agent_pid()
    assert pid
    return pid


def stop_agent(minipod) -> None:
    pid = minipod.agent_pid()
    if pid:
        minipod("agent", "stop")
        wait_reaped(pid, "the agent did not stop")


def kill_and_wait(pid: int, timeout: float = 5) -> None:
    """SIGKILL a process this test started (the agent or a CLI) and wait for it."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    wait_dead(pid, f"pid {pid} did not die", timeout)


def dead(pid: int) -> bool:
    """Gone, or a zombie (it has ended; its new parent reaps it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1].startswith("Z")
    except FileNotFoundError:
        return True


def wait_dead(pid: int, why: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not dead(pid):
        assert time.monotonic() < deadline, why
        time.sleep(0.02)


def wait_reaped(pid: int, why: str, timeout: float = 10) -> None:
    """Until pid is gone for good. With the agent dead, a container that
    ends is reaped by the agent's own parent (init here): until then it is
    a zombie, which still has its start time, so it would look alive."""
    wait_dead(pid, why, timeout)
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}"):
        assert time.monotonic() < deadline, f"zombie {pid} was not reaped by init"
        time.sleep(0.02)


def spin_until(predicate, timeout: float = 20, what: str = "") -> None:
    """Busy-wait (no sleep): the kill must land right after the mark appears."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")


def popen(minipod, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "minipod", *args], env=minipod.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_gone(minipod, name: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while minipod("get", "pod", name, check=False).returncode == 0:
        assert time.monotonic() < deadline, f"pod {name} was not removed"
        time.sleep(0.1)


def traces(minipod, name: str, uid: str | None) -> list[str]:
    """What of pod `name` (uid) is still on the machine."""
    paths = paths_of(minipod)
    left = []
    for p in (paths.pod_dir(name), paths.netns_path(name), paths.pod_logs / name):
        if os.path.lexists(p):
            left.append(str(p))
    if uid:
        from minipod.netns.bridge import host_ifname
        from minipod.netns.ipam import IPAM
        if (paths.containers / uid).exists():
            left.append(str(paths.containers / uid))
        left += [f"lease {ip}" for ip, owner in IPAM(paths.ipam).leases().items()
                 if owner == uid]
        if host_ifname(uid) in {n for _, n in socket.if_nameindex()}:
            left.append(f"veth {host_ifname(uid)}")
        marker = str(paths.containers / uid)
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if marker in Path(f"/proc/{pid}/mountinfo").read_text():
                    left.append(f"process {pid}")
            except OSError:
                pass
    left += [f"pause process {pid}" for pid in pauses_of(minipod)]
    left += [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
             if f"/pods/{name}/" in line and str(minipod.root) in line]
    return left


def pauses_of(minipod) -> list[int]:
    """Pause processes (shareProcessNamespace) of this session's agents."""
    marker = f"MINIPOD_ROOT={minipod.root}".encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "minipod-pause" and \
                    marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                found.append(int(pid))
        except OSError:
            pass
    return found


def assert_gc_finds_nothing(minipod) -> None:
    out = minipod("gc", "--dry-run")
    assert out.stdout.strip() == "nothing to remove", out.stdout + out.stderr


def repaired(minipod, name: str, uid: str | None) -> None:
    """After a crash: the next command repairs; the pod is Running or gone;
    once deleted nothing of it is left and gc finds nothing."""
    gc = minipod("gc", check=False)
    assert gc.returncode == 0, f"the next command failed after the crash:\n{gc.stderr}"
    assert "Traceback" not in gc.stderr
    assert_gc_finds_nothing(minipod)
    got = minipod("get", "pod", name, "-o", "json", check=False)
    if got.returncode == 0:
        pod = json.loads(got.stdout)
        uid = pod["metadata"]["uid"]
        deadline = time.monotonic() + 10
        while pod["status"]["phase"] != "Running" or not all(
                "running" in c["state"] for c in pod["status"]["containerStatuses"]):
            assert time.monotonic() < deadline, \
                f"half-created pod {name} was neither finished nor removed:\n" \
                f"{json.dumps(pod['status'], indent=1)}"
            time.sleep(0.1)
            pod = minipod.pod(name)
        minipod("delete", "pod", name, "--grace-period", "0")
    else:
        assert "NotFound" in got.stderr
        # removed: the name is free again (no stale dir making it AlreadyExists)
        run = minipod("run", str(_manifest_path(minipod, name)), check=False)
        assert run.returncode == 0, run.stderr
        minipod("delete", "pod", name, "--grace-period", "0")
    assert traces(minipod, name, uid) == []
    assert_gc_finds_nothing(minipod)


def _manifest_path(minipod, name: str) -> Path:
    return minipod.root / f"crash-{name}.yaml"


def write_manifest(minipod, name: str, text: str) -> Path:
    path = _manifest_path(minipod, name)
    path.write_text(text)
    return path


# ---- the agent killed during create -------------------------------------------------
# test_faults.py kills the agent at each named step of create_pod
# (MINIPOD_FAULT). Here: a pod that makes more (a pause process, a tmpfs
# volume), and the one window no step names, between the pod dir and its
# first saved record.

def _uid(minipod, name: str) -> str | None:
    return (record_of(minipod, name) or {}).get("uid")


def rich_manifest(name: str) -> str:
    """A pod with a pause process (shareProcessNamespace) and a tmpfs emptyDir."""
    return pod_manifest(name, "sleep 1000", terminationGracePeriodSeconds=0,
                        shareProcessNamespace="true").replace(
        "  containers:\n",
        "  volumes:\n  - name: scratch\n    emptyDir: {medium: Memory}\n  containers:\n") + \
        "    volumeMounts:\n    - {name: scratch, mountPath: /scratch}\n"


@pytest.mark.parametrize("step", ["create:volumes", "create:containers"])
def test_agent_killed_after_the_pause_and_tmpfs_are_made_the_next_command_repairs(
        minipod, step):
    """At create:volumes the pause process runs and the tmpfs is mounted,
    but the saved record (Pending) names neither: the next agent removes
    the half-created pod, and gc what its record could not tell."""
    name = "crash-" + step.replace(":", "-")
    path = write_manifest(minipod, name, rich_manifest(name))
    stop_agent(minipod)
    proc = subprocess.run([sys.executable, "-m", "minipod", "run", str(path)],
                          env=dict(minipod.env, MINIPOD_FAULT=step), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    repaired(minipod, name, _uid(minipod, name))


def test_agent_killed_between_the_pod_dir_and_its_first_record(minipod):
    """No fault point marks this window: the kill comes from outside, the
    moment the pod dir appears (a busy loop on the dir)."""
    name = "crash-pod-dir"
    path = write_manifest(minipod, name, pod_manifest(name, "sleep 1000",
                                                      terminationGracePeriodSeconds=0))
    agent = ensure_agent(minipod)
    cli = popen(minipod, "run", str(path))
    try:
        spin_until(paths_of(minipod).pod_dir(name).exists, what="the pod dir")
        kill_and_wait(agent)
        uid = _uid(minipod, name)
        _, err = cli.communicate(timeout=30)
        assert "Traceback" not in err
    finally:
        if cli.poll() is None:
            kill_and_wait(cli.pid)
    repaired(minipod, name, uid)


def test_a_restarted_agent_collects_orphans_before_any_gc_command(minipod, tmp_path):
    """gc also runs lazily: the first command after a crash (here a `run`)
    restarts the agent, which removes what a dead agent left: a pod dir
    without record, a lease and a pinned netns of a pod nobody knows."""
    from minipod.netns.ipam import IPAM
    paths = paths_of(minipod)
    kill_and_wait(ensure_agent(minipod))
    ghost, ghost_uid = "crash-ghost", "00000000-0000-4000-8000-00000000beef"
    paths.pod_dir(ghost).mkdir(parents=True)
    ip = IPAM(paths.ipam).allocate(ghost_uid)
    netns = paths.netns_name(ghost)
    subprocess.run(["ip", "netns", "add", netns], check=True)
    name = "crash-after-ghost"
    try:
        minipod("run", str(write_manifest(minipod, name, pod_manifest(
            name, "sleep 1000", terminationGracePeriodSeconds=0))))
        assert not paths.pod_dir(ghost).exists()
        assert str(ip) not in IPAM(paths.ipam).leases()
        assert not paths.netns_path(ghost).exists()
        assert_gc_finds_nothing(minipod)
    finally:
        if paths.netns_path(ghost).exists():
            subprocess.run(["ip", "netns", "del", netns])
        IPAM(paths.ipam).release(ghost_uid)
        if paths.pod_dir(ghost).exists():
            paths.pod_dir(ghost).rmdir()
        minipod("delete", "pod", name, "--grace-period", "0", check=False)


# ---- the agent killed while an image is pulled ---------------------------------------

class GatedRegistry:
    """A tiny registry on 127.0.0.1 serving one image; manifest requests
    wait until the gate opens, so a pull can be caught in flight."""

    def __init__(self, repo: str, layer: bytes):
        self.gate = threading.Event()
        self.asked = threading.Event()
        gz = gzip.compress(layer, mtime=0)
        config = json.dumps({"architecture": _arch(), "os": "linux",
                             "config": {"Cmd": ["sh"]},
                             "rootfs": {"type": "layers",
                                        "diff_ids": [_digest(layer)]}}).encode()
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": _digest(config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": _digest(gz), "size": len(gz)}]}).encode()
        self.blobs = {_digest(gz): gz, _digest(config): config}
        self.manifest = manifest
        registry = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path == "/v2/":
                    return self._send(200, b"{}", "application/json")
                if self.path.startswith(f"/v2/{repo}/manifests/"):
                    registry.asked.set()
                    registry.gate.wait(60)
                    return self._send(200, registry.manifest,
                                      "application/vnd.oci.image.manifest.v1+json",
                                      {"Docker-Content-Digest": _digest(registry.manifest)})
                digest = self.path.rsplit("/", 1)[-1]
                if self.path.startswith(f"/v2/{repo}/blobs/") and digest in registry.blobs:
                    return self._send(200, registry.blobs[digest], "application/octet-stream")
                self._send(404, b'{"errors": [{"code": "NOT_FOUND"}]}', "application/json")

            def _send(self, code, body, ctype, headers=None):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _arch() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)


def _pulls_of(minipod) -> list[int]:
    """`minipod pull` children of this session's agents."""
    marker = f"MINIPOD_ROOT={minipod.root}".encode()
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"pull" in argv and marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                out.append(int(pid))
        except OSError:
            pass
    return out


def test_agent_killed_while_pulling_the_next_command_finishes_the_pod(minipod, tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from imagebuild import build_busybox_rootfs, tar_directory
    layer = tar_directory(build_busybox_rootfs(tmp_path / "rootfs"))
    reg = GatedRegistry("crash/slow", layer)
    name = "crash-pulling"
    image = f"127.0.0.1:{reg.port}/crash/slow:1"
    path = write_manifest(minipod, name, pod_manifest(name, "sleep 1000", image=image,
                                                      terminationGracePeriodSeconds=0))
    cli = None
    try:
        agent = ensure_agent(minipod)
        cli = popen(minipod, "run", str(path))
        assert reg.asked.wait(30), "the agent never asked the registry"
        pod = minipod.pod(name)
        assert pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == \
            "ContainerCreating"
        kill_and_wait(agent)
        kill_and_wait(cli.pid)        # `run` waits for the pull: the CLI dies too
        cli.communicate()
        reg.gate.set()                # the orphaned pull finishes by itself
        deadline = time.monotonic() + 30
        while _pulls_of(minipod):
            assert time.monotonic() < deadline, "the pull never ended"
            time.sleep(0.05)
        # the next command: the agent comes back and finishes the pod
        minipod("gc")
        minipod.wait_for(name, lambda p: p["status"]["phase"] == "Running" and all(
            "running" in c["state"] for c in p["status"]["containerStatuses"]), timeout=20)
    finally:
        if cli is not None and cli.poll() is None:
            kill_and_wait(cli.pid)
        minipod("delete", "pod", name, "--grace-period", "0", "--ignore-not-found",
                check=False)
        reg.stop()
        minipod("image", "rm", image, check=False)
    assert traces(minipod, name, None) == []


# ---- the agent killed during delete ------------------------------------------------

def _deleting(minipod, name):
    return lambda: bool((record_of(minipod, name) or {}).get("deletionTimestamp"))


def test_agent_killed_during_a_long_graceful_delete_the_next_command_removes_it(minipod):
    name = "crash-deleting"
    minipod("run", str(write_manifest(minipod, name, pod_manifest(
        name, "trap '' TERM; while :; do sleep 0.1; done",
        terminationGracePeriodSeconds=60))))
    uid = minipod.pod(name)["metadata"]["uid"]
    agent = ensure_agent(minipod)
    cli = popen(minipod, "delete", "pod", name)
    spin_until(_deleting(minipod, name), what="deletionTimestamp")
    kill_and_wait(agent)
    out, err = cli.communicate(timeout=30)
    assert cli.returncode == 1 and "Traceback" not in err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    # the next command: a new agent finishes the deletion it finds half done
    gc = minipod("gc", check=False)
    assert gc.returncode == 0, gc.stderr
    wait_gone(minipod, name)
    assert traces(minipod, name, uid) == []
    assert_gc_finds_nothing(minipod)


def test_a_container_that_ends_while_no_agent_runs_during_delete_is_removed(minipod):
    """The container obeys SIGTERM slowly; the agent dies meanwhile; the
    container ends with no agent to see it. The next agent must finish the
    deletion, not trip over the exit it could not see."""
    name = "crash-ends-deleting"
    minipod("run", str(write_manifest(minipod, name, pod_manifest(
        name, "trap 'sleep 1; exit 0' TERM; while :; do sleep 0.1; done",
        terminationGracePeriodSeconds=60))))
    pod = minipod.pod(name)
    uid = pod["metadata"]["uid"]
    pid = record_of(minipod, name)["containers"][0]["pid"]
    agent = ensure_agent(minipod)
    cli = popen(minipod, "delete", "pod", name)
    spin_until(_deleting(minipod, name), what="deletionTimestamp")
    time.sleep(0.3)            # the SIGTERM follows the saved deletionTimestamp
    kill_and_wait(agent)
    cli.communicate(timeout=30)
    wait_reaped(pid, "the container did not end on SIGTERM")
    gc = minipod("gc", check=False)
    assert gc.returncode == 0, f"the agent could not restart: {gc.stderr}"
    wait_gone(minipod, name)
    assert traces(minipod, name, uid) == []
    assert_gc_finds_nothing(minipod)


def test_the_cli_killed_mid_delete_the_agent_still_deletes(minipod):
    name = "crash-cli-delete"
    minipod("run", str(write_manifest(minipod, name, pod_manifest(
        name, "trap '' TERM; while :; do sleep 0.1; done",
        terminationGracePeriodSeconds=1))))
    uid = minipod.pod(name)["metadata"]["uid"]
    cli = popen(minipod, "delete", "pod", name)
    spin_until(_deleting(minipod, name), what="deletionTimestamp")
    kill_and_wait(cli.pid)
    cli.communicate()
    wait_gone(minipod, name)
    assert traces(minipod, name, uid) == []


# ---- what the agent could not see ----------------------------------------------------

def test_an_exit_while_no_agent_ran_is_unknown_never_invented(minipod):
    name = "crash-unseen-exit"
    minipod("run", str(write_manifest(minipod, name, pod_manifest(
        name, "sleep 0.5; exit 3", restartPolicy="Never"))))
    pid = record_of(minipod, name)["containers"][0]["pid"]
    kill_and_wait(ensure_agent(minipod))
    wait_reaped(pid, "the container did not end")

    def unknown(pod):
        term = pod["status"]["containerStatuses"][0]["state"].get("terminated")
        return term is not None and term["reason"] == "Unknown" and term["exitCode"] is None

    assert unknown(minipod.pod(name)), "get (no agent) shows what it cannot know as unknown"
    minipod("gc")                      # a new agent adopts the pod
    pod = minipod.pod(name)
    assert unknown(pod), json.dumps(pod["status"], indent=1)
    assert "agent" in pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"]
    minipod("delete", "pod", name)


def test_an_unreadable_pod_state_is_reported_with_its_path_and_kept(minipod):
    paths = paths_of(minipod)
    broken = {"crash-state-garbage": b'{"name": "crash-state-garbage", "uid": "1b4e28ba-2fa1-'
                                     b'11d2-883f-0016d3cca427", "contain',
              "crash-state-future": json.dumps({"version": 99, "name": "x"}).encode()}
    for name, data in broken.items():
        paths.pod_dir(name).mkdir(parents=True)
        (paths.pod_dir(name) / "pod.json").write_bytes(data)
    try:
        get = minipod("get", "pods")
        for name in broken:
            assert str(paths.pod_dir(name) / "pod.json") in get.stderr
        for args in (("gc", "--dry-run"), ("gc",)):
            gc = minipod(*args)
            for name in broken:
                assert str(paths.pod_dir(name)) in gc.stderr, gc.stderr
                assert paths.pod_dir(name).exists(), "an unreadable pod is never removed"
            assert "schema version 99" in gc.stderr
    finally:
        for name in broken:
            (paths.pod_dir(name) / "pod.json").unlink()
            paths.pod_dir(name).rmdir()
    assert_gc_finds_nothing(minipod)
