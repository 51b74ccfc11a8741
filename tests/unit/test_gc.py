"""gc's plan, pure: given what exists and the live records, what is orphaned.

No kernel here: a Listing is written by hand, as scan() would fill it after
a crash at some step of create or delete.
"""
from __future__ import annotations

from minipod.netns.bridge import host_ifname
import pytest

from minipod.runtime.agent.gc import find_orphans
from minipod.runtime.api.record import PodRecord, ProcessRef
from minipod.runtime.owners import KINDS, Listing, Orphan, PodDir, Proc
from minipod.runtime.owners.pins import netns_pod
from minipod.runtime.owners.processes import pod_cgroup as _pod_cgroup
from minipod.runtime.paths import Identity, Paths, read_identity

ROOT = "/tmp/minipod-unit-gc"
PATHS = Paths(ROOT, identity=Identity("1a2b3c4d"))
UID_WEB = "0f8fad5b-d9cb-469f-a165-70867728950e"
UID_OLD = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
UID_BAD = "16fd2706-8baf-433b-82eb-8c7f5b8a9ee3"
OWN_NET, OWN_MNT = 4026531840, 4026531841


def record(name: str, uid: str, pid: int | None = None, start: int | None = None,
           **extra) -> PodRecord:
    cs = {"name": "main", "state": "running" if pid else "waiting", "pid": pid,
          "pidStart": start}
    return PodRecord.from_dict({"name": name, "uid": uid, "hostIfname": host_ifname(uid),
                                "netns": PATHS.netns_name(name), "containers": [cs], **extra})


def pod_things(listing: Listing, name: str, uid: str, ip: str, netns_ino: int) -> None:
    """Everything create_pod makes for one pod, as scan() would list it."""
    listing.netns.append(name)
    listing.netns_inodes[str(PATHS.netns_path(name))] = netns_ino
    for ns in ("net", "ipc", "uts"):
        m = str(PATHS.pod_dir(name) / "ns" / ns)
        listing.mounts.append(m)
        if ns == "net":
            listing.netns_inodes[m] = netns_ino
    listing.veths.append(host_ifname(uid))
    listing.leases[ip] = uid
    listing.container_dirs.append(uid)
    listing.log_dirs.append(name)


def web_running() -> tuple[list[PodRecord], Listing]:
    live = [record("web", UID_WEB, pid=100, start=5000)]
    listing = Listing(pod_dirs=[PodDir("web", record=live[0])])
    pod_things(listing, "web", UID_WEB, "10.89.0.2", 9001)
    listing.procs = [Proc(1, 1, OWN_NET, OWN_MNT),
                     Proc(100, 5000, 9001, 7001, container=(UID_WEB, "main")),
                     Proc(101, 5010, 9001, 7001, container=(UID_WEB, "main"))]
    return live, listing


def kinds(orphans: list[Orphan]) -> list[tuple[str, str]]:
    return [(o.kind, o.name) for o in orphans]


def test_nothing_is_orphaned_while_every_pod_is_live():
    live, listing = web_running()
    assert find_orphans(PATHS, live, listing) == []


def test_a_pod_dir_without_record_and_all_it_made_are_orphans_in_removal_order():
    # killed after mkdir, sandbox, lease, veth, before the first save got to disk
    listing = Listing(pod_dirs=[PodDir("old")])
    pod_things(listing, "old", UID_OLD, "10.89.0.3", 9002)
    listing.procs = [Proc(200, 6000, 9002, 7002, container=(UID_OLD, "main")),
                     Proc(1, 1, OWN_NET, OWN_MNT)]
    orphans = find_orphans(PATHS, [], listing)
    assert kinds(orphans) == [
        ("process", "200"),
        ("mount", f"{ROOT}/run/pods/old/ns/net"),
        ("mount", f"{ROOT}/run/pods/old/ns/ipc"),
        ("mount", f"{ROOT}/run/pods/old/ns/uts"),
        ("veth", host_ifname(UID_OLD)),
        ("lease", "10.89.0.3"),
        ("netns", f"/run/netns/{PATHS.netns_name('old')}"),
        ("container-dir", f"{ROOT}/lib/containers/{UID_OLD}"),
        ("log-dir", f"{ROOT}/log/pods/old"),
        ("pod-dir", f"{ROOT}/run/pods/old"),
    ]
    assert all(o.remove for o in orphans)
    assert orphans[0].owner == "6000"          # the start time guards against pid reuse
    assert next(o for o in orphans if o.kind == "lease").owner == UID_OLD
    assert "without pod.json" in orphans[-1].reason


