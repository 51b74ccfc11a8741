#!/usr/bin/env python3
"""Pod start and agent memory, measured through the real CLI.

    sudo .venv/bin/python bench/pod_start.py [--runs N] [--pods M]

Prints, for a one-container pod whose image is already in the store:
  - `minipod run` until Running, with the agent already running (warm) and
    with no agent (cold: the CLI starts it), median/min/max of N runs;
  - `minipod delete` of the same pod;
  - `python3 -c pass` as the floor every command pays;
  - the agent's PSS with 1 and with M pods, and the growth per pod.
Runs in its own MINIPOD_ROOT and a private network namespace (unshare
--net), so it touches nothing of the host's and removes all it made.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
POD = """apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: bench/busybox:1
    command: ["sleep", "100000"]
"""


def timed(cmd, env) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return (time.perf_counter() - t) * 1000


def summary(values: list[float]) -> str:
    return (f"median {statistics.median(values):7.1f} ms   min {min(values):7.1f}   "
            f"max {max(values):7.1f}   (n={len(values)})")


def pss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--pods", type=int, default=10)
    args = ap.parse_args()
    if os.environ.get("MINIPOD_BENCH_INNER") != "1":
        # re-exec inside a private network namespace
        return subprocess.call(["unshare", "--net", "--", "sh", "-c",
                                'ip link set lo up && exec "$0" "$@"', sys.executable,
                                *sys.argv], env=dict(os.environ, MINIPOD_BENCH_INNER="1"))
    sys.path.insert(0, str(REPO / "tests"))
    from imagebuild import build_busybox_rootfs

    root = Path(tempfile.mkdtemp(prefix="minipod-bench-"))
    env = dict(os.environ, MINIPOD_ROOT=str(root), MINIPOD_AGENT_IDLE="600", PYTHONSAFEPATH="1")
    mp = [sys.executable, "-m", "minipod"]
    try:
        rootfs = build_busybox_rootfs(root / "rootfs")
        subprocess.run(mp + ["image", "import", str(rootfs), "bench/busybox:1"], env=env,
                       check=True, capture_output=True)
        manifests = []
        for i in range(max(args.pods, 1)):
            p = root / f"pod{i}.yaml"
            p.write_text(POD.format(name=f"bench{i}"))
            manifests.append(p)
        warm, cold, delete = [], [], []
        for i in range(args.runs):
            # cold: no agent; the CLI starts it
            subprocess.run(mp + ["agent", "stop"], env=env, capture_output=True)
            time.sleep(0.3)
            cold.append(timed(mp + ["run", str(manifests[0])], env))
            delete.append(timed(mp + ["delete", "pod", "bench0"], env))
            warm.append(timed(mp + ["run", str(manifests[0])], env))
            delete.append(timed(mp + ["delete", "pod", "bench0"], env))
        floor = [timed(["/usr/bin/python3", "-c", "pass"], env) for _ in range(args.runs)]
        get = [timed(mp + ["get", "pods"], env) for _ in range(args.runs)]
        status = subprocess.run(mp + ["agent", "status"], env=env, capture_output=True, text=True)
        agent = int(status.stdout.split("pid ")[1].split(",")[0])
        subprocess.run(mp + ["run", str(manifests[0])], env=env, check=True, capture_output=True)
        one = pss_kib(agent)
        for p in manifests[1:]:
            subprocess.run(mp + ["run", str(p)], env=env, check=True, capture_output=True)
        many = pss_kib(agent)
        print(f"minipod run → Running, agent running : {summary(warm)}")
        print(f"minipod run → Running, agent started : {summary(cold)}")
        print(f"minipod delete (grace 0)             : {summary(delete)}")
        print(f"minipod get pods (1 pod)             : {summary(get)}")
        print(f"/usr/bin/python3 -c pass             : {summary(floor)}")
        print(f"agent PSS with 1 pod: {one} KiB; with {args.pods} pods: {many} KiB; "
              f"growth per pod: {(many - one) / max(args.pods - 1, 1):.0f} KiB")
        print(json.dumps({"warm_ms": statistics.median(warm), "cold_ms": statistics.median(cold),
                          "delete_ms": statistics.median(delete),
                          "get_ms": statistics.median(get),
                          "python_floor_ms": statistics.median(floor),
                          "agent_pss_kib_1": one, f"agent_pss_kib_{args.pods}": many}))
    finally:
        names = subprocess.run(mp + ["get", "pods", "-o", "name"], env=env, capture_output=True,
                               text=True).stdout.split()
        if names:
            subprocess.run(mp + ["delete", *names, "--grace-period", "0"], env=env,
                           capture_output=True)
        subprocess.run(mp + ["agent", "stop"], env=env, capture_output=True)
        time.sleep(0.3)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
