#!/usr/bin/env python3
"""A real image: nginx from `run` to its first HTTP 200, minipod beside podman.

    sudo .venv/bin/python bench/realimage.py [--rounds N]

The image is Debian 12 made by debootstrap with nginx-light (and redis,
PostgreSQL, procps: the tree tests/debian_image.py builds once and caches
under /var/cache/minipod-tests). The same tree goes to both runtimes:

    minipod image import TREE localhost/minipod-bench/nginx:1
    tar -C TREE -cf nginx.tar . && podman import nginx.tar localhost/minipod-bench/nginx:1

and both run the same manifest text: one container, `nginx -g "daemon
off;"` (the official image's CMD), port 80 published as hostPort 18080.
A round, for each runtime in turn (the order rotated each round): start
the clock, start `minipod run pod.yaml` / `podman kube play pod.yaml`,
and from that moment send `GET /` to 127.0.0.1:18080 every 2 ms until one
is answered 200; stop the clock. What is timed is what a user waits for:
the runtime's whole start (the CLI, the sandbox, the network, the
hostPort rule) and nginx's own start in that root file system, up to a
page served through the published port. The pod is then deleted, untimed.
One untimed round first: minipod's agent starts, podman makes its pause
image and kube network.

Runs in a private network namespace (unshare --net) with a MINIPOD_ROOT
and bridge of its own; removes its pods, its minipod root and its podman
image (and podman's pause image and kube network if it made them). Prints
the figures as text, then one JSON line for bench/run:
{"figures": [{"key", "title", "unit", "values", "peers": [{"name",
"values"}], "goal": [op, ratio], "note"}]}.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (REPO, Minipod, in_private_netns, one_line, pod_manifest,  # noqa: E402
                    reexec_in_private_netns, say)

IMAGE = "localhost/minipod-bench/nginx:1"
POD = "mpbench-nginx"
HOST_PORT = 18080
NGINX = ("nginx", "-g", "daemon off;")
PORTS = f"""    ports:
    - containerPort: 80
      hostPort: {HOST_PORT}
