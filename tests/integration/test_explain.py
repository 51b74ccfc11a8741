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
