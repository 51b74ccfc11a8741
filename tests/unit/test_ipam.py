"""IPAM: allocation, release, round-robin, exhaustion, locking. No root needed."""
from __future__ import annotations

import ipaddress
import multiprocessing
import os
import subprocess
import sys

import pytest

from minipod.netns.ipam import IPAM, IPAMError

IP = ipaddress.IPv4Address


def test_gateway_and_prefix(tmp_path):
    ipam = IPAM(tmp_path, "10.89.0.0/16")
    assert ipam.gateway == IP("10.89.0.1")
    assert ipam.prefixlen == 16


def test_first_allocation_skips_network_and_gateway(tmp_path):
    ipam = IPAM(tmp_path, "10.89.0.0/16")
    assert ipam.allocate("a") == IP("10.89.0.2")
    assert ipam.allocate("b") == IP("10.89.0.3")


def test_allocate_is_idempotent_per_owner(tmp_path):
    ipam = IPAM(tmp_path, "10.9.0.0/29")
    first = ipam.allocate("pod-a")
    assert ipam.allocate("pod-a") == first
    # A second IPAM object on the same directory (another process, or the
    # agent after a restart) sees the same lease.
    assert IPAM(tmp_path, "10.9.0.0/29").allocate("pod-a") == first
    assert ipam.leases() == {str(first): "pod-a"}


def test_leases_are_readable_files(tmp_path):
    ipam = IPAM(tmp_path, "10.9.0.0/29")
    ip = ipam.allocate("default/web")
    assert (tmp_path / str(ip)).read_text() == "default/web"
    assert ipam.leases() == {str(ip): "default/web"}


def test_release_frees_and_is_idempotent(tmp_path):
    ipam = IPAM(tmp_path, "10.9.0.0/29")
    ipam.allocate("a")
    ipam.release("a")
    ipam.release("a")
    ipam.release("never-allocated")
    assert ipam.leases() == {}


def test_round_robin_does_not_reuse_a_released_ip_at_once(tmp_path):
    ipam = IPAM(tmp_path, "10.9.0.0/29")    # pods get .2 .. .6
    a = ipam.allocate("a")                   # .2
    ipam.release("a")
    b = ipam.allocate("b")
    assert b == IP("10.9.0.3") and b != a
    # The cursor goes on to the end of the range, then wraps to .2.
    got = [ipam.allocate(o) for o in ("c", "d", "e")]
    assert got == [IP("10.9.0.4"), IP("10.9.0.5"), IP("10.9.0.6")]
    assert ipam.allocate("f") == IP("10.9.0.2")


def test_exhaustion_30_and_29(tmp_path):
    small = IPAM(tmp_path / "30", "10.9.0.0/30")   # only .2 is a pod IP
    assert small.allocate("a") == IP("10.9.0.2")
    with pytest.raises(IPAMError) as err:
        small.allocate("b")
    assert str(err.value) == ("no free IP left in 10.9.0.0/30 (1 leases); "
                              "delete a pod or configure a larger subnet")

    ipam = IPAM(tmp_path / "29", "10.9.0.0/29")
    got = {ipam.allocate(f"p{i}") for i in range(5)}
    assert got == {IP(f"10.9.0.{i}") for i in range(2, 7)}
    assert IP("10.9.0.1") not in got and IP("10.9.0.7") not in got
    with pytest.raises(IPAMError, match=r"no free IP left in 10\.9\.0\.0/29 \(5 leases\)"):
        ipam.allocate("p5")
    # The owners that hold an IP still get it; a release makes room again.
    assert ipam.allocate("p0") == IP("10.9.0.2")
    ipam.release("p3")
    assert ipam.allocate("p5") == IP("10.9.0.5")


def test_gateway_never_handed_out(tmp_path):
    ipam = IPAM(tmp_path, "192.168.7.0/28")
    got = [ipam.allocate(f"p{i}") for i in range(13)]
    assert ipam.gateway not in got
    assert ipaddress.IPv4Network("192.168.7.0/28").broadcast_address not in got
    assert len(set(got)) == 13


