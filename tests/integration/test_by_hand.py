"""docs/by-hand.md, run for real: one pod made with unshare, nsenter, mount,
pivot_root and ip, as the page says, step by step.

The page's first block names things (POD=/tmp/byhand NS=byhand BR=hand0 …);
the test runs every other command of the page in one bash, as a reader
would, with names of its own instead (a directory under tmp_path, a
unique netns, bridge and veth, a subnet 10.99.N.0/24), inside the suite's
private network namespace. Before the clean-up it checks, from Python, that
the pod answers on its IP and that its process is PID 1 on an overlay root
in the pinned network namespace; after it, that nothing is left: no
process, link, pinned namespace, mount or file.
"""
from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import uuid

import pytest

from podhelpers import REPO, http_get

pytestmark = pytest.mark.integration

PAGE = REPO / "docs" / "by-hand.md"
NAMES = {"POD", "NS", "BR", "VETH", "GW", "IP"}


def docs_modules():
    """docs/generate.py (the page's markers) and docs/session.py (the bash
    that runs them, with the helpers of the hidden lines)."""
    sys.path.insert(0, str(REPO / "docs"))
    import generate
    import session
    return generate, session


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except OSError:
        return None


def _links() -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


def _mounts_naming(*words: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if any(w in line for w in words)]


def test_one_pod_by_hand(tmp_path):
    generate, session = docs_modules()
    blocks = [b for b in generate.parse(PAGE.read_text()) if b.commands]
    first = blocks[0]
    named = set(re.findall(r"\b([A-Z]+)=", " ".join(c.text for c in first.commands)))
    assert named == NAMES, f"by-hand.md's first block should name exactly {sorted(NAMES)}"
    steps = [c for b in blocks[1:] if "Clean up" not in b.heading for c in b.commands]
    cleanup = [c for b in blocks[1:] if "Clean up" in b.heading for c in b.commands]
    assert steps and cleanup, "by-hand.md lost its steps or its clean-up section"

    tag, n = uuid.uuid4().hex[:6], random.randint(1, 254)
    names = {"POD": str(tmp_path / "pod"), "NS": f"byhand-{tag}", "BR": f"hb{tag}",
             "VETH": f"hb{tag}-w", "GW": f"10.99.{n}.1", "IP": f"10.99.{n}.2"}
    shell = session.Shell(session.command_env(), str(REPO), str(tmp_path / "output"))
    index = 0
    pids: dict[str, tuple[int, str | None]] = {}

    def run(command: str, may_fail: bool = False) -> None:
        nonlocal index
        rc = shell.run(index, command)
        index += 1
        if rc and not may_fail:
            out = shell.outputs().get(index - 1, "")
            raise AssertionError(f"`{command}` exited {rc}:\n{out}")

    try:
        run(" ".join(f"{k}={v}" for k, v in names.items()))
        for step in steps:
            run(step.text)
        # the page's own variables: the container's unshare and its PID 1
        run(f"echo \"$ctr $init\" > {tmp_path}/pids")
        ctr, init = (int(p) for p in (tmp_path / "pids").read_text().split())
        pids = {"unshare": (ctr, _start_time(ctr)), "PID 1": (init, _start_time(init))}

        assert http_get(f"http://{names['IP']}:8080") == "hello from byhand\n"
        pinned = os.stat(f"/run/netns/{names['NS']}").st_ino
        assert os.stat(f"/proc/{init}/ns/net").st_ino == pinned
        assert os.stat(f"/proc/{init}/ns/mnt").st_ino != os.stat("/proc/self/ns/mnt").st_ino
        with open(f"/proc/{init}/status") as f:
            nspid = next(line for line in f if line.startswith("NSpid:")).split()
        assert nspid[-1] == "1", f"the container's process is not PID 1 inside: {nspid}"
        with open(f"/proc/{init}/mountinfo") as f:
            root = next(line for line in f if line.split()[4] == "/")
        assert " - overlay " in root and f"upperdir={names['POD']}/upper" in root, root

        for step in cleanup:
            # `wait` gives the killed unshare's status, which is not a failure
            run(step.text, may_fail=step.text.startswith("wait ") or "; wait " in step.text)
        left = [f"{what} {pid}" for what, (pid, start) in pids.items()
                if start is not None and _start_time(pid) == start]
        assert not left, f"processes left: {left}"
        assert names["BR"] not in _links() and names["VETH"] not in _links()
        assert not os.path.exists(f"/run/netns/{names['NS']}")
        assert not _mounts_naming(names["POD"], names["NS"])
        assert not os.path.exists(names["POD"])
    finally:
        shell.kill()
        _force_cleanup(names, pids)


def _force_cleanup(names: dict, pids: dict) -> None:
    """After a failure, remove what the page made (only its own names)."""
    for pid, start in pids.values():
        if start is not None and _start_time(pid) == start:
            os.kill(pid, signal.SIGKILL)  # the page's own container and its unshare
    for line in reversed(_mounts_naming(names["POD"], f"/run/netns/{names['NS']}")):
        subprocess.run(["umount", "-l", line.split()[4]], capture_output=True)
    for link in (names["VETH"], names["BR"]):
        if link in _links():
            subprocess.run(["ip", "link", "del", link], capture_output=True)
    if os.path.exists(f"/run/netns/{names['NS']}"):
        os.unlink(f"/run/netns/{names['NS']}")


def test_the_page_names_its_steps():
    """The page keeps the steps the issue asks for, so the test above tests them."""
    text = PAGE.read_text()
    for tool in ("unshare --net --ipc --uts", "mount --bind /proc/", "ip link add $BR type bridge",
                 "type veth peer name eth0 netns $NS", "mount -t overlay", "mount -t proc",
                 "pivot_root . .", "nsenter --net=", "curl -s http://$IP:8080"):
        assert tool in text, f"by-hand.md no longer has `{tool}`"
