"""docs/ holds real output of minipod; these tests fail when it goes stale.

`docs/generate.py --check` runs every page's commands again (each page on a
private machine of its own: see docs/README.md) and lists the blocks whose
output differs from the committed text. A changed message, a new column in
`get pods`, a step added to `--explain`: the suite fails until the docs are
regenerated (`sudo docs/generate.py`) and the change is seen in the diff.

The normalising (placeholders for what changes from run to run, kubectl
tables re-aligned) is pure logic, tested here too.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from podhelpers import REPO

pytestmark = pytest.mark.integration

GENERATE = REPO / "docs" / "generate.py"


def docs_modules():
    """docs/generate.py and docs/normalise.py (scripts beside the pages,
    not a package)."""
    sys.path.insert(0, str(REPO / "docs"))
    import generate
    import normalise
    return generate, normalise


def generate(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(GENERATE), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_docs_show_what_minipod_prints_now():
    proc = generate("--check")
    assert proc.returncode == 0, (
        "docs/ and minipod disagree; if the change is intended, regenerate with "
        f"`sudo docs/generate.py` and read the diff:\n{proc.stdout}{proc.stderr}")


def test_check_names_the_block_that_differs_and_generate_fixes_it(tmp_path):
    page = tmp_path / "page.md"
    stale = ("# A page\n\n<!-- run:\nminipod get pods\n-->\n"
             "```console\n$ minipod get pods\nNo pods here.\n```\n")
    page.write_text(stale)

    proc = generate("--check", str(page))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "page.md:3: `minipod get pods` (A page):" in proc.stdout, proc.stdout
    assert "-No pods here." in proc.stdout
    assert "+No resources found in default namespace." in proc.stdout
    assert page.read_text() == stale, "--check must change nothing"

    proc = generate(str(page))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert page.read_text() == stale.replace("No pods here.",
                                             "No resources found in default namespace.")
    assert generate("--check", str(page)).returncode == 0


# ---- the pure parts ---------------------------------------------------------

def test_commands_of_a_marker():
    gen, _ = docs_modules()
    commands = gen.split_commands(
        "minipod get pods\n"
        "@ wait_for running web\n"
        "nsenter --net=x \\\n    unshare sh -c '\n  echo hi\n' &\n"
        "cat > f <<'EOF'\nline 'with a quote\nEOF\n")
    assert [(c.text, c.hidden) for c in commands] == [
        ("minipod get pods", False),
        ("wait_for running web", True),
        ("nsenter --net=x \\\n    unshare sh -c '\n  echo hi\n' &", False),
        ("cat > f <<'EOF'\nline 'with a quote\nEOF", False),
    ]


def test_registry_names_each_value_by_what_it_is():
    _, g = docs_modules()
    reg = g.Registry(protected={"8080"})
    reg.add(24662, "pid", "web/server")
    reg.add(8080, "pid", "web/sidecar")          # a number the page itself uses: kept
    reg.add(4026532248, "inode", "web/net")
    reg.add("c63b5770-e9e3-4ea0-82b3-ca911c1dbc77", "uid", "web")
    reg.alias("c63b5770", "c63b5770-e9e3-4ea0-82b3-ca911c1dbc77")
    reg.literal("/var/tmp/minipod-docs-x/run", "/run/minipod")
    text = ("kill -TERM 24662; port 8080; 10.89.0.24662 stays; net:[4026532248]\n"
            "/sys/fs/cgroup/pids/minipod/podc63b5770-e9e3-4ea0-82b3-ca911c1dbc77/server\n"
            "minipod://c63b5770-server /var/tmp/minipod-docs-x/run/pods/web")
    assert g.normalise(text, reg) == (
        "kill -TERM <pid:web/server>; port 8080; 10.89.0.24662 stays; net:[<inode:web/net>]\n"
        "/sys/fs/cgroup/pids/minipod/pod<uid:web>/server\n"
        "minipod://<uid:web>-server /run/minipod/pods/web")
    reg.add(31337, "pid", "web/server")          # the container restarted
    assert g.normalise("31337", reg) == "<pid:web/server#2>"


def test_rules_for_times_ages_ports_and_macs():
    _, g = docs_modules()
    reg = g.Registry()
    text = ("Start Time:       Wed, 25 Nov 2026 13:56:18 +0000\n"
            "  creationTimestamp: '2026-11-25T13:56:18Z'\n"
            "2026-11-25T12:00:00.123456789Z stdout F hi\n"
            "[::ffff:10.89.0.3]:48522: url:/ from 10.89.0.1:40985, port 45039, port 8080\n"
            "link/ether 9e:a3:b5:d4:e1:ed brd ff:ff:ff:ff:ff:ff\n"
            "link/ether 0a:58:0a:59:00:02 brd ff:ff:ff:ff:ff:ff")
    assert g.normalise(text, reg) == (
        "Start Time:       <time>\n"
        "  creationTimestamp: '<time>'\n"
        "<time> stdout F hi\n"
        "[::ffff:10.89.0.3]:<port>: url:/ from 10.89.0.1:<port>, port <port>, port 8080\n"
        "link/ether <mac> brd ff:ff:ff:ff:ff:ff\n"
        "link/ether 0a:58:0a:59:00:02 brd ff:ff:ff:ff:ff:ff")


def test_tables_are_realigned_like_kubectl():
    _, g = docs_modules()
    reg = g.Registry()
    reg.add("mp3f2a9c01d7", "veth", "web")
    get_pods = ("NAME    READY   STATUS    RESTARTS      AGE\n"
                "crash   1/1     Running   1 (12s ago)   12s\n"
                "web     2/2     Running   0             3m4s")
    assert g.normalise(get_pods, reg) == (
        "NAME    READY   STATUS    RESTARTS        AGE\n"
        "crash   1/1     Running   1 (<age> ago)   <age>\n"
        "web     2/2     Running   0               <age>")
    events = ("Events:\n"
              "  Type    Reason  Age              From           Message\n"
              "  ----    ------  ----             ----           -------\n"
              "  Normal  Pulled  1s (x2 over 0s)  minipod-agent  Container image present")
    assert g.normalise(events, reg) == (
        "Events:\n"
        "  Type    Reason  Age                    From           Message\n"
        "  ----    ------  ----                   ----           -------\n"
        "  Normal  Pulled  <age> (x2 over <age>)  minipod-agent  Container image present")
    # a table whose cells do not change is left exactly as it was
    fixed = "NAME   READY\nweb    2/2"
    assert g.normalise(fixed, reg) == fixed


def test_markers_and_their_blocks():
    g, _ = docs_modules()
    text = ("# Page\n\n## Section\n\n<!-- run:\nminipod get pods\n@ wait_for true\n-->\n"
            "```console\n$ minipod get pods\nold\n```\n\n"
            "<!-- run cgroup=v2: cat /sys/fs/cgroup/cgroup.controllers -->\n\n"
            "    <!-- run: not a marker: indented, an example in a code block -->\n")
    blocks = g.parse(text)
    assert len(blocks) == 2
    first, second = blocks
    assert first.heading == "Section" and first.line == 5
    assert [c.text for c in first.shown()] == ["minipod get pods"]
    assert text[first.start:first.end] == "\n```console\n$ minipod get pods\nold\n```"
    assert second.options == {"cgroup": "v2"} and second.start == second.end
    rendered = g.render(first, [{"output": "new", "rc": 0}])
    assert rendered == "\n```console\n$ minipod get pods\nnew\n```"