def test_the_orphans_of_a_gone_pod_leave_a_live_pod_alone():
    live, listing = web_running()
    listing.pod_dirs.append(PodDir("old"))
    pod_things(listing, "old", UID_OLD, "10.89.0.3", 9002)
    orphans = find_orphans(PATHS, live, listing)
    names = " ".join(o.name for o in orphans)
    assert "web" not in names and UID_WEB not in names and host_ifname(UID_WEB) not in names
    assert "10.89.0.2" not in names
    assert ("pod-dir", f"{ROOT}/run/pods/old") in kinds(orphans)


def test_a_readable_record_the_agent_does_not_manage_is_removed_with_its_containers():
    # half-deleted: teardown failed after the agent had dropped the record
    gone = record("old", UID_OLD, pid=200, start=6000)
    listing = Listing(pod_dirs=[PodDir("old", record=gone)])
    pod_things(listing, "old", UID_OLD, "10.89.0.3", 9002)
    listing.procs = [Proc(200, 6000, 9002, 7002, container=(UID_OLD, "main"))]
    orphans = find_orphans(PATHS, [], listing)
    proc = next(o for o in orphans if o.kind == "process")
    assert "pod old" in proc.reason
    pod_dir = next(o for o in orphans if o.kind == "pod-dir")
    assert "does not manage" in pod_dir.reason and pod_dir.remove


def test_an_unreadable_record_is_reported_never_removed_and_protects_what_it_owns():
    live, listing = web_running()
    # the damaged file still shows its uid (scan salvages it into record)
    listing.pod_dirs.append(PodDir("bad", record=PodRecord.from_dict({"uid": UID_BAD}),
                                   error="cannot read pod state .../pod.json: Expecting value"))
    pod_things(listing, "bad", UID_BAD, "10.89.0.4", 9003)
    listing.procs.append(Proc(300, 7000, 9003, 7003, container=(UID_BAD, "main")))
    listing.leases["10.89.0.9"] = UID_OLD          # a lease nobody owns
    orphans = find_orphans(PATHS, live, listing)
    assert kinds(orphans) == [("lease", "10.89.0.9"), ("state", f"{ROOT}/run/pods/bad")]
    state = orphans[-1]
    assert not state.remove and "Expecting value" in state.reason and "by hand" in state.reason


def test_when_an_unreadable_record_has_no_uid_things_known_by_uid_are_only_reported():
    live, listing = web_running()
    listing.pod_dirs.append(PodDir("bad", error="cannot read pod state: schema version 9"))
    listing.veths.append(host_ifname(UID_OLD))
    listing.leases["10.89.0.9"] = UID_OLD
    listing.container_dirs.append(UID_OLD)
    listing.netns.append("gone")                    # known by name: still removable
    listing.log_dirs.append("gone")
    listing.procs += [Proc(300, 7000, 9003, 7003, container=(UID_OLD, "main")),
                      Proc(500, 42, OWN_NET, OWN_MNT, pause=True)]
    orphans = find_orphans(PATHS, live, listing)
    by_kind = {o.kind: o for o in orphans}
    for kind in ("veth", "lease", "container-dir"):
        assert not by_kind[kind].remove, kind
        assert "bad" in by_kind[kind].reason and "cannot be read" in by_kind[kind].reason
    procs = [o for o in orphans if o.kind == "process"]
    assert {o.name for o in procs} == {"300", "500"} and not any(o.remove for o in procs)
    assert by_kind["netns"].remove and by_kind["log-dir"].remove
    assert not by_kind["state"].remove


def test_an_untracked_container_process_of_a_live_pod_is_an_orphan():
    # the agent died between starting main and saving its pid; the next start
    # made a second instance: only the one the record names is kept
    live, listing = web_running()
    listing.procs.append(Proc(150, 5500, 9001, 7050, container=(UID_WEB, "main")))
    orphans = find_orphans(PATHS, live, listing)
    assert kinds(orphans) == [("process", "150")]
    assert "untracked" in orphans[0].reason and "web" in orphans[0].reason


