"""What every benchmark here shares: timing, statistics, the report, minipod.

Fair figures need the same things whatever is measured:

- interleaved runs: round after round, every case runs once, in a rotated
  order, so a slow minute of the machine (another engineer's test suite, a
  cron job) lands on every case instead of on one;
- median, min and max of the runs (the median is the figure; min and max
  show the spread), and the ratio minipod / peer of the medians;
- a private network namespace (`unshare --net`), so pods, bridges, veths
  and firewall rules made by a benchmark never touch the host's and all
  traffic stays on this machine;
- peers installed from Debian when missing, and a line saying so when one
  cannot be had ("could not install podman: …"): a peer is never silently
  skipped.

The same by hand, for one figure:

    unshare --net sh -c 'ip link set lo up; for i in 1 2 3; do
        /usr/bin/time -f %e minipod run pod.yaml; minipod delete pod bench; done'
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
MINIPOD = REPO / ".venv" / "bin" / "minipod"
NETNS_MARK = "MINIPOD_BENCH_PRIVATE_NETNS"   # set once we run in our own netns
# One image name for both runtimes (a tag, not :latest, which means "always pull").
IMAGE = "localhost/minipod-bench/busybox:1"


# ---------------------------------------------------------------- timing

def timed(cmd: list[str], env: dict | None = None, timeout: float = 120) -> float:
    """Wall time of one command in milliseconds; raises with its output if it fails."""
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    ms = (time.perf_counter() - t) * 1000
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {proc.returncode}: "
                           f"{output_tail(proc)}")
    return ms


def interleave(cases: dict[str, Callable[[], float | None]], rounds: int, progress: str = ""
               ) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Run every case once per round, the order rotated each round; return
    ({case: [values]}, {case: error}).

    A case does its own setup and teardown and returns the one value it
    measured (or None: no sample this time). A case that raises is dropped
    from the later rounds; its error is returned for the table."""
    names = list(cases)
    out: dict[str, list[float]] = {n: [] for n in names}
    errors: dict[str, str] = {}
    for r in range(rounds):
        if progress:
            say(f"{progress}: round {r + 1}/{rounds}")
        k = r % len(names) if names else 0
        for name in names[k:] + names[:k]:
            if name in errors:
                continue
            try:
                value = cases[name]()
            except Exception as e:  # reported in the table, never hidden
                errors[name] = one_line(e)
                say(f"  {name}: failed: {errors[name]}")
                continue
            if value is not None:
                out[name].append(value)
    return out, errors


def one_line(e: BaseException | str) -> str:
    """An error as one line of at most 300 characters (a traceback's last line)."""
    lines = str(e).strip().splitlines()
    return (lines[-1] if lines else type(e).__name__)[:300]


def output_tail(proc: subprocess.CompletedProcess) -> str:
    """The end of a failed command's stderr (or stdout), on one line."""
    return " ".join((proc.stderr or proc.stdout or "").split())[-400:]


def say(msg: str) -> None:
    """Progress goes to stderr, so stdout holds only the table."""
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- statistics

@dataclass
class Stat:
    """Median, min and max of repeated runs of one figure."""
    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def as_dict(self) -> dict:
        return {"median": round(self.median, 3), "min": round(min(self.values), 3),
                "max": round(max(self.values), 3), "n": len(self.values)}


def stat(values: list[float] | None) -> Stat | None:
    return Stat(list(values)) if values else None


def ratio(ours: Stat | None, theirs: Stat | None) -> float | None:
    if ours is None or theirs is None or theirs.median == 0:
        return None
    return ours.median / theirs.median


# ---------------------------------------------------------------- the report

@dataclass
class Peer:
    name: str
    stat: Stat | None
    missing: str = ""      # why there is no figure ("not installed: …")


