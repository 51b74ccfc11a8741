"""minipod's peers, driven the way their users drive them, for bench/run.

- podman (Debian's 4.3, OCI runtime runc): `podman kube play pod.yaml` of
  the very manifest minipod runs, `podman kube down pod.yaml` and
  `podman pod rm -f -t 0 NAME`. Its busybox image is loaded from the same
  root file system minipod imports (tests/imagebuild.py), so both start
  the same bytes:

      tar -C rootfs -cf busybox.tar . &&
      podman import --change 'ENV=PATH=/usr/sbin:/usr/bin:/sbin:/bin' \\
          busybox.tar localhost/minipod-bench/busybox:1

  Podman runs here only with ../shared/peers/containers.conf
  (CONTAINERS_CONF): no CAP_SYS_RESOURCE for its default rlimits, and crun
  refuses the hybrid cgroup layout, so runc is its runtime.
- runc and crun: `runc run -b BUNDLE ID` of one container running
  /bin/true, the bundle made by `runc spec` with the busybox rootfs: the
  floor for one container started by a real OCI runtime.
- `unshare -m -u -i -n -p -f chroot ROOTFS /bin/true`: new namespaces and
  a changed root with nothing else, the syscall floor.

Cleanup removes only what this run made: its pods by name, its image, and
the podman-pause image and podman-default-kube-network network if podman
made them during the run (they did not exist before).
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from common import IMAGE, REPO, comm, one_line, output_tail, say, tree

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CONTAINERS_CONF = REPO.parent / "shared" / "peers" / "containers.conf"


class Podman:
    """podman with this machine's containers.conf; remembers what it made."""

    KUBE_NETWORK = "podman-default-kube-network"
    PAUSE_IMAGE = "localhost/podman-pause"

    def __init__(self):
        self.env = dict(os.environ)
        if "CONTAINERS_CONF" not in self.env and CONTAINERS_CONF.exists():
            self.env["CONTAINERS_CONF"] = str(CONTAINERS_CONF)
        self.pods: set[str] = set()
        self.pod_ids: set[str] = set()
        self.images_before = self._images()
        self.networks_before = self._networks()

    def __call__(self, *args: str, check: bool = True,
                 timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            err = [line for line in proc.stderr.splitlines() if "syslog" not in line]
            raise RuntimeError(f"podman {' '.join(args)} exited {proc.returncode}: "
                               f"{' '.join(err).strip()[-400:]}")
        return proc

    def _images(self) -> set[str]:
        out = self("images", "--format", "{{.Repository}}:{{.Tag}}", check=False).stdout
        return set(out.split())

    def _networks(self) -> set[str]:
        return set(self("network", "ls", "--format", "{{.Name}}", check=False).stdout.split())

    def load_image(self, rootfs: Path) -> None:
        """The busybox rootfs as podman's image IMAGE (a one-layer import)."""
        with tempfile.TemporaryDirectory(prefix="minipod-bench-podman-") as d:
            tar = Path(d) / "busybox.tar"
            subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
            self("import", "-q", "--change", f"ENV={PATH_ENV}", "--change", 'CMD=["sh"]',
                 str(tar), IMAGE)

    def play(self, manifest: Path, name: str) -> None:
        self.pods.add(name)
        out = self("kube", "play", str(manifest)).stdout.split()
        if "Pod:" in out:   # "Pod:\nID\nContainer:\nID…": keep the ID for cleanup
            self.pod_ids.add(out[out.index("Pod:") + 1])

    def down(self, manifest: Path, name: str) -> None:
        self("kube", "down", str(manifest))
        self.pods.discard(name)

    def rm(self, name: str) -> None:
        self("pod", "rm", "-f", "-t", "0", name)
        self.pods.discard(name)

    def kept_processes(self, pods: list[str]) -> list[int]:
        """What podman keeps running for these pods, the workloads aside:
        a conmon per container (the infra one too), the infra container's
        catatonit, and aardvark-dns (one for the kube network's DNS)."""
        ids = self("ps", "-a", "-q", "--no-trunc", *[f"--filter=pod={p}" for p in pods]
                   ).stdout.split()
        conmons = []
        if ids:
            for c in json.loads(self("inspect", *ids).stdout):
                if c["State"].get("ConmonPid"):
                    conmons.append(c["State"]["ConmonPid"])
        mine = os.stat("/proc/self/ns/net").st_ino
        dns = [int(p) for p in os.listdir("/proc") if p.isdigit() and comm(int(p)) ==
               "aardvark-dns" and _netns_inode(int(p)) == mine]
        return [p for p in tree(conmons + dns) if comm(p) != "sleep"]

    def cleanup(self) -> None:
        """Remove this run's pods, image, and what podman made for them."""
        for name in sorted(self.pods):
            self("pod", "rm", "-f", "-t", "0", name, check=False)
        self.pods.clear()
        now = self._images()
        made_pause = {i for i in now - self.images_before if i.startswith(self.PAUSE_IMAGE)}
        for image in sorted(made_pause | ({IMAGE} & now)):
            self("rmi", "-f", image, check=False)
        if self.KUBE_NETWORK in self._networks() - self.networks_before:
            self("network", "rm", "-f", self.KUBE_NETWORK, check=False)
        # podman 4.3 with cgroupfs leaves an empty cgroup per removed pod
        # (libpod_parent/POD_ID in every v1 hierarchy): remove ours.
        for pod_id in self.pod_ids:
            for d in sorted(glob.glob(f"/sys/fs/cgroup/*/libpod_parent/{pod_id}") +
                            glob.glob(f"/sys/fs/cgroup/libpod_parent/{pod_id}"), reverse=True):
                for sub, _, _ in sorted(os.walk(d), reverse=True):
                    with contextlib.suppress(OSError):
                        os.rmdir(sub)


def _netns_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def podman_works(podman: Podman, manifest: Path, name: str) -> str:
    """"" if `kube play` works here, else why not (one line)."""
    try:
        podman.play(manifest, name)
        podman.rm(name)
        return ""
    except Exception as e:
        podman("pod", "rm", "-f", "-t", "0", name, check=False)
        podman.pods.discard(name)
        return one_line(e)


class OCIBundle:
    """An OCI runtime bundle running /bin/true in the busybox rootfs:
    `runc spec` writes config.json; we point root at the rootfs (read-only)
    and turn the terminal off."""

    def __init__(self, rootfs: Path, work: Path):
        self.dir = work / "bundle"
        self.dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(["runc", "spec", "--bundle", str(self.dir)], check=True,
                       capture_output=True)
        cfg_path = self.dir / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["root"] = {"path": str(rootfs), "readonly": True}
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = ["/bin/true"]
        cfg_path.write_text(json.dumps(cfg, indent=1))
        self.n = 0

    def run(self, runtime: str) -> float:
        """ms of `RUNTIME run -b BUNDLE ID` (create, start, wait, delete)."""
        self.n += 1
        cid = f"minipod-bench-{os.getpid()}-{self.n}"
        t = time.perf_counter()
        proc = subprocess.run([runtime, "run", "-b", str(self.dir), cid], capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL)
        ms = (time.perf_counter() - t) * 1000
        if proc.returncode != 0:
            subprocess.run([runtime, "delete", "-f", cid], capture_output=True)
            raise RuntimeError(f"{runtime} run exited {proc.returncode}: {output_tail(proc)}")
        return ms


def unshare_chroot(rootfs: Path) -> float:
    """ms of new mount, UTS, IPC, net and PID namespaces plus chroot, then /bin/true."""
    cmd = ["unshare", "-m", "-u", "-i", "-n", "-p", "-f", "chroot", str(rootfs), "/bin/true"]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return (time.perf_counter() - t) * 1000


def runtime_works(bundle: OCIBundle, runtime: str) -> str:
    """"" if `RUNTIME run` works here, else why not (crun refuses hybrid cgroups)."""
    if shutil.which(runtime) is None:
        return "not installed"
    try:
        bundle.run(runtime)
        return ""
    except Exception as e:
        say(f"{runtime} does not run here: {one_line(e)}")
        return one_line(e)
