"""Bad manifests: every one gets a clear ManifestError, fast, never a traceback.

Two halves:
1. The corpus in tests/fixtures/bad/ (truncated YAML and JSON, wrong types
   everywhere, huge values, billion laughs, unicode and odd names, binary
   junk, NUL bytes, UTF-16, deep nesting, 5 MB files…): each file's error
   names the file and, where the input allows, the line, and says what is
   wrong, and it returns (a hang guard on CPU time, ten times the case's
   budget: not a speed test, which belongs in bench/, but a billion laughs
   that expands would never end).
2. Property-based fuzzing (hypothesis) of manifest.load_text: whatever the
   text, it returns pods or raises ManifestError, nothing else; and a valid
   pod survives YAML and JSON round trips unchanged.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import pytest
import yaml

from minipod.runtime.api.fields import NOT_IMPLEMENTED, SUPPORTED
from minipod.runtime.api.manifest import ManifestError, load_file, load_object, load_text

BAD = Path(__file__).resolve().parent.parent / "fixtures" / "bad"
sys.path.insert(0, str(BAD))
import badcorpus  # noqa: E402  (the corpus's own helper, beside its files)

MAX_LINE = 1000           # a problem line longer than this echoes the input back


def check_error(path: Path, case: badcorpus.Case) -> ManifestError:
    """Load path; assert a clear, located ManifestError within the budget."""
    t = time.process_time()  # CPU time: other load on the machine does not count
    try:
        load_file(str(path))
    except ManifestError as e:
        error = e
    except BaseException as e:   # anything else would reach the user as a traceback
        pytest.fail(f"{path.name}: {type(e).__name__} escaped the loader: {e!s:.300}")
    else:
        pytest.fail(f"{path.name}: accepted, but it is not a valid manifest")
    elapsed = time.process_time() - t
    assert error.problems, "a ManifestError lists its problems"
    first = error.problems[0]
    for p in error.problems:
        assert p.source == str(path), f"every problem names the file: {p}"
        assert len(str(p)) < MAX_LINE, (f"{path.name}: a problem of {len(str(p))} characters "
                                        f"echoes the input: {str(p)[:200]}…")
        assert "Traceback" not in str(p)
    assert case.says in str(error), f"{path.name}: expected {case.says!r} in:\n{error}"
    if case.line is not None:
        assert first.line == case.line, f"{path.name}: first problem at line {first.line}, " \
                                        f"expected {case.line}:\n{error}"
    assert elapsed < 10 * case.budget, (f"{path.name}: {elapsed:.2f}s of CPU: the loader "
                                        f"does not stop on this input")
    return error


@pytest.mark.parametrize("name,case", sorted(badcorpus.committed().items()))
def test_committed_corpus_manifest_gets_a_clear_error(name, case):
    check_error(badcorpus.MANIFESTS / name, case)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad-manifests")
    return d, badcorpus.generate_manifests(d)


@pytest.mark.parametrize("name", sorted(badcorpus.GENERATED))
def test_generated_corpus_manifest_gets_a_clear_error(generated, name):
    d, cases = generated
    check_error(d / name, cases[name])


def test_a_bad_second_document_fails_the_whole_file():
    error = check_error(badcorpus.MANIFESTS / "second-doc-broken.yaml",
                        badcorpus.EXPECT["second-doc-broken.yaml"])
    assert len(error.problems) == 1     # the first pod is fine: one problem, the second's


def test_the_billion_laughs_stop_early_and_name_the_line():
    error = check_error(badcorpus.MANIFESTS / "billion-laughs.yaml",
                        badcorpus.EXPECT["billion-laughs.yaml"])
    assert "nested aliases" in str(error)


def test_a_python_tag_never_runs_anything(tmp_path):
    marker = Path("/tmp/minipod-pwned")
    existed = marker.exists()
    check_error(badcorpus.MANIFESTS / "python-tag.yaml", badcorpus.EXPECT["python-tag.yaml"])
    assert marker.exists() == existed


# ---- property-based: hypothesis -------------------------------------------------------

try:
    from hypothesis import HealthCheck, example, given, settings
    from hypothesis import strategies as st
except ImportError:     # the test extra brings it: pip install -e '.[test]'
    st = None

needs_hypothesis = pytest.mark.skipif(st is None, reason="hypothesis is not installed "
                                      "(pip install hypothesis, or the test extra)")


def load_or_manifest_error(text: str):
    """load_text's whole contract: pods, or ManifestError. Nothing else."""
    try:
        return load_text(text, "fuzz.yaml")
    except ManifestError as e:
        assert e.problems and all(p.source == "fuzz.yaml" for p in e.problems)
        return None


