"""gc of one kind, through its owner (runtime/owners/): scan what exists,
plan against the live pods, remove the orphans. What `minipod gc` does for
that kind alone, for the tests of the modules the owners call (hostport
rules and claims, cgroups).
"""
from __future__ import annotations

from minipod.runtime.api.record import PodRecord
from minipod.runtime.owners import Keep, Listing


def owner_gc(owner, node, paths, live_uids) -> tuple[list[str], list[str]]:
    """Remove what `owner` finds that no pod of `live_uids` owns; returns
    (the names removed, in the order removed; the errors, one line each)."""
    listing = Listing()
    owner.scan(node, listing)
    keep = Keep.of([PodRecord(name=f"pod-{uid}", uid=uid) for uid in live_uids], [])
    removed, errors = [], list(listing.errors)

    def step(o, fn) -> None:
        try:
            fn()
            removed.append(o.name)
        except Exception as e:
            errors.append(f"cannot remove {o.kind} {o.name}: {e}")

    owner.collect(node, [o for o in owner.orphans(paths, keep, listing) if o.remove], step)
    return removed, errors
