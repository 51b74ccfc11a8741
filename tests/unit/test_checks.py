"""inspect --check names the claim that evidence breaks (pure parts)."""
from minipod.runtime import checks
from minipod.runtime.cli.cmd_inspect import render_check


def container(name, net=1, ipc=2, uts=3, pid=10, inside=1):
    return {"name": name, "hostPID": 0, "pidInside": inside,
            "namespaces": {"net": net, "ipc": ipc, "uts": uts, "mnt": 0, "pid": pid}}


def test_two_network_namespaces_break_the_shared_ip_claim():
    report = {"live": [container("a", net=1), container("b", net=7)], "podIP": "10.0.0.2"}
    ok, evidence = checks.check_port_space(report)
    assert not ok and "2 network namespaces" in evidence
    assert render_check("all containers share one IP and one port space", ok, evidence) \
        .startswith("✗ all containers share one IP and one port space")


def test_a_container_that_is_not_pid_1_breaks_the_pid_claim():
    ok, evidence = checks.check_pid1({"live": [container("a"), container("b", inside=5)]},
                                     shared_pid=False)
    assert not ok and "b=5" in evidence


def test_shared_pid_namespace_is_one_namespace():
    ok, _ = checks.check_pid1({"live": [container("a", pid=4), container("b", pid=4,
                                                                        inside=7)]},
                              shared_pid=True)
    assert ok
