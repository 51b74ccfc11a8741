"""A hundred pods on a 2-core machine: all Running, distinct IPs, and the
commands that list them stay usable."""
from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from podhelpers import pod_manifest

pytestmark = pytest.mark.integration

N = 100


def test_one_hundred_pods(minipod, tmp_path):
    paths = []
    for i in range(N):
        p = tmp_path / f"p{i}.yaml"
        p.write_text(pod_manifest(f"many{i}", "sleep 100000", terminationGracePeriodSeconds=0))
        paths.append(p)

    def run(path):
        return subprocess.run([sys.executable, "-m", "minipod", "run", str(path)],
                              env=minipod.env, capture_output=True, text=True, timeout=300)
    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(run, paths))
        assert all(r.returncode == 0 for r in results), [r.stderr for r in results
                                                         if r.returncode][:3]
        table = minipod("get", "pods", "-o", "wide").stdout.splitlines()[1:]
        assert len(table) == N
        assert all(row.split()[2] == "Running" for row in table)
        ips = {row.split()[5] for row in table}
        assert len(ips) == N, "every pod has its own IP"
    finally:
        names = minipod("get", "pods", "-o", "name").stdout.split()
        for i in range(0, len(names), 25):
            minipod("delete", *names[i:i + 25], "--grace-period", "0", timeout=300)
    assert minipod("get", "pods", "-o", "name").stdout == ""
