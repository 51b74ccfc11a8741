#!/usr/bin/python3
"""`logs -f` delay: from a line written by a container to the line printed.

Each runtime runs the same pod: one busybox container whose command is
`cat /bench/fifo`, the fifo being a named pipe in a hostPath volume. The
benchmark holds the fifo's write end, so it decides when the container
writes: it writes "mpbench-N", cat copies it to its stdout at once, the
runtime stores it in its log, and `minipod logs -f` (or `podman logs -f`)
prints it; the figure is the time from the write to the printed line, as
the follower's stdout pipe delivers it. Lines go out at random intervals
(20-120 ms) so a follower that polls is caught at every phase of its poll,
and the two runtimes' lines alternate (interleaved). By hand:

    mkfifo vol/fifo; minipod run logpod.yaml; minipod logs -f mpbench-logs &
    exec 3>vol/fifo; date +%s.%N; echo hello >&3     # …and watch the line appear

Runs standalone too: sudo bench/logs.py [--lines N] (private netns, own root).
"""
from __future__ import annotations

import errno
import os
import queue
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import IMAGE, Minipod, one_line, pod_manifest, say, stop_process  # noqa: E402

VOLUME = """  volumes:
  - name: bench
    hostPath:
      path: {path}
      type: Directory
"""
MOUNT = """    volumeMounts:
    - name: bench
      mountPath: /bench
"""


def logs_manifest(name: str, image: str, vol: Path) -> str:
    return pod_manifest(name, image, 1, ("cat", "/bench/fifo"), container_extra=MOUNT,
                        pod_extra=VOLUME.format(path=vol))


class Follower:
    """A `logs -f` process; a thread stamps each line when it arrives."""

    def __init__(self, cmd: list[str], env: dict):
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put((time.perf_counter(), line.decode(errors="replace").strip()))

    def wait_for(self, token: str, timeout: float = 5) -> float | None:
        """perf_counter time at which `token` arrived, or None after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                t, line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if line.endswith(token):
                return t

    def stop(self) -> None:
        stop_process(self.proc)


class Writer:
    """The write end of a pod's fifo, opened once the container's cat has
    opened the read end (O_NONBLOCK open answers ENXIO until then)."""

    def __init__(self, fifo: Path, timeout: float = 20):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as e:
                if e.errno != errno.ENXIO or time.monotonic() > deadline:
                    raise OSError(e.errno, f"cannot open {fifo} for writing "
                                           f"(is the container's cat running?)") from None
                time.sleep(0.02)
        os.set_blocking(self.fd, True)

    def line(self, text: str) -> float:
        t = time.perf_counter()
        os.write(self.fd, (text + "\n").encode())
        return t

    def close(self) -> None:
        os.close(self.fd)


def make_volume(work: Path, name: str) -> Path:
    vol = work / name
    vol.mkdir(parents=True, exist_ok=True)
    fifo = vol / "fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    return vol


def measure(sides: dict[str, tuple[Writer, Follower]], lines: int) -> dict[str, list[float]]:
    """ms from write to printed line, `lines` per side, sides alternating."""
    out: dict[str, list[float]] = {name: [] for name in sides}
    for name, (writer, follower) in sides.items():   # both followers up and reading
        writer.line(f"mpbench-ready-{name}")
        if follower.wait_for(f"mpbench-ready-{name}", timeout=20) is None:
            raise RuntimeError(f"{name}: `logs -f` printed nothing within 20 s")
    for i in range(lines):
        for name, (writer, follower) in sides.items():
            time.sleep(random.uniform(0.02, 0.12))
            token = f"mpbench-{name}-{i}"
            t0 = writer.line(token)
            t1 = follower.wait_for(token)
            if t1 is None:
                raise RuntimeError(f"{name}: line {token} not printed by `logs -f` within 5 s")
            out[name].append((t1 - t0) * 1000)
    return out


def run(mp: Minipod, podman, image: str, work: Path, lines: int) -> tuple[dict, dict]:
    """Measure minipod (and podman, if given). Returns ({side: [ms…]}, {side: error})."""
    sides: dict[str, tuple[Writer, Follower]] = {}
    errors: dict[str, str] = {}
    cleanup = []
    name = f"mpbench-logs-{os.getpid()}"
    try:
        try:
            vol = make_volume(work, "logs-minipod")
            mp("run", str(mp.write(name, logs_manifest(name, image, vol))))
            cleanup.append(lambda: mp("delete", "pod", name, "--grace-period", "0",
                                      check=False))
            writer = Writer(vol / "fifo")
            cleanup.append(writer.close)
            follower = Follower(mp.cmd + ["logs", "-f", name], mp.env)
            cleanup.append(follower.stop)
            sides["minipod"] = (writer, follower)
        except Exception as e:
            errors["minipod"] = one_line(e)
        if podman is not None:
            try:
                vol = make_volume(work, "logs-podman")
                path = work / "logs-podman.yaml"
                path.write_text(logs_manifest(name, IMAGE, vol))
                podman.play(path, name)
                cleanup.append(lambda: podman.rm(name))
                writer = Writer(vol / "fifo")
                cleanup.append(writer.close)
                follower = Follower(["podman", "logs", "-f", f"{name}-c0"], podman.env)
                cleanup.append(follower.stop)
                sides["podman"] = (writer, follower)
            except Exception as e:
                errors["podman"] = one_line(e)
        if sides:
            say(f"logs -f: {lines} lines each for {', '.join(sides)}")
            return measure(sides, lines), errors
        return {}, errors
    finally:
        for fn in reversed(cleanup):
            try:
                fn()
            except Exception as e:
                say(f"logs cleanup: {one_line(e)}")


def main() -> int:
    import argparse
    import statistics

    from common import reexec_in_private_netns, in_private_netns
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=20)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/logs.py needs root: sudo bench/logs.py", file=sys.stderr)
        return 3
    if not in_private_netns():
        return reexec_in_private_netns([sys.executable, *sys.argv])
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from imagebuild import build_busybox_rootfs
    mp = Minipod()
    try:
        rootfs = build_busybox_rootfs(mp.root / "rootfs")
        mp("image", "import", str(rootfs), IMAGE)
        values, errors = run(mp, None, IMAGE, mp.root,
                             args.lines)
        for side, v in values.items():
            print(f"{side} logs -f delay: median {statistics.median(v):.1f} ms, "
                  f"min {min(v):.1f}, max {max(v):.1f} (n={len(v)})")
        for side, e in errors.items():
            print(f"{side}: {e}")
    finally:
        mp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
