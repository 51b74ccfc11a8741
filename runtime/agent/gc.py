"""Garbage collection: find what no pod owns any more, and remove it.

A pod is many things spread over the machine: a state dir, pinned
namespaces, a veth, an IP lease, hostPort rules, a cgroup, container dirs,
logs, tmpfs mounts, processes. create_pod and teardown make and remove them
in order, but an agent killed between two steps (kill -9, OOM, power cut)
leaves the ones already made. Those are orphans: things of this
MINIPOD_ROOT that no live pod record refers to. `minipod gc` (the agent's
op "gc") finds and removes them, in the three steps every part of minipod
follows, each one a loop over the owners (runtime/owners/, one per kind):

    scan(paths, ipr, bridge)            what exists       (owner.scan: reads the kernel)
    find_orphans(paths, live, listing)  what is orphaned  (owner.orphans: pure, unit tested)
    collect(paths, ipr, orphans)        remove them       (owner.collect: each step idempotent)

What counts, and how each is recognised as this root's. A path names a
directory only in one mount namespace, and another minipod may use the
same paths in another one (runtime/paths.py, "Identity"), so what the
whole machine shares (processes, cgroups, /run/netns, links, nftables) is
recognised by this root's identity as the kernel shows it, never by a path
string; what lies under the root's own dirs or in our own mount table is
ours by its place (the owner of each, in runtime/owners/, after the colon):

    pod state dir    paths.pods/KEY             no live pod of that KEY      : dirs.PodDirs
    pinned netns     /run/netns/PREFIX+KEY      PREFIX is minipod-ID- (Paths.netns_prefix)
                                                                             : pins.NetnsPins
    pinned ns file   paths.pods/KEY/ns/X        a bind mount in our mountinfo: pins.Mounts
    tmpfs mount      paths.containers/UID/...   an emptyDir of medium Memory : pins.Mounts
    veth             mpXXXXXXXXXX on the bridge  netns.bridge.host_ifname(uid), with
                                                ifalias minipod-ID           : network.Veth
    filter           anti-spoofing set elements  comment "minipod-ID pod:UID" (netns.antispoof)
                                                                             : network.Filter
    IP lease         paths.ipam/IP, content UID netns.ipam leases()          : network.Lease
    hostPort rules   nft DNAT rules, claims     comment "minipod-ID pod:UID", claims in
                                                paths.hostports (netns.hostport.owned)
                                                                             : network.HostPorts
    cgroup           /minipod-ID/pod<UID>       under this root's parent     : processes.Cgroups
    container dir    paths.containers/UID                                    : dirs.ContainerDirs
    log dir          paths.pod_logs/KEY                                      : dirs.LogDirs
    process          a container's: /proc/PID/cgroup puts it in
                     /minipod-ID/pod<UID>/<container>; a pause process: in
                     /minipod-ID/pod<UID>/_pause; or any process inside an
                     orphaned pinned netns of ours                           : processes.Processes

KEY is the pod's key (runtime/paths.py pod_key): NAME for a pod in namespace
default, NAMESPACE_NAME elsewhere; every name here is compared by key.

A container process of a *live* pod that is not the one its record names
(an agent killed between starting it and saving its pid, then a second
start) is an orphan too: it runs unmanaged, unlogged, forever.

Never removed, only reported: a pod dir whose pod.json cannot be read
(issue 7, item 6). Its name (and, when the text still shows it, its uid)
protect what it may own; when its uid cannot be found, the things known by
uid alone (veths, leases, rules, cgroups, container dirs) are reported, not
removed.

One assumption, the same the IPAM makes: one MINIPOD_ROOT per bridge (two
roots on one bridge would hand out the same IPs); two roots in one network
namespace need two bridges and subnets (MINIPOD_BRIDGE, MINIPOD_SUBNET). A
legacy root (made before identities, runtime/paths.py) also counts untagged
veths and rules as its own, and the legacy default prefix "minipod-"
leaves the names of other roots ("minipod-1a2b3c4d-web") alone.

By hand, for one orphaned pod web with uid U and IP 10.89.0.7:

    kill -9 $(cat /sys/fs/cgroup/minipod-ID/podU/*/cgroup.procs)
    umount -l /var/lib/minipod/containers/U/volumes/cache
    ip link del mp$(printf %s U | sha256sum | cut -c1-10)
    rm /run/minipod/ipam/10.89.0.7
    umount /run/netns/minipod-ID-web && rm /run/netns/minipod-ID-web
    rmdir /sys/fs/cgroup/minipod-ID/podU/* /sys/fs/cgroup/minipod-ID/podU
    rm -rf /var/lib/minipod/containers/U /var/log/minipod/pods/web /run/minipod/pods/web
"""
from __future__ import annotations

from minipod.runtime.owners import KINDS, OWNERS, Keep, Listing, Node, Orphan
from minipod.runtime.paths import Paths


def find_orphans(paths: Paths, live_records, listing: Listing) -> list[Orphan]:
    """What in `listing` no live pod record refers to, in removal order.

    `live_records` are the agent's records (PodRecord: name, uid, and
    host_ifname, netns, containers' pid/pid_start, pause when present)."""
    keep = Keep.of(live_records, listing.pod_dirs)
    out = [o for owner in OWNERS for o in owner.orphans(paths, keep, listing)]
    out.sort(key=lambda o: KINDS.index(o.kind))   # stable: keeps the order within a kind
    return out


def scan(paths: Paths, ipr=None, bridge_name: str | None = None, cgroups=None) -> Listing:
    """Read what exists for this root. ipr=None: no veths (no netlink);
    cgroups=None (no driver): no cgroups."""
    listing = Listing()
    node = Node(paths, ipr, bridge_name, cgroups)
    for owner in OWNERS:
        owner.scan(node, listing)
    return listing


def collect(paths: Paths, ipr, orphans: list[Orphan], errors: list[str] | None = None,
            cgroups=None) -> list[str]:
    """Remove every orphan (remove=True), owner by owner in removal order;
    returns what was removed, one line each. Each step tolerates "already
    gone"; a step that fails is recorded in `errors` (if given) and the
    others still run."""
    errors = errors if errors is not None else []
    removed = []
    node = Node(paths, ipr, cgroups=cgroups)

    def step(o: Orphan, fn) -> None:
        try:
            fn()
            removed.append(str(o))
        except Exception as e:
            errors.append(f"cannot remove {o.kind} {o.name}: {e}")

    for owner in OWNERS:
        mine = [o for o in orphans if o.remove and o.kind in owner.kinds]
        if mine:
            owner.collect(node, mine, step)
    return removed


def run(paths: Paths, ipr, bridge_name: str, records, dry_run: bool = False,
        cgroups=None) -> dict:
    """Scan, plan, collect; the agent's answer to {"op": "gc"}.

    Returns {"ok": True, "removed": [...], "kept": [...], "errors": [...]}
    (with dry_run, "removed" lists what would be). cgroups: the cgroup
    driver (None: cgroups are left alone)."""
    listing = scan(paths, ipr, bridge_name, cgroups)
    orphans = find_orphans(paths, list(records), listing)
    kept = [str(o) for o in orphans if not o.remove]
    errors = list(listing.errors)
    if dry_run:
        removed = [str(o) for o in orphans if o.remove]
    else:
        removed = collect(paths, ipr, orphans, errors, cgroups)
    return {"ok": True, "removed": removed, "kept": kept, "errors": errors}
