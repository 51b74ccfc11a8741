"""The protobuf reader for request bodies (runtime/apiserver/protobuf.py),
against bytes built here by the wire format's rules."""
from __future__ import annotations

import pytest

from minipod.runtime.apiserver import protobuf as pbwire


def _varint(n: int) -> bytes:
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def _field(number: int, value) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _namespace(name: str, labels: dict) -> bytes:
    meta = _field(1, name) + _field(7, 3) + b"".join(
        _field(11, _field(1, k) + _field(2, v)) for k, v in labels.items())
    raw = _field(1, meta) + _field(2, b"") + _field(3, b"")
    unknown = _field(1, _field(1, "v1") + _field(2, "Namespace")) + _field(2, raw) \
        + _field(3, "") + _field(4, "")
    return pbwire.MAGIC + unknown


def test_reads_what_kubectl_create_namespace_sends():
    obj = pbwire.decode_metadata(_namespace("team-a", {"team": "a", "x" * 200: "long"}))
    assert obj == {"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": "team-a", "labels": {"team": "a", "x" * 200: "long"}}}


@pytest.mark.parametrize("body", [
    b"k8s\x00\x0a\x05ab",            # a field longer than the body
    b"k8s\x00\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",   # a varint without end
    b"k8s\x00\x0b",                  # wire type 3 (groups)
    b'{"kind": "Namespace"}',        # no envelope
])
def test_malformed_bodies_are_a_value_error(body):
    with pytest.raises(ValueError):
        pbwire.decode_metadata(body)
