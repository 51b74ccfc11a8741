#!/usr/bin/env python3
"""Fill the docs with real output, or check that they still match (--check).

    sudo docs/generate.py                 regenerate every page of docs/
    sudo docs/generate.py docs/agent.md   regenerate one page
    sudo docs/generate.py --check         exit 1 and list the blocks whose
                                          output differs from the committed text

A page marks the commands whose output it shows; the fenced block right
after a marker is what this script writes:

    <!-- run: minipod get pods -->
    ```console
    $ minipod get pods
    NAME   READY   STATUS    RESTARTS   AGE
    web    2/2     Running   0          <age>
    ```

One marker may hold several commands, one per line (a line ending in `\\`
or with an open quote continues). A line starting with `@ ` runs but is
not shown (waits, mostly); `<!-- hidden: ... -->` runs commands and shows
nothing. `<!-- run cgroup=v1: ... -->` runs only where the kernel's cgroup
mode is v1 (or hybrid), `cgroup=v2` only on a unified hierarchy; elsewhere
the committed block is kept as it is.

Each page runs on a fresh, private "machine", so pages do not depend on
each other and nothing of the host is touched or shown:

    unshare --mount --net --uts --fork --propagation private   # then, inside:
    ip link set lo up; hostname vm
    mount -t tmpfs tmpfs /run/netns        # only this page's pods in `ip netns`
    mount --bind ROOT/tmp /tmp
    export MINIPOD_ROOT=ROOT               # /var/tmp/minipod-docs-XXXX: its own
                                           # state, images, logs, cgroup parent
    minipod image import ROOTFS busybox:1.35   # once, from tests/imagebuild.py's
                                               # busybox-static root; then copied

A MINIPOD_ROOT of its own keeps each page's agent, and its garbage
collector, to the page's own pods (pages run two at a time). The page
shows minipod's default paths and names: `/run/minipod` for ROOT/run,
`/var/lib/minipod` for ROOT/lib, `/var/log/minipod` for ROOT/log, netns
`minipod-web` for `minipod-TAG-web`, cgroup parent `minipod` for
`minipod-TAG`. Commands are written with the defaults and run with the
session's (Session.real); output is shown with the defaults.

All commands of a page run, in order, in one bash (`cd`, variables and
background jobs carry over), from the repository's root, as root, with the
repository's .venv/bin first on PATH and MINIPOD_BACKOFF_BASE=1 (restarts
back off 1 s, not 10 s, so a page is generated in seconds). What a hidden
command's time prints (a background job's output) belongs to the visible
command before it. At the end the page's pods are deleted and the agent
stopped; the session is the subreaper of all it starts, reaps orphans as
init would, and kills whatever of its descendants is left.

What changes from run to run is replaced by a named placeholder, so the
same program always gives the same page:

    <pid:web/server>        the host PID of container server of pod web
    <pid:agent>             the node agent's PID (<pid:agent#2> the next one)
    <inode:web/net>         a namespace's inode (one name per namespace, so
                            equal names mean the same namespace)
    <inode:host/cgroup>     a namespace of the (docs') host
    <uid:web>               a pod's uid (also its 8-character prefix)
    <veth:web>              the host end of the pod's veth pair
    <image-id:busybox>      digests of the image store (<layer:busybox>,
                            <manifest:busybox>), <sha256> for any other
    <time> <age> <port> <mac>   timestamps, ages, ephemeral ports, random MACs

Values are found where the kernel and minipod keep them (nsfs mounts,
/proc/PID/ns, pod.json, the image store), not guessed from the text;
tables whose cells change are re-aligned the way kubectl aligns them.
"""
from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
IMAGE = "busybox:1.35"
HOSTNAME = "vm"
COMMAND_TIMEOUT = 60.0
# Where a default installation keeps what MINIPOD_ROOT=ROOT puts in ROOT/X
DEFAULT_PATHS = {"run": "/run/minipod", "lib": "/var/lib/minipod", "log": "/var/log/minipod",
                 "tmp": "/tmp"}

# ---------------------------------------------------------------------------
# Pages: markers, commands, blocks
# ---------------------------------------------------------------------------