"""
POLL = 0.002            # seconds between two GETs
TIMEOUT = 60.0          # seconds a start may take before the round fails
GOAL = ("<=", 0.3)      # issue 15: a third of podman's time or less


def first_200(port: int, stop: threading.Event, deadline: float) -> float | None:
    """perf_counter() of the first `GET /` on 127.0.0.1:port answered 200, or None."""
    request = b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n"
    while not stop.is_set() and time.perf_counter() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(request)
                head = s.recv(64)
                if head.startswith(b"HTTP/1.") and head[9:12] == b"200":
                    return time.perf_counter()
        except OSError:
            pass                # not published yet, or nginx not up yet
        time.sleep(POLL)
    return None


def time_to_200(start: list[str], env: dict) -> tuple[float, float]:
    """(ms from the start of `start` to the first 200, ms the command itself took)."""
    stop = threading.Event()
    got: list[float | None] = []
    t0 = time.perf_counter()
    poller = threading.Thread(target=lambda: got.append(
        first_200(HOST_PORT, stop, t0 + TIMEOUT)), daemon=True)
    poller.start()
    proc = subprocess.run(start, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    t_cmd = time.perf_counter()
    if proc.returncode != 0:
        stop.set()
        poller.join()
        raise RuntimeError(f"{' '.join(start)} exited {proc.returncode}: "
                           f"{' '.join((proc.stderr or proc.stdout).split())[-300:]}")
    poller.join()
    if not got or got[0] is None:
        raise RuntimeError(f"no HTTP 200 on 127.0.0.1:{HOST_PORT} within {TIMEOUT:.0f} s")
    return (got[0] - t0) * 1000, (t_cmd - t0) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds (each: both runtimes)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/realimage.py needs root", file=sys.stderr)
        return 3
    if not in_private_netns():
        return reexec_in_private_netns([sys.executable, str(Path(__file__).resolve()),
                                        *sys.argv[1:]])
    sys.path.insert(0, str(REPO / "tests"))
    import debian_image

    import peers
    say("the debootstrap image with nginx (tests/debian_image.py; built once, then cached)")
    tree = debian_image.servers_rootfs().rootfs
    mp = Minipod()
    podman, podman_missing = None, ""
    work = Path(tempfile.mkdtemp(prefix="minipod-bench-realimage-"))
    text = pod_manifest(POD, IMAGE, 1, NGINX, container_extra=PORTS).replace("name: c0",
                                                                             "name: nginx")
    manifest = work / "nginx.yaml"
    manifest.write_text(text)
    results: dict[str, list[float]] = {"minipod": [], "podman": []}
    commands: dict[str, list[float]] = {"minipod": [], "podman": []}
    errors: dict[str, str] = {}
    try:
        say(f"importing {tree} into minipod")
        mp("image", "import", str(tree), IMAGE, timeout=600)
        try:
            podman = peers.Podman()
            say("importing the same tree into podman (podman import of a tar of it)")
            tar = work / "nginx.tar"
            subprocess.run(["tar", "-C", str(tree), "-cf", str(tar), "."], check=True)
            podman("import", "-q", "--change", f"ENV={peers.PATH_ENV}", str(tar), IMAGE,
                   timeout=600)
            tar.unlink()
        except Exception as e:
            podman_missing = f"podman: {one_line(e)}"
            podman = None

        def minipod_round() -> tuple[float, float]:
            try:
                return time_to_200([*mp.cmd, "run", str(manifest)], mp.env)
            finally:
                mp("delete", "pod", POD, "--grace-period", "0", "--ignore-not-found",
                   check=False)

        def podman_round() -> tuple[float, float]:
            podman.pods.add(POD)
            try:
                return time_to_200(["podman", "kube", "play", str(manifest)], podman.env)
            finally:
                podman("pod", "rm", "-f", "-t", "0", POD, check=False)
                podman.pods.discard(POD)

        cases = {"minipod": minipod_round}
        if podman is not None:
            cases["podman"] = podman_round
        names = list(cases)
        for r in range(args.rounds + 1):       # round 0: warm-up, not counted
            say(f"realimage: round {r}/{args.rounds}{' (warm-up)' if r == 0 else ''}")
            k = r % len(names)
            for name in names[k:] + names[:k]:
                if name in errors:
                    continue
                try:
                    ms, cmd_ms = cases[name]()
                except Exception as e:
                    errors[name] = one_line(e)
                    say(f"  {name}: failed: {errors[name]}")
                    continue
                say(f"  {name}: first 200 after {ms:.0f} ms (its command returned "
                    f"after {cmd_ms:.0f} ms)")
                if r:
                    results[name].append(ms)
                    commands[name].append(cmd_ms)
    finally:
        mp.cleanup()
        if podman is not None:
            podman("rmi", "-f", IMAGE, check=False)
            podman.cleanup()
        subprocess.run(["rm", "-rf", str(work)], check=False)

    def med(xs):
        return statistics.median(xs) if xs else None

    ours, theirs = med(results["minipod"]), med(results["podman"])
    print(f"nginx (debootstrap image), run -> first HTTP 200 on hostPort, median of "
          f"{args.rounds} rounds")
    for name in ("minipod", "podman"):
        if results[name]:
            print(f"  {name:8} {med(results[name]):7.0f} ms   (its command: "
                  f"{med(commands[name]):.0f} ms)")
        else:
            print(f"  {name:8} n/a ({errors.get(name) or podman_missing or 'no figure'})")
    if ours and theirs:
        print(f"  minipod/podman = {ours / theirs:.2f} (goal {GOAL[0]} {GOAL[1]})")
    figure = {"key": "realimage_nginx_first_200",
              "title": "nginx (debootstrap image): run → first HTTP 200", "unit": "ms",
              "values": results["minipod"],
              "missing": errors.get("minipod", ""),
              "peers": [{"name": "podman kube play (podman import of the same tree)",
                         "values": results["podman"],
                         "missing": errors.get("podman") or podman_missing}],
              "goal": list(GOAL),
              "note": "GET / on the hostPort every 2 ms from the start of the command"}
    command = {"key": "realimage_nginx_command",
               "title": "nginx (debootstrap image): run command returns", "unit": "ms",
               "values": commands["minipod"], "missing": errors.get("minipod", ""),
               "peers": [{"name": "podman kube play", "values": commands["podman"],
                          "missing": errors.get("podman") or podman_missing}],
               "note": "wall time of `minipod run` / `podman kube play` in the same rounds"}
    print(json.dumps({"figures": [figure, command]}))
    return 0 if results["minipod"] else 1


if __name__ == "__main__":
    sys.exit(main())
