"""`minipod`: the command line, kubectl's conventions, one module per verb.

Each verb module (cmd_*.py) adds its parser and a `run(args, paths)`; this
module only dispatches and turns errors into one line and an exit code:

    0  success          1  error (NotFound, AlreadyExists, start failure, …)
    2  usage error      3  needs root
"""
from __future__ import annotations

import os
import sys

from minipod.runtime.cli.cmdutil import CommandError

# verbs that read state: a dead agent is noticed first (client.revive).
# Not port-forward: it reads only the pod's netns and ports, which no agent
# changes while the pod exists, and it notices the pod's end by itself.
STATE_READERS = ("get", "describe", "logs", "top", "inspect", "exec")

# The verb modules, in the order `--help` lists them (a name, or the module
# itself). Each is imported only when its verb runs, or for the list in
# --help: `get pods` does not pay for the imports of run, exec or image. A
# module registers the verb of its name (cmd_port_forward: port-forward) and
# the extra verbs ALSO names.
VERBS = ["cmd_run", "cmd_get", "cmd_describe", "cmd_logs", "cmd_exec", "cmd_port_forward",
         "cmd_delete", "cmd_inspect",
         "cmd_top", "cmd_image", "cmd_pull", "cmd_gc", "cmd_agent", "cmd_serve",
         "cmd_kubeconfig"]
ALSO = {"create": "cmd_run", "images": "cmd_image", "rmi": "cmd_image",
        "login": "cmd_pull", "logout": "cmd_pull"}


def _name(entry) -> str:
    return entry if isinstance(entry, str) else entry.__name__.rpartition(".")[2]


def verb_module(verb: str):
    """The entry of VERBS that registers `verb`, None if none does."""
    for entry in VERBS:
        name = _name(entry)
        if ALSO.get(verb) == name or name[4:].replace("_", "-") == verb:
            return entry
    return None


def parser(verb: str | None = None):
    """The whole command line (an argparse.ArgumentParser); with `verb`, only
    the module of that verb is imported and registered (main does this when
    the first word names one)."""
    from minipod import __version__
    from minipod.runtime.cli import helptext, parsing
    p = parsing.Parser(prog="minipod", description=helptext.DESCRIPTION)
    p.add_argument("--version", action="version", version=f"minipod {__version__}")
    sub = p.add_subparsers(dest="verb", metavar="COMMAND")
    one = verb_module(verb) if verb else None
    for entry in [one] if one else VERBS:
        if isinstance(entry, str):   # __import__, not importlib (and the warnings it imports)
            __import__(f"minipod.runtime.cli.{entry}")
            entry = sys.modules[f"minipod.runtime.cli.{entry}"]
        entry.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv in (["--help"], ["-h"]):   # without argparse: see helptext.py
        from minipod.runtime.cli import helptext
        text = helptext.render(helptext.columns())
        if text is not None:
            sys.stdout.write(text)
            return 0
    p = parser(argv[0]) if argv else parser()
    args = p.parse_args(argv)
    if not getattr(args, "func", None):
        p.print_help()
        return 2
    try:
        from minipod.runtime.paths import Paths
        paths = Paths()
        if args.verb in STATE_READERS:
            from minipod.runtime import client
            client.revive(paths)      # a dead agent is noticed and brought back
        return args.func(args, paths) or 0
    except CommandError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except OSError as e:  # a pid that just died, a file removed under us: one line, not a traceback
        where = f" ({e.filename})" if e.filename else ""
        print(f"error: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    except Exception as e:  # a bug: still one line; MINIPOD_DEBUG=1 shows the traceback
        if os.environ.get("MINIPOD_DEBUG") or _daemon(args):
            raise  # a daemon's stderr is its log: keep the whole traceback there
        print(f"error: {type(e).__name__}: {e} (MINIPOD_DEBUG=1 shows where)", file=sys.stderr)
        return 1


def _daemon(args) -> bool:
    """Does this command run the agent or the API server in this process
    (`agent`, `serve`, or their `run`), not ask one (`status`, `stop`)?"""
    return args.verb in ("agent", "serve") and getattr(args, "action", "run") == "run"
