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


def _agent_that_hangs_up(paths):
    """A listener on the agent's socket that takes one request and closes
    without an answer, as an agent does when it dies mid-request."""
    import socket
    import threading
    paths.socket.parent.mkdir(parents=True, exist_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(paths.socket))
    server.listen(4)

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return          # closed by the test
            with conn:
                conn.recv(65536)

    threading.Thread(target=serve, daemon=True).start()
    return server


def test_agent_status_of_an_agent_that_dies_is_one_line(tmp_path, monkeypatch, capsys):
    """`agent status` asks the agent itself: an agent error there is the
    user's one line, not the traceback a daemon keeps in its log."""
    from minipod.runtime.paths import Paths
    monkeypatch.delenv("MINIPOD_DEBUG", raising=False)
    monkeypatch.setenv("MINIPOD_ROOT", str(tmp_path))
    server = _agent_that_hangs_up(Paths(str(tmp_path)))
    try:
        assert cli.main(["agent", "status"]) == 1
    finally:
        server.close()
    err = capsys.readouterr().err
    assert err.startswith("error: the agent closed the connection without an answer")
    assert err.count("\n") == 1 and "Traceback" not in err
