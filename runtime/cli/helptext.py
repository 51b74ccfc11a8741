"""`minipod --help` without argparse: the same bytes argparse prints, laid
out here from a copy of each verb's one-line help.

argparse, and re which it imports, cost more than all else `--help` does
(importing the 15 verb modules to register their parsers comes next): here
they cost 15 ms of a 26 ms `--help`. So main prints this text for `minipod
--help` and `-h` alone; every other command line, a verb's help included,
goes through argparse.

The layout is argparse's HelpFormatter, for this one parser: the usage
line, the description filled to the width, then each action's invocation
padded to the help column, its help wrapped beside it (argparse's
_format_action). A layout it does not cover (a terminal narrower than
MIN_COLUMNS, a help text with a hyphen or a % that textwrap or argparse
would treat apart) is left to argparse: render() says None.

tests/unit/test_helptext.py compares render() with argparse's real output
at every width from MIN_COLUMNS to 300, so VERB_HELP cannot go stale: a
verb added, renamed or reworded in its cmd_*.py fails it until VERB_HELP says the same.
"""
from __future__ import annotations

import os
import sys

DESCRIPTION = ("Run Kubernetes v1 Pods on this machine: namespaces, overlayfs, "
               "a veth on a bridge. No Docker, no kubelet.")
USAGE = "usage: minipod [-h] [--version] COMMAND ..."
# (verb, help), in the order `minipod --help` lists them (main.VERBS, ALSO)
VERB_HELP = [
    ("run", "create the pods of a manifest and start them"),
    ("create", "create the pods of a manifest (fails if one exists)"),
    ("get", "list pods or show one"),
    ("describe", "show a pod in detail, with its events"),
    ("logs", "print a container's logs"),
    ("exec", "run a command in a running container"),
    ("port-forward", "forward local ports to a pod"),
    ("delete", "delete pods (SIGTERM, grace period, SIGKILL)"),
    ("inspect", "a pod's namespaces, mounts, veth and routes, read from the kernel"),
    ("top", "CPU and memory use of pods and containers"),
    ("images", "list images in the local store"),
    ("rmi", "remove images (like `docker rmi`)"),
    ("image", "import, load, list, remove, inspect images"),
    ("pull", "pull an image from a registry"),
    ("login", "store credentials for a registry"),
    ("logout", "remove stored credentials for a registry"),
    ("gc", "remove leftovers of pods that are gone"),
    ("agent", "run the node agent (started on demand otherwise)"),
    ("serve", "run the Kubernetes API server (kubectl talks to it)"),
    ("kubeconfig", "print a kubeconfig for kubectl (starts the API server)"),
]
OPTIONS = [("-h, --help", "show this help message and exit"),
           ("--version", "show program's version number and exit")]
MIN_COLUMNS = 50


def columns() -> int:
    """shutil.get_terminal_size().columns: $COLUMNS, else stdout's terminal, else 80."""
    try:
        if int(os.environ["COLUMNS"]) > 0:
            return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


def _wrap(text: str, width: int) -> list[str] | None:
    """textwrap.wrap(text, width) for text of plain words; None for a text
    textwrap would break otherwise (a hyphen, a word longer than the line)."""
    words = text.split()
    if "-" in text or "%" in text or any(len(w) > width for w in words):
        return None
    lines = [words[0]]
    for word in words[1:]:
        if len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def _rows(indent: int, entries: list[tuple[str, str]], help_at: int, width: int
          ) -> list[str] | None:
    """Each (invocation, help) as argparse's _format_action lays it out:
    the invocation padded to column help_at and the help beside it, or the
    invocation alone on its line when it is too long; the help wrapped."""
    out = []
    for name, text in entries:
        lines = _wrap(text, width)
        if lines is None:
            return None
        if indent + len(name) + 2 <= help_at:
            out.append(" " * indent + name.ljust(help_at - indent - 2) + "  " + lines[0])
        else:
            out += [" " * indent + name, " " * help_at + lines[0]]
        out += [" " * help_at + line for line in lines[1:]]
    return out


def render(cols: int) -> str | None:
    """What `minipod --help` prints at a terminal `cols` wide; None where
    argparse must lay it out itself."""
    if cols < MIN_COLUMNS:
        return None
    width = cols - 2                                # main's formatter: shutil's width - 2
    invocations = ["COMMAND"] + [v for v, _ in VERB_HELP] + [o for o, _ in OPTIONS]
    help_at = min(max(map(len, invocations)) + 2 + 2, min(24, max(width - 20, 4)))
    help_width = max(width - help_at, 11)
    description = _wrap(DESCRIPTION, max(width, 11))
    verbs = _rows(4, VERB_HELP, help_at, help_width)
    options = _rows(2, OPTIONS, help_at, help_width)
    if description is None or verbs is None or options is None:
        return None
    return "\n".join([USAGE, "", *description, "", "positional arguments:", "  COMMAND",
                      *verbs, "", "options:", *options]) + "\n"