def test_a_reused_pid_does_not_make_a_stranger_the_tracked_container():
    live, listing = web_running()
    # pid 100 now belongs to another start time: the recorded container is gone
    listing.procs[1] = Proc(100, 9999, 9001, 7001, container=(UID_WEB, "main"))
    orphans = find_orphans(PATHS, live, listing)
    assert {o.name for o in orphans} == {"100", "101"}


def test_a_container_the_record_calls_waiting_has_no_process_to_keep():
    live = [record("web", UID_WEB)]                   # waiting: no pid
    listing = Listing(pod_dirs=[PodDir("web", record=live[0])])
    listing.procs = [Proc(100, 5000, 9001, 7001, container=(UID_WEB, "main"))]
    assert kinds(find_orphans(PATHS, live, listing)) == [("process", "100")]


def test_any_process_in_an_orphaned_netns_is_killed_but_not_in_a_live_one():
    live, listing = web_running()
    listing.pod_dirs.append(PodDir("old"))
    pod_things(listing, "old", UID_OLD, "10.89.0.3", 9002)
    listing.procs += [Proc(400, 1, 9002, OWN_MNT),     # e.g. `ip netns exec` into it
                      Proc(401, 1, 9001, OWN_MNT)]     # the same, into a live pod
    procs = [o for o in find_orphans(PATHS, live, listing) if o.kind == "process"]
    assert [o.name for o in procs] == ["400"] and "network namespace" in procs[0].reason


def test_a_pause_process_is_kept_only_while_a_live_record_names_it():
    live, listing = web_running()
    live[0].pause = ProcessRef.from_dict({"pid": 500, "pidStart": 42})
    listing.procs += [Proc(500, 42, OWN_NET, OWN_MNT, pause=True),
                      Proc(501, 43, OWN_NET, OWN_MNT, pause=True)]
    assert kinds(find_orphans(PATHS, live, listing)) == [("process", "501")]


def test_a_lease_with_a_hand_written_owner_is_an_orphan():
    live, listing = web_running()
    listing.leases["10.89.0.77"] = "someone"
    orphans = find_orphans(PATHS, live, listing)
    assert kinds(orphans) == [("lease", "10.89.0.77")] and orphans[0].owner == "someone"


def test_a_veth_kept_by_its_recorded_name_even_if_not_the_uid_hash():
    live, listing = web_running()
    live[0].host_ifname = "mp0123456789"
    listing.veths = ["mp0123456789", host_ifname(UID_WEB)]
    assert kinds(find_orphans(PATHS, live, listing)) == [("veth", host_ifname(UID_WEB))]


def test_tmpfs_mounts_of_gone_containers_come_before_their_dirs_deepest_first():
    listing = Listing(container_dirs=[UID_OLD])
    vol = PATHS.containers / UID_OLD / "volumes"
    listing.mounts = [str(vol / "a"), str(vol / "a" / "inner")]
    orphans = find_orphans(PATHS, [], listing)
    assert kinds(orphans) == [("mount", str(vol / "a" / "inner")), ("mount", str(vol / "a")),
                              ("container-dir", str(PATHS.containers / UID_OLD))]


def test_every_orphan_kind_is_in_the_removal_order():
    assert KINDS[0] == "process" and KINDS[-2:] == ("pod-dir", "state")
    assert str(Orphan("veth", "mp1", "why")) == "veth mp1: why"


def test_netns_names_of_this_root_only():
    assert PATHS.netns_name("web") == "minipod-1a2b3c4d-web"
    assert netns_pod(PATHS, PATHS.netns_name("web")) == "web"
    assert netns_pod(PATHS, "minipod-web") is None
    assert netns_pod(PATHS, "cni-1234") is None
    # another root with the very same paths, but its own identity
    twin = Paths(ROOT, identity=Identity("99aa88bb"))
    assert netns_pod(twin, PATHS.netns_name("web")) is None
    # a legacy default root (made before identities) keeps "minipod-web" and
    # leaves every other root's names alone
    legacy = Paths("", identity=Identity("0badcafe", legacy=True))
    assert legacy.cgroup_parent == "minipod"
    assert netns_pod(legacy, "minipod-web") == "web"
    assert netns_pod(legacy, PATHS.netns_name("web")) is None
    assert netns_pod(legacy, "minipod-1a2b3c-web") is None
    assert netns_pod(legacy, "minipod-") is None


