"""netns.antispoof without the kernel: owner tags, reading nft's JSON, and
gc's plan for filters left by a pod that is gone."""
from __future__ import annotations

import pytest

from minipod.netns.antispoof import Filter, FilterError, owner_tag, parse
from minipod.runtime.agent.gc import find_orphans
from minipod.runtime.api.record import PodRecord
from minipod.runtime.owners import Listing, PodDir
from minipod.runtime.paths import Paths

UID = "0f8fad5b-d9cb-469f-a165-70867728950e"
GONE = "7c9e6679-7425-40de-944b-e07fc1f90ae7"


def table(*elements) -> list:
    """`nft -j list table bridge minipod` as nft 1.0.6 prints it, trimmed."""
    pods = [e for e in elements if isinstance(e["elem"]["val"], dict)]
    ports = [e for e in elements if isinstance(e["elem"]["val"], str)]
    return [{"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "bridge", "name": "minipod"}},
            {"set": {"family": "bridge", "name": "ports", "table": "minipod",
                     "type": "ifname", "elem": ports}},
            {"set": {"family": "bridge", "name": "pods", "table": "minipod",
                     "type": ["ifname", "ether_addr", "ipv4_addr"], "elem": pods}},
            {"chain": {"family": "bridge", "table": "minipod", "name": "prerouting"}}]


def pod(ifname, mac, ip, comment):
    return {"elem": {"val": {"concat": [ifname, mac, ip]}, "comment": comment}}


def port(ifname, comment):
    return {"elem": {"val": ifname, "comment": comment}}


def test_owner_tag_is_the_hostport_style_and_takes_an_instance():
    assert owner_tag(UID) == f"pod:{UID}"
    assert owner_tag(UID, "a1b2c3") == f"a1b2c3 pod:{UID}"
    for bad in ('x" drop', "", "a b", "x" * 65):
        with pytest.raises(FilterError, match="bad pod uid"):
            owner_tag(bad)
    with pytest.raises(FilterError, match="bad instance identity"):
        owner_tag(UID, 'i"')


def test_parse_keeps_only_this_instances_elements():
    objects = table(
        pod("mp0000000001", "0a:58:0a:59:00:02", "10.89.0.2", f"pod:{UID}"),
        port("mp0000000001", f"pod:{UID}"),
        pod("mp0000000002", "0a:58:0a:59:00:03", "10.89.0.3", f"other pod:{GONE}"),
        port("mp0000000002", f"other pod:{GONE}"),
        port("mp0000000003", "someone else's"),           # not minipod's comment
        {"elem": {"val": "mp0000000004"}},                # no comment at all
        port("mp0000000005", f"pod:{GONE}"))              # half removed: no pods element
    objects[3]["set"]["elem"].append({"concat": ["mp9", "0a:58:0a:59:00:09", "10.89.0.9"]})
    assert parse(objects) == [
        Filter(UID, "mp0000000001", "0a:58:0a:59:00:02", "10.89.0.2"),
        Filter(GONE, "mp0000000005")]
    assert parse(objects, "other") == [
        Filter(GONE, "mp0000000002", "0a:58:0a:59:00:03", "10.89.0.3")]
    assert parse(table()) == []


def test_gc_plans_removal_of_a_gone_pods_filter_and_keeps_a_live_ones():
    paths = Paths("/tmp/minipod-unit-antispoof")
    live = [PodRecord.from_dict({"name": "web", "uid": UID, "hostIfname": "mp0000000001"})]
    listing = Listing(pod_dirs=[PodDir("web", record=live[0])],
                      filters={UID: "mp0000000001", GONE: "mp0000000002"})
    orphans = find_orphans(paths, live, listing)
    assert [(o.kind, o.name, o.remove) for o in orphans] == [("filter", GONE, True)]
    assert "mp0000000002" in orphans[0].reason
    # a pod dir that cannot be read may own it: reported, kept
    listing.pod_dirs.append(PodDir("broken", error="pod.json: bad JSON"))
    kept = [o for o in find_orphans(paths, live, listing) if o.kind == "filter"]
    assert [(o.name, o.remove) for o in kept] == [(GONE, False)]
