#!/usr/bin/env python3
"""Fill the docs with real output, or check that they still match (--check).

    sudo docs/generate.py                 regenerate every page of docs/
    sudo docs/generate.py docs/agent.md   regenerate one page
    sudo docs/generate.py --check         change nothing; exit 1 listing each
                                          block whose output differs

A page marks the commands whose output it shows; the fenced block right
after a marker (at the start of a line) is what this script writes:

    <!-- run:
    minipod get pods
    -->
    ```console
    $ minipod get pods
    NAME   READY   STATUS    RESTARTS   AGE
    web    2/2     Running   0          <age>
    ```

One command per line; a line ending in `\\`, an open quote or a
here-document (`<<'EOF'` … `EOF`) continues it. A line starting with `@ `
runs but is not shown (a wait, mostly: the helpers are in session.py);
`<!-- hidden: … -->` runs commands and shows nothing. `<!-- run cgroup=v1:
… -->` runs only where the cgroup layout is v1 (or hybrid), `cgroup=v2` only
on a unified hierarchy; elsewhere the committed block is kept as it is.

Each page runs in a session of its own (session.py): new mount, network and
UTS namespaces, its own MINIPOD_ROOT, all commands in one bash, the page's
pods deleted at the end; pages run two at a time (-j). What changes from
run to run (PIDs, inodes, uids, times, ages, ports, veth names, digests) is
shown as a named placeholder, `<pid:web/server>` (normalise.py), so the same
program always gives the same page. The image, busybox:1.35 from Debian's
busybox-static (tests/imagebuild.py), is imported once and copied into each
session.
"""
from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS))   # session.py, normalise.py: docs/ is not a package

from session import command_env  # noqa: E402

REPO = DOCS.parent
IMAGE = "busybox:1.35"

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
             sys.executable, str(DOCS / "session.py")],
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
