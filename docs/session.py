#!/usr/bin/env python3
"""One page's commands, run on a private machine: `docs/session.py` is what
`docs/generate.py` starts for each page, inside new namespaces:

    unshare --mount --net --uts --fork --propagation private -- python3 docs/session.py

It reads the page's commands (JSON on stdin) and answers with their output,
normalised (JSON on stdout). The machine it makes:

    ip link set lo up; hostname vm
    umount the host's pinned namespaces   # copies in our mount table
    mount -t tmpfs tmpfs /run/netns        # only this page's pods in `ip netns`
    mount --bind ROOT/tmp /tmp
    export MINIPOD_ROOT=ROOT               # /var/tmp/minipod-docs-XXXX: its own
                                           # state, images, logs, cgroup parent
    cp -a TEMPLATE/lib/images ROOT/lib/    # busybox:1.35, imported once

A MINIPOD_ROOT of its own keeps the page's agent, and its garbage collector,
to the page's own pods. Pages show minipod's default paths and names:
`/run/minipod` for ROOT/run, `/var/lib/minipod` for ROOT/lib,
`/var/log/minipod` for ROOT/log, netns `minipod-web` for `minipod-TAG-web`,
cgroup parent `minipod` for `minipod-TAG`: commands are written with the
defaults and run with the session's (Session.real), output is shown with the
defaults (the Registry).

All commands run in one bash (Shell), in order. The session is the
subreaper of all it starts and reaps orphans as init would (an agent killed
with `kill -9` leaves its containers to it); at the end it deletes the
page's pods, stops the agent, and kills whatever of its descendants is
left. MP_DOCS_TRACE=1 prints a timed trace on stderr.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))   # even with PYTHONSAFEPATH
from normalise import NS_TYPES, Registry, normalise, tidy  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
HOSTNAME = "vm"
COMMAND_TIMEOUT = 60.0
# Where a default installation keeps what MINIPOD_ROOT=ROOT puts in ROOT/X
DEFAULT_PATHS = {"run": "/run/minipod", "lib": "/var/lib/minipod", "log": "/var/log/minipod",
                 "tmp": "/tmp"}

SHELL_HELPERS = r"""
# helpers for hidden lines (`@ wait_for …`): retry silently for 20 s
wait_for() {
    local i
    for i in $(seq 200); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "timed out waiting for: $*" >&2; return 1
}
logged() {  # POD [-c C] … TEXT: the logs hold TEXT
    minipod logs "${@:1:$#-1}" 2>/dev/null | grep -qF -- "${@: -1}"
}
mark() { MP_MARK=$(stat -c %s "$MP_OUT"); }   # then: seen TEXT [N]
seen() {  # TEXT [N]: the output since `mark` holds TEXT (N times)
    [ "$(tail -c +$((MP_MARK + 1)) "$MP_OUT" | grep -cF -- "$1")" -ge "${2:-1}" ]
}
listening() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }   # HOST PORT
unshared() {  # PID KIND: PID is in a KIND namespace other than ours
    [ "$(readlink "/proc/$1/ns/$2")" != "$(readlink "/proc/$$/ns/$2")" ]
}
"""


class Shell:
    """One bash for the whole page; each command's output is found in one
    shared file between markers bash prints before it (background jobs
    write to the same file, in the order things happen)."""

    def __init__(self, env: dict, cwd: str, out_path: str, spawn=subprocess.Popen):
        self.out_path = out_path
        out = open(out_path, "ab", buffering=0)
        self.ctl_r, ctl_w = os.pipe()
        env = dict(env, MP_CTL=str(ctl_w), MP_OUT=out_path)
        self.proc = spawn(["bash", "--noprofile", "--norc"], stdin=subprocess.PIPE,
                          stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                          pass_fds=[ctl_w], start_new_session=True)
        os.close(ctl_w)
        out.close()
        self._buf = b""
        self._send(SHELL_HELPERS)

    def _send(self, script: str) -> None:
        self.proc.stdin.write(script.encode())
        self.proc.stdin.flush()

    def run(self, index: int, command: str, timeout: float = COMMAND_TIMEOUT) -> int:
        """Run one command; return its exit status."""
        self._send(f"printf '\\036%d\\036' {index}\n{{ {command}\n}} </dev/null\n"
                   f"printf '%s\\n' \"$?\" >&$MP_CTL\n")
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.ctl_r], [], [], left)[0]:
                raise TimeoutError(f"no answer after {timeout:.0f}s")
            chunk = os.read(self.ctl_r, 64)
            if not chunk:
                raise RuntimeError("bash exited")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return int(line)

    def outputs(self) -> dict[int, str]:
        data = Path(self.out_path).read_bytes().decode(errors="replace")
        parts = re.split("\x1e(\\d+)\x1e", data)
        return {int(parts[k]): parts[k + 1] for k in range(1, len(parts) - 1, 2)}

    def kill(self) -> None:
        """bash and its background jobs (one process group: no job control)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


