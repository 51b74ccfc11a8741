"""`minipod gc [--dry-run]`: remove what no pod owns any more.

After a crash (the agent killed half-way through creating or deleting a
pod) things can stay behind: pinned namespaces, veths, IP leases, mounts,
directories, stray processes. The agent finds and removes them (gc.py has
the list and the rules); it is the only one that knows which pods are live,
and it runs one request at a time, so nothing is created while gc looks.

    $ sudo minipod gc
    removed process 4711: container main of pod web (uid 0f8f…), which no live pod owns
    removed netns /run/netns/minipod-web: pinned network namespace of pod web, which is gone
    $ sudo minipod gc
    nothing to remove

A pod whose state file cannot be read is reported with its path, and kept.
"""
from __future__ import annotations

import sys

from minipod.runtime.cli.cmdutil import CommandError, require_root, server_error


DESCRIPTION = ("Find and remove what no live pod owns: pinned namespaces, veths, IP leases, "
               "mounts, container and log dirs, state dirs, stray container processes. "
               "Unreadable pod state is reported, never removed.")


def register(sub) -> None:
    p = sub.add_parser("gc", help="remove leftovers of pods that are gone",
                       description=DESCRIPTION)
    p.add_argument("--dry-run", action="store_true",
                   help="only list what would be removed")
    p.set_defaults(func=run)


def run(args, paths) -> int:
    require_root("gc")
    from minipod.runtime import client
    try:
        answer = client.request(paths, {"op": "gc", "dryRun": bool(args.dry_run)})
    except client.AgentError as e:
        raise server_error(e)
    verb = "would remove" if args.dry_run else "removed"
    for line in answer.get("removed", []):
        print(f"{verb} {line}")
    for line in answer.get("kept", []):
        print(f"warning: {line}", file=sys.stderr)
    if not answer.get("removed") and not answer.get("kept") and not answer.get("errors"):
        print("nothing to remove")
    errors = answer.get("errors", [])
    if errors:
        raise CommandError("gc could not remove everything:\n" +
                           "\n".join(f"  {e}" for e in errors))
    return 0