if st is not None:
    FUZZ = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

    # Every field name the validator knows, so random documents reach deep.
    FIELDS = sorted({f for group in (SUPPORTED, NOT_IMPLEMENTED)
                     for fields in group.values() for f in fields})
    scalars = (st.none() | st.booleans() | st.integers() | st.floats()
               | st.text(max_size=20) | st.sampled_from(["v1", "Pod", "TCP", "Always", "80",
                                                         "100m", "1Gi", "/x", "busybox"]))
    junk = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(FIELDS) | st.text(max_size=8), inner, max_size=5), max_leaves=30)

    dns_label = st.from_regex(r"[a-z]([a-z0-9-]{0,14}[a-z0-9])?", fullmatch=True)
    label_key = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9._-]{0,10}[a-zA-Z0-9])?", fullmatch=True)
    any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)

    @st.composite
    def containers(draw, names):
        ports = draw(st.lists(st.tuples(st.integers(1, 65535), st.sampled_from(["TCP", "UDP"])),
                              max_size=3, unique=True))
        env_names = draw(st.lists(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True),
                                  max_size=3, unique=True))
        out = []
        for name in names:
            c = {"name": name, "image": draw(st.sampled_from(
                ["busybox", "busybox:1.36", "docker.io/library/busybox:latest",
                 "127.0.0.1:5000/team/app:v2"]))}
            if draw(st.booleans()):
                c["command"] = draw(st.lists(any_text, min_size=1, max_size=3))
            if draw(st.booleans()):
                c["args"] = draw(st.lists(any_text, max_size=3))
            if env_names:
                c["env"] = [{"name": n, "value": draw(any_text)} for n in env_names]
            if ports:
                c["ports"] = [{"containerPort": p, "protocol": proto} for p, proto in ports]
                ports = []     # one container declares them: no duplicates in the pod
            out.append(c)
        return out

    @st.composite
    def valid_pods(draw):
        names = draw(st.lists(dns_label, min_size=1, max_size=3, unique=True))
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": draw(dns_label)},
               "spec": {"containers": draw(containers(names))}}
        labels = draw(st.dictionaries(label_key, label_key | st.just(""), max_size=3))
        if labels:
            pod["metadata"]["labels"] = labels
        if draw(st.booleans()):
            pod["spec"]["restartPolicy"] = draw(st.sampled_from(["Always", "OnFailure", "Never"]))
        if draw(st.booleans()):
            pod["spec"]["terminationGracePeriodSeconds"] = draw(st.integers(0, 10**6))
        return pod

    def paths_of(obj, prefix=()):
        yield prefix
        if isinstance(obj, dict):
            for k, v in obj.items():
                yield from paths_of(v, prefix + (k,))
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                yield from paths_of(v, prefix + (i,))

    def replaced(obj, path, value):
        if not path:
            return value
        out = obj.copy()
        out[path[0]] = replaced(obj[path[0]], path[1:], value)
        return out

    @needs_hypothesis
    @FUZZ
    @given(st.text())
    def test_fuzz_any_text_is_a_manifest_error_or_pods(text):
        load_or_manifest_error(text)

    @needs_hypothesis
    @FUZZ
    @given(junk, st.booleans())
    def test_fuzz_random_documents_with_pod_fields(doc, as_json):
        text = json.dumps(doc) if as_json else yaml.safe_dump(doc, allow_unicode=True)
        load_or_manifest_error(text)

    @needs_hypothesis
    @FUZZ
    @given(valid_pods(), st.data(), st.booleans())
    def test_fuzz_a_valid_pod_with_one_value_broken(pod, data, as_json):
        path = data.draw(st.sampled_from(list(paths_of(pod))[1:]))
        broken = replaced(pod, path, data.draw(junk))
        text = json.dumps(broken) if as_json else yaml.safe_dump(broken, allow_unicode=True)
        load_or_manifest_error(text)

    # JSON may hold DEL and C1 controls raw in a string; YAML's reader refuses
    # them, and takes a raw U+0085 (NEL) for a line break
    RAW_CONTROLS = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
                    "spec": {"containers": [{"name": "a", "image": "busybox",
                                             "args": ["\x7f", "\x9b[0m", "a\x85b"]}]}}

    @needs_hypothesis
    @FUZZ
    @given(valid_pods())
    @example(RAW_CONTROLS)
    def test_fuzz_valid_pods_round_trip_through_yaml_and_json(pod):
        # safe_dump as `get -o yaml` calls it: non-ASCII escaped (PyYAML writes a raw
        # U+0085 that its own reader takes for a line break)
        as_yaml, _ = load_text(yaml.safe_dump(pod), "pod.yaml")
        as_json, _ = load_text(json.dumps(pod, ensure_ascii=False), "pod.json")
        direct = load_object(pod, "pod.yaml")
        assert as_yaml[0].raw == pod == as_json[0].raw
        same = dataclasses.replace(as_yaml[0], source="", line=None)
        assert same == dataclasses.replace(as_json[0], source="", line=None)
        assert same == dataclasses.replace(direct, source="", line=None)
        # what `get -o yaml` prints of raw loads again to the same pod
        again, _ = load_text(yaml.safe_dump(as_yaml[0].raw, sort_keys=False), "again.yaml")
        assert dataclasses.replace(again[0], source="", line=None) == same
        assert [c.name for c in same.containers] == \
            [c["name"] for c in pod["spec"]["containers"]]
else:
    @needs_hypothesis
    def test_fuzz_needs_hypothesis():
        pass
