"""Just enough of Kubernetes' protobuf encoding to read the request bodies
kubectl sends that way: a ConfigMap or a Secret, a Namespace's metadata,
a SelfSubjectAccessReview's spec. The one protobuf reader of the server.

`kubectl create configmap|secret` POST with its typed client, whose body
is `application/vnd.kubernetes.protobuf` (no JSON fallback): the 4 magic
bytes "k8s\\0", then a runtime.Unknown message {typeMeta: {apiVersion,
kind}, raw: the object's own message, ...} (apimachinery
pkg/runtime/serializer/protobuf). The object's field numbers are those of
k8s.io/api/core/v1/generated.proto; maps are repeated {1: key, 2: value}
entries. Answers go back as JSON, which kubectl accepts.

Only the fields a user sets are read (metadata name, generateName,
namespace, labels, annotations; the data maps, type, immutable);
anything else is skipped, as a field an older decoder does not know.
"""
from __future__ import annotations

import base64

MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    pass


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ProtobufError("truncated varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """The (field number, value) pairs of one message: varints as ints,
    length-delimited fields as bytes; fixed-width fields skipped."""
    out, i = [], 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            size, i = _varint(buf, i)
            if i + size > len(buf):
                raise ProtobufError("truncated field")
            value, i = buf[i:i + size], i + size
        elif wire in (1, 5):    # fixed64, fixed32: no field read here has one
            i += 8 if wire == 1 else 4
            if i > len(buf):
                raise ProtobufError("truncated fixed field")
            continue
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        out.append((num, value))
    return out


def _text(b) -> str:
    if not isinstance(b, bytes):
        raise ProtobufError("expected a string")
    return b.decode("utf-8")


def grouped(buf: bytes) -> dict[int, list]:
    """The fields of one message: number -> [values, in order] (a repeated
    field has several; for a plain one the last counts)."""
    out: dict[int, list] = {}
    for num, value in fields(buf):
        out.setdefault(num, []).append(value)
    return out


def _last(f: dict[int, list], num: int, default=b""):
    return f[num][-1] if num in f else default


def unwrap(body: bytes) -> tuple[dict[int, list], bytes]:
    """(typeMeta fields, the object's own message) of a body in the "k8s\\0"
    envelope (runtime.Unknown: 1 typeMeta {1 apiVersion, 2 kind}, 2 raw)."""
    if not body.startswith(MAGIC):
        raise ProtobufError("not a Kubernetes protobuf message (no k8s magic)")
    unknown = grouped(body[len(MAGIC):])
    return grouped(_last(unknown, 1)), _last(unknown, 2)


def _map(entries: list, value_bytes: bool) -> dict:
    out = {}
    for entry in entries:
        kv = dict(fields(entry))
        key = _text(kv.get(1, b""))
        value = kv.get(2, b"")
        out[key] = base64.b64encode(value).decode() if value_bytes else _text(value)
    return out


def _meta(buf: bytes) -> dict:
    meta: dict = {}
    labels, annotations = [], []
    for num, value in fields(buf):
        if num == 1:
            meta["name"] = _text(value)
        elif num == 2:
            meta["generateName"] = _text(value)
        elif num == 3:
            meta["namespace"] = _text(value)
        elif num == 11:
            labels.append(value)
        elif num == 12:
            annotations.append(value)
    if labels:
        meta["labels"] = _map(labels, False)
    if annotations:
        meta["annotations"] = _map(annotations, False)
    return meta


# kind -> field number in its generated.proto message -> (JSON key, reader of
# the field's values: a map of strings, of bytes (base64 in JSON), the last value)
KINDS = {
    "ConfigMap": {2: ("data", lambda v: _map(v, False)), 3: ("binaryData", lambda v: _map(v, True)),
                  4: ("immutable", lambda v: bool(v[-1]))},
    "Secret": {2: ("data", lambda v: _map(v, True)), 3: ("type", lambda v: _text(v[-1])),
               4: ("stringData", lambda v: _map(v, False)), 5: ("immutable", lambda v: bool(v[-1]))},
}


def decode(body: bytes) -> dict:
    """A ConfigMap or Secret object (as JSON has it) from a protobuf body."""
    type_meta, raw = unwrap(body)
    kind = _text(_last(type_meta, 2))
    obj: dict = {"apiVersion": _text(_last(type_meta, 1, b"v1")) or "v1", "kind": kind}
    groups = grouped(raw)
    if 1 in groups:
        obj["metadata"] = _meta(groups[1][-1])
    if kind not in KINDS:
        raise ProtobufError(f"cannot read a {kind or 'message without kind'} as protobuf; "
                            f"send JSON")
    for num, (key, read) in KINDS[kind].items():
        if num in groups:
            obj[key] = read(groups[num])
    return obj


def decode_metadata(body: bytes) -> dict:
    """{"apiVersion", "kind", "metadata"} of any object in a protobuf body
    (`kubectl create namespace` sends one): ObjectMeta is field 1 of every kind."""
    type_meta, raw = unwrap(body)
    obj: dict = {"metadata": {}}
    for num, key in ((1, "apiVersion"), (2, "kind")):
        if num in type_meta:
            obj[key] = _text(type_meta[num][-1])
    meta = grouped(raw).get(1)
    if meta:
        obj["metadata"] = _meta(meta[-1])
    return obj


def review_spec(body: bytes) -> dict:
    """spec of a SelfSubjectAccessReview (`kubectl auth can-i` sends it):
    the review's field 2, its attributes as authorization/v1's generated.proto
    numbers them."""
    _, raw = unwrap(body)
    spec = grouped(_last(grouped(raw), 2))

    def strings(buf: bytes, names: dict[int, str]) -> dict:
        f = grouped(buf)
        return {name: _text(f[n][-1]) for n, name in names.items() if n in f}
    out = {}
    if 1 in spec:
        out["resourceAttributes"] = strings(spec[1][-1], {
            1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource",
            6: "subresource", 7: "name"})
    if 2 in spec:
        out["nonResourceAttributes"] = strings(spec[2][-1], {1: "path", 2: "verb"})
    return out


# ---- encoding (for tests: what kubectl's typed client sends) -------------------

def _key(num: int, wire: int) -> bytes:
    return _enc_varint(num << 3 | wire)


def _enc_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num: int, value) -> bytes:
    if isinstance(value, bool) or isinstance(value, int):
        return _key(num, 0) + _enc_varint(int(value))
    if isinstance(value, str):
        value = value.encode()
    return _key(num, 2) + _enc_varint(len(value)) + value


def encode_map(num: int, mapping: dict, value_bytes: bool = False) -> bytes:
    return b"".join(field(num, field(1, k) + field(2, v if not value_bytes else
                                                   base64.b64decode(v)))
                    for k, v in mapping.items())
