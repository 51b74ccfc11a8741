"""Many CLIs at once: nothing is handed out twice, nobody wins twice.

Through the real CLI with the session's MINIPOD_ROOT:
- 20 `minipod run` of different pods at once: all Running, 20 distinct IPs;
- two `create` (and two `run` of different manifests) of one name at once:
  exactly one wins, the other gets AlreadyExists;
- `delete` racing `run` of the same pod ends consistent: no pod, or a
  running pod that a later delete removes, and nothing of it left;
- 10 CLIs starting the agent at once: exactly one agent (flock).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from podhelpers import pod_manifest

pytestmark = pytest.mark.integration


def popen(minipod, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "minipod", *args], env=minipod.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(procs: list[subprocess.Popen], timeout: float = 120) -> list[tuple[int, str, str]]:
    out = []
    for p in procs:
        o, e = p.communicate(timeout=timeout)
        out.append((p.returncode, o, e))
    return out


def manifest(minipod, tmp_path: Path, name: str, command: str = "sleep 1000") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(pod_manifest(name, command, terminationGracePeriodSeconds=0))
    return path


def pod_names(minipod) -> set[str]:
    return {n.removeprefix("pod/") for n in minipod("get", "pods", "-o", "name").stdout.split()}


def leftovers(minipod, name: str) -> list[str]:
    from minipod.runtime.paths import Paths
    paths = Paths(str(minipod.root))
    return [str(p) for p in (paths.pod_dir(name), paths.netns_path(name), paths.pod_logs / name)
            if os.path.lexists(p)]


def test_twenty_parallel_runs_all_succeed_with_distinct_ips(minipod, tmp_path):
    names = [f"par-{i:02d}" for i in range(20)]
    results = finish([popen(minipod, "run", str(manifest(minipod, tmp_path, n)))
                      for n in names])
    try:
        for name, (code, out, err) in zip(names, results):
            assert code == 0, f"{name}: {err}"
            assert out.strip() == f"pod/{name} created"
        pods = json.loads(minipod("get", "pods", "-o", "json").stdout)["items"]
        mine = {p["metadata"]["name"]: p for p in pods if p["metadata"]["name"] in names}
        assert set(mine) == set(names)
        ips = [p["status"]["podIP"] for p in mine.values()]
        assert len(set(ips)) == 20, f"an IP was handed out twice: {sorted(ips)}"
        for p in mine.values():
            assert p["status"]["phase"] == "Running"
        # the leases agree: one per pod, owned by its uid
        from minipod.netns.ipam import IPAM
        from minipod.runtime.paths import Paths
        leases = IPAM(Paths(str(minipod.root)).ipam).leases()
        for p in mine.values():
            assert leases[p["status"]["podIP"]] == p["metadata"]["uid"]
    finally:
        minipod("delete", "pod", *names, "--grace-period", "0", "--ignore-not-found",
                check=False)
    assert not pod_names(minipod) & set(names)


@pytest.mark.parametrize("verb", ["create", "run"])
def test_two_creates_of_one_name_at_once_exactly_one_wins(minipod, tmp_path, verb):
    name = f"race-{verb}"
    # for `run`, two different manifests: the same one would be "unchanged"
    a = manifest(minipod, tmp_path, name, "sleep 1000")
    b = tmp_path / f"{name}-b.yaml"
    b.write_text(pod_manifest(name, "sleep 2000", terminationGracePeriodSeconds=0))
    for attempt in range(3):
        args = (["create", "-f"] if verb == "create" else ["run"])
        results = finish([popen(minipod, *args, str(a)), popen(minipod, *args, str(b))])
        try:
            codes = sorted(code for code, _, _ in results)
            assert codes == [0, 1], f"attempt {attempt}: {results}"
            loser = next(err for code, _, err in results if code == 1)
            assert "AlreadyExists" in loser and loser.count("\n") == 1, loser
            assert "Traceback" not in loser
            winner = next(out for code, out, _ in results if code == 0)
            assert winner.strip() == f"pod/{name} created"
        finally:
            minipod("delete", "pod", name, "--grace-period", "0", "--ignore-not-found",
                    check=False)
        assert leftovers(minipod, name) == []


def test_delete_racing_run_ends_consistent(minipod, tmp_path):
    name = "race-delete"
    path = manifest(minipod, tmp_path, name)
    minipod("run", str(manifest(minipod, tmp_path, "race-delete-warmup")))  # agent up
    minipod("delete", "pod", "race-delete-warmup", "--grace-period", "0")
    outcomes = set()
    for delay in (0, 0.02, 0.05, 0.1, 0.2, 0.3):
        run = popen(minipod, "run", str(path))
        time.sleep(delay)
        delete = finish([popen(minipod, "delete", "pod", name, "--grace-period", "0")])[0]
        run_code, _, run_err = finish([run])[0]
        assert "Traceback" not in run_err + delete[2]
        got = minipod("get", "pod", name, "-o", "json", check=False)
        if got.returncode == 0:
            # the run came second: a running pod, which a later delete removes
            pod = json.loads(got.stdout)
            assert run_code == 0, run_err
            assert pod["status"]["phase"] == "Running", pod["status"]
            minipod("delete", "pod", name, "--grace-period", "0")
            outcomes.add("run won")
        else:
            assert "NotFound" in got.stderr
            outcomes.add("deleted")
        assert leftovers(minipod, name) == [], f"delay {delay}"
    assert outcomes, "no round finished"


def _agents_of(minipod) -> list[int]:
    marker = f"MINIPOD_ROOT={minipod.root}".encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[1:4] == [b"-m", b"minipod", b"agent"] and marker in env:
            found.append(int(pid))
    return found


def test_ten_clis_starting_the_agent_at_once_make_exactly_one(minipod, tmp_path):
    pid = minipod.agent_pid()
    if pid is not None:
        minipod("agent", "stop")
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.05)
    assert _agents_of(minipod) == []
    names = [f"start-{i}" for i in range(10)]
    try:
        results = finish([popen(minipod, "run", str(manifest(minipod, tmp_path, n)))
                          for n in names])
        for name, (code, out, err) in zip(names, results):
            assert code == 0, f"{name}: {err}"
        agents = _agents_of(minipod)
        assert len(agents) == 1, f"agents running: {agents}"
        assert minipod.agent_pid() == agents[0]
        assert pod_names(minipod) >= set(names)
    finally:
        minipod("delete", "pod", *names, "--grace-period", "0", "--ignore-not-found",
                check=False)