@pytest.mark.parametrize("subnet", ["10.9.0.0/31", "10.9.0.0/32", "10.9.0.1/24",
                                    "fd00::/64", "not-a-subnet"])
def test_bad_subnets(tmp_path, subnet):
    with pytest.raises(IPAMError):
        IPAM(tmp_path, subnet)


@pytest.mark.parametrize("owner", ["", "a\nb", "a\0b"])
def test_bad_owners(tmp_path, owner):
    with pytest.raises(IPAMError, match="bad lease owner"):
        IPAM(tmp_path, "10.9.0.0/29").allocate(owner)


@pytest.mark.parametrize("owner", [".", "..", "ns/name", "x" * 300, "%2F", "/"])
def test_odd_owner_names_get_their_own_index(tmp_path, owner):
    ipam = IPAM(tmp_path, "10.9.0.0/28")
    ip = ipam.allocate(owner)
    other = ipam.allocate(owner + "-other")
    assert ip != other
    assert ipam.allocate(owner) == ip
    ipam.release(owner)
    assert ipam.leases() == {str(other): owner + "-other"}


def test_lost_index_does_not_leak_the_lease(tmp_path):
    """A crash or a hand edit may lose owners/X: release still frees it."""
    ipam = IPAM(tmp_path, "10.9.0.0/29")
    ip = ipam.allocate("a")
    for f in (tmp_path / ".owners").iterdir():
        f.unlink()
    ipam.release("a")
    assert str(ip) not in ipam.leases()


def test_stale_index_is_ignored(tmp_path):
    """An index entry written just before a crash, with no lease behind it."""
    ipam = IPAM(tmp_path, "10.9.0.0/29")
    (tmp_path / ".owners").mkdir(parents=True)
    (tmp_path / ".owners" / "a").write_text("10.9.0.5")
    assert ipam.allocate("a") == IP("10.9.0.2")
    # and a damaged one
    (tmp_path / ".owners" / "b").write_text("")
    assert ipam.allocate("b") == IP("10.9.0.3")


def test_leases_of_a_missing_dir_is_empty(tmp_path):
    assert IPAM(tmp_path / "nope").leases() == {}


@pytest.mark.parametrize("module", ["minipod.netns.ipam", "minipod.runtime.agent.agent"])
def test_does_not_import_pyroute2(module):
    """~170 ms of imports: the agent speaks rtnetlink through minipod.netns.rtnl."""
    code = (f"import sys, {module}; "
            "sys.exit('pyroute2' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def _worker(state_dir, subnet, start_event, prefix, n, queue):
    ipam = IPAM(state_dir, subnet)
    start_event.wait()
    queue.put([(f"{prefix}-{i}", str(ipam.allocate(f"{prefix}-{i}"))) for i in range(n)])


def test_concurrent_processes_get_distinct_ips(tmp_path):
    ctx = multiprocessing.get_context("fork")
    start, queue = ctx.Event(), ctx.Queue()
    nproc, per = 8, 25
    procs = [ctx.Process(target=_worker,
                         args=(tmp_path, "10.9.0.0/24", start, f"w{p}", per, queue))
             for p in range(nproc)]
    for p in procs:
        p.start()
    start.set()
    results = [pair for _ in procs for pair in queue.get(timeout=60)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    ips = [ip for _, ip in results]
    assert len(ips) == nproc * per == len(set(ips))
    assert IPAM(tmp_path, "10.9.0.0/24").leases() == {ip: o for o, ip in results}


def test_no_temp_files_left(tmp_path):
    ipam = IPAM(tmp_path, "10.9.0.0/29")
    ipam.allocate("a")
    ipam.release("a")
    # What a leak check sees: no lease, only the lock and hidden bookkeeping.
    names = {n for n in os.listdir(tmp_path) if not n.startswith(".")}
    assert names == {"lock"}
    assert set(os.listdir(tmp_path)) == {"lock", ".last_reserved_ip", ".owners"}
    assert os.listdir(tmp_path / ".owners") == []
