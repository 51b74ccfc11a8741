"""The owners: one per kind of thing a pod holds on the machine.

A pod is many things spread over the machine: a state dir, pinned
namespaces, a veth, an anti-spoofing filter, an IP lease, hostPort rules,
a cgroup, container dirs, logs, tmpfs mounts, processes. Each kind has one
owner, and only the owner knows how to make it, remove it (idempotently:
"already gone" is fine) and recognise it as this root's: create_pod's undo
stack, teardown (runtime/agent/pods.py) and gc (runtime/agent/gc.py) all
call the owners. Adding a kind means adding one owner here.

What each owner recognises as this root's, and why: the table in
runtime/agent/gc.py's docstring.

OWNERS is in removal order: processes first (they hold namespaces, mounts
and cgroups), then mounts, links, leases, rules, cgroups, the dirs last.
"""
from __future__ import annotations

from minipod.runtime.owners.base import Keep, Listing, Node, Orphan, PodDir, Proc
from minipod.runtime.owners.dirs import ContainerDirs, LogDirs, PodDirs
from minipod.runtime.owners.network import Filter, HostPorts, Lease, Veth
from minipod.runtime.owners.pins import Mounts, NetnsPins
from minipod.runtime.owners.processes import Cgroups, Processes

OWNERS = (Processes(), Mounts(), Veth(), Filter(), Lease(), NetnsPins(), HostPorts(),
          Cgroups(), ContainerDirs(), LogDirs(), PodDirs())
KINDS = tuple(kind for owner in OWNERS for kind in owner.kinds)

__all__ = ["KINDS", "OWNERS", "Keep", "Listing", "Node", "Orphan", "PodDir", "Proc"]