MARKER = re.compile(r"(?m)^<!--\s*(run|hidden)((?:\s+[\w-]+=[\w.-]+)*)\s*:(.*?)-->", re.S)
FENCE = re.compile(r"\n```console\n(?:.*?\n)?```(?=\n|$)", re.S)


@dataclass
class Command:
    text: str            # as the reader sees it (several lines for a long one)
    hidden: bool = False


@dataclass
class Block:
    kind: str                   # "run" | "hidden"
    options: dict               # {"cgroup": "v1"}
    commands: list[Command]
    line: int                   # line of the marker, 1-based
    start: int                  # text offsets of the fenced block to replace
    end: int
    heading: str = ""           # the last markdown heading above the marker

    def shown(self) -> list[Command]:
        return [c for c in self.commands if not c.hidden]


HEREDOC = re.compile(r"<<-?\s*(['\"]?)(\w+)\1")


def split_commands(body: str) -> list[Command]:
    """The commands of a marker: one per line; `\\` at the end of a line,
    an open quote or a here-document (`<<'EOF'` … `EOF`) continues it;
    `@ ` in front hides it."""
    commands, current, until = [], [], None
    for line in textwrap.dedent(body).strip("\n").splitlines():
        if not current and not line.strip():
            continue
        current.append(line)
        if until is not None:
            if line.strip() != until:
                continue
            until = None          # the here-document ends the command
            text = "\n".join(current)
            hidden = text.startswith("@ ")
            commands.append(Command(text[2:] if hidden else text, hidden))
            current = []
            continue
        elif HEREDOC.search(line):
            until = HEREDOC.search(line).group(2)
            continue
        text = "\n".join(current)
        if text.endswith("\\") or not _complete(text):
            continue
        hidden = text.startswith("@ ")
        commands.append(Command(text[2:] if hidden else text, hidden))
        current = []
    if current:
        raise ValueError(f"unfinished command: {' '.join(current)!r}")
    return commands


def _complete(text: str) -> bool:
    try:
        shlex.split(text, comments=True)
        return True
    except ValueError:   # "No closing quotation"
        return False


def parse(text: str) -> list[Block]:
    """The markers of a page, in order, with where their output goes."""
    blocks, heading = [], ""
    prose = re.sub(r"(?ms)^```.*?^```", lambda m: " " * len(m.group(0)), text)
    headings = [(m.start(), m.group(1)) for m in re.finditer(r"(?m)^#+ (.*)$", prose)]
    for m in MARKER.finditer(text):
        heading = next((h for pos, h in reversed(headings) if pos < m.start()), "")
        options = dict(o.split("=", 1) for o in m.group(2).split())
        block = Block(m.group(1), options, split_commands(m.group(3)),
                      text.count("\n", 0, m.start()) + 1, m.end(), m.end(), heading)
        if block.kind == "run":
            fence = FENCE.match(text, m.end())
            if fence:
                block.end = fence.end()
        blocks.append(block)
    return blocks


def render(block: Block, results: list[dict]) -> str:
    """The fenced block for a run marker: `$ command` then its output."""
    out = []
    for cmd, res in zip(block.shown(), results):
        lines = cmd.text.splitlines()
        out.append("$ " + lines[0])
        out += lines[1:]
        if res["output"]:
            out.append(res["output"])
    return "\n```console\n" + "".join(line + "\n" for line in out) + "```"


def cgroup_mode() -> str:
    """"v2" on a unified hierarchy, else "v1" (v1 or hybrid, as minipod sees it)."""
    fstype = subprocess.run(["stat", "-f", "-c", "%T", "/sys/fs/cgroup"],
                            capture_output=True, text=True).stdout.strip()
    return "v2" if fstype == "cgroup2fs" else "v1"


def runnable(block: Block, mode: str) -> bool:
    return block.options.get("cgroup", mode) == mode


# ---------------------------------------------------------------------------
# Normalising: the parts of the output that change from run to run
# ---------------------------------------------------------------------------

NS_TYPES = ("net", "ipc", "uts", "mnt", "pid", "cgroup", "user", "time")
AGE = r"(?:\d+(?:d|h|m|s|ms))+"
MAC = re.compile(r"\b(?:[0-9a-f]{2}:){5}[0-9a-f]{2}\b")
FIXED_MACS = ("ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00")