@dataclass
class Figure:
    """One row group of the table: minipod's figure and each peer's.

    `goal` is (op, limit) on the ratio to the first peer: ("<=", 0.25) means
    minipod's median must be at most a quarter of the peer's; `goal_abs` is
    (op, limit) on minipod's median itself, in the figure's unit."""
    key: str
    title: str
    unit: str
    minipod: Stat | None
    peers: list[Peer] = field(default_factory=list)
    goal: tuple[str, float] | None = None
    missing: str = ""      # why minipod has no figure
    note: str = ""
    goal_abs: tuple[str, float] | None = None

    def goal_met(self) -> bool | None:
        if self.goal_abs is not None:
            value = self.minipod.median if self.minipod else None
            limit = self.goal_abs
        elif self.goal is not None and self.peers:
            value = ratio(self.minipod, self.peers[0].stat)
            limit = self.goal
        else:
            return None
        if value is None:
            return None
        return value <= limit[1] if limit[0] == "<=" else value >= limit[1]

    def goal_text(self) -> str:
        if self.goal_abs is None and self.goal is None:
            return ""
        op, limit = self.goal_abs or self.goal
        text = f"{'≤' if op == '<=' else '≥'}{limit:g}" + \
            (f" {self.unit}" if self.goal_abs else "×")
        return text + " " + {True: "yes", False: "NO", None: "?"}[self.goal_met()]


class Report:
    """Figures in the order measured; prints a markdown table, writes JSON."""

    def __init__(self, quick: bool):
        self.quick = quick
        self.figures: list[Figure] = []
        self.notes: list[str] = []
        self.texts: dict[str, str] = {}   # other scripts' output we could not parse
        self.started = time.time()
        self.load_before: list[float] | None = None
        self.versions: dict[str, str | None] = {}
        self.table_text = ""
        self.breakdowns: dict[str, dict] = {}   # per-step figures (bench/startsteps.py)
        self.breakdown_texts: list[str] = []

    def add(self, fig: Figure) -> Figure:
        self.figures.append(fig)
        return fig

    def note(self, text: str) -> None:
        self.notes.append(text)
        say(f"note: {text}")

    def table(self) -> str:
        rows = [("figure", "minipod", "peer", "ratio", "goal")]
        for f in self.figures:
            ours = fmt(f.minipod, f.unit) if f.minipod else \
                f"n/a ({f.missing if len(f.missing) <= 60 else f.missing[:57] + '…'})"
            goal = f.goal_text()
            peers = f.peers or [Peer("", None, "-")]
            for i, p in enumerate(peers):
                if p.stat:
                    theirs = f"{p.name} {fmt(p.stat, f.unit)}"
                    r = ratio(f.minipod, p.stat)
                    rtext = f"{r:.2f}×" if r is not None else ""
                else:
                    why = p.missing if len(p.missing) <= 60 else p.missing[:57] + "…"
                    theirs = f"{p.name} n/a ({why})" if p.name else why
                    rtext = ""
                rows.append((f.title if i == 0 else "", ours if i == 0 else "", theirs, rtext,
                             goal if i == 0 else ""))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = []
        for j, r in enumerate(rows):
            lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
            if j == 0:
                lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        return "\n".join(lines)

    def as_json(self) -> dict:
        return {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
            "seconds": round(time.time() - self.started, 1),
            "quick": self.quick,
            "machine": {"cpus": os.cpu_count(), "kernel": os.uname().release,
                        "load_before": self.load_before,
                        "load_after": list(os.getloadavg())},
            "versions": self.versions,
            "figures": [{
                "key": f.key, "title": f.title, "unit": f.unit,
                "minipod": f.minipod.as_dict() if f.minipod else None,
                "minipod_missing": f.missing or None,
                "peers": [{"name": p.name, **(p.stat.as_dict() if p.stat else {}),
                           "ratio": _round(ratio(f.minipod, p.stat)),
                           "missing": p.missing or None} for p in f.peers],
                "goal": {"text": f.goal_text(), "met": f.goal_met()}
                if f.goal or f.goal_abs else None,
                "note": f.note or None,
            } for f in self.figures],
            "notes": self.notes,
            "breakdowns": self.breakdowns,
            "texts": self.texts,
            "table": self.table_text,
        }

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.as_json(), indent=1, ensure_ascii=False) + "\n")
        os.replace(tmp, path)


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def fmt(s: Stat, unit: str) -> str:
    m = s.median
    if unit in ("ms", "µs", "MiB", "KiB", "MB/s", "s"):
        text = f"{m:.0f}" if m >= 100 else f"{m:.1f}" if m >= 10 else f"{m:.2f}"
    else:
        text = f"{m:.3g}"
    return f"{text} {unit}"


