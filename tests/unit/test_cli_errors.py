"""Every error ends as one line and an exit code, never a traceback."""
from __future__ import annotations

import errno

from minipod.runtime.cli import main as cli


def _verb_raising(exc):
    def run(args, paths):
        raise exc
    return run


def test_an_oserror_is_one_line_with_the_path(monkeypatch, capsys):
    p = cli.parser()
    monkeypatch.setattr(cli, "parser", lambda: p)
    args = p.parse_args(["get", "pods"])
    args.func = _verb_raising(ProcessLookupError(errno.ESRCH, "No such process", "/proc/4242"))
    monkeypatch.setattr(p, "parse_args", lambda argv=None: args)
    assert cli.main([]) == 1
    err = capsys.readouterr().err
    assert err == "error: No such process (/proc/4242)\n"


def test_an_unexpected_error_is_one_line(monkeypatch, capsys):
    monkeypatch.delenv("MINIPOD_DEBUG", raising=False)
    p = cli.parser()
    monkeypatch.setattr(cli, "parser", lambda: p)
    args = p.parse_args(["get", "pods"])
    args.func = _verb_raising(KeyError("containers"))
    monkeypatch.setattr(p, "parse_args", lambda argv=None: args)
    assert cli.main([]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "KeyError" in err and "Traceback" not in err