def _port(match, prefix: str = "") -> str:
    return f"{prefix}<port>" if int(match.group(2)) >= 32768 else match.group(0)


RULES = [
    (re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z"), "<time>"),
    (re.compile(r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d [A-Z][a-z]{2} \d{4} "
                r"\d\d:\d\d:\d\d [+-]\d{4}"), "<time>"),
    (re.compile(r"\b\d{8}-\d{6}\.\d{9}\b"), "<time>"),             # rotated log files
    (re.compile(rf"\b{AGE} ago\b"), "<age> ago"),
    (re.compile(r"minipod-check-[0-9a-f]{8}"), "minipod-check-<random>"),
    (re.compile(r"\b(port )(\d{5})\b"), lambda m: _port(m, m.group(1))),
    (re.compile(r"(\b\d+\.\d+\.\d+\.\d+|\])\:(\d{5})\b"), lambda m: _port(m, m.group(1) + ":")),
    (MAC, lambda m: m.group(0) if m.group(0).startswith("0a:58:")
     or m.group(0) in FIXED_MACS else "<mac>"),
    (re.compile(r"\bfe80::[0-9a-f:]+"), "fe80::<eui64>"),
    (re.compile(r"(?<![\w/])/dev/(?:[svx]?d[a-z]+\d*|nvme\d+n\d+(?:p\d+)?|mmcblk\d+(?:p\d+)?|"
                r"root|mapper/[\w-]+)\b"), "/dev/<disk>"),
    (re.compile(rf"\b({'|'.join(NS_TYPES)}):\[\d+\]"), r"\1:[<inode>]"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "<sha256>"),
]
# In tables, the columns that hold ages
AGE_COLUMNS = {"AGE", "Age", "RESTARTS", "CREATED", "LAST SEEN"}


class Registry:
    """Values that change from run to run, each with a placeholder that
    names what it is ("<pid:web/server>"), learned from the kernel and the
    state files while the page runs."""

    BOUNDS = {  # what may not touch a value on either side
        "pid": (r"(?<![\w.:-])", r"(?![\w]|[.:]\d)"),
        "inode": (r"(?<!\d)", r"(?!\d)"),
        "path": (r"(?<![\w/.-])", r"(?![\w.-])"),
        "uid": ("", ""),
        "name": ("", ""),
        "hex": (r"(?<![0-9a-f])", r"(?![0-9a-f])"),
    }

    def __init__(self, protected: set[str] = frozenset()):
        self.values: dict[str, str] = {}     # value -> placeholder
        self.kinds: dict[str, str] = {}      # value -> kind
        self.used: set[str] = set()
        self.protected = protected            # numbers written in the page itself
        self._regex = None

    def add(self, value, kind: str, role: str) -> None:
        value = str(value)
        if not value or value in self.values:
            return
        if kind == "pid" and (int(value) < 100 or value in self.protected):
            return
        name, n = f"<{kind}:{role}>", 1
        while name in self.used:
            n += 1
            name = f"<{kind}:{role}#{n}>"
        self.used.add(name)
        self.values[value] = name
        self.kinds[value] = kind
        self._regex = None

    def literal(self, value: str, replacement: str, kind: str = "path") -> None:
        """`value` is always shown as `replacement` (a path, say)."""
        if value and value not in self.values:
            self.values[value] = replacement
            self.kinds[value] = kind
            self._regex = None

    def alias(self, value: str, of: str) -> None:
        """`value` (a short form of `of`) gets the same placeholder."""
        if of in self.values and value not in self.values:
            self.values[value] = self.values[of]
            self.kinds[value] = "hex"
            self._regex = None

    def apply(self, text: str) -> str:
        if not self.values:
            return text
        if self._regex is None:
            parts = []
            for value in sorted(self.values, key=len, reverse=True):
                before, after = self.BOUNDS.get(self.kinds[value],
                                                (r"(?<![\w])", r"(?![\w])"))
                parts.append(before + re.escape(value) + after)
            self._regex = re.compile("|".join(parts))
        return self._regex.sub(lambda m: self.values[m.group(0)], text)


def normalise_text(text: str, registry: Registry) -> str:
    text = registry.apply(text)
    for regex, replacement in RULES:
        text = regex.sub(replacement, text)
    return text


def normalise_cell(cell: str, column: str, registry: Registry) -> str:
    cell = normalise_text(cell, registry)
    if column.strip() in AGE_COLUMNS:
        cell = re.sub(rf"(?<![\w<]){AGE}(?![\w>])", "<age>", cell)
    return cell


def _table_columns(lines: list[str], i: int) -> list[int] | None:
    """If lines[i] heads a table, where its columns start: kubectl's `get`
    tables (NAME   READY   STATUS: capitals, 2+ spaces between columns, one
    inside a name like "IMAGE ID") or describe's (Type    Reason, then a
    line of dashes)."""
    header = lines[i]
    indent = len(header) - len(header.lstrip(" "))
    body = header[indent:].rstrip()
    starts = [indent] + [indent + m.end() for m in re.finditer(r" {2,}", body)]
    names = [header[a:b].strip() for a, b in zip(starts, starts[1:] + [None])]
    if len(names) < 2 or not all(re.fullmatch(r"[A-Z][A-Za-z()/ -]*", n) for n in names):
        return None
    dashes = i + 1 < len(lines) and re.fullmatch(r" *-+( +-+)+ *", lines[i + 1])
    if all(n == n.upper() for n in names) or dashes:
        return starts
    return None


def normalise(text: str, registry: Registry) -> str:
    """Replace what changes from run to run; keep kubectl tables aligned."""
    lines = text.split("\n")
    out, i = [], 0
    while i < len(lines):
        starts = _table_columns(lines, i)
        if not starts:
            out.append(normalise_text(lines[i], registry))
            i += 1
            continue
        j = i + 1
        while j < len(lines) and _fits(lines[j], starts):
            j += 1
        out += _realign(lines[i:j], starts, registry)
        i = j
    return "\n".join(out)


def _fits(row: str, starts: list[int]) -> bool:
    """A row of the table: same indent, a space before every column start."""
    indent = len(row) - len(row.lstrip(" "))
    return bool(row.strip()) and indent == starts[0] and \
        all(len(row) <= s or row[s - 1] == " " for s in starts[1:])


def _realign(rows: list[str], starts: list[int], registry: Registry) -> list[str]:
    """Cut each row at the header's column starts, normalise each cell,
    and pad the columns again with the table's own gap."""
    cells = []
    for row in rows:
        cells.append([row[a:b].rstrip() if b else row[a:].rstrip()
                      for a, b in zip(starts, starts[1:] + [None])])
    names = cells[0]
    widths = [max(len(r[k]) for r in cells) for k in range(len(starts) - 1)]
    gap = min(starts[k + 1] - starts[k] - widths[k] for k in range(len(widths)))
    new = [[c if n == 0 else normalise_cell(c, names[k], registry) for k, c in enumerate(r)]
           for n, r in enumerate(cells)]
    if new == cells:
        return rows
    widths = [max(len(r[k]) for r in new) for k in range(len(starts))]
    indent = " " * starts[0]
    return [indent + "".join(c.ljust(widths[k] + gap) if k < len(r) - 1 else c
                             for k, c in enumerate(r)).rstrip()
            for r in new]


def tidy(text: str) -> str:
    """No trailing spaces, no trailing blank lines (editors remove them)."""
    return "\n".join(line.rstrip() for line in text.split("\n")).rstrip("\n")


# ---------------------------------------------------------------------------
# The session: one page, in its own namespaces (runs as `generate.py --session`)
# ---------------------------------------------------------------------------

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
        # minipod's names for a MINIPOD_ROOT (runtime/paths.py)
        tag = hashlib.sha256(work.encode()).hexdigest()[:6]
        self.netns_prefix, self.cgroup_parent = f"minipod-{tag}-", f"minipod-{tag}"
        self.registry = Registry(protected)
        self.errors: list[str] = []
        self.uids: set[str] = set()
        self.env = dict(command_env(), MINIPOD_ROOT=work)

    # -- the private machine
    def become_init(self) -> None:
        """Be what init is to the page's processes: the agent and the
        containers it leaves when it is killed come to us
        (PR_SET_CHILD_SUBREAPER), and we reap them at once, as systemd
        would. Our own children (bash, setup and teardown commands) are
        waited for by their owners, never here."""
        import ctypes
        import threading
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(36, 1, 0, 0, 0) != 0:   # PR_SET_CHILD_SUBREAPER
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
        self.lock = threading.Lock()
        self.managed: set[int] = set()
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
        subprocess.run(["mount", "--bind", tmp, "/tmp"], check=True)
        for sub, shown in DEFAULT_PATHS.items():   # ROOT/lib is shown /var/lib/minipod
            real = os.path.join(self.work, sub)
            self.registry.literal(real, shown)
            self.registry.literal(_fs_path(real), shown)   # as a mount's root field
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
        out_path = "/tmp/.generate-output"
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
                        with _suppress():
                            sub.rmdir()
                with _suppress():
                    d.rmdir()
        for d in Path("/sys/fs/cgroup").glob(f"*/{self.cgroup_parent}"):
            with _suppress():
                d.rmdir()   # the agent removes it when it stops; if not, an empty dir


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is not None and issubclass(exc[0], OSError)


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


def session_main() -> int:
    """`generate.py --session`: read the page's blocks (JSON) on stdin,
    answer with the outputs (JSON) on stdout."""
    request = json.load(sys.stdin)
    session = Session(set(request["protected"]), request["work"], request["images"])
    try:
        trace("setup")
        session.setup()
        trace("page")
        results = session.run_page(request["blocks"])
    except Exception as e:  # report, the parent says which page
        session.errors.append(f"{type(e).__name__}: {e}")
        with _suppress():
            session.teardown()
        results = []
    trace("done")
    json.dump({"results": results, "errors": session.errors}, sys.stdout)
    return 0


# ---------------------------------------------------------------------------
# The driver: pages in, pages out (or a list of differences)
# ---------------------------------------------------------------------------

def build_image(template: str) -> None:
    """The docs' image, imported once into a store of its own; each page's
    session copies the store (a copy costs less than an import)."""
    sys.path.insert(0, str(REPO / "tests"))
    from imagebuild import build_busybox_rootfs
    rootfs = build_busybox_rootfs(Path(template) / "rootfs")
    proc = subprocess.run(["minipod", "image", "import", str(rootfs), IMAGE, "--cmd", '["sh"]'],
                          env=dict(command_env(), MINIPOD_ROOT=template), cwd=REPO,
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"cannot import the docs' image: {proc.stdout}{proc.stderr}")


def run_session(page: Path, blocks: list[Block], mode: str, template: str):
    """Run one page's commands in a session of its own; (results, errors)."""
    text = page.read_text()
    protected = set(re.findall(r"\b\d{2,6}\b", "".join(
        c.text for b in blocks for c in b.commands)))
    for m in re.finditer(r"docs/pods/[\w.-]+", text):   # numbers in the manifests used
        f = REPO / m.group(0)
        if f.is_file():
            protected |= set(re.findall(r"\b\d{2,6}\b", f.read_text()))
    work = tempfile.mkdtemp(prefix="minipod-docs-", dir="/var/tmp")
    request = {"page": str(page), "protected": sorted(protected), "work": work,
               "images": str(Path(template) / "lib" / "images"),
               "blocks": [{"commands": [[c.text, c.hidden] for c in b.commands],
                           "skip": not runnable(b, mode)} for b in blocks]}
    try:
        proc = subprocess.run(
            ["unshare", "--mount", "--net", "--uts", "--fork", "--propagation", "private", "--",
             sys.executable, str(Path(__file__).resolve()), "--session"],
            input=json.dumps(request), stdout=subprocess.PIPE, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return [], ["session timed out after 300s"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if proc.returncode or not proc.stdout.strip():
        return [], [f"session failed (exit {proc.returncode})"]
    answer = json.loads(proc.stdout)
    return answer["results"], answer["errors"]


@dataclass
class PageResult:
    page: Path
    diffs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    new_text: str | None = None     # None: unchanged
    kept: int = 0                   # blocks for the other cgroup version
    seconds: float = 0.0
    failed: list[str] = field(default_factory=list)   # shown commands that exited non-zero


def process_page(page: Path, mode: str, template: str) -> PageResult:
    started = time.monotonic()
    text = page.read_text()
    blocks = parse(text)
    result = PageResult(page)
    if not any(b.commands for b in blocks):
        return result
    results, errors = run_session(page, blocks, mode, template)
    result.seconds = time.monotonic() - started
    if errors or len(results) != len(blocks):
        result.errors = errors or ["no results"]
        return result
    new, pos = [], 0
    rel = os.path.relpath(page, Path.cwd())
    for block, res in zip(blocks, results):
        if block.kind != "run":
            continue
        new.append(text[pos:block.start])
        old = text[block.start:block.end]
        pos = block.end
        if not runnable(block, mode):
            new.append(old)
            result.kept += 1
            continue
        fresh = render(block, res)
        new.append(fresh)
        result.failed += [f"{rel}:{block.line}: `{c.text.splitlines()[0]}` exited {r['rc']}"
                          for c, r in zip(block.shown(), res) if r["rc"]]
        if fresh != old:
            first = block.shown()[0].text.splitlines()[0] if block.shown() else "?"
            diff = "".join(difflib.unified_diff(
                old.strip("\n").splitlines(True), fresh.strip("\n").splitlines(True),
                "committed", "generated", n=1))
            result.diffs.append(f"{rel}:{block.line}: `{first}` ({block.heading or 'top'}):\n"
                                + textwrap.indent(diff.rstrip("\n") + "\n", "    "))
    new.append(text[pos:])
    if "".join(new) != text:
        result.new_text = "".join(new)
    return result


def pages_of(args: list[str]) -> list[Path]:
    if args:
        return [Path(a).resolve() for a in args]
    return sorted(DOCS.glob("*.md"))


def main(argv: list[str]) -> int:
    if argv[:1] == ["--session"]:
        return session_main()
    p = argparse.ArgumentParser(prog="docs/generate.py", description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true",
                   help="change nothing; exit 1 listing the blocks whose output differs")
    p.add_argument("-j", "--jobs", type=int, default=2, metavar="N",
                   help="pages generated at the same time (default 2)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also list the shown commands that exited non-zero (errors the "
                        "page means to show, or a page gone wrong)")
    p.add_argument("pages", nargs="*", metavar="PAGE.md")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("docs/generate.py: needs root (namespaces, mounts): sudo docs/generate.py",
              file=sys.stderr)
        return 3
    mode = cgroup_mode()
    from concurrent.futures import ThreadPoolExecutor
    template = tempfile.mkdtemp(prefix="minipod-docs-image-", dir="/var/tmp")
    try:
        build_image(template)
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            results = list(pool.map(lambda page: process_page(page, mode, template),
                                    pages_of(args.pages)))
    finally:
        shutil.rmtree(template, ignore_errors=True)
    diffs, errors, kept = [], [], 0
    for r in results:
        diffs += r.diffs
        errors += [f"{os.path.relpath(r.page)}: {e}" for e in r.errors]
        kept += r.kept
        if r.seconds:
            print(f"{r.page.name}: {r.seconds:.1f}s"
                  + (f", {len(r.diffs)} blocks differ" if r.diffs else ""), file=sys.stderr)
        if r.new_text is not None and not args.check and not r.errors:
            r.page.write_text(r.new_text)
            print(f"updated {os.path.relpath(r.page)}", file=sys.stderr)
        if args.verbose:
            for line in r.failed:
                print(f"  {line}", file=sys.stderr)
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    if kept:
        print(f"note: {kept} blocks kept as they are: they need cgroup "
              f"{'v2' if mode == 'v1' else 'v1'}", file=sys.stderr)
    if args.check:
        for d in diffs:
            print(d)
        if diffs:
            print(f"{len(diffs)} blocks differ from what the program prints now; "
                  f"regenerate with: sudo docs/generate.py", file=sys.stderr)
        return 1 if diffs or errors else 0
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
