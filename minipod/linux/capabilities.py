"""Capabilities and prctl(2): what the container's init gives up before exec.

    capget_permitted()     the permitted set of this process, as a bit mask
    capset(mask)           effective = permitted = mask, inheritable empty
    drop_bounding(keep)    PR_CAPBSET_DROP every capability not in keep
    prctl(option, arg)     one prctl(2) call, its error naming `what`

By hand: `setpriv --bounding-set=-all,+chown --inh-caps=-all
--no-new-privs CMD`; `grep Cap /proc/self/status` shows the sets.
runtime/security.py decides which capabilities a container keeps.
"""
from __future__ import annotations

import errno

from minipod.linux.clib import fail, ffi, lib

CDEF = """
    struct cap_header { uint32_t version; int pid; };
    struct cap_data { uint32_t effective; uint32_t permitted; uint32_t inheritable; };
    int capget(struct cap_header *hdr, struct cap_data *data);
    int capset(struct cap_header *hdr, const struct cap_data *data);
"""

# <linux/prctl.h>, <linux/capability.h>
PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_UL = "unsigned long"


def load() -> None:
    """Bind the C functions now (in the agent, before a fork and a
    pivot_root after which nothing more can be looked up)."""
    for name in ("capget", "capset", "prctl"):
        getattr(lib, name)


def prctl(option: int, arg: int, what: str) -> None:
    """prctl(option, arg, 0, 0, 0); OSError naming `what` on failure."""
    if lib.prctl(option, ffi.cast(_UL, arg), ffi.cast(_UL, 0), ffi.cast(_UL, 0),
                 ffi.cast(_UL, 0)) == -1:
        fail(what)


def capget_permitted() -> int:
    """The permitted set of this process (capget(2), version 3: two words)."""
    hdr = ffi.new("struct cap_header *", (_LINUX_CAPABILITY_VERSION_3, 0))
    data = ffi.new("struct cap_data[2]")
    if lib.capget(hdr, data) == -1:
        fail("capget")
    return data[0].permitted | (data[1].permitted << 32)


def capset(mask: int) -> None:
    """Effective = permitted = mask, inheritable empty (capset(2), version 3)."""
    hdr = ffi.new("struct cap_header *", (_LINUX_CAPABILITY_VERSION_3, 0))
    lo, hi = mask & 0xFFFFFFFF, mask >> 32
    data = ffi.new("struct cap_data[2]", [(lo, lo, 0), (hi, hi, 0)])
    if lib.capset(hdr, data) == -1:
        fail(f"capset effective=permitted={mask:#x}")


def last_cap(known: int) -> int:
    """The highest capability number this kernel has
    (/proc/sys/kernel/cap_last_cap); `known` - 1 when it cannot be read."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return known - 1


def drop_bounding(keep: int, known: int) -> None:
    """Drop from the bounding set every capability not in the mask `keep`
    (EINVAL: a capability this kernel lacks, skipped)."""
    for cap in range(last_cap(known) + 1):
        if not keep & (1 << cap):
            try:
                prctl(PR_CAPBSET_DROP, cap, f"drop capability {cap} from the bounding set")
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise


def clear_ambient() -> None:
    """Empty the ambient set (kernels before 4.3 have none: EINVAL, fine)."""
    try:
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, "clear ambient capabilities")
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