# ---------------------------------------------------------------- isolation

def in_private_netns() -> bool:
    return os.environ.get(NETNS_MARK) == "1"


def reexec_in_private_netns(argv: list[str]) -> int:
    """Run `argv` again inside a new network namespace (only lo, up) and
    return its exit code: `unshare --net sh -c 'ip link set lo up; exec …'`.

    Everything the benchmark makes (bridges, veths, pods, podman's network,
    iptables rules) lives and dies with that namespace."""
    env = dict(os.environ, **{NETNS_MARK: "1"})
    return subprocess.call(["unshare", "--net", "--", "sh", "-c",
                            'ip link set lo up && exec "$0" "$@"', *argv], env=env)


def child_env(**extra: str) -> dict:
    """The environment for another benchmark script: without our netns mark
    (nor pull.py's and portforward.py's MINIPOD_BENCH_INNER), so it makes a
    private network namespace of its own and cannot clash with ours."""
    env = {k: v for k, v in os.environ.items()
           if k not in (NETNS_MARK, "MINIPOD_BENCH_INNER", "MINIPOD_ROOT")}
    env.update(extra)
    return env


# ---------------------------------------------------------------- peers

def ensure_tools(wanted: dict[str, str]) -> dict[str, str]:
    """Install the Debian packages of the missing commands.

    `wanted` maps a command to its package ({"podman": "podman", …}).
    Returns {command: reason} for those that still cannot be had; prints
    "could not install X: reason" for each, never skips silently."""
    missing = {cmd: pkg for cmd, pkg in wanted.items() if shutil.which(cmd) is None}
    if not missing:
        return {}
    pkgs = sorted(set(missing.values()))
    say(f"installing peers from Debian: {' '.join(pkgs)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    reason = ""
    for attempt in ("install", "update+install"):
        if attempt == "update+install":
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
        try:
            proc = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                                   *pkgs], env=env, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            reason = one_line(e)
            break
        if proc.returncode == 0:
            break
        errors = [line for line in proc.stderr.splitlines() if line.startswith("E:")]
        reason = (errors[0] if errors else proc.stderr.strip()[-200:]) or \
            f"apt-get exited {proc.returncode}"
    failed = {}
    for cmd, pkg in missing.items():
        if shutil.which(cmd) is None:
            failed[cmd] = f"could not install {pkg}: {reason or 'command still missing'}"
            say(failed[cmd])
    return failed


# ---------------------------------------------------------------- processes

def pss_kib(pid: int) -> int:
    """Proportional set size of one process (shared pages divided among
    their users), from /proc/PID/smaps_rollup; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def children_map() -> dict[int, list[int]]:
    """{ppid: [pid, …]} of every process, from /proc/PID/stat."""
    out: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat_line = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat_line.rsplit(")", 1)[1].split()[1])
        out.setdefault(ppid, []).append(int(name))
    return out


def tree(pids: list[int]) -> list[int]:
    """The processes and all their descendants."""
    kids = children_map()
    seen, todo = [], list(pids)
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.append(p)
            todo.extend(kids.get(p, []))
    return seen


def wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}"):
            return True
        time.sleep(0.01)
    return False


def stop_process(proc: subprocess.Popen, timeout: float = 5) -> None:
    """SIGTERM one child we started, then SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------- minipod

POD_TEMPLATE = """apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 0
  containers:
{containers}"""

CONTAINER_TEMPLATE = """  - name: {name}
    image: {image}
    command: {command}
"""


