#!/usr/bin/env python3
"""100 pods on one machine: does anything slow down with the pod count?

    sudo .venv/bin/python bench/scale.py [--pods N] [--get-runs R]

Starts N one-container pods (busybox `sleep`), one `minipod run` after the
other, through the real CLI, and prints:
  - the `minipod run` time (to Running) of the 1st, 10th, 50th, Nth pod, and
    the wall time until 1, 10, 50, N pods ran: flat per-pod times mean the
    IPAM, name lookups and the agent's loop do not slow down with the count;
  - `minipod get pods` at 1, 10, 100 (N) pods, median of R runs: it reads
    the state files and spawns nothing per pod;
  - the agent's PSS with 1 and with N pods, and the growth per pod;
  - `minipod gc --dry-run` at N pods (a scan of /proc, mounts and links),
    if this minipod has the gc command;
  - `minipod delete` of all N pods at once.
Runs in its own MINIPOD_ROOT and a private network namespace (unshare
--net), so it touches nothing of the host's and removes all it made. On a
2-core machine shared with others, run it with 100 pods once, not in a loop.
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
sys.path.insert(0, str(Path(__file__).resolve().parent))
from pod_start import POD, pss_kib, timed  # noqa: E402  (the same pod, the same timing)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=100, help="how many pods (default 100)")
    ap.add_argument("--get-runs", type=int, default=5, help="runs of `get pods` per point")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/scale.py needs root: sudo .venv/bin/python bench/scale.py", file=sys.stderr)
        return 3
    if os.environ.get("MINIPOD_BENCH_INNER") != "1":
        # re-exec inside a private network namespace
        return subprocess.call(["unshare", "--net", "--", "sh", "-c",
                                'ip link set lo up && exec "$0" "$@"', sys.executable,
                                *sys.argv], env=dict(os.environ, MINIPOD_BENCH_INNER="1"))
    sys.path.insert(0, str(REPO / "tests"))
    from imagebuild import build_busybox_rootfs

    n = max(args.pods, 1)
    marks = sorted({m for m in (1, 10, 50, 100, n) if m <= n})
    root = Path(tempfile.mkdtemp(prefix="minipod-scale-"))
    env = dict(os.environ, MINIPOD_ROOT=str(root), MINIPOD_AGENT_IDLE="600", PYTHONSAFEPATH="1")
    mp = [sys.executable, "-m", "minipod"]
    names = [f"scale{i:03d}" for i in range(1, n + 1)]
    result: dict = {"pods": n}
    try:
        rootfs = build_busybox_rootfs(root / "rootfs")
        subprocess.run(mp + ["image", "import", str(rootfs), "bench/busybox:1"], env=env,
                       check=True, capture_output=True)
        manifests = []
        for name in names:
            p = root / f"{name}.yaml"
            p.write_text(POD.format(name=name))
            manifests.append(p)
        run_ms, wall, gets = {}, {}, {}
        agent = pss_one = None
        start = time.perf_counter()
        for i, path in enumerate(manifests, 1):
            ms = timed(mp + ["run", str(path)], env)
            if i in marks:
                run_ms[i] = ms
                wall[i] = time.perf_counter() - start
                gets[i] = statistics.median(timed(mp + ["get", "pods"], env)
                                            for _ in range(args.get_runs))
                if i == 1:
                    status = subprocess.run(mp + ["agent", "status"], env=env,
                                            capture_output=True, text=True).stdout
                    agent = int(status.split("pid ")[1].split(",")[0])
                    pss_one = pss_kib(agent)
                print(f"pod {i:4d}: run {ms:7.1f} ms   {wall[i]:6.1f} s since the first   "
                      f"get pods {gets[i]:6.1f} ms", flush=True)
        pss_n = pss_kib(agent)
        pods = json.loads(subprocess.run(mp + ["get", "pods", "-o", "json"], env=env, check=True,
                                         capture_output=True, text=True).stdout)["items"]
        running = sum(1 for p in pods if p["status"]["phase"] == "Running")
        ips = {p["status"].get("podIP") for p in pods}
        gc = subprocess.run(mp + ["gc", "--dry-run"], env=env, capture_output=True, text=True)
        gc_ms = timed(mp + ["gc", "--dry-run"], env) if gc.returncode == 0 else None
        delete_ms = timed(mp + ["delete", "pod", *names, "--grace-period", "0"], env)
        per_pod = (pss_n - pss_one) / max(n - 1, 1)
        print(f"all {n} pods Running: {running == n} ({running} Running, {len(ips)} distinct IPs)")
        print(f"agent PSS: {pss_one} KiB with 1 pod, {pss_n} KiB with {n}: "
              f"{per_pod:.0f} KiB per pod")
        if gc_ms is not None:
            print(f"minipod gc --dry-run with {n} pods: {gc_ms:.0f} ms")
        print(f"minipod delete of {n} pods: {delete_ms / 1000:.1f} s")
        result.update(running=running, distinct_ips=len(ips),
                      run_ms={str(k): round(v, 1) for k, v in run_ms.items()},
                      wall_s={str(k): round(v, 2) for k, v in wall.items()},
                      get_ms={str(k): round(v, 1) for k, v in gets.items()},
                      agent_pss_kib_1=pss_one, agent_pss_kib_n=pss_n,
                      agent_pss_kib_per_pod=round(per_pod), gc_dry_run_ms=gc_ms and round(gc_ms),
                      delete_all_s=round(delete_ms / 1000, 2))
        print(json.dumps(result))
    finally:
        left = subprocess.run(mp + ["get", "pods", "-o", "name"], env=env, capture_output=True,
                              text=True).stdout.split()
        if left:
            subprocess.run(mp + ["delete", *left, "--grace-period", "0"], env=env,
                           capture_output=True)
        subprocess.run(mp + ["agent", "stop"], env=env, capture_output=True)
        time.sleep(0.5)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
