"""The owners (runtime/owners/): one per kind, in removal order; their orphan
decisions, pure; their removal of dirs, idempotent (real files under tmp_path).

The shared plan (find_orphans over every owner) is tested in test_gc.py;
here what each owner adds on its own: hostPort rules and cgroups, which
gc used to leave to their modules' own gc, are orphans like the rest.
"""
from __future__ import annotations

from minipod.runtime.agent.gc import collect, find_orphans
from minipod.runtime.api.record import PodRecord
from minipod.runtime.owners import KINDS, OWNERS, Keep, Listing, Orphan, PodDir
from minipod.runtime.paths import Identity, Paths

ROOT = "/tmp/minipod-unit-owners"
PATHS = Paths(ROOT, identity=Identity("1a2b3c4d"))
UID_WEB = "0f8fad5b-d9cb-469f-a165-70867728950e"
UID_OLD = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
UID_BAD = "16fd2706-8baf-433b-82eb-8c7f5b8a9ee3"
LIVE = [PodRecord.from_dict({"name": "web", "uid": UID_WEB, "containers": []})]


def test_every_kind_has_one_owner_and_the_order_is_processes_first_dirs_last():
    owned = [k for o in OWNERS for k in o.kinds]
    assert len(owned) == len(set(owned)) and KINDS == tuple(owned)
    assert KINDS.index("process") < KINDS.index("mount") < KINDS.index("veth")
    assert KINDS.index("lease") < KINDS.index("hostport") < KINDS.index("cgroup")
    assert KINDS.index("cgroup") < KINDS.index("container-dir") < KINDS.index("pod-dir")


def test_hostport_rules_and_cgroups_of_a_gone_pod_are_orphans_and_a_live_ones_are_not():
    listing = Listing(pod_dirs=[PodDir("web", record=LIVE[0])],
                      hostports=[UID_WEB, UID_OLD], cgroups=[UID_WEB, UID_OLD])
    orphans = find_orphans(PATHS, LIVE, listing)
    assert [(o.kind, o.name) for o in orphans] == [
        ("hostport", UID_OLD),
        ("cgroup", f"/minipod-1a2b3c4d/pod{UID_OLD}"),
    ]
    assert all(o.remove for o in orphans)
    assert orphans[1].owner == UID_OLD          # the driver removes it by the uid


def test_an_unreadable_pod_protects_its_rules_and_cgroup_by_its_uid():
    listing = Listing(pod_dirs=[PodDir("bad", record=PodRecord.from_dict({"uid": UID_BAD}), error="damaged")],
                      hostports=[UID_BAD], cgroups=[UID_BAD])
    assert [o.kind for o in find_orphans(PATHS, [], listing)] == ["state"]


def test_without_the_uid_of_an_unreadable_pod_rules_and_cgroups_are_only_reported():
    listing = Listing(pod_dirs=[PodDir("bad", error="schema version 9")],
                      hostports=[UID_OLD], cgroups=[UID_OLD])
    by_kind = {o.kind: o for o in find_orphans(PATHS, [], listing)}
    for kind in ("hostport", "cgroup"):
        assert not by_kind[kind].remove and "bad" in by_kind[kind].reason


def test_keep_holds_the_live_and_what_an_unreadable_record_may_own():
    from minipod.netns.bridge import host_ifname
    keep = Keep.of(LIVE, [PodDir("web", record=LIVE[0]),
                          PodDir("bad", record=PodRecord.from_dict({"uid": UID_BAD}), error="damaged"),
                          PodDir("worse", error="unreadable"),
                          PodDir("old", record=PodRecord.from_dict({"name": "old", "uid": UID_OLD}))])
    assert keep.names == {"web", "bad", "worse"}
    assert keep.uids == {UID_WEB, UID_BAD}
    assert keep.veths == {host_ifname(UID_WEB), host_ifname(UID_BAD)}
    assert keep.unsure == ["worse"] and set(keep.gone) == {"old"}
    assert not keep.by_uid("veth", "mp1", "why").remove


def test_collect_removes_dirs_once_and_again_is_no_error(tmp_path):
    paths = Paths(str(tmp_path), identity=Identity("1a2b3c4d"))
    logs, ctrs = paths.pod_logs / "old", paths.containers / UID_OLD
    for d in (logs, ctrs / "main" / "upper", paths.pod_logs / "web"):
        d.mkdir(parents=True)
        (d / "f").write_text("x")
    orphans = find_orphans(paths, [], Listing(container_dirs=[UID_OLD], log_dirs=["old"]))
    kept = Orphan("log-dir", str(paths.pod_logs / "web"), "only reported", remove=False)
    errors: list[str] = []
    removed = collect(paths, None, orphans + [kept], errors)
    assert errors == [] and len(removed) == 2
    assert not logs.exists() and not ctrs.exists()
    assert (paths.pod_logs / "web" / "f").exists()      # remove=False is never touched
    assert collect(paths, None, orphans, errors) == [str(o) for o in orphans] and errors == []
