"""port-forward's arguments, parsed as kubectl parses them. Pure: no root."""
from __future__ import annotations

import argparse

import pytest

from minipod.netns.portforward import format_hostport
from minipod.runtime.cli import cmd_port_forward as pf
from minipod.runtime.cli.cmd_port_forward import PortSpec
from minipod.runtime.cli.cmdutil import CommandError


@pytest.mark.parametrize("spec, want", [
    ("8080:80", PortSpec(8080, 80)),
    ("8080", PortSpec(8080, 8080)),           # one number: the same port on both ends
    (":80", PortSpec(0, 80)),                 # a random local port
    ("0:80", PortSpec(0, 80)),
    ("65535:1", PortSpec(65535, 1)),
    ("8080:http", PortSpec(8080, "http")),    # a named containerPort
    (":http", PortSpec(0, "http")),
    ("http", PortSpec(None, "http")),         # local: the number the name stands for
    ("web-8080", PortSpec(None, "web-8080")),
])
def test_port_forms(spec, want):
    assert pf.parse_port(spec) == want


@pytest.mark.parametrize("spec, words", [
    ("", "neither a number"),
    ("8080:", "neither a number"),
    ("8080:0", "remote port \"0\" must be a number from 1 to 65535"),
    ("0", "remote port \"0\""),
    ("70000:80", "local port \"70000\" must be a number from 0 to 65535"),
    ("8080:70000", "remote port \"70000\""),
    ("-1:80", "local port \"-1\""),
    ("a:80", "local port \"a\""),
    ("1:2:3", "expected [LOCAL:]REMOTE"),
    ("80 80", "neither a number"),
    ("8080:ht_tp", "neither a number"),
])
def test_bad_ports_are_usage_errors(spec, words):
    with pytest.raises(CommandError) as err:
        pf.parse_port(spec)
    assert err.value.code == 2
    assert words in str(err.value)
    assert f'"{spec}"' in str(err.value)      # the message quotes what was typed


@pytest.mark.parametrize("arg, name", [
    ("web", "web"), ("pod/web", "web"), ("pods/web", "web"), ("po/web", "web"),
])
def test_pod_forms(arg, name):
    assert pf.parse_pod(arg) == name


@pytest.mark.parametrize("arg, words", [
    ("deployment/web", 'pods only (pod/NAME or NAME), not "deployment"'),
    ("service/web", 'not "service"'),
    ("pod/", "the pod name is missing"),
])
def test_bad_pod_forms(arg, words):
    with pytest.raises(CommandError, match="cannot port-forward") as err:
        pf.parse_pod(arg)
    assert words in str(err.value)
    assert err.value.code == 2


def test_default_address_is_localhost_only():
    # never all interfaces unless asked; ::1 only if the kernel has IPv6
    assert pf.parse_addresses(None) == [("127.0.0.1", False), ("::1", True)]


@pytest.mark.parametrize("values, want", [
    (["127.0.0.1"], [("127.0.0.1", False)]),
    (["127.0.0.1,::1"], [("127.0.0.1", False), ("::1", False)]),
    (["127.0.0.1", "::1"], [("127.0.0.1", False), ("::1", False)]),   # repeated flag
    (["localhost,10.0.0.5"], [("127.0.0.1", False), ("::1", True), ("10.0.0.5", False)]),
    (["0.0.0.0"], [("0.0.0.0", False)]),                                # asked: all
    ([" 127.0.0.1 , 127.0.0.1"], [("127.0.0.1", False)]),               # no duplicates
    (["::1,localhost"], [("::1", False), ("127.0.0.1", False)]),        # named: required
    (["localhost,::1"], [("127.0.0.1", False), ("::1", False)]),
    (["0:0:0:0:0:0:0:1"], [("::1", False)]),                            # normalised
])
def test_addresses(values, want):
    assert pf.parse_addresses(values) == want


@pytest.mark.parametrize("value", ["example.com", "127.0.0.256", "", "localhost:80", "::1]"])
def test_bad_addresses(value):
    with pytest.raises(CommandError, match="is not an IP address or localhost") as err:
        pf.parse_addresses([value])
    assert err.value.code == 2


MANIFEST = {"spec": {"containers": [
    {"name": "a", "ports": [{"containerPort": 8080, "name": "http"}]},
    {"name": "b", "ports": [{"containerPort": 9090, "name": "metrics"},
                            {"containerPort": 53, "protocol": "UDP"}]},
]}}


def test_resolve_named_ports():
    specs = [pf.parse_port(s) for s in ("http", "1234:metrics", ":http", "5000:80", "7000")]
    assert pf.resolve_ports(specs, MANIFEST, "web") == [
        (8080, 8080), (1234, 9090), (0, 8080), (5000, 80), (7000, 7000)]


def test_unknown_port_name_is_kubectls_error():
    with pytest.raises(CommandError, match="Pod 'web' does not have a named port 'grpc'"):
        pf.resolve_ports([pf.parse_port("grpc")], MANIFEST, "web")


def test_resolve_without_ports_in_manifest():
    assert pf.resolve_ports([pf.parse_port("80")], {}, "web") == [(80, 80)]
    with pytest.raises(CommandError, match="named port 'http'"):
        pf.resolve_ports([pf.parse_port("http")], {"spec": {}}, "web")


def test_argument_parser():
    top = argparse.ArgumentParser()
    pf.register(top.add_subparsers(dest="verb"))
    args = top.parse_args(["port-forward", "pod/web", "8080:80", ":90",
                           "--address", "127.0.0.1,::1", "--address", "10.0.0.5"])
    assert args.pod == "pod/web"
    assert args.ports == ["8080:80", ":90"]
    assert pf.parse_addresses(args.address) == [
        ("127.0.0.1", False), ("::1", False), ("10.0.0.5", False)]
    assert args.func is pf.run


def test_no_ports_is_a_usage_error():
    top = argparse.ArgumentParser()
    pf.register(top.add_subparsers(dest="verb"))
    args = top.parse_args(["port-forward", "web"])
    with pytest.raises(CommandError, match="list of ports are required") as err:
        args.func(args, paths=None)
    assert err.value.code == 2


@pytest.mark.parametrize("ip, port, want", [
    ("127.0.0.1", 8080, "127.0.0.1:8080"), ("::1", 8080, "[::1]:8080"),
    ("fe80::1", 1, "[fe80::1]:1"), ("0.0.0.0", 0, "0.0.0.0:0"),
])
def test_format_hostport_like_kubectl(ip, port, want):
    assert format_hostport(ip, port) == want
