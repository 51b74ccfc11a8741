"""argparse as the verbs use it: its help laid out at the terminal's width
without importing shutil, and its own words looked up in gettext once.

Imported only when a command line is parsed (main.parser): `minipod
--help` alone is printed without argparse (helptext.py).
"""
from __future__ import annotations

import argparse
import functools

from minipod.runtime.cli.helptext import columns

# argparse passes each of its own words ("options", "usage: ") through
# gettext, which searches the disk for a catalogue on every call: 76 searches
# for --help, a third of its time here. Within one command the answer cannot
# change, so each word is looked up once.
argparse._ = functools.lru_cache(maxsize=None)(argparse._)


class Formatter(argparse.HelpFormatter):
    """argparse's help layout, with the width found as shutil finds it but
    without importing shutil (and bz2, lzma with it): argparse makes a
    formatter for every add_argument, so every command would pay."""

    def __init__(self, prog, indent_increment=2, max_help_position=24, width=None):
        if width is None:
            width = columns() - 2  # as HelpFormatter does with shutil's figure
        super().__init__(prog, indent_increment, max_help_position, width)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose help uses Formatter (its subparsers too)."""

    def __init__(self, *args, formatter_class=Formatter, **kwargs):
        super().__init__(*args, formatter_class=formatter_class, **kwargs)
