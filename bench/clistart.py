"""How fast the CLI starts: `minipod --help` and `minipod get pods` beside
`python3 -c pass`, min and median of N interleaved runs, in one process.

    .venv/bin/python bench/clistart.py [--rounds 40] [--minipod PATH]

`get pods` runs twice: in an empty MINIPOD_ROOT of its own, and in one with
one pod, whose record says its container runs (the pid of a stand-in agent
process, so state.refreshed finds it alive). The stand-in holds the agent
lock and listens on the agent socket as a real agent does, so the CLI's
check for a dead agent (client.revive) finds it alive and starts nothing:
no root, no network, no image needed. bench/run's CLI section measures the
same against a real agent and pod.

By hand: `python3 -X importtime .venv/bin/minipod get pods` shows what a
verb imports (importtime inflates each module's share; this script gives
the wall time).
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
MINIPOD = REPO / ".venv" / "bin" / "minipod"
STAND_IN = """
import fcntl, os, socket, sys
run = sys.argv[1]
lock = os.open(run + "/agent.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
fcntl.flock(lock, fcntl.LOCK_EX)
s = socket.socket(socket.AF_UNIX)
s.bind(run + "/agent.sock")
s.listen(64)
print("ready", flush=True)
while True:
    s.accept()[0].close()
"""


def start_time(pid: int) -> int:
    """Field 22 of /proc/PID/stat (what the agent stores as pidStart)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rpartition(")")[2].split()[19])


def one_pod_root(root: Path) -> subprocess.Popen:
    """Fill ROOT with one running pod and its stand-in agent; returns the agent."""
    run = root / "run"
    (run / "pods" / "web").mkdir(parents=True)
    (run / "identity").write_text("0badcafe\n")
    agent = subprocess.Popen([sys.executable, "-c", STAND_IN, str(run)], stdout=subprocess.PIPE,
                             text=True)
    assert agent.stdout.readline() == "ready\n"
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    container = {"name": "web", "image": "busybox", "imageID": "", "state": "running",
                 "restartCount": 0, "pid": agent.pid, "pidStart": start_time(agent.pid),
                 "startedAt": now}
    record = {"name": "web", "namespace": "default", "uid": "0" * 8, "source": "bench",
              "manifest": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
                           "spec": {"containers": [{"name": "web", "image": "busybox"}]}},
              "creationTimestamp": now, "sandboxReady": True, "phase": "Running",
              "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
              "nodeName": "bench", "netns": None, "containers": [container],
              "initContainers": [], "podIP": "10.0.0.2", "version": 1}
    (run / "pods" / "web" / "pod.json").write_text(json.dumps(record))
    return agent


def timed(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd="/", capture_output=True)
    ms = (time.perf_counter() - t) * 1000
    if proc.returncode != 0 or proc.stderr.startswith(b"warning"):
        raise SystemExit(f"{' '.join(cmd)}: exit {proc.returncode}: {proc.stderr.decode()}")
    return ms


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--minipod", default=str(MINIPOD))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="minipod-clistart-"))
    empty, one = work / "empty", work / "one"
    empty.mkdir()
    agent = one_pod_root(one)
    env = dict(os.environ, MINIPOD_ROOT=str(empty))
    env_one = dict(os.environ, MINIPOD_ROOT=str(one))
    out = subprocess.run([args.minipod, "get", "pods"], env=env_one, capture_output=True,
                         text=True).stdout
    assert "Running" in out, f"the one-pod root does not show its pod running: {out!r}"
    cases = {"python3 -c pass": (["/usr/bin/python3", "-c", "pass"], env),
             "minipod --help": ([args.minipod, "--help"], env),
             "minipod get pods (empty)": ([args.minipod, "get", "pods"], env),
             "minipod get pods (1 pod)": ([args.minipod, "get", "pods"], env_one)}
    times: dict[str, list[float]] = {name: [] for name in cases}
    try:
        names = list(cases)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                times[name].append(timed(*cases[name]))
    finally:
        agent.kill()
        agent.wait()
        shutil.rmtree(work)
    base = min(times["python3 -c pass"])
    print(f"{'':28s} {'min ms':>7s} {'median':>7s} {'min/python':>10s}   ({args.rounds} rounds)")
    for name, values in times.items():
        print(f"{name:28s} {min(values):7.1f} {statistics.median(values):7.1f} "
              f"{min(values) / base:9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
