"""`minipod`: the command line, kubectl's conventions, one module per verb.

Each verb module (cmd_*.py) adds its parser and a `run(args, paths)`; this
module only dispatches and turns errors into one line and an exit code:

    0  success          1  error (NotFound, AlreadyExists, start failure, …)
    2  usage error      3  needs root
"""
from __future__ import annotations

import argparse
import sys

from minipod import __version__
from minipod.runtime import (cmd_agent, cmd_delete, cmd_describe, cmd_exec, cmd_gc, cmd_get,
                             cmd_image, cmd_inspect, cmd_kubeconfig, cmd_logs, cmd_port_forward,
                             cmd_pull, cmd_run, cmd_serve, cmd_top)
from minipod.runtime.cmdutil import CommandError
from minipod.runtime.paths import Paths

# verbs that read state: a dead agent is noticed first (client.revive)
STATE_READERS = ("get", "describe", "logs", "top", "inspect", "exec", "port-forward")

VERBS = [cmd_run, cmd_get, cmd_describe, cmd_logs, cmd_exec, cmd_port_forward, cmd_delete,
         cmd_inspect,
         cmd_top, cmd_image, cmd_pull, cmd_gc, cmd_agent, cmd_serve, cmd_kubeconfig]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="minipod",
        description="Run Kubernetes v1 Pods on this machine: namespaces, overlayfs, "
                    "a veth on a bridge. No Docker, no kubelet.")
    p.add_argument("--version", action="version", version=f"minipod {__version__}")
    sub = p.add_subparsers(dest="verb", metavar="COMMAND")
    for verb in VERBS:
        verb.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if not getattr(args, "func", None):
        p.print_help()
        return 2
    try:
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
        import os
        if os.environ.get("MINIPOD_DEBUG") or args.verb in ("agent", "serve"):
            raise  # a daemon's stderr is its log: keep the whole traceback there
        print(f"error: {type(e).__name__}: {e} (MINIPOD_DEBUG=1 shows where)", file=sys.stderr)
        return 1
