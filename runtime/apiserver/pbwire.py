"""Just enough of Kubernetes' protobuf encoding to read an object's metadata.

kubectl's typed clients send some request bodies as protobuf
(`Content-Type: application/vnd.kubernetes.protobuf`; `kubectl create
namespace` does). The body is the envelope "k8s\\x00" followed by a
runtime.Unknown message, whose `raw` field holds the object itself
(k8s.io/apimachinery/pkg/runtime/generated.proto):

    Unknown     1 typeMeta {1 apiVersion, 2 kind}   2 raw   3 contentEncoding   4 contentType
    <Kind>      1 metadata (ObjectMeta)              2 spec  3 status
    ObjectMeta  1 name  2 generateName  3 namespace  11 labels  12 annotations
                (a map is repeated {1 key, 2 value})

The protobuf wire format (protobuf.dev/programming-guides/encoding): each
field is a varint key (number << 3 | wire type), then a varint (type 0),
8 bytes (1), a varint length and that many bytes (2), or 4 bytes (5).
Anything malformed is a ValueError; no field is trusted beyond its length.
"""
from __future__ import annotations

MAGIC = b"k8s\x00"


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("protobuf: truncated varint")
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) of every field of one message, in order:
    ints for varints and fixed-size fields, bytes for length-delimited ones."""
    out = []
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if i + size > len(data):
                raise ValueError("protobuf: truncated fixed field")
            value, i = int.from_bytes(data[i:i + size], "little"), i + size
        elif wire == 2:
            size, i = _varint(data, i)
            if i + size > len(data):
                raise ValueError(f"protobuf: field {number} runs past the end")
            value, i = data[i:i + size], i + size
        else:
            raise ValueError(f"protobuf: wire type {wire} is not supported")
        out.append((number, value))
    return out


def _text(value) -> str:
    if not isinstance(value, bytes):
        raise ValueError("protobuf: a string field is not length-delimited")
    return value.decode()


def decode_metadata(body: bytes) -> dict:
    """{"apiVersion", "kind", "metadata": {name, generateName, namespace,
    labels, annotations}} of a protobuf request body (only those fields)."""
    if not body.startswith(MAGIC):
        raise ValueError("protobuf: the body does not start with the k8s envelope")
    type_meta, raw = b"", b""
    for number, value in fields(body[len(MAGIC):]):
        if number == 1 and isinstance(value, bytes):
            type_meta = value
        elif number == 2 and isinstance(value, bytes):
            raw = value
    obj: dict = {"metadata": {}}
    for number, value in fields(type_meta):
        if number in (1, 2):
            obj["apiVersion" if number == 1 else "kind"] = _text(value)
    for number, value in fields(raw):
        if number != 1 or not isinstance(value, bytes):
            continue
        meta = obj["metadata"]
        for n, v in fields(value):
            if n in (1, 2, 3):
                meta[("name", "generateName", "namespace")[n - 1]] = _text(v)
            elif n in (11, 12):
                entry = dict(fields(v if isinstance(v, bytes) else b""))
                meta.setdefault("labels" if n == 11 else "annotations", {})[
                    _text(entry.get(1, b""))] = _text(entry.get(2, b""))
    return obj
