"""Escape classes that were already blocked, tried for real from a pod.

Each test is an attack a hostile container would make, run with
`minipod exec` inside a running pod of the default configuration (the
capabilities, seccomp filter and mounts every pod gets), with the check a
user would make of the result. docs/security.md lists every escape class
with the test that tries it; the newer classes have files of their own
(test_escape_*.py).
"""
from __future__ import annotations

import os

import pytest

from podhelpers import pod_manifest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hostile(minipod, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    minipod.run_manifest(pod_manifest("hostile", "exec sleep 100000"), tmp)
    minipod.wait_for("hostile", lambda p: p["status"]["phase"] == "Running")
    yield "hostile"
    minipod("delete", "pod", "hostile", "--grace-period", "0")


def sh(minipod, pod: str, script: str):
    return minipod("exec", pod, "--", "sh", "-c", script, check=False)


def test_cgroupfs_cannot_be_mounted_so_release_agent_is_out_of_reach(minipod, hostile):
    """The 2022 release_agent escape (CVE-2022-0492) needs a writable
    cgroup v1 hierarchy: mount one, set release_agent to a host program."""
    out = sh(minipod, hostile, "mkdir -p /tmp/cg; for c in rdma memory pids; do "
             "mount -t cgroup -o $c cgroup /tmp/cg 2>&1 && echo MOUNTED $c; done; "
             "for f in $(find / -name release_agent 2>/dev/null); do "
             "echo x > $f 2>/dev/null && echo WROTE $f; done; echo done")
    assert "done" in out.stdout
    assert "MOUNTED" not in out.stdout, out.stdout
    assert "WROTE" not in out.stdout, out.stdout


def test_the_agents_socket_and_state_are_not_in_sight(minipod, hostile):
    """The agent runs containers as root: its socket would be a way out."""
    socket_path = minipod.root / "run" / "agent.sock"
    assert socket_path.exists(), "the agent's socket must exist on the host for this test"
    out = sh(minipod, hostile, f"ls {socket_path} {minipod.root} 2>&1; "
             "grep -c agent.sock /proc/net/unix; true")
    assert "No such file" in out.stdout, out.stdout
    assert out.stdout.strip().splitlines()[-1] == "0", "the agent's socket is visible"


def test_host_processes_cannot_be_seen_or_signalled(minipod, hostile):
    """Its own PID namespace: the host's processes (this test, the agent)
    have no number inside the container, so kill and ptrace cannot reach them."""
    me = os.getpid()
    agent = minipod.agent_pid()
    out = sh(minipod, hostile, f"kill -0 {me} 2>&1; kill -0 {agent} 2>&1; "
             "ls /proc | grep -c '^[0-9]'")
    assert out.stdout.count("No such process") == 2, out.stdout
    count = int(out.stdout.strip().splitlines()[-1])
    assert count <= 4, f"the container sees {count} processes: more than its own"


def test_user_namespaces_and_keyrings_are_refused(minipod, hostile):
    """unshare -U is the first step of many kernel exploits; the keyring
    is shared with the host (not namespaced)."""
    out = sh(minipod, hostile, "unshare -U true 2>&1 && echo UNSHARED; "
             "cat /proc/keys 2>&1 | head -1; echo done")
    assert "UNSHARED" not in out.stdout, out.stdout
    assert "done" in out.stdout
