"""`minipod get pods` imports what it needs and no more: each module
named here cost the command milliseconds of its start (bench/clistart.py
measures them), and came in through a module that did not need it."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

RECORDS = Path(__file__).resolve().parent.parent / "fixtures" / "records"
# dataclasses (with inspect, ast, dis): 14 ms; pathlib (urllib.parse,
# ipaddress): 3 ms; socket (selectors): 2 ms; typing, shutil: imported by none
NOT_FOR_GET = {"dataclasses", "inspect", "pathlib", "socket", "selectors", "typing",
               "shutil", "subprocess", "importlib.util"}
GET = ("import sys\n"
       "from minipod.runtime.cli import main\n"
       "rc = main.main(['get', 'pods'])\n"
       f"heavy = sorted({NOT_FOR_GET!r} & set(sys.modules))\n"
       "print('imported:', heavy, file=sys.stderr)\n"
       "sys.exit(rc)\n")


def _get(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", GET], capture_output=True, text=True,
                          env={"MINIPOD_ROOT": str(root), "PATH": "/usr/bin:/bin"}, cwd="/")


def test_get_pods_of_an_empty_root(tmp_path):
    out = _get(tmp_path)
    assert out.returncode == 0, out.stderr
    assert "imported: []" in out.stderr


def test_get_pods_with_a_pod_and_an_agent(tmp_path):
    pod = tmp_path / "run" / "pods" / "web"
    pod.mkdir(parents=True)
    record = json.loads(sorted(RECORDS.glob("*.json"))[0].read_text())
    (pod / "pod.json").write_text(json.dumps(record))
    agent = socket.socket(socket.AF_UNIX)     # what revive looks for: someone listening
    agent.bind(str(tmp_path / "run" / "agent.sock"))
    agent.listen(4)
    try:
        out = _get(tmp_path)
    finally:
        agent.close()
        shutil.rmtree(pod)
    assert out.returncode == 0, out.stderr
    assert record["name"] in out.stdout and "imported: []" in out.stderr
    assert "warning" not in out.stderr


@pytest.mark.parametrize("verb", ["get", "describe", "logs"])
def test_a_verb_s_parser_alone_imports_none_of_them(verb):
    code = ("import sys\n"
            "from minipod.runtime.cli import main\n"
            f"main.parser({verb!r})\n"
            f"print(sorted({NOT_FOR_GET!r} & set(sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "[]\n"