def test_processes_are_ours_by_the_cgroup_of_our_identity_only():
    parent = "/minipod-1a2b3c4d/"
    assert _pod_cgroup(["/minipod-1a2b3c4d/podU1/web"], parent) == (("U1", "web"), False)
    assert _pod_cgroup(["/minipod-1a2b3c4d/podU1/_pause"], parent) == (None, True)
    # v1: one line per controller, any of them will do
    assert _pod_cgroup(["/user.slice", "/minipod-1a2b3c4d/podU1/web"], parent) == (
        ("U1", "web"), False)
    # another minipod's container, same uid shape, same paths elsewhere: not ours
    assert _pod_cgroup(["/minipod-99aa88bb/podU1/web"], parent) == (None, False)
    assert _pod_cgroup(["/minipod-1a2b3c4d/podU1"], parent) == (None, False)
    assert _pod_cgroup(["/"], parent) == (None, False)


def test_identity_is_made_once_and_read_back(tmp_path):
    paths = Paths(str(tmp_path))
    ident = paths.identity
    assert len(ident.id) == 8 and not ident.legacy
    assert paths.cgroup_parent == f"minipod-{ident.id}"
    assert paths.netns_prefix == f"minipod-{ident.id}-"
    # a second Paths of the same root (another process) reads the same one
    assert Paths(str(tmp_path)).identity == ident
    assert read_identity(paths.identity_file) == ident
    assert [p.name for p in paths.run.iterdir()] == ["identity"]   # no temp file left


def test_a_root_with_pods_but_no_identity_is_legacy(tmp_path):
    paths = Paths(str(tmp_path))
    (paths.pods / "web").mkdir(parents=True)
    assert paths.identity.legacy
    old = Paths(str(tmp_path))
    assert old.identity.legacy and old.cgroup_parent.startswith("minipod-")
    assert len(old.cgroup_parent) == len("minipod-") + 6    # the old hash of the root string


def test_a_damaged_identity_file_is_an_error_naming_it(tmp_path):
    paths = Paths(str(tmp_path))
    paths.run.mkdir()
    paths.identity_file.write_text("not-hex\n")
    with pytest.raises(ValueError, match=str(paths.identity_file)):
        paths.identity


def test_pods_of_other_namespaces_are_known_by_their_key():
    """web in default and web in team-a: two pods, two keys (web, team-a_web).
    The live team-a pod keeps everything of its key; the objects of a gone
    team-a pod named old are orphans, the default pod's are untouched."""
    from minipod.runtime.paths import pod_key
    uid_a = "9b2f1c1e-54a9-4c8d-b1c1-3f0e6d9a7b21"
    live, listing = web_running()
    team_a = record("web", uid_a, pid=200, start=6000, namespace="team-a",
                    netns=PATHS.netns_name(pod_key("team-a", "web")))
    live.append(team_a)
    listing.pod_dirs.append(PodDir("team-a_web", record=team_a))
    pod_things(listing, "team-a_web", uid_a, "10.89.0.3", 9002)
    listing.procs.append(Proc(200, 6000, 9002, 7002, container=(uid_a, "main")))
    assert find_orphans(PATHS, live, listing) == []
    # a gone pod "old" of team-a: its netns, pins and logs by key, nothing of web's
    pod_things(listing, "team-a_old", UID_OLD, "10.89.0.4", 9003)
    found = kinds(find_orphans(PATHS, live, listing))
    assert ("netns", f"/run/netns/{PATHS.netns_prefix}team-a_old") in found
    assert ("log-dir", f"{ROOT}/log/pods/team-a_old") in found
    assert ("mount", f"{ROOT}/run/pods/team-a_old/ns/net") in found
    assert not any("web" in name for _, name in found)
    # team-a's web gone (its record no longer live): its key's objects go too
    gone = kinds(find_orphans(PATHS, live[:1], listing))
    assert ("netns", f"/run/netns/{PATHS.netns_prefix}team-a_web") in gone
    assert ("pod-dir", f"{ROOT}/run/pods/team-a_web") in gone
    assert ("netns", f"/run/netns/{PATHS.netns_prefix}web") not in gone
