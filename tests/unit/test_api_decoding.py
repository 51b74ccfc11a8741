"""decoding.py: request bodies with kube-apiserver's error words (pure)."""
from __future__ import annotations

import pytest

from minipod.runtime.apiserver import decoding
from minipod.runtime.apiserver.objects import ApiError


def message(body: bytes, yaml: bool = False) -> str:
    with pytest.raises(ApiError) as e:
        decoding.loads(body, yaml=yaml)
    assert (e.value.code, e.value.reason) == (400, "BadRequest")
    return e.value.message


@pytest.mark.parametrize("body,words", [
    (b'{"kind": "Pod",', "unexpected end of JSON input"),
    (b"", None),
    (b'{"kind": Pod}', "invalid character 'P' looking for beginning of value"),
    (b'{kind: 1}', "invalid character 'k' looking for beginning of object key string"),
    (b'{"a" 1}', "invalid character '1' after object key"),
    (b'{"a": 1 "b": 2}', "invalid character '\"' after object key:value pair"),
    (b'[1 2]', "invalid character '2' after array element"),
    (b'{} x', "invalid character 'x' after top-level value"),
    (b"[" * 100000, "exceeded max depth"),
])
def test_json_errors_in_go_words(body, words):
    if words is None:
        assert decoding.loads(body) == {}
        return
    assert message(body) == "couldn't get version/kind; json parse error: " + words


def test_yaml_error_is_one_line_with_its_line():
    text = message(b"kind: Pod\nmetadata: [a\n", yaml=True)
    assert text.startswith("error converting YAML to JSON: yaml: line ") and "\n" not in text


def test_yaml_alias_bomb_is_refused_before_anything_walks_it():
    bomb = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    assert message(bomb.encode(), yaml=True) == \
        "error converting YAML to JSON: yaml: document contains excessive aliasing"
    # a few aliases, as manifests use them, are fine
    ok = b"base: &b {image: x}\nc1: *b\nc2: *b\n"
    assert decoding.loads(ok, yaml=True)["c2"] == {"image": "x"}