def _ns_inode(pid, ns: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/{ns}").st_ino
    except OSError:
        return None


def command_env() -> dict:
    """The environment the page's commands run in."""
    return {
        "PATH": f"{REPO}/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root", "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "TZ": "UTC",
        "TERM": "dumb", "COLUMNS": "100", "PYTHONSAFEPATH": "1",
        "MINIPOD_AGENT_IDLE": "600", "MINIPOD_BACKOFF_BASE": "1",
    }


def _children() -> set[int]:
    """This process's children (any thread's), from /proc."""
    found = set()
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                found.update(int(p) for p in f.read().split())
        except OSError:
            pass
    return found


def _fs_path(path: str) -> str:
    """`path` as its file system knows it (the root field of a bind mount
    of it in /proc/PID/mountinfo): relative to the file system's root."""
    best, root = "", "/"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = fields[4]
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, root = point, fields[3]
    rest = path[len(best.rstrip("/")):]
    return (root.rstrip("/") + rest) or "/"


def _descendants() -> set[int]:
    """Every process below this one. We are the subreaper of all we start,
    so this is exactly what the page left running, and nothing of anyone
    else's (a namespace inode can be reused once freed; a parent link
    cannot lie)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(name))
    found, todo = set(), [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode(errors="replace").split("\0")
    except OSError:
        return []


class Session:
    """Runs a page's commands inside the namespaces `unshare` made."""

    def __init__(self, protected: set[str], work: str, images: str):
        self.work, self.images = work, images     # work is this session's MINIPOD_ROOT
        # minipod's names for a MINIPOD_ROOT: its identity (runtime/paths.py),
        # made here (setup writes it) so the names are known before the agent runs
        self.identity = secrets.token_hex(4)
        self.netns_prefix = f"minipod-{self.identity}-"
        self.cgroup_parent = f"minipod-{self.identity}"
        self.registry = Registry(protected)
        self.errors: list[str] = []
        self.uids: set[str] = set()
        self.env = dict(command_env(), MINIPOD_ROOT=work)
        self.lock = threading.Lock()    # spawn() against the reaper
        self.managed: set[int] = set()  # our children that their owners wait for

    # -- the private machine
    def become_init(self) -> None:
        """Be what init is to the page's processes: the agent and the
        containers it leaves when it is killed come to us
        (PR_SET_CHILD_SUBREAPER), and we reap them at once, as systemd
        would. Our own children (bash, setup and teardown commands) are
        waited for by their owners, never here."""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(36, 1, 0, 0, 0) != 0:   # PR_SET_CHILD_SUBREAPER
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
        threading.Thread(target=self._reap_orphans, daemon=True).start()

    def _reap_orphans(self) -> None:
        while True:
            with self.lock:
                for pid in _children() - self.managed:
                    try:
                        os.waitpid(pid, os.WNOHANG)
                    except ChildProcessError:
                        pass
            time.sleep(0.02)

    def spawn(self, args, **kw) -> subprocess.Popen:
        """Popen whose pid the reaper leaves alone."""
        with self.lock:
            proc = subprocess.Popen(args, **kw)
            self.managed.add(proc.pid)
        return proc

    def call(self, args, timeout: float = 60) -> subprocess.CompletedProcess:
        proc = self.spawn(args, env=self.env, cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        return subprocess.CompletedProcess(args, proc.returncode, out, "")

    def setup(self) -> None:
        """The private machine: loopback up, hostname vm, no pinned
        namespace but the page's, its own /tmp, the docs' image."""
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        import socket
        socket.sethostname(HOSTNAME)
        self._drop_host_pins()
        os.makedirs("/run/netns", exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run/netns"],
                       check=True)
        tmp = os.path.join(self.work, "tmp")
        os.makedirs(tmp, mode=0o1777)
        os.chmod(tmp, 0o1777)
        # A clone (and its .venv) may itself live under /tmp, as CI's may:
        # then /tmp must stay visible, and the page shares it.
        here = os.path.realpath(__file__)
        if not any(p.startswith("/tmp/") for p in (here, os.path.realpath(sys.executable))):
            subprocess.run(["mount", "--bind", tmp, "/tmp"], check=True)
        for sub, shown in DEFAULT_PATHS.items():   # ROOT/lib is shown /var/lib/minipod
            real = os.path.join(self.work, sub)
            self.registry.literal(real, shown)
            self.registry.literal(_fs_path(real), shown)   # as a mount's root field
        os.makedirs(os.path.join(self.work, "run"), exist_ok=True)
        with open(os.path.join(self.work, "run", "identity"), "x") as f:
            f.write(self.identity + "\n")
        self.registry.literal(self.netns_prefix, "minipod-", "name")
        self.registry.literal(self.cgroup_parent, "minipod", "name")
        self.become_init()
        shutil.copytree(self.images, os.path.join(self.work, "lib", "images"), symlinks=True)
        for ns in NS_TYPES:
            self.registry.add(_ns_inode("self", ns), "inode", f"host/{ns}")

    def real(self, command: str) -> str:
        """The command as it runs here: what the page shows as minipod's
        default paths and names, in this session's MINIPOD_ROOT."""
        command = re.sub(r"(?<![\w-])minipod-(?=[a-z0-9])", self.netns_prefix, command)
        command = re.sub(r"(?<=/)minipod(?=/pod(?!s))", self.cgroup_parent, command)
        for sub in ("run", "lib", "log"):
            command = re.sub(rf"(?<![\w/]){re.escape(DEFAULT_PATHS[sub])}(?![\w-])",
                             os.path.join(self.work, sub), command)
        return command

    def _drop_host_pins(self) -> None:
        """Our mount table began as a copy of the host's, with the host's
        pinned namespaces (other pods, `ip netns add`): unmount the copies,
        so that listings show only this page's. The host keeps its own."""
        for _ in range(10):
            with open("/proc/self/mountinfo") as f:
                pins = [line.split()[4] for line in f if " - nsfs " in line]
            if not pins:
                return
            for path in reversed(pins):
                subprocess.run(["umount", "-l", path.replace("\\040", " ")],
                               capture_output=True)

    # -- learning the values of this run
    def snapshot(self) -> None:
        reg = self.registry
        self._nsfs_mounts()
        for pod_json in sorted(Path(self.work, "run", "pods").glob("*/pod.json")):
            try:
                record = json.loads(pod_json.read_text())
            except (OSError, ValueError):
                continue
            name, uid = record.get("name", pod_json.parent.name), record.get("uid", "")
            if uid:
                self.uids.add(uid)
                reg.add(uid, "uid", name)
                reg.alias(uid[:8], uid)
            if record.get("hostIfname"):
                reg.add(record["hostIfname"], "veth", name)
            pause = record.get("pause") or {}
            if pause.get("pid"):
                reg.add(pause["pid"], "pid", f"{name}/pause")
            ours = _descendants()
            for cs in record.get("initContainers", []) + record.get("containers", []):
                pid = cs.get("pid")
                if not pid:
                    continue
                reg.add(pid, "pid", f"{name}/{cs['name']}")
                if pid in ours:   # a pid of the record may be reused by now
                    for ns in NS_TYPES:
                        reg.add(_ns_inode(pid, ns), "inode", f"{name}/{cs['name']}/{ns}")
        for pid in sorted(_descendants()):
            cmd = _cmdline(pid)
            if "agent" in cmd and any(a.endswith("minipod") for a in cmd):
                reg.add(pid, "pid", "agent")
        self._images()

    def _nsfs_mounts(self) -> None:
        """Pinned namespaces: nsfs mounts that are visible (not under a
        mount of ours that hides the host's)."""
        with open("/proc/self/mountinfo") as f:
            lines = sorted(f, key=lambda line: "/ns/" not in line)
            for line in lines:
                fields = line.split()
                fstype = fields[fields.index("-") + 1]
                m = re.fullmatch(r"(\w+):\[(\d+)\]", fields[3])
                if fstype != "nsfs" or not m:
                    continue
                path = fields[4].replace("\\040", " ")
                try:
                    if os.stat(path).st_ino != int(m.group(2)):
                        continue
                except OSError:
                    continue
                p = Path(path)
                owner = p.parent.parent.name if p.parent.name == "ns" else p.name
                owner = owner.removeprefix(self.netns_prefix)
                self.registry.add(m.group(2), "inode", f"{owner}/{m.group(1)}")

    def _images(self) -> None:
        """Digests of the image store, named after the image and their role."""
        store = Path(self.work, "lib", "images")
        try:
            refs = json.loads((store / "refs.json").read_text())
        except (OSError, ValueError):
            return
        for ref, digest in sorted(_ref_items(refs)):
            short = ref.rsplit("/", 1)[-1].split(":")[0].split("@")[0]
            hexd = digest.split(":", 1)[-1]
            try:
                manifest = json.loads((store / "blobs" / "sha256" / hexd).read_text())
            except (OSError, ValueError):
                continue
            self.registry.add(hexd, "manifest", short)
            config = manifest.get("config", {}).get("digest", "").split(":", 1)[-1]
            if config:
                self.registry.add(config, "image-id", short)
                self.registry.alias(config[:12], config)
            for k, layer in enumerate(manifest.get("layers", [])):
                self.registry.add(layer["digest"].split(":", 1)[-1], "layer",
                                  short if k == 0 else f"{short}/{k}")
        for layer_dir in sorted((store / "layers" / "sha256").glob("*")):
            self.registry.add(layer_dir.name, "layer", "unknown")

    # -- running a page
    def run_page(self, blocks: list[dict]) -> list[list[dict]]:
        # in the session's own directory: /tmp may be shared with other pages
        out_path = os.path.join(self.work, "tmp", ".generate-output")
        shell = Shell(self.env, str(REPO), out_path, self.spawn)
        plan, index = [], 0
        try:
            for b, block in enumerate(blocks):
                if block.get("skip"):
                    continue
                for c, (text, hidden) in enumerate(block["commands"]):
                    self.snapshot()
                    trace(f"run {text.splitlines()[0]}")
                    try:
                        rc = shell.run(index, self.real(text))
                    except (TimeoutError, RuntimeError) as e:
                        self.errors.append(f"block {b + 1}: `{text}`: {e}")
                        plan.append((b, c, index, None, hidden))
                        raise
                    plan.append((b, c, index, rc, hidden))
                    index += 1
            self.snapshot()
        except (TimeoutError, RuntimeError):
            pass
        finally:
            outputs = shell.outputs()
            shell.kill()
            self.teardown()
        # What prints while a hidden command runs (a background job's output,
        # say) belongs to the visible command before it in the block.
        raw: list[list[list]] = [[] for _ in blocks]
        for b, c, i, rc, hidden in plan:
            text = outputs.get(i, "")
            if hidden:
                if rc:
                    self.errors.append(f"block {b + 1}: hidden `{blocks[b]['commands'][c][0]}` "
                                       f"exited {rc}: {text.strip()}")
                elif raw[b]:
                    raw[b][-1][0] += text
                continue
            raw[b].append([text, rc])
        return [[{"output": tidy(normalise(text, self.registry)), "rc": rc}
                 for text, rc in block] for block in raw]

    def teardown(self) -> None:
        """Delete the page's pods and stop the agent; then make sure: kill
        what still runs below us, remove the pods' cgroups."""
        def minipod(*args):
            return self.call(["minipod", *args])
        trace("teardown")
        self.snapshot()
        try:
            for name in minipod("get", "pods", "-o", "name").stdout.split():
                minipod("delete", name, "--grace-period", "0")
            trace("agent stop")
            minipod("agent", "stop")
            trace("wait")
        except (OSError, subprocess.TimeoutExpired) as e:
            self.errors.append(f"teardown: {e}")
        deadline = time.monotonic() + 10
        while True:
            left = sorted(_descendants() - self.managed)
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        for pid in left:  # our descendants, so ours
            self.errors.append(f"teardown: process {pid} {' '.join(_cmdline(pid))!r} "
                               f"still running; killed")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for uid in self.uids:
            root, parent = Path("/sys/fs/cgroup"), self.cgroup_parent
            for d in [*root.glob(f"*/{parent}/pod{uid}"), *root.glob(f"{parent}/pod{uid}")]:
                self.errors.append(f"teardown: cgroup {d} left; removed")
                for sub in sorted(d.rglob("*"), reverse=True):
                    if sub.is_dir():
                        with contextlib.suppress(OSError):
                            sub.rmdir()
                with contextlib.suppress(OSError):
                    d.rmdir()
        for d in Path("/sys/fs/cgroup").glob(f"*/{self.cgroup_parent}"):
            with contextlib.suppress(OSError):
                d.rmdir()   # the agent removes it when it stops; if not, an empty dir


def _ref_items(refs) -> list[tuple[str, str]]:
    """refs.json as (reference, manifest digest) pairs, whatever its shape."""
    items = []
    if isinstance(refs, dict):
        for k, v in refs.items():
            if isinstance(v, str) and v.startswith("sha256:"):
                items.append((k, v))
            elif isinstance(v, dict):
                d = v.get("digest") or v.get("manifest") or v.get("Digest")
                if isinstance(d, str):
                    items.append((k, d))
                else:
                    items += _ref_items(v)
    return items


def trace(msg: str) -> None:
    if os.environ.get("MP_DOCS_TRACE"):
        print(f"{time.monotonic():.3f} {msg}", file=sys.stderr)


def main() -> int:
    """Read the page's blocks (JSON) on stdin, answer with the outputs
    (JSON) on stdout."""
    request = json.load(sys.stdin)
    session = Session(set(request["protected"]), request["work"], request["images"])
    try:
        trace("setup")
        session.setup()
        trace("page")
        results = session.run_page(request["blocks"])
    except Exception as e:  # report, the parent says which page
        session.errors.append(f"{type(e).__name__}: {e}")
        try:
            session.teardown()
        except Exception as e2:
            session.errors.append(f"teardown: {type(e2).__name__}: {e2}")
        results = []
    trace("done")
    json.dump({"results": results, "errors": session.errors}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
