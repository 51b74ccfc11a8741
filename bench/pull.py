#!/usr/bin/env python3
"""Pull and unpack speed, beside skopeo and GNU tar, on a local registry.

    sudo .venv/bin/python bench/pull.py [--runs N] [--dir /dev/shm]

Builds a multi-layer image (busybox-static, Python's stdlib from
/usr/lib/python3.11, the headers in /usr/include; gzip'd), pushes it into
Debian's Distribution registry on 127.0.0.1 (started here, plain HTTP), then
prints, median of N runs each, the runs of all cases interleaved (round
after round, each case once, the order rotated), with the CPU seconds each
took (its processes and threads together: above the wall time, it used
more than one core):
  - pull: minipod's pull (download, verify, unpack every layer) into an
    empty store, beside `skopeo copy docker://… oci:DIR` (download and
    verify, no unpack) and skopeo copy plus `tar -xzf` of each layer;
  - unpack: minipod's unpack (rootfs/unpack.py) of each layer blob beside
    `tar -xzf` of the same blob, in MB/s of uncompressed tar.
Runs in a private network namespace (unshare --net) and removes all it made.
Needs root (layers keep owners and device nodes), docker-registry, skopeo.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCES = [Path("/usr/lib/python3.11"), Path("/usr/include")]


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and its waited-for children."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def interleaved(cases: dict, runs: int) -> dict[str, tuple[float, float]]:
    """{name: (median wall s, median CPU s)} of every case (fn, dirs to clean),
    run once per round in an order rotated each round, so a busy moment of
    the machine lands on all of them alike; the dirs are removed (untimed)
    before each run."""
    names = list(cases)
    walls: dict[str, list[float]] = {n: [] for n in names}
    cpus: dict[str, list[float]] = {n: [] for n in names}
    for r in range(runs):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            fn, clean = cases[name]
            for d in clean:
                shutil.rmtree(d, ignore_errors=True)
            subprocess.run(["sync"], check=True)
            c, t = cpu_seconds(), time.perf_counter()
            fn()
            walls[name].append(time.perf_counter() - t)
            cpus[name].append(cpu_seconds() - c)
    return {n: (statistics.median(walls[n]), statistics.median(cpus[n])) for n in names}


def tar_tree(src: Path, arcname: str, dest: Path) -> None:
    """A layer tar of `src` placed at `arcname` (owner 0:0)."""
    def norm(ti: tarfile.TarInfo) -> tarfile.TarInfo:
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        ti.mtime = int(ti.mtime)
        return ti

    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(src, arcname=arcname, filter=norm)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def build_layers(work: Path) -> list[tuple[Path, Path]]:
    """[(uncompressed tar, gzip blob)] bottom first."""
    sys.path.insert(0, str(REPO / "tests"))
    import imagebuild
    rootfs = imagebuild.build_busybox_rootfs(work / "rootfs")
    tars = [work / "layer0.tar"]
    tars[0].write_bytes(imagebuild.tar_directory(rootfs))
    for i, src in enumerate(SOURCES, 1):
        if src.is_dir():
            tars.append(work / f"layer{i}.tar")
            tar_tree(src, str(src).lstrip("/"), tars[-1])
    out = []
    for t in tars:
        gz = t.with_suffix(".tar.gz")
        with open(gz, "wb") as f:
            subprocess.run(["gzip", "-6", "-n", "-c", str(t)], stdout=f, check=True)
        out.append((t, gz))
    return out


def push(server, layers: list[tuple[Path, Path]]) -> str:
    """Push the image as bench/img:1; return its reference."""
    p = server.pusher()
    descs = [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
              **p.blob("bench/img", gz.read_bytes())} for _, gz in layers]
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256_file(t) for t, _ in layers]},
    }).encode()
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           **p.blob("bench/img", config)},
                "layers": descs}
    p.manifest("bench/img", "1", manifest)
    return f"{server.host}/bench/img:1"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", default="/var/tmp",
                    help="where to work (/dev/shm: tmpfs, no disk noise)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/pull.py needs root: sudo .venv/bin/python bench/pull.py", file=sys.stderr)
        return 3
    if os.environ.get("MINIPOD_BENCH_INNER") != "1":
        # re-exec inside a private network namespace
        return subprocess.call(["unshare", "--net", "--", "sh", "-c",
                                'ip link set lo up && exec "$0" "$@"', sys.executable,
                                *sys.argv], env=dict(os.environ, MINIPOD_BENCH_INNER="1"))
    sys.path.insert(0, str(REPO / "tests" / "integration"))
    import registry_server as rs

    from minipod.rootfs import pull
    from minipod.rootfs.store import ImageStore
    from minipod.rootfs.unpack import unpack_layer

    skopeo = shutil.which("skopeo")
    work = Path(tempfile.mkdtemp(prefix="minipod-bench-pull-", dir=args.dir))
    server = None
    try:
        print("building and pushing the image…", file=sys.stderr)
        layers = build_layers(work)
        raw = sum(t.stat().st_size for t, _ in layers)
        packed = sum(gz.stat().st_size for _, gz in layers)
        server = rs.RegistryServer(work / "registry")
        ref = push(server, layers)
        print(f"image: {len(layers)} layers, {raw / 1e6:.1f} MB of tar, "
              f"{packed / 1e6:.1f} MB gzip'd; median of {args.runs} runs; work dir on "
              f"{subprocess.run(['stat', '-f', '-c', '%T', str(work)], capture_output=True, text=True).stdout.strip()}")

        def minipod_pull():
            pull.pull(ImageStore(work / "store"), ref)

        def skopeo_copy():
            dest = work / "oci"
            subprocess.run([skopeo, "copy", "-q", "--src-tls-verify=false",
                            f"docker://{ref}", f"oci:{dest}:1"], check=True,
                           capture_output=True)

        def skopeo_and_tar():
            skopeo_copy()
            manifest = json.loads((work / "oci/index.json").read_text())["manifests"][0]
            blobs = work / "oci/blobs/sha256"
            m = json.loads((blobs / manifest["digest"].split(":")[1]).read_text())
            for i, layer in enumerate(m["layers"]):
                d = work / "tar-out" / str(i)
                d.mkdir(parents=True)
                subprocess.run(["tar", "-xzf", str(blobs / layer["digest"].split(":")[1]),
                                "-C", str(d)], check=True)

        def ours():
            for i, (_, gz) in enumerate(layers):
                d = work / "unpack" / str(i)
                d.mkdir(parents=True)
                with open(gz, "rb") as f:
                    unpack_layer(f, d)

        def gnu_tar():
            for i, (_, gz) in enumerate(layers):
                d = work / "tar" / str(i)
                d.mkdir(parents=True)
                subprocess.run(["tar", "-xzf", str(gz), "-C", str(d)], check=True)

        cases = {"pull": (minipod_pull, [work / "store"]),
                 "unpack": (ours, [work / "unpack"]),
                 "tar": (gnu_tar, [work / "tar"])}
        if skopeo:
            cases["skopeo"] = (skopeo_copy, [work / "oci"])
            cases["skopeo+tar"] = (skopeo_and_tar, [work / "oci", work / "tar-out"])
        t = interleaved(cases, args.runs)
        print(f"pull    minipod pull (download+verify+unpack)   {t['pull'][0]:7.2f} s   "
              f"(cpu {t['pull'][1]:.2f} s)")
        if skopeo:
            print(f"pull    skopeo copy docker:// oci: (no unpack)  {t['skopeo'][0]:7.2f} s   "
                  f"minipod/skopeo = {t['pull'][0] / t['skopeo'][0]:.2f}   "
                  f"(cpu {t['skopeo'][1]:.2f} s)")
            print(f"pull    skopeo copy + tar -xzf of each layer    {t['skopeo+tar'][0]:7.2f} s   "
                  f"minipod/(skopeo+tar) = {t['pull'][0] / t['skopeo+tar'][0]:.2f}   "
                  f"(cpu {t['skopeo+tar'][1]:.2f} s)")
        else:
            print("pull    skopeo: not installed (Debian package skopeo); skipped")
        t_ours, t_tar = t["unpack"][0], t["tar"][0]
        print(f"unpack  minipod unpack_layer   {t_ours:6.2f} s  {raw / 1e6 / t_ours:7.1f} MB/s   "
              f"(cpu {t['unpack'][1]:.2f} s)")
        print(f"unpack  tar -xzf               {t_tar:6.2f} s  {raw / 1e6 / t_tar:7.1f} MB/s   "
              f"minipod/tar = {t_ours / t_tar:.2f}   (cpu {t['tar'][1]:.2f} s)")
        return 0
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
