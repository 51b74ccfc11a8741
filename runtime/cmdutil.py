"""What the verb modules share: the one-line error, root check, tables."""
from __future__ import annotations

import os
import sys


class CommandError(Exception):
    """One line for the user, and the exit code."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise CommandError(f"minipod {what} needs root (namespaces, mounts, network links): "
                           f"run it with sudo: sudo minipod {what} …", 3)


def server_error(e) -> CommandError:
    """An agent refusal, worded like kubectl's: Error from server (NotFound): …"""
    return CommandError(f"Error from server ({e.code}): {e}")


def print_table(header: list[str], rows: list[list[str]], out=None) -> None:
    """kubectl's layout: columns padded to their widest cell plus three."""
    out = out or sys.stdout
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    for r in [header] + rows:
        cells = [str(c).ljust(w + 3) for c, w in zip(r[:-1], widths)] + [str(r[-1])]
        out.write("".join(cells).rstrip() + "\n")
