"""Each stage of a container start names itself for `ps`, in full: the
kernel keeps 15 bytes of a name (TASK_COMM_LEN 16, with the NUL)."""
from __future__ import annotations

import re
from pathlib import Path

import minipod.runtime

RUNTIME = Path(minipod.runtime.__file__).parent


def test_every_stage_name_fits_the_kernels_15_bytes():
    names = []
    for source in RUNTIME.glob("*.py"):
        names += re.findall(r'set_name\("([^"]+)"\)', source.read_text())
        names += re.findall(r'/proc/self/comm", "w"\) as f:\s+f\.write\("([^"]+)"\)',
                            source.read_text())
    assert len(names) >= 5, f"stage names not found where expected: {names}"
    too_long = [n for n in names if len(n.encode()) > 15]
    assert not too_long, f"ps would show these cut short: {too_long}"
