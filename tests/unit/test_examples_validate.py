"""Every manifest a user is handed (examples/, and docs/pods/ the docs run)
validates against the real Kubernetes schema, strictly (no unknown field):
the same files run unchanged on a cluster (`kubectl apply -f`).

kubernetes-validate (the test extra) ships upstream's OpenAPI schemas; each
document of each file is checked against its newest version. The files that
show a mistake on purpose must fail, and for the reason they show.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

kv = pytest.importorskip("kubernetes_validate",
                         reason="kubernetes-validate (the test extra) is not installed")

REPO = Path(__file__).resolve().parent.parent.parent
FILES = sorted(p for d in ("examples", "docs/pods") for p in (REPO / d).rglob("*")
               if p.suffix in (".yaml", ".yml", ".json"))
# mistakes shown on purpose -> what the schema says about them
BROKEN_ON_PURPOSE = {
    "examples/kubia-manual-broken.yaml": "kind: 'pod' is not one of ['Pod']",
    "docs/pods/mistakes.yaml": "'sleep 3600' is not of type 'array'",
}


def documents(path: Path) -> list[dict]:
    text = path.read_text()
    if path.suffix == ".json":
        return [json.loads(text)]
    return [d for d in yaml.safe_load_all(text) if d is not None]


def test_there_are_examples():
    assert REPO / "examples" / "kubia.yaml" in FILES
    assert set(BROKEN_ON_PURPOSE) <= {str(p.relative_to(REPO)) for p in FILES}


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_manifest_validates_against_the_kubernetes_schema(path):
    rel = str(path.relative_to(REPO))
    docs = documents(path)
    assert docs, f"{rel} holds no document"
    version = kv.latest_version()
    errors = []
    for doc in docs:
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as e:
            where = ".".join(str(p) for p in e.path)
            errors.append(f"{where + ': ' if where else ''}{e.message}")
    if rel in BROKEN_ON_PURPOSE:
        assert any(BROKEN_ON_PURPOSE[rel] in e for e in errors), errors
    else:
        assert errors == [], f"{rel} does not validate against Kubernetes {version}"
