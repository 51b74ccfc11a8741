"""Label and field selectors: parsing, matching, and kube-apiserver's errors."""
from __future__ import annotations

import pytest

from minipod.runtime.apiserver.selectors import (SelectorError, parse_field_selector,
                                                 parse_label_selector)

LABELS = {"app": "web", "tier": "front", "example.com/team": "a", "n": "5"}


@pytest.mark.parametrize("selector, matches", [
    ("", True),
    (None, True),
    ("app=web", True),
    ("app==web", True),
    ("app = web", True),
    ("app!=web", False),
    ("app!=db", True),
    ("missing!=x", True),                 # != matches objects without the key
    ("app=db", False),
    ("app", True),
    ("missing", False),
    ("!missing", True),
    ("!app", False),
    ("app in (web,db)", True),
    ("app in (db, cache)", False),
    ("app notin (db)", True),
    ("app notin (web,db)", False),
    ("missing notin (x)", True),
    ("missing in (x)", False),
    ("app=web,tier=front", True),         # comma = AND
    ("app=web,tier=back", False),
    ("  app = web ,  tier in ( front )  ", True),
    ("example.com/team=a", True),
    ("app=", False),                      # empty value: key must be "" valued
    ("n>4", True),
    ("n<5", False),
    ("app>1", False),                     # non-numeric label never compares
    ("tier in (front,)", True),
])
def test_label_selector_matching(selector, matches):
    assert parse_label_selector(selector).matches(LABELS) is matches


def test_empty_value_matches_an_empty_label():
    assert parse_label_selector("app=").matches({"app": ""})
    assert parse_label_selector("app in (,x)").matches({"app": ""})


def test_matching_none_labels():
    assert parse_label_selector("!app").matches(None)
    assert not parse_label_selector("app").matches(None)


@pytest.mark.parametrize("selector, message", [
    ("app in web", "found 'web', expected: '(' after set operator"),
    ("app in ()", "values set can't be empty"),
    ("app web", "found 'web', expected: in, notin, =, ==, !=, gt, lt"),
    ("app=web tier=front", "found 'tier', expected: ','"),
    ("app=web,", "found '', expected: identifier after ','"),
    ("!", "found '', expected: identifier after '!'"),
    ("=web", "found '=', expected: identifier"),
    ("-app=x", 'key: Invalid value: "-app": name part must consist of alphanumeric'),
    ("a" * 64 + "=x", "name part must be no more than 63 characters"),
    ("Example.com/x=y", "prefix part a lowercase RFC 1123 subdomain"),
    ("/x=y", "prefix part must be non-empty"),
    ("app=-web", 'values[0][app]: Invalid value: "-web": a valid label must consist'),
    ("app in (ok, b@d)", 'values[1][app]: Invalid value: "b@d"'),
    ("n>x", "the value must be an integer"),
])
def test_label_selector_errors(selector, message):
    with pytest.raises(SelectorError, match="^unable to parse requirement: ") as e:
        parse_label_selector(selector)
    assert message in str(e.value)


POD = {"metadata": {"name": "web", "namespace": "default"},
       "spec": {"nodeName": "minipod", "restartPolicy": "Always", "hostNetwork": False},
       "status": {"phase": "Running", "podIP": "10.88.0.5"}}


@pytest.mark.parametrize("selector, matches", [
    ("", True),
    ("metadata.name=web", True),
    ("metadata.name==web", True),
    ("metadata.name!=web", False),
    ("status.phase=Running,metadata.namespace=default", True),
    ("metadata.namespace=default,status.phase=Pending", False),   # order varies in kubectl
    ("spec.nodeName=minipod", True),
    ("spec.restartPolicy=Never", False),
    ("status.podIP=10.88.0.5", True),
    ("spec.hostNetwork=false", True),
    ("spec.schedulerName=", True),         # absent field = ""
])
def test_field_selector_pod(selector, matches):
    assert parse_field_selector(selector).matches(POD) is matches


def test_field_selector_events_describe_query():
    ev = {"metadata": {"name": "web.1", "namespace": "default"}, "type": "Normal",
          "reason": "Started", "source": {"component": "kubelet"},
          "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default", "uid": "u1"}}
    sel = parse_field_selector("involvedObject.uid=u1,involvedObject.name=web,"
                               "involvedObject.namespace=default", kind="Event")
    assert sel.matches(ev)
    assert not parse_field_selector("type=Warning", kind="Event").matches(ev)
    assert parse_field_selector("source=kubelet", kind="Event").matches(ev)


def test_field_selector_escapes_and_index_hint():
    sel = parse_field_selector(r"metadata.name=a\,b")
    assert sel.terms == [("metadata.name", "==", "a,b")]
    assert sel.value_of("metadata.name") == "a,b"
    assert parse_field_selector("metadata.name!=x").value_of("metadata.name") is None


@pytest.mark.parametrize("selector, message", [
    ("spec.containers=x", "field label not supported: spec.containers"),
    ("status.phase", "invalid selector: 'status.phase'; can't understand 'status.phase'"),
    ("metadata.name=a=b", "unescaped '='"),
    ("metadata.name=a\\x", "invalid escape sequence"),
])
def test_field_selector_errors(selector, message):
    with pytest.raises(SelectorError) as e:
        parse_field_selector(selector)
    assert message in str(e.value)
