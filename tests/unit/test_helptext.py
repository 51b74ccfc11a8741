"""`minipod --help` printed without argparse (runtime/cli/helptext.py) is
byte for byte what argparse prints, at every terminal width: a verb added,
renamed or reworded in its cmd_*.py fails here until helptext.VERB_HELP
says the same."""
from __future__ import annotations

import subprocess
import sys

import pytest

from minipod.runtime.cli import helptext
from minipod.runtime.cli import main as cli


def _argparse_help(monkeypatch, cols: int) -> str:
    monkeypatch.setenv("COLUMNS", str(cols))
    return cli.parser().format_help()


def test_the_verbs_and_their_help_are_argparse_s(monkeypatch):
    parser = cli.parser()
    sub = next(a for a in parser._actions if a.dest == "verb")
    real = [(a.metavar or a.dest, a.help) for a in sub._choices_actions]
    assert helptext.VERB_HELP == real, (
        f"runtime/cli/helptext.py VERB_HELP is stale; it should be:\n{real!r}")
    assert parser.description == helptext.DESCRIPTION


@pytest.mark.parametrize("cols", range(helptext.MIN_COLUMNS, 301))
def test_the_text_is_argparse_s_at_every_width(monkeypatch, cols):
    assert helptext.render(cols) == _argparse_help(monkeypatch, cols)


def test_a_narrow_terminal_is_left_to_argparse(monkeypatch, capsys):
    assert helptext.render(helptext.MIN_COLUMNS - 1) is None
    monkeypatch.setenv("COLUMNS", "30")
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    assert capsys.readouterr().out == _argparse_help(monkeypatch, 30)


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_main_prints_it_without_importing_argparse(flag):
    code = ("import sys\n"
            "from minipod.runtime.cli import main\n"
            f"rc = main.main([{flag!r}])\n"
            "assert rc == 0, rc\n"
            "heavy = {'argparse', 're', 'json', 'pathlib'} & set(sys.modules)\n"
            "assert not heavy, heavy\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"}, cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout == helptext.render(80)
