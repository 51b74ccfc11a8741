"""Fault injection for the crash tests: die at a named step.

MINIPOD_FAULT=NAME makes the process that reaches the step NAME kill
itself with SIGKILL there, as a power cut or the OOM killer would: no
cleanup, no finally blocks. The tests then check that the next command
(or `minipod gc`) leaves the machine as it was. Unset, a point costs one
string comparison.
"""
from __future__ import annotations

import os
import signal

_AT = os.environ.get("MINIPOD_FAULT", "")


def point(name: str) -> None:
    if _AT and _AT == name:
        os.kill(os.getpid(), signal.SIGKILL)
