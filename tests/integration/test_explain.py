"""--explain prints the real steps: they name the very objects minipod made."""
from __future__ import annotations

import json

import pytest

from podhelpers import pod_manifest

pytestmark = pytest.mark.integration


def test_run_explain_names_the_real_veth_ip_netns_and_mounts(minipod, tmp_path):
    path = tmp_path / "pod.yaml"
    path.write_text(pod_manifest("explained", "sleep 100000"))
    out = minipod("run", "--explain", str(path)).stdout
    report = json.loads(minipod("inspect", "pod", "explained", "-o", "json").stdout)
    veth, ip, netns = report["veth"]["host"], report["podIP"], report["netns"]
    assert f"ip link add {veth} type veth peer name eth0" in out
    assert f"netns {netns}" in out and f"ip -n {netns} addr add {ip}/" in out
    assert "unshare --net --ipc --uts" in out
    upper = report["containers"][0]["overlay"]["upperdir"]
    assert f"upperdir={upper}" in out, "the overlay printed is the overlay mounted"
    assert "pivot_root . ." in out and "exec sh -c 'sleep 100000'" in out
    assert out.rstrip().endswith("pod/explained created")
    gone = minipod("delete", "--explain", "pod", "explained", "--now").stdout
    assert f"ip link del {veth}" in gone and f"umount -l /run/netns/{netns}" in gone
    assert gone.index("kill -TERM") < gone.index("ip link del")


def test_printed_network_commands_replayed_by_hand_give_the_same_wiring(minipod, tmp_path):
    """Run a two-container pod with --explain, then type its `ip` commands
    ourselves in a fresh network namespace: the wiring must come out the same."""
    import re
    import subprocess
    import uuid
    # no pod and no agent: the run creates the bridge, so its commands are printed too
    assert minipod("get", "pods", "-o", "name").stdout == ""
    pid = minipod.agent_pid()
    if pid:
        minipod("agent", "stop")
        import os
        import time
        while os.path.exists(f"/proc/{pid}"):
            time.sleep(0.02)
    path = tmp_path / "two.yaml"
    path.write_text(pod_manifest("wired", "sleep 100000").replace(
        "  containers:\n", "  terminationGracePeriodSeconds: 0\n  containers:\n") +
        "  - name: second\n    image: minipod.test/busybox:1\n    command: [sleep, '100000']\n")
    out = minipod("run", "--explain", str(path)).stdout
    report = json.loads(minipod("inspect", "pod", "wired", "-o", "json").stdout)
    netns = report["netns"]
    commands = [line[2:] for line in out.splitlines() if line.startswith("$ ip ")]
    assert any("type bridge" in c for c in commands) and any("type veth" in c for c in commands)
    fresh = f"replay-{uuid.uuid4().hex[:8]}"
    script = "\n".join([f"ip netns add {fresh}"] +
                       [c.replace(netns, fresh) for c in commands] + [
        f"ip -n {fresh} -4 -br addr show dev eth0",
        f"ip -n {fresh} -br link show dev eth0",
        f"ip -n {fresh} route",
        "ip -4 -br addr show dev minipod0",
        "ip -br link show master minipod0 | cut -d' ' -f1",  # its MAC is random
        f"ip netns del {fresh}"])
    replay = subprocess.run(["unshare", "--net", "sh", "-ec", "ip link set lo up\n" + script],
                            capture_output=True, text=True)
    assert replay.returncode == 0, replay.stderr
    real = subprocess.run(["sh", "-ec", "\n".join([
        f"ip -n {netns} -4 -br addr show dev eth0",
        f"ip -n {netns} -br link show dev eth0",
        f"ip -n {netns} route",
        "ip -4 -br addr show dev minipod0",
        "ip -br link show master minipod0 | cut -d' ' -f1"])], capture_output=True, text=True)

    def norm(text):  # interface indexes differ between namespaces; nothing else may
        return re.sub(r"@if\d+", "@ifN", re.sub(r"\s+", " ", text)).strip()
    assert norm(replay.stdout) == norm(real.stdout)
    assert report["podIP"] in replay.stdout
    minipod("delete", "pod", "wired")