def pod_manifest(name: str, image: str, containers: int = 1,
                 command: tuple[str, ...] = ("sleep", "100000"),
                 container_extra: str = "", pod_extra: str = "") -> str:
    """A pod of `containers` busybox containers (c0, c1, …): the same text for
    minipod and podman. The extras are YAML lines added to each container
    (volumeMounts) and to the pod spec (volumes)."""
    cs = "".join(CONTAINER_TEMPLATE.format(name=f"c{i}", image=image,
                                           command=json.dumps(list(command))) + container_extra
                 for i in range(containers))
    return POD_TEMPLATE.format(name=name, containers=cs) + pod_extra


class Minipod:
    """The real CLI (the console script in the venv, as a user runs it),
    with a MINIPOD_ROOT, bridge and subnet of its own."""

    BRIDGE, SUBNET = "mpbench0", "10.77.0.0/16"   # podman's kube network is 10.89.0.0/24

    def __init__(self, root: Path | None = None):
        self.root = Path(root or tempfile.mkdtemp(prefix="minipod-bench-"))
        self.env = dict(os.environ, MINIPOD_ROOT=str(self.root), MINIPOD_AGENT_IDLE="900",
                        MINIPOD_BRIDGE=self.BRIDGE, MINIPOD_SUBNET=self.SUBNET)
        self.cmd = [str(MINIPOD)]

    def __call__(self, *args: str, check: bool = True,
                 timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.cmd + list(args), env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"minipod {' '.join(args)} exited {proc.returncode}: "
                               f"{output_tail(proc)}")
        return proc

    def timed(self, *args: str) -> float:
        return timed(self.cmd + list(args), env=self.env)

    def agent_pid(self) -> int | None:
        proc = self("agent", "status", check=False)
        if proc.returncode != 0 or "pid " not in proc.stdout:
            return None
        return int(proc.stdout.split("pid ")[1].split(",")[0].rstrip(")"))

    def start_agent(self) -> None:
        """Start the agent the way the CLI does when it is needed (detached,
        setsid; minipod.runtime.client.start_agent), unless it runs."""
        if self.agent_pid() is None:
            subprocess.run([str(VENV_PYTHON), "-c", "from minipod.runtime import client; "
                            "from minipod.runtime.paths import Paths; "
                            "client.start_agent(Paths())"], env=self.env, check=True,
                           capture_output=True, cwd="/")

    def stop_agent(self) -> None:
        """Stop the agent (pods keep running) and wait until it is gone."""
        pid = self.agent_pid()
        if pid:
            self("agent", "stop", check=False)
            if not wait_gone(pid):
                os.kill(pid, signal.SIGKILL)   # the agent of our own MINIPOD_ROOT
                wait_gone(pid)

    def write(self, name: str, text: str) -> Path:
        path = self.root / f"{name}.yaml"
        path.write_text(text)
        return path

    def record(self, pod: str) -> dict:
        """The pod's state record (run/pods/POD/pod.json: podIP, netns, pids)."""
        return json.loads((self.root / "run" / "pods" / pod / "pod.json").read_text())

    def pod_ip(self, pod: str) -> str:
        return json.loads(self("get", "pod", pod, "-o", "json").stdout)["status"]["podIP"]

    def netns(self, pod: str) -> str:
        """The pod's network namespace, as named in /run/netns (`ip netns exec NAME`)."""
        return self.record(pod)["netns"]

    def cleanup(self) -> None:
        """Delete every pod, stop the agent, remove the root."""
        try:
            names = self("get", "pods", "-o", "name", check=False).stdout.split()
            if names:
                self("delete", *names, "--grace-period", "0", check=False)
        finally:
            self.stop_agent()
            mounts = [line.split()[4] for line in
                      Path("/proc/self/mountinfo").read_text().splitlines()
                      if str(self.root) in line.split()[4]]
            if mounts:
                say(f"warning: {len(mounts)} mounts left under {self.root}; not removing it")
            else:
                shutil.rmtree(self.root, ignore_errors=True)
