"""Unit tests for minipod.runtime.api.manifest: parse -> validate, no kernel.

Most tests assert on the text a user reads: file, line, field and message.
"""

import io
import json
import sys
import textwrap
import time
from fractions import Fraction
from pathlib import Path

import pytest

from minipod.runtime.api import manifest, quantity
from minipod.runtime.api.manifest import (ManifestError, Problem, default_pull_policy,
                                      load_file, load_object, load_text)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "manifests"

# A valid pod to start from; tests change one thing in it.
BASE = """\
apiVersion: v1
kind: Pod
metadata:
  name: kubia
spec:
  containers:
  - name: kubia
    image: luksa/kubia
{extra}"""


def load(text):
    return load_text(textwrap.dedent(text), "pod.yaml")


def errors(text):
    """The errors a user would read for ``text``, one string each."""
    with pytest.raises(ManifestError) as info:
        load(text)
    return [str(p) for p in info.value.problems]


def container_errors(extra):
    """Errors for BASE with ``extra`` lines added to its container."""
    return errors(BASE.format(extra=textwrap.indent(textwrap.dedent(extra),
                                                    "    ")))


def warnings(text):
    _, found = load(text)
    return [str(p) for p in found]


# --- the seed's example ---------------------------------------------------

def test_seed_example_gives_exactly_the_two_fixes():
    path = str(FIXTURES / "seed-kubia-manual.yaml")
    with pytest.raises(ManifestError) as info:
        load_file(path)
    problems = info.value.problems
    assert [(p.line, p.field) for p in problems] == [
        (2, "kind"), (7, "spec.containers[0].images")]
    assert str(problems[0]) == (
        f'{path}:2: kind: kind "pod" is not supported; kind is '
        'case-sensitive: did you mean "Pod"?')
    assert str(problems[1]) == (
        f'{path}:7: spec.containers[0].images: unknown field "images"; '
        'did you mean "image"?')
    # str(error) is every problem, one a line, in file order.
    assert str(info.value).splitlines() == [str(p) for p in problems]


def test_fixed_seed_example_loads():
    pods, found = load_file(str(FIXTURES / "kubia-manual.yaml"))
    assert found == []
    [pod] = pods
    assert (pod.name, pod.namespace, pod.labels, pod.annotations) == (
        "kubia-manual", "default", {}, {})
    assert pod.restart_policy == "Always"
    assert pod.termination_grace_period_seconds == 30
    assert pod.line == 2                      # the first field, after a comment
    [c] = pod.containers
    assert c == manifest.Container(
        name="kubia", image="luksa/kubia", image_pull_policy="Always",
        command=None, args=None, env=[], working_dir=None,
        ports=[manifest.Port(container_port=8080, protocol="TCP")])
    assert pod.raw["spec"]["containers"][0]["ports"] == [
        {"containerPort": 8080, "protocol": "TCP"}]


# --- documents and formats -------------------------------------------------

def test_multi_document_yaml():
    pods, found = load_file(str(FIXTURES / "multi.yaml"))
    assert found == []
    web, worker = pods
    assert (web.name, web.namespace, worker.name) == ("web", "shop", "worker")
    assert worker.line == 36
    assert web.labels == {"app.kubernetes.io/name": "web", "tier": "frontend"}
    assert web.annotations == {"example.com/owner": "team a"}
    assert (web.restart_policy, web.termination_grace_period_seconds) == (
        "OnFailure", 5)
    nginx, sidecar = web.containers
    assert nginx.command == ["nginx"]
    assert nginx.args == ["-g", "daemon off;"]
    assert nginx.working_dir == "/usr/share/nginx"
    assert nginx.env == [manifest.EnvVar("MODE", "production"),
                         manifest.EnvVar("EMPTY", "")]
    assert nginx.ports == [manifest.Port(80, "TCP", "http", 8080, "127.0.0.1")]
    assert nginx.image_pull_policy == "Never"
    assert sidecar.image_pull_policy == "IfNotPresent"      # a digest
    assert sidecar.command == ["sh", "-c", "sleep 3600"]


def test_json_input_with_tab_indentation():
    pods, _ = load_file(str(FIXTURES / "kubia-manual.json"))
    assert pods[0].name == "kubia-manual"
    assert pods[0].labels == {"app": "kubia"}
    assert pods[0].containers[0].image_pull_policy == "IfNotPresent"


def test_json_errors_name_lines():
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "j"},
           "spec": {"containers": [{"name": "c", "image": "busybox",
                                    "ports": [{"containerPort": "80"}]}]}}
    text = json.dumps(obj, indent=2)
    with pytest.raises(ManifestError) as info:
        load_text(text, "pod.json")
    [p] = info.value.problems
    assert p.line == text.splitlines().index(
        '            "containerPort": "80"') + 1
    assert p.message == 'expected an integer, got string "80"'


def test_empty_documents_are_skipped_but_an_empty_file_is_an_error():
    pods, _ = load("---\n---\n" + BASE.format(extra="") + "---\n")
    assert [p.name for p in pods] == ["kubia"]
    assert errors("# nothing here\n") == [
        "pod.yaml: no Pod found: the file has no documents"]


def test_errors_of_every_document_are_reported():
    second = BASE.format(extra="").replace("kind: Pod", "kind: Pdo")
    found = errors(BASE.format(extra="    imagePullPolicy: always\n")
                   + "---\n" + second)
    assert [s.split(": ")[0] for s in found] == ["pod.yaml:9", "pod.yaml:12"]


def test_duplicate_pod_names_in_one_file():
    found = errors(BASE.format(extra="") + "---\n" + BASE.format(extra=""))
    assert found == ['pod.yaml:10: metadata.name: pod "kubia" is defined twice'
                     ' in this file (first at line 1)']


def test_non_mapping_document():
    assert errors("- a\n- b\n") == [
        "pod.yaml:1: expected a Pod object (a map), got a list"]


# --- reading the file ------------------------------------------------------

def test_missing_file(tmp_path):
    path = str(tmp_path / "nope.yaml")
    with pytest.raises(ManifestError) as info:
        load_file(path)
    assert str(info.value) == f"{path}: cannot read file: No such file or directory"


def test_directory_is_not_a_file(tmp_path):
    with pytest.raises(ManifestError, match="cannot read file: Is a directory"):
        load_file(str(tmp_path))


def test_not_utf8(tmp_path):
    path = tmp_path / "pod.yaml"
    path.write_bytes(b"apiVersion: v1\nkind: Pod\x00\xff\n")
    with pytest.raises(ManifestError) as info:
        load_file(str(path))
    assert str(info.value) == (f"{path}:2: file is not UTF-8 text "
                               "(byte 0xff at offset 25)")


def test_stdin(monkeypatch):
    data = BASE.format(extra="").encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    pods, _ = load_file("-")
    assert (pods[0].name, pods[0].source) == ("kubia", "<stdin>")


# --- YAML itself -----------------------------------------------------------

def test_yaml_syntax_error_names_the_line():
    path = str(FIXTURES / "syntax-error.yaml")
    with pytest.raises(ManifestError) as info:
        load_file(path)
    [p] = info.value.problems
    assert p.line == 9
    assert p.message.startswith("invalid YAML: ")
    assert p.message.endswith("(column 4)")


def test_tab_indentation_in_yaml():
    [found] = errors("apiVersion: v1\nkind: Pod\nmetadata:\n\tname: x\n")
    assert found.startswith("pod.yaml:4: invalid YAML: ")
    assert "'\\t'" in found


def test_control_characters_are_refused():
    assert errors("apiVersion: v1\nkind: Pod\x01\n") == [
        "pod.yaml:2: invalid YAML: character #x0001 is not allowed"]


def test_alias_bomb_is_refused_quickly():
    start = time.monotonic()
    with pytest.raises(ManifestError) as info:
        load_file(str(FIXTURES / "alias-bomb.yaml"))
    assert time.monotonic() - start < 5
    assert "expands to more than 100000 YAML nodes" in str(info.value)


def test_small_aliases_are_fine():
    text = BASE.format(extra="    env: &env\n    - {name: A, value: a}\n"
                             "  - name: two\n    image: busybox\n"
                             "    env: *env\n")
    pods, _ = load(text)
    assert [c.env for c in pods[0].containers] == [
        [manifest.EnvVar("A", "a")]] * 2


def test_deep_nesting_is_refused():
    text = BASE.format(extra="") + "status: " + "[" * 200 + "]" * 200 + "\n"
    [found] = errors(text)
    assert "nested more than 100 levels deep" in found


def test_duplicate_key():
    assert errors(BASE.format(extra="    image: busybox\n")) == [
        'pod.yaml:9: spec.containers[0].image: field "image" appears twice '
        "in this map (first at line 8)"]


def test_merge_keys_and_custom_tags_are_refused():
    found = errors(BASE.format(extra="    <<: {workingDir: /}\n"
                                     "    args: [!shell x]\n"))
    assert found == [
        "pod.yaml:9: spec.containers[0]: YAML merge keys (<<) are not "
        "supported; write the fields out",
        "pod.yaml:10: spec.containers[0].args[0]: unsupported YAML tag !shell"]


def test_timestamps_stay_strings_in_raw():
    pods, _ = load(BASE.format(extra="").replace(
        "  name: kubia\n", "  name: kubia\n  creationTimestamp: 2024-01-02\n"))
    assert pods[0].raw["metadata"]["creationTimestamp"] == "2024-01-02"
    json.dumps(pods[0].raw)            # raw is plain data


# --- apiVersion and kind ---------------------------------------------------

def test_other_kinds_say_pods_only():
    path = str(FIXTURES / "deployment.yaml")
    with pytest.raises(ManifestError) as info:
        load_file(path)
    assert str(info.value) == (f'{path}:2: kind: kind "Deployment" is not '
                               "supported (document 1): minipod runs Pods, ConfigMaps and Secrets only; "
                               "nothing in this file is created")


def test_kind_list():
    [found] = errors("apiVersion: v1\nkind: List\nitems: []\n")
    assert 'put each object in its own YAML document, separated by "---"' in found


def test_api_version():
    assert errors(BASE.format(extra="").replace("v1", "apps/v1")) == [
        'pod.yaml:1: apiVersion: apiVersion "apps/v1" is not supported: '
        'Pods are apiVersion "v1"']
    assert errors(BASE.format(extra="").replace("apiVersion: v1\n", "")) == [
        'pod.yaml:1: apiVersion: required field is missing; add '
        '"apiVersion: v1"']


def test_kind_missing():
    assert errors(BASE.format(extra="").replace("kind: Pod\n", "")) == [
        'pod.yaml:1: kind: required field is missing; add "kind: Pod"']


# --- unknown and unimplemented fields --------------------------------------

def test_unknown_fields_at_every_level_get_suggestions():
    text = """\
    apiVersion: v1
    kind: Pod
    metadata:
      name: x
      label: {a: b}
    spec:
      restartPolicyy: Never
      containers:
      - name: c
        image: busybox
        imagePullPolicyy: Never
        ports:
        - containerport: 80
        env:
        - name: A
          valu: a
    statuss: {}
    """
    assert errors(text) == [
        'pod.yaml:5: metadata.label: unknown field "label"; did you mean '
        '"labels"?',
        'pod.yaml:7: spec.restartPolicyy: unknown field "restartPolicyy"; '
        'did you mean "restartPolicy"?',
        'pod.yaml:11: spec.containers[0].imagePullPolicyy: unknown field '
        '"imagePullPolicyy"; did you mean "imagePullPolicy"?',
        'pod.yaml:13: spec.containers[0].ports[0].containerport: unknown '
        'field "containerport"; did you mean "containerPort"?',
        'pod.yaml:16: spec.containers[0].env[0].valu: unknown field "valu"; '
        'did you mean "value"?',
        'pod.yaml:17: statuss: unknown field "statuss"; did you mean '
        '"status"?',
    ]


def test_unknown_field_at_the_wrong_level_says_where_it_belongs():
    found = errors(BASE.format(extra="").replace("spec:\n", "containers: []\n"
                                                 "spec:\n"))
    assert found == ['pod.yaml:5: containers: unknown field "containers"; '
                     '"containers" is a field of spec: check the indentation']


def test_unknown_field_without_any_match():
    assert container_errors("flavour: vanilla\n") == [
        'pod.yaml:9: spec.containers[0].flavour: unknown field "flavour"']


def test_unimplemented_fields_are_warnings_never_silent():
    pods, found = load_file(str(FIXTURES / "unimplemented.yaml"))
    fields = [(p.line, p.field) for p in found]
    assert fields == [
        (6, "metadata.uid"), (8, "spec.nodeSelector"),
        (10, "spec.tolerations"),
        (18, 'spec.containers[0].resources.limits["example.com/dongle"]'),
        (20, "spec.containers[0].livenessProbe.grpc"), (29, "status")]
    assert found[0].message == ("field is valid Kubernetes but not "
                                "implemented by minipod yet; ignored")
    assert found[3].message == ('resource "example.com/dongle" is valid '
                                "Kubernetes but not implemented by minipod "
                                "yet; ignored")
    assert found[4].message == ("gRPC probes are not implemented by minipod "
                                "yet; this probe is ignored")
    # valueFrom is kept for the agent to resolve; the probe is skipped.
    [c] = pods[0].containers
    assert c.env == [manifest.EnvVar("POD_IP", "", {"fieldRef": {
        "apiVersion": "v1", "fieldPath": "status.podIP"}}), manifest.EnvVar("PLAIN", "1")]
    assert c.liveness_probe is None
    assert c.resources == manifest.Resources()


@pytest.mark.parametrize("field", [
    "nodeSelector: {disk: ssd}", "affinity: {}", "tolerations: []",
    "dnsPolicy: ClusterFirst", "hostNetwork: false", "subdomain: web",
    "serviceAccountName: default", "priorityClassName: high"])
def test_fields_still_not_implemented_stay_warnings(field):
    found = warnings(BASE.format(extra="  " + field + "\n"))
    key = field.split(":")[0]
    assert found == [f"pod.yaml:9: spec.{key}: field is valid Kubernetes but "
                     "not implemented by minipod yet; ignored"]


def test_unknown_fields_in_status_are_errors():
    found = errors(BASE.format(extra="status:\n  phaze: Running\n"))
    assert found == ['pod.yaml:10: status.phaze: unknown field "phaze"; did '
                     'you mean "phase"?']


def test_value_and_value_from_together():
    found = container_errors("""\
        env:
        - name: A
          value: a
          valueFrom: {fieldRef: {fieldPath: status.podIP}}
        """)
    assert found == ['pod.yaml:12: spec.containers[0].env[0].valueFrom: may '
                     'not be set together with a non-empty "value"']


# --- required fields -------------------------------------------------------

def test_required_fields():
    assert errors("apiVersion: v1\nkind: Pod\n") == [
        "pod.yaml:1: metadata: required field is missing",
        "pod.yaml:1: spec: required field is missing"]
    assert errors("apiVersion: v1\nkind: Pod\nmetadata: {}\n"
                  "spec:\n  containers: []\n") == [
        "pod.yaml:3: metadata.name: required field is missing",
        "pod.yaml:5: spec.containers: a pod needs at least one container"]
    assert errors("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n"
                  "spec:\n  containers:\n  - {}\n") == [
        "pod.yaml:6: spec.containers[0].name: required field is missing",
        "pod.yaml:6: spec.containers[0].image: required field is missing"]
    assert container_errors("ports:\n- name: http\n") == [
        "pod.yaml:10: spec.containers[0].ports[0].containerPort: required "
        "field is missing"]
    assert container_errors("env:\n- value: x\n") == [
        "pod.yaml:10: spec.containers[0].env[0].name: required field is "
        "missing"]


def test_a_misspelt_required_field_is_reported_once():
    # "nmae" is taken for "name": no second message saying name is missing.
    text = BASE.format(extra="").replace("- name: kubia", "- nmae: kubia")
    assert errors(text) == [
        'pod.yaml:7: spec.containers[0].nmae: unknown field "nmae"; did you '
        'mean "name"?']


# --- types -----------------------------------------------------------------

@pytest.mark.parametrize("extra, message", [
    ("ports:\n- containerPort: \"80\"\n",
     'expected an integer, got string "80"'),
    ("ports:\n- containerPort: true\n", "expected an integer, got boolean true"),
    ("ports:\n- containerPort: 80.5\n", "expected an integer, got number 80.5"),
    ("command: sleep 10\n", 'expected a list, got string "sleep 10"'),
    ("env: {A: b}\n", "expected a list, got a map"),
    ("workingDir: [a]\n", "expected a string, got a list"),
])
def test_types(extra, message):
    [found] = container_errors(extra)
    assert found.endswith(": " + message)


def test_numbers_where_strings_are_expected_say_quote_them():
    found = container_errors("args: [--port, 8080]\nenv:\n- name: A\n"
                             "  value: 1.10\n")
    assert found == [
        "pod.yaml:9: spec.containers[0].args[1]: expected a string, got "
        "integer 8080; put it in quotes to make it a string",
        "pod.yaml:12: spec.containers[0].env[0].value: expected a string, got "
        "number 1.1; put the value in quotes to make it a string"]
    found = errors(BASE.format(extra="").replace(
        "  name: kubia\n", "  name: kubia\n  labels:\n    enabled: true\n"))
    assert found == [
        'pod.yaml:6: metadata.labels.enabled: expected a string, got boolean '
        'true; put the value in quotes to make it a string']


def test_grace_period():
    spec = BASE.format(extra="  terminationGracePeriodSeconds: {}\n")
    assert errors(spec.format(-1)) == [
        "pod.yaml:9: spec.terminationGracePeriodSeconds: must be between 0 "
        "and 9223372036854775807, got -1"]
    assert errors(spec.format("yes")) == [
        "pod.yaml:9: spec.terminationGracePeriodSeconds: expected an integer, "
        "got boolean true"]
    pods, _ = load(spec.format(0))
    assert pods[0].termination_grace_period_seconds == 0


def test_null_means_absent():
    pods, _ = load(BASE.format(extra="    command:\n  restartPolicy:\n"))
    assert pods[0].containers[0].command is None
    assert pods[0].restart_policy == "Always"


# --- names -----------------------------------------------------------------

def test_pod_name():
    text = BASE.format(extra="").replace("name: kubia\nspec", "name: {}\nspec")
    [found] = errors(text.format("Kubia_Manual"))
    assert found == (
        'pod.yaml:4: metadata.name: invalid name "Kubia_Manual": must be a '
        "lowercase RFC 1123 subdomain: at most 253 characters, lowercase "
        "letters, digits and '-' or '.', starting and ending with a letter or "
        'digit; did you mean "kubia-manual"?')
    assert "at most 253" in errors(text.format("a" * 254))[0]
    assert errors(text.format("-x")) and errors(text.format("x."))
    pods, _ = load(text.format("web.v1-2"))
    assert pods[0].name == "web.v1-2"


def test_namespace_is_a_label():
    text = BASE.format(extra="").replace("name: kubia\nspec",
                                         "name: kubia\n  namespace: a.b\nspec")
    [found] = errors(text)
    assert 'metadata.namespace: invalid name "a.b": must be a lowercase RFC ' \
        "1123 label" in found


def test_container_name_is_a_label():
    text = BASE.format(extra="").replace("- name: kubia", "- name: web.1")
    [found] = errors(text)
    assert found.startswith('pod.yaml:7: spec.containers[0].name: invalid '
                            'name "web.1": must be a lowercase RFC 1123 label')
    text = BASE.format(extra="").replace("- name: kubia", f"- name: {'a' * 64}")
    assert "at most 63 characters" in errors(text)[0]


@pytest.mark.parametrize("name, message", [
    ("http-metrics-abc", "must be no more than 15 characters"),
    ("8080", "must contain at least one letter"),
    ("HTTP", "must contain only lowercase letters, digits and '-'"),
    ("a--b", "must not contain consecutive hyphens"),
    ("-http", "must not begin or end with a hyphen"),
])
def test_port_names(name, message):
    found = container_errors(f"ports:\n- containerPort: 80\n  name: '{name}'\n")
    assert (f"pod.yaml:11: spec.containers[0].ports[0].name: invalid "
            f'port name "{name}": {message}') in found


@pytest.mark.parametrize("key, value, message", [
    ("app", "a" * 64, 'invalid label value "' + "a" * 64 + '": must be empty'),
    ("app", "-x", 'invalid label value "-x"'),
    ("Example.com/app", "x", "the prefix before '/' must be a lowercase DNS"),
    ("app_", "x", 'invalid label key "app_": the name must be at most 63'),
    ("a/b/c", "x", "the prefix before '/'"),
])
def test_labels(key, value, message):
    text = BASE.format(extra="").replace(
        "  name: kubia\n", f"  name: kubia\n  labels:\n    '{key}': '{value}'\n")
    [found] = errors(text)
    assert found.startswith("pod.yaml:6: metadata.labels")
    assert message in found


def test_valid_labels_and_empty_value():
    text = BASE.format(extra="").replace(
        "  name: kubia\n", "  name: kubia\n  labels:\n    example.com/a_b.c: ''"
        "\n    Tier: Front_End.1\n")
    pods, _ = load(text)
    assert pods[0].labels == {"example.com/a_b.c": "", "Tier": "Front_End.1"}


def test_annotation_keys():
    text = BASE.format(extra="").replace(
        "  name: kubia\n", "  name: kubia\n  annotations:\n    'bad key': x\n")
    [found] = errors(text)
    assert found.startswith('pod.yaml:6: metadata.annotations["bad key"]: '
                            'invalid annotation key "bad key"')


@pytest.mark.parametrize("name, ok", [
    ("PATH", True), ("_x", True), ("-x.y", True), ("my.var-1", True),
    ("1ABC", False), ("A=B", False), ("A B", False)])
def test_env_var_names(name, ok):
    extra = f"env:\n- name: '{name}'\n  value: v\n"
    if ok:
        pods, _ = load(BASE.format(extra=textwrap.indent(extra, "    ")))
        assert pods[0].containers[0].env == [manifest.EnvVar(name, "v")]
    else:
        [found] = container_errors(extra)
        assert found.startswith("pod.yaml:10: spec.containers[0].env[0].name: "
                                f'invalid environment variable name "{name}"')


def test_env_var_set_twice_is_a_warning():
    found = warnings(BASE.format(extra="    env:\n    - {name: A, value: 1a}\n"
                                       "    - {name: A, value: 2a}\n"))
    assert found == ['pod.yaml:11: spec.containers[0].env[1].name: environment '
                     'variable "A" is set twice (first at line 10); the last '
                     'value wins']


# --- ports -----------------------------------------------------------------

def test_protocol_is_case_sensitive():
    [found] = container_errors("ports:\n- containerPort: 80\n  protocol: tcp\n")
    assert found == ('pod.yaml:11: spec.containers[0].ports[0].protocol: '
                     'unsupported value "tcp": must be one of "TCP", "UDP", '
                     '"SCTP"; values are case-sensitive: did you mean "TCP"?')


def test_protocol_unknown():
    [found] = container_errors("ports:\n- containerPort: 80\n  protocol: ICMP\n")
    assert found.endswith('unsupported value "ICMP": must be one of "TCP", '
                          '"UDP", "SCTP"')


@pytest.mark.parametrize("extra, message", [
    ("containerPort: 0", "containerPort: must be between 1 and 65535, got 0"),
    ("containerPort: 65536",
     "containerPort: must be between 1 and 65535, got 65536"),
    ("containerPort: 80\n  hostPort: 70000",
     "hostPort: must be between 0 and 65535, got 70000"),
    ("containerPort: 80\n  hostPort: 8080\n  hostIP: localhost",
     'hostIP: "localhost" is not an IP address'),
])
def test_port_ranges(extra, message):
    [found] = container_errors(f"ports:\n- {extra}\n")
    assert found.split("ports[0].", 1)[1] == message


def test_host_port_zero_means_none_and_host_ip_alone_warns():
    text = BASE.format(extra="    ports:\n    - containerPort: 80\n"
                             "      hostPort: 0\n      hostIP: 127.0.0.1\n")
    assert load(text)[0][0].containers[0].ports[0].host_port is None
    found = warnings(text)
    assert found == ["pod.yaml:12: spec.containers[0].ports[0].hostIP: has "
                     "no effect without hostPort"]


def test_same_container_port_in_two_containers():
    path = str(FIXTURES / "same-port.yaml")
    with pytest.raises(ManifestError) as info:
        load_file(path)
    assert str(info.value) == (
        f"{path}:15: spec.containers[1].ports[0].containerPort: "
        'containerPort 8080/TCP is also declared by container "a" (line 11): '
        "the containers of a pod share one network namespace (same IP, same "
        "port space), so only one of them can listen on it")


def test_same_port_twice_in_one_container_is_a_warning():
    found = warnings(BASE.format(extra="    ports:\n    - containerPort: 80\n"
                                       "    - containerPort: 80\n"))
    assert found == ["pod.yaml:11: spec.containers[0].ports[1].containerPort: "
                     "containerPort 80/TCP is declared twice in this container "
                     "(first at line 10)"]


def test_duplicate_host_port():
    found = errors(BASE.format(extra="    ports:\n"
                                     "    - {containerPort: 80, hostPort: 8080}\n"
                                     "  - name: two\n    image: busybox\n"
                                     "    ports:\n"
                                     "    - {containerPort: 81, hostPort: 8080}\n"))
    assert found == ["pod.yaml:14: spec.containers[1].ports[0].hostPort: "
                     "hostPort 8080/TCP is already used in this pod (line 10)"]


def test_duplicate_port_names_in_a_container():
    found = container_errors("ports:\n- {containerPort: 80, name: http}\n"
                             "- {containerPort: 81, name: http}\n")
    assert found == ['pod.yaml:11: spec.containers[0].ports[1].name: duplicate '
                     'port name "http" in this container (first at line 10)']


def test_duplicate_container_names():
    found = errors(BASE.format(extra="  - name: kubia\n    image: busybox\n"))
    assert found == ['pod.yaml:9: spec.containers[1].name: duplicate container '
                     'name "kubia" (first at line 7)']


# --- policies and defaults -------------------------------------------------

def test_restart_policy():
    spec = BASE.format(extra="  restartPolicy: {}\n")
    assert errors(spec.format("always")) == [
        'pod.yaml:9: spec.restartPolicy: unsupported value "always": must be '
        'one of "Always", "OnFailure", "Never"; values are case-sensitive: '
        'did you mean "Always"?']
    assert errors(spec.format("Sometimes"))[0].endswith(
        'must be one of "Always", "OnFailure", "Never"')
    assert load(spec.format("Never"))[0][0].restart_policy == "Never"


def test_image_pull_policy_value():
    [found] = container_errors("imagePullPolicy: IfNotPresnt\n")
    assert found.endswith('did you mean "IfNotPresent"?')


def test_image_must_not_be_blank():
    text = BASE.format(extra="").replace("image: luksa/kubia", "image: ' x'")
    assert errors(text) == ["pod.yaml:8: spec.containers[0].image: must not "
                            "be empty or start or end with whitespace"]


def test_working_dir_must_be_absolute():
    assert container_errors("workingDir: app\n") == [
        'pod.yaml:9: spec.containers[0].workingDir: must be an absolute path, '
        'got "app"']


@pytest.mark.parametrize("image, policy", [
    ("busybox", "Always"),
    ("busybox:latest", "Always"),
    ("busybox:1.36", "IfNotPresent"),
    ("localhost:5000/busybox", "Always"),        # a port is not a tag
    ("localhost:5000/busybox:1.36", "IfNotPresent"),
    ("busybox@sha256:" + "a" * 64, "IfNotPresent"),
    ("busybox:latest@sha256:" + "a" * 64, "Always"),  # as Kubernetes does
])
def test_default_image_pull_policy(image, policy):
    assert default_pull_policy(image) == policy
    text = BASE.format(extra="").replace("image: luksa/kubia", f"image: '{image}'")
    assert load(text)[0][0].containers[0].image_pull_policy == policy


# --- collecting, ordering, formatting --------------------------------------

def test_all_problems_collected_in_line_order():
    text = """\
    apiVersion: v2
    kind: Pod
    metadata:
      name: Bad_Name
    spec:
      restartPolicy: never
      containers:
      - name: a
        image: busybox
        ports:
        - containerPort: 99999
          protocol: udp
    """
    found = errors(text)
    assert [s.split(": ")[0] for s in found] == [
        "pod.yaml:1", "pod.yaml:4", "pod.yaml:6", "pod.yaml:11", "pod.yaml:12"]


def test_problem_str_omits_missing_parts():
    assert str(Problem("a.yaml", 3, "spec", "bad")) == "a.yaml:3: spec: bad"
    assert str(Problem("a.yaml", None, "spec", "bad")) == "a.yaml: spec: bad"
    assert str(Problem("a.yaml", 3, "", "bad")) == "a.yaml:3: bad"


def test_error_carries_warnings_too():
    with pytest.raises(ManifestError) as info:
        load(BASE.format(extra="    tty: true\n    images: x\n"))
    assert [p.field for p in info.value.warnings] == ["spec.containers[0].tty"]


# --- load_object -----------------------------------------------------------

def test_load_object():
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "o"},
           "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}
    pod = load_object(obj)
    assert (pod.name, pod.line, pod.source) == ("o", None, "<object>")
    assert pod.raw == obj and pod.raw is not obj
    obj["spec"]["containers"][0]["ports"] = [{"containerPort": "80"}]
    with pytest.raises(ManifestError) as info:
        load_object(obj, "state.json")
    assert str(info.value) == ("state.json: spec.containers[0].ports[0]."
                               'containerPort: expected an integer, got '
                               'string "80"')


def test_load_object_rejects_non_string_keys():
    obj = {"apiVersion": "v1", "kind": "Pod", 1: 2,
           "metadata": {"name": "o", "labels": {3: "x"}},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    with pytest.raises(ManifestError) as info:
        load_object(obj)
    assert [p.message for p in info.value.problems] == [
        "field names must be strings, got 1", "keys must be strings, got 3"]


def test_load_object_rejects_non_maps():
    with pytest.raises(ManifestError, match="expected a Pod object"):
        load_object(["not", "a", "pod"])


# ===========================================================================
# Pod features of issues 3, 4 and 6: volumes, init containers, probes,
# lifecycle hooks, resources, security contexts.

def pod(container="", spec=""):
    """BASE with lines added to its container (line 9 on), then its spec."""
    return BASE.format(
        extra=textwrap.indent(textwrap.dedent(container), "    ")
        + textwrap.indent(textwrap.dedent(spec), "  "))


# --- the realistic example -------------------------------------------------

def test_two_container_shared_volume_example_loads():
    """The docs' shared-volume pod, adapted to busybox, as dataclasses."""
    pods, found = load_file(str(FIXTURES / "two-containers.yaml"))
    assert found == []
    [p] = pods
    assert (p.name, p.hostname, p.share_process_namespace,
            p.termination_grace_period_seconds, p.init_containers) == (
        "two-containers", "shared", False, 10, [])
    assert p.volumes == [manifest.Volume(
        name="shared-data", kind="emptyDir", medium="Memory",
        size_limit=16 * 2**20)]
    web, writer = p.containers
    pod_security = dict(run_as_group=1000, run_as_non_root=True,
                        fs_group=2000, allow_privilege_escalation=False,
                        capabilities_drop=["ALL"],
                        seccomp_profile="RuntimeDefault")
    assert web == manifest.Container(
        name="web", image="busybox:1.36", image_pull_policy="IfNotPresent",
        command=["httpd", "-f", "-p", "8080", "-h", "/www"], args=None,
        env=[], working_dir=None,
        ports=[manifest.Port(8080, "TCP", "http")],
        volume_mounts=[manifest.VolumeMount("shared-data", "/www",
                                            read_only=True)],
        readiness_probe=manifest.Probe(
            manifest.Handler("httpGet", port=8080, path="/index.html",
                             headers=[("X-Probe", "readiness")]),
            period_seconds=2),
        liveness_probe=manifest.Probe(
            manifest.Handler("tcpSocket", port=8080),
            initial_delay_seconds=1, failure_threshold=5),
        resources=manifest.Resources(
            cpu_request_milli=50, cpu_limit_milli=200,
            memory_request=16 * 2**20, memory_limit=32 * 2**20),
        security_context=manifest.SecurityContext(
            run_as_user=1000, read_only_root_filesystem=True,
            **pod_security))
    assert writer == manifest.Container(
        name="writer", image="busybox:1.36", image_pull_policy="IfNotPresent",
        command=["/bin/sh", "-c"], args=[
            'while true; do echo "Hello from the writer container, $(date)" '
            "> /pod-data/index.html; sleep 5; done"],
        env=[], working_dir=None, ports=[],
        volume_mounts=[manifest.VolumeMount("shared-data", "/pod-data")],
        startup_probe=manifest.Probe(
            manifest.Handler("exec", command=["test", "-s",
                                              "/pod-data/index.html"]),
            period_seconds=1, failure_threshold=30),
        lifecycle=manifest.Lifecycle(
            pre_stop=manifest.Handler("sleep", seconds=2)),
        # Only limits: the requests default to them, as in Kubernetes.
        resources=manifest.Resources(100, 100, 16 * 2**20, 16 * 2**20),
        # runAsUser is the container's own; the rest comes from the pod.
        security_context=manifest.SecurityContext(run_as_user=1001,
                                                  **pod_security))


def test_load_object_gives_the_same_pod_as_load_file():
    [from_file], _ = load_file(str(FIXTURES / "two-containers.yaml"))
    from_object = load_object(from_file.raw, "state.json")
    assert from_object.line is None and from_object.source == "state.json"
    from_object.line, from_object.source = from_file.line, from_file.source
    assert from_object == from_file


def test_old_constructors_keep_working():
    c = manifest.Container("c", "busybox", "Always", None, None, [], None, [])
    assert (c.volume_mounts, c.liveness_probe, c.restart_policy) == (
        [], None, None)
    assert c.security_context.seccomp_profile == "RuntimeDefault"
    assert c.resources.memory_limit is None
    p = manifest.Pod("p", "default", {}, {}, [c], "Always", 30, {}, "x", 1)
    assert (p.init_containers, p.volumes, p.hostname) == ([], [], None)


def test_new_fields_misplaced_say_where_they_belong():
    assert container_errors("initialDelaySeconds: 3\nlimits: {cpu: 1}\n"
                            "privileged: true\nemptyDir: {}\n") == [
        'pod.yaml:9: spec.containers[0].initialDelaySeconds: unknown field '
        '"initialDelaySeconds"; "initialDelaySeconds" belongs under '
        '"livenessProbe:", "readinessProbe:" or "startupProbe:": check the '
        "indentation",
        'pod.yaml:10: spec.containers[0].limits: unknown field "limits"; '
        '"limits" belongs under "resources:": check the indentation',
        'pod.yaml:11: spec.containers[0].privileged: unknown field '
        '"privileged"; "privileged" belongs under "securityContext:": check '
        "the indentation",
        'pod.yaml:12: spec.containers[0].emptyDir: unknown field "emptyDir"; '
        '"emptyDir" is a field of a volume (spec.volumes[]): check the '
        "indentation"]


# --- volumes ---------------------------------------------------------------

def test_volumes_and_mounts_load():
    pods, found = load(pod(container="""\
        volumeMounts:
        - {name: cache, mountPath: /cache}
        - {name: logs, mountPath: /var/log/app, subPath: app, readOnly: true}
        - {name: logs, mountPath: /logs}
        """, spec="""\
        volumes:
        - name: cache
        - name: logs
          hostPath: {path: /var/log, type: DirectoryOrCreate}
        - name: scratch
          emptyDir: {sizeLimit: 0}
        """))
    assert found == []
    p = pods[0]
    assert p.volumes == [
        # No source: an emptyDir, as Kubernetes defaults it.
        manifest.Volume("cache", "emptyDir"),
        manifest.Volume("logs", "hostPath", path="/var/log",
                        host_path_type="DirectoryOrCreate"),
        # A zero sizeLimit is no limit (the kubelet's reading).
        manifest.Volume("scratch", "emptyDir", size_limit=None)]
    assert p.containers[0].volume_mounts == [
        manifest.VolumeMount("cache", "/cache"),
        manifest.VolumeMount("logs", "/var/log/app", True, "app"),
        manifest.VolumeMount("logs", "/logs")]


def test_mount_of_an_undeclared_volume_lists_the_declared_ones():
    found = errors(pod(container="volumeMounts:\n- {name: dat, mountPath: /d}\n",
                       spec="volumes:\n- name: data\n- name: cache\n"))
    assert found == [
        'pod.yaml:10: spec.containers[0].volumeMounts[0].name: no volume '
        'named "dat" in spec.volumes (it has "data", "cache"); did you mean '
        '"data"?']


def test_mount_without_any_volume_says_how_to_declare_one():
    assert container_errors("volumeMounts:\n- {name: data, mountPath: /d}\n"
                            ) == [
        'pod.yaml:10: spec.containers[0].volumeMounts[0].name: no volume '
        'named "data": spec.volumes declares none; add one, e.g. "volumes: '
        '[{name: data, emptyDir: {}}]"']


def test_mount_paths():
    found = errors(pod(container="""\
        volumeMounts:
        - {name: data, mountPath: data}
        - {name: data, mountPath: /x}
        - {name: data, mountPath: /x/, subPath: /abs}
        - {name: data, mountPath: /y, subPath: a/../../b}
        - {name: data, mountPath: /z/../etc}
        - {name: data}
        """, spec="volumes:\n- name: data\n"))
    assert found == [
        'pod.yaml:10: spec.containers[0].volumeMounts[0].mountPath: must be '
        'an absolute path, got "data"',
        # The same mount point, written another way.
        'pod.yaml:12: spec.containers[0].volumeMounts[2].mountPath: '
        'duplicate mountPath "/x/" in this container (first at line 11)',
        'pod.yaml:12: spec.containers[0].volumeMounts[2].subPath: must be a '
        'path relative to the volume, got "/abs"',
        'pod.yaml:13: spec.containers[0].volumeMounts[3].subPath: must not '
        'contain "..", got "a/../../b"',
        'pod.yaml:14: spec.containers[0].volumeMounts[4].mountPath: must not '
        'contain "..", got "/z/../etc"',
        "pod.yaml:15: spec.containers[0].volumeMounts[5].mountPath: required "
        "field is missing"]


def test_same_mount_path_in_two_containers_is_fine():
    pods, _ = load(pod(container="""\
        volumeMounts: [{name: data, mountPath: /data}]
        """, spec="""\
        - name: two
          image: busybox
          volumeMounts: [{name: data, mountPath: /data}]
        volumes: [{name: data}]
        """))
    assert [c.volume_mounts[0].mount_path for c in pods[0].containers] == [
        "/data", "/data"]


def test_volume_names():
    found = errors(pod(spec="""\
        volumes:
        - name: Data_1
        - name: a
        - name: a
          emptyDir: {}
        - emptyDir: {}
        """))
    assert found == [
        'pod.yaml:10: spec.volumes[0].name: invalid name "Data_1": must be a '
        "lowercase RFC 1123 label: at most 63 characters, lowercase letters, "
        "digits and '-', starting and ending with a letter or digit; did you "
        'mean "data-1"?',
        'pod.yaml:12: spec.volumes[2].name: duplicate volume name "a" (first '
        "at line 11)",
        "pod.yaml:14: spec.volumes[3].name: required field is missing"]


@pytest.mark.parametrize("source", [
    "persistentVolumeClaim: {claimName: db}", "nfs: {server: nfs, path: /}"])
def test_other_volume_sources_are_errors_not_warnings(source):
    key = source.split(":")[0]
    found = errors(pod(spec=f"volumes:\n- name: v\n  {source}\n"))
    assert found == [
        f'pod.yaml:11: spec.volumes[0].{key}: volume source "{key}" is not '
        "supported by minipod yet (the pod could not work without it); "
        "minipod has emptyDir, hostPath, configMap, secret, downwardAPI and projected"]


def test_a_volume_has_exactly_one_source():
    found = errors(pod(spec="volumes:\n- name: v\n  emptyDir: {}\n"
                            "  hostPath: {path: /srv}\n"))
    assert found == [
        'pod.yaml:12: spec.volumes[0].hostPath: a volume has exactly one '
        'source, and "emptyDir" (line 11) is set too; declare another volume '
        "for this one"]


def test_misspelt_volume_source():
    assert errors(pod(spec="volumes:\n- name: v\n  emptydir: {}\n")) == [
        'pod.yaml:11: spec.volumes[0].emptydir: unknown field "emptydir"; '
        'did you mean "emptyDir"?']


def test_empty_dir():
    pods, _ = load(pod(spec="volumes:\n- name: m\n  emptyDir:\n"
                            "    medium: Memory\n    sizeLimit: 1.5Gi\n"))
    assert pods[0].volumes == [manifest.Volume("m", "emptyDir", "Memory",
                                               3 * 2**29)]
    found = errors(pod(spec="""\
        volumes:
        - name: a
          emptyDir: {medium: memory, sizeLimit: 1GB}
        - name: b
          emptyDir: {medium: HugePages, sizeLimit: -1}
        """))
    assert found == [
        'pod.yaml:11: spec.volumes[0].emptyDir.medium: unsupported value '
        '"memory": must be "" (the node\'s disk) or "Memory" (tmpfs, counted '
        "as the pod's memory); values are case-sensitive: did you mean "
        '"Memory"?',
        'pod.yaml:11: spec.volumes[0].emptyDir.sizeLimit: invalid quantity '
        '"1GB": must be a number with an optional suffix: m, k, M, G, T, P, E '
        "(powers of 1000), Ki, Mi, Gi, Ti, Pi, Ei (powers of 1024) or an "
        'exponent (1e3); did you mean "1G"?',
        'pod.yaml:13: spec.volumes[1].emptyDir.medium: medium "HugePages" is '
        'not supported by minipod yet; use "" (disk) or "Memory"',
        "pod.yaml:13: spec.volumes[1].emptyDir.sizeLimit: must not be "
        "negative, got -1"]


def test_host_path():
    found = errors(pod(spec="""\
        volumes:
        - name: a
          hostPath: {path: srv/x, type: directory}
        - name: b
          hostPath:
        - name: c
          hostPath: {}
        - name: d
          hostPath: {path: /srv/../etc}
        """))
    assert found == [
        'pod.yaml:11: spec.volumes[0].hostPath.path: must be an absolute '
        'path, got "srv/x"',
        'pod.yaml:11: spec.volumes[0].hostPath.type: unsupported value '
        '"directory": must be one of "", "DirectoryOrCreate", "Directory", '
        '"FileOrCreate", "File", "Socket", "CharDevice", "BlockDevice"; '
        'values are case-sensitive: did you mean "Directory"?',
        "pod.yaml:13: spec.volumes[1].hostPath: needs a path, e.g. hostPath: "
        "{path: /srv/data}",
        "pod.yaml:15: spec.volumes[2].hostPath.path: required field is "
        "missing",
        'pod.yaml:17: spec.volumes[3].hostPath.path: must not contain "..", '
        'got "/srv/../etc"']


def test_a_volume_with_an_error_still_counts_as_declared():
    # One message for the configMap; none for the mount that names it.
    found = errors(pod(container="volumeMounts: [{name: cfg, mountPath: /c}]\n",
                       spec="volumes:\n- name: cfg\n  nfs: {server: x, path: /}\n"))
    assert [p.split(": ")[1] for p in found] == ["spec.volumes[0].nfs"]


# --- init containers and sidecars -----------------------------------------

INIT = """\
initContainers:
- name: migrate
  image: busybox
  command: [sh, -c, "echo migrating"]
- name: proxy
  image: busybox
  restartPolicy: Always
  ports: [{containerPort: 9000, name: admin}]
  readinessProbe: {tcpSocket: {port: admin}}
"""


def test_init_containers_and_native_sidecars():
    pods, found = load(pod(spec=INIT))
    assert found == []
    migrate, proxy = pods[0].init_containers
    assert (migrate.name, migrate.restart_policy) == ("migrate", None)
    assert (proxy.name, proxy.restart_policy) == ("proxy", "Always")
    assert proxy.readiness_probe.handler == manifest.Handler("tcpSocket",
                                                             port=9000)
    assert [c.name for c in pods[0].containers] == ["kubia"]


def test_init_container_restart_policy_is_always_or_nothing():
    for value, message in [
            ("Never", 'unsupported value "Never": an init container takes '
                      'only "Always" (a sidecar); leave it out for an init '
                      "container that runs to completion"),
            ("always", 'unsupported value "always": an init container takes '
                       'only "Always" (a sidecar); leave it out for an init '
                       "container that runs to completion; values are "
                       'case-sensitive: did you mean "Always"?')]:
        text = pod(spec=INIT.replace("restartPolicy: Always",
                                     f"restartPolicy: {value}")
                   .replace("  readinessProbe: {tcpSocket: {port: admin}}\n",
                            ""))
        assert errors(text) == [
            f"pod.yaml:15: spec.initContainers[1].restartPolicy: {message}"]


def test_restart_policy_on_a_regular_container():
    assert container_errors("restartPolicy: Always\n") == [
        "pod.yaml:9: spec.containers[0].restartPolicy: may be set only on "
        "init containers, where restartPolicy: Always makes a sidecar; the "
        "pod's spec.restartPolicy applies to its containers"]


def test_regular_init_containers_have_no_probes_or_hooks():
    found = errors(pod(spec="""\
        initContainers:
        - name: init
          image: busybox
          livenessProbe: {exec: {command: [x]}}
          startupProbe: {exec: {command: [x]}}
          lifecycle: {preStop: {sleep: {seconds: 1}}}
        """))
    message = ("may not be set for an init container without restartPolicy: "
               "Always (only a sidecar init container has probes and "
               "lifecycle hooks)")
    assert found == [
        f"pod.yaml:12: spec.initContainers[0].livenessProbe: {message}",
        f"pod.yaml:13: spec.initContainers[0].startupProbe: {message}",
        f"pod.yaml:14: spec.initContainers[0].lifecycle: {message}"]


def test_container_names_are_unique_across_init_and_regular_containers():
    found = errors(pod(spec=INIT.replace("name: proxy", "name: kubia")))
    assert found == [
        'pod.yaml:13: spec.initContainers[1].name: duplicate container name '
        '"kubia": spec.containers[0] (line 7) has it too; names are unique '
        "across containers and initContainers"]
    # Written before the containers, the init container is the first one.
    text = pod().replace("spec:\n", "spec:\n" + textwrap.indent(
        INIT.replace("name: proxy", "name: kubia"), "  "))
    assert errors(text) == [
        'pod.yaml:16: spec.containers[0].name: duplicate container name '
        '"kubia": spec.initContainers[1] (line 10) has it too; names are '
        "unique across containers and initContainers"]


def test_sidecar_ports_share_the_pod_port_space():
    found = errors(pod(container="ports: [{containerPort: 9000}]\n",
                       spec=INIT))
    assert found == [
        "pod.yaml:17: spec.initContainers[1].ports[0].containerPort: "
        'containerPort 9000/TCP is also declared by container "kubia" (line '
        "9): the containers of a pod share one network namespace (same IP, "
        "same port space), so only one of them can listen on it"]
    # A regular init container has finished before the others start.
    pods, _ = load(pod(container="ports: [{containerPort: 9000}]\n",
                       spec=INIT.replace("  restartPolicy: Always\n", "")
                       .replace("  readinessProbe: {tcpSocket: {port: admin}}"
                                "\n", "")))
    assert pods[0].init_containers[1].ports[0].container_port == 9000


# --- hostname and shareProcessNamespace ------------------------------------

def test_hostname_and_share_process_namespace():
    pods, _ = load(pod(spec="hostname: web-1\nshareProcessNamespace: true\n"))
    assert (pods[0].hostname, pods[0].share_process_namespace) == (
        "web-1", True)
    found = errors(pod(spec="hostname: My_Host\nshareProcessNamespace: 'yes'\n"))
    assert found == [
        'pod.yaml:9: spec.hostname: invalid name "My_Host": must be a '
        "lowercase RFC 1123 label: at most 63 characters, lowercase letters, "
        "digits and '-', starting and ending with a letter or digit; did you "
        'mean "my-host"?',
        'pod.yaml:10: spec.shareProcessNamespace: expected a boolean (true or '
        'false), got string "yes"']
    assert errors(pod(spec="shareProcessNamespace: true\nhostPID: true\n")) == [
        "pod.yaml:9: spec.shareProcessNamespace: may not be true together "
        "with hostPID: true"]


# --- probes ----------------------------------------------------------------

def test_probe_defaults_are_kubernetes_ones():
    pods, _ = load(pod(container="livenessProbe: {exec: {command: ['true']}}\n"))
    assert pods[0].containers[0].liveness_probe == manifest.Probe(
        manifest.Handler("exec", command=["true"]), initial_delay_seconds=0,
        period_seconds=10, timeout_seconds=1, success_threshold=1,
        failure_threshold=3, termination_grace_period_seconds=None)


def test_a_probe_needs_exactly_one_action():
    assert container_errors("livenessProbe: {periodSeconds: 3}\n") == [
        'pod.yaml:9: spec.containers[0].livenessProbe: a probe needs one '
        'action: "exec", "httpGet" or "tcpSocket"']
    assert container_errors("readinessProbe:\n  exec: {command: [cat, x]}\n"
                            "  tcpSocket: {port: 80}\n") == [
        'pod.yaml:11: spec.containers[0].readinessProbe.tcpSocket: may not be '
        'set together with "exec" (line 10): a probe runs exactly one action']


def test_an_action_field_written_one_level_too_high():
    # One message, not also "needs one action".
    assert container_errors("livenessProbe:\n  command: [cat, x]\n") == [
        'pod.yaml:10: spec.containers[0].livenessProbe.command: unknown field '
        '"command"; "command" belongs under "exec:": check the indentation']
    assert container_errors("livenessProbe:\n  httpget: {port: 80}\n") == [
        'pod.yaml:10: spec.containers[0].livenessProbe.httpget: unknown field '
        '"httpget"; did you mean "httpGet"?']


def test_probe_timing():
    found = container_errors("""\
        livenessProbe:
          exec: {command: [x]}
          periodSeconds: -1
          timeoutSeconds: 2147483648
          terminationGracePeriodSeconds: 0
        """)
    assert found == [
        "pod.yaml:11: spec.containers[0].livenessProbe.periodSeconds: must be "
        "between 0 and 2147483647, got -1",
        "pod.yaml:12: spec.containers[0].livenessProbe.timeoutSeconds: must "
        "be between 0 and 2147483647, got 2147483648",
        "pod.yaml:13: spec.containers[0].livenessProbe."
        "terminationGracePeriodSeconds: must be between 1 and "
        "9223372036854775807, got 0"]


def test_zero_probe_timing_means_the_default_with_a_warning():
    text = pod(container="readinessProbe:\n  exec: {command: [x]}\n"
                         "  periodSeconds: 0\n  initialDelaySeconds: 0\n")
    assert warnings(text) == [
        "pod.yaml:11: spec.containers[0].readinessProbe.periodSeconds: 0 "
        "means the default, 10 (Kubernetes' minimum is 1)"]
    assert load(text)[0][0].containers[0].readiness_probe.period_seconds == 10


@pytest.mark.parametrize("key, kind", [("livenessProbe", "liveness"),
                                       ("startupProbe", "startup")])
def test_liveness_and_startup_probes_succeed_once(key, kind):
    assert container_errors(f"{key}:\n  exec: {{command: [x]}}\n"
                            "  successThreshold: 2\n") == [
        f"pod.yaml:11: spec.containers[0].{key}.successThreshold: must be 1 "
        f"for a {kind} probe, got 2: one success is enough to pass it"]
    pods, _ = load(pod(container="readinessProbe:\n  exec: {command: [x]}\n"
                                 "  successThreshold: 2\n"))
    assert pods[0].containers[0].readiness_probe.success_threshold == 2


def test_readiness_probe_has_no_grace_period():
    assert container_errors("readinessProbe:\n  exec: {command: [x]}\n"
                            "  terminationGracePeriodSeconds: 5\n") == [
        "pod.yaml:11: spec.containers[0].readinessProbe."
        "terminationGracePeriodSeconds: must not be set for a readiness "
        "probe: failing it never stops the container"]


def test_exec_needs_a_command():
    assert container_errors("livenessProbe: {exec: {command: []}}\n"
                            "readinessProbe: {exec: {}}\n") == [
        "pod.yaml:9: spec.containers[0].livenessProbe.exec.command: needs the "
        'command to run, e.g. command: ["cat", "/tmp/healthy"]',
        "pod.yaml:10: spec.containers[0].readinessProbe.exec.command: needs "
        'the command to run, e.g. command: ["cat", "/tmp/healthy"]']


def test_http_get():
    pods, _ = load(pod(container="""\
        ports: [{containerPort: 8443, name: https}]
        readinessProbe:
          httpGet:
            port: https
            scheme: HTTPS
            host: 127.0.0.1
            httpHeaders: [{name: Host, value: example.com}, {name: X-Empty}]
        livenessProbe:
          httpGet: {port: 8443, path: ""}
        """))
    c = pods[0].containers[0]
    assert c.readiness_probe.handler == manifest.Handler(
        "httpGet", port=8443, host="127.0.0.1", path="/", scheme="HTTPS",
        headers=[("Host", "example.com"), ("X-Empty", "")])
    assert c.liveness_probe.handler.path == "/"     # "" is "/" (defaulting)
    found = container_errors("""\
        livenessProbe:
          httpGet:
            port: 70000
            scheme: https
            httpHeaders: [{name: X Y, value: a}]
        readinessProbe:
          httpGet: {path: /}
        """)
    assert found == [
        "pod.yaml:11: spec.containers[0].livenessProbe.httpGet.port: must be "
        "between 1 and 65535, got 70000",
        'pod.yaml:12: spec.containers[0].livenessProbe.httpGet.scheme: '
        'unsupported value "https": must be one of "HTTP", "HTTPS"; values '
        'are case-sensitive: did you mean "HTTPS"?',
        "pod.yaml:13: spec.containers[0].livenessProbe.httpGet.httpHeaders[0]"
        '.name: invalid HTTP header name "X Y": use only letters, digits and '
        '"-"',
        "pod.yaml:15: spec.containers[0].readinessProbe.httpGet.port: "
        "required field is missing"]


def test_named_probe_ports():
    found = container_errors("""\
        ports:
        - {containerPort: 80, name: http}
        - {containerPort: 81, name: metrics}
        livenessProbe: {httpGet: {port: htp}}
        readinessProbe: {tcpSocket: {port: '8080'}}
        """)
    assert found == [
        'pod.yaml:12: spec.containers[0].livenessProbe.httpGet.port: no port '
        'named "htp" in this container (its named ports: "http", "metrics"); '
        'did you mean "http"?',
        'pod.yaml:13: spec.containers[0].readinessProbe.tcpSocket.port: '
        'invalid port name "8080": must contain at least one letter; write '
        "the number without quotes"]
    assert container_errors("livenessProbe: {tcpSocket: {port: http}}\n") == [
        'pod.yaml:9: spec.containers[0].livenessProbe.tcpSocket.port: no port '
        'named "http" in this container: name one of its ports (ports: '
        "[{containerPort: 8080, name: http}]) or use the number"]


def test_a_named_port_with_an_error_is_not_reported_again():
    found = container_errors("ports: [{containerPort: 0, name: http}]\n"
                             "livenessProbe: {tcpSocket: {port: http}}\n")
    assert found == ["pod.yaml:9: spec.containers[0].ports[0].containerPort: "
                     "must be between 1 and 65535, got 0"]


def test_grpc_probes_are_warned_about_and_ignored():
    text = pod(container="livenessProbe: {grpc: {port: 9000}}\n")
    assert warnings(text) == [
        "pod.yaml:9: spec.containers[0].livenessProbe.grpc: gRPC probes are "
        "not implemented by minipod yet; this probe is ignored"]
    assert load(text)[0][0].containers[0].liveness_probe is None
    assert container_errors("livenessProbe: {grpc: {port: http}}\n") == [
        "pod.yaml:9: spec.containers[0].livenessProbe.grpc.port: expected an "
        'integer, got string "http"']


# --- lifecycle hooks -------------------------------------------------------

def test_lifecycle_hooks():
    pods, _ = load(pod(container="""\
        lifecycle:
          postStart: {exec: {command: [touch, /tmp/started]}}
          preStop: {httpGet: {path: /quit, port: 8080}}
        """))
    assert pods[0].containers[0].lifecycle == manifest.Lifecycle(
        post_start=manifest.Handler("exec", command=["touch", "/tmp/started"]),
        pre_stop=manifest.Handler("httpGet", port=8080, path="/quit"))


def test_lifecycle_hook_mistakes():
    found = errors(pod(container="""\
        lifecycle:
          postStart: {tcpSocket: {port: 80}}
          preStop: {sleep: {seconds: 6}}
        """, spec="terminationGracePeriodSeconds: 5\n"))
    assert found == [
        "pod.yaml:10: spec.containers[0].lifecycle.postStart.tcpSocket: a "
        "lifecycle hook cannot be a tcpSocket (the kubelet never runs it); "
        'use "exec", "httpGet" or "sleep"',
        "pod.yaml:11: spec.containers[0].lifecycle.preStop.sleep.seconds: "
        "must be between 0 and the pod's terminationGracePeriodSeconds (5), "
        "got 6"]
    assert container_errors("lifecycle: {preStop: {}}\n") == [
        "pod.yaml:9: spec.containers[0].lifecycle.preStop: a lifecycle hook "
        'needs one action: "exec", "httpGet" or "sleep"']
    assert container_errors("lifecycle: {preStop: {seconds: 3}}\n") == [
        "pod.yaml:9: spec.containers[0].lifecycle.preStop.seconds: unknown "
        'field "seconds"; "seconds" belongs under "sleep:": check the '
        "indentation"]


# --- resources -------------------------------------------------------------

@pytest.mark.parametrize("text, value", [
    ("500m", Fraction(1, 2)), ("1", 1), ("0.5", Fraction(1, 2)),
    (".5", Fraction(1, 2)), ("1.", 1), ("128Mi", 128 * 2**20),
    ("1.5Gi", 3 * 2**29), ("1G", 10**9), ("1k", 1000), ("1e3", 1000),
    ("1E", 10**18), ("1e-3", Fraction(1, 1000)), ("100u", Fraction(1, 10**4)),
    ("+2", 2), ("-1", -1), (2, 2), (0.25, Fraction(1, 4)),
])
def test_parse_quantity(text, value):
    assert quantity.parse_quantity(text) == value


@pytest.mark.parametrize("text, guess", [
    ("12MB", "12M"), ("1gi", "1Gi"), ("1GiB", "1Gi"), ("1K", "1k"),
    ("128 Mi", "128Mi"), ("1mb", "1M"), ("1e", None), ("abc", None),
    ("1.2.3", None), ("", None), ("Mi", None),
])
def test_bad_quantities_name_the_value_and_a_fix(text, guess):
    with pytest.raises(ValueError) as info:
        quantity.parse_quantity(text)
    message = str(info.value)
    assert message.startswith(f'invalid quantity "{text}": must be a number')
    assert message.endswith(f'; did you mean "{guess}"?' if guess else
                            "or an exponent (1e3)")


def test_huge_exponents_are_refused_quickly():
    with pytest.raises(ValueError, match='quantity "1e999999999" is out of '
                                         "range"):
        quantity.parse_quantity("1e999999999")


def test_resources_in_millicores_and_bytes():
    pods, found = load(pod(container="""\
        resources:
          requests: {cpu: 0.1, memory: 100M}
          limits: {cpu: "1.5", memory: 1Gi}
        """))
    assert found == []
    assert pods[0].containers[0].resources == manifest.Resources(
        cpu_request_milli=100, cpu_limit_milli=1500,
        memory_request=10**8, memory_limit=2**30)
    pods, _ = load(pod(container="resources: {limits: {cpu: 1m}, "
                                 "requests: {memory: 1Ki}}\n"))
    # A request left out is its limit; a limit left out stays unset.
    assert pods[0].containers[0].resources == manifest.Resources(
        cpu_request_milli=1, cpu_limit_milli=1, memory_request=1024,
        memory_limit=None)


def test_a_request_above_its_limit():
    assert container_errors("resources:\n  requests: {cpu: 1}\n"
                            "  limits: {cpu: 500m}\n") == [
        "pod.yaml:10: spec.containers[0].resources.requests.cpu: request 1 is "
        "more than the cpu limit 500m (line 11); a container may not request "
        "more than its limit"]


def test_resource_mistakes():
    found = container_errors("""\
        resources:
          requests: {memroy: 1, cpu: -1}
          limits: {memory: 12MB, cpu: true}
        """)
    assert found == [
        'pod.yaml:10: spec.containers[0].resources.requests.memroy: unknown '
        'resource "memroy": a container has cpu, memory, ephemeral-storage, '
        "hugepages-<size> or an extended resource such as nvidia.com/gpu; did "
        'you mean "memory"?',
        "pod.yaml:10: spec.containers[0].resources.requests.cpu: must not be "
        "negative, got -1",
        'pod.yaml:11: spec.containers[0].resources.limits.memory: invalid '
        'quantity "12MB": must be a number with an optional suffix: m, k, M, '
        "G, T, P, E (powers of 1000), Ki, Mi, Gi, Ti, Pi, Ei (powers of "
        '1024) or an exponent (1e3); did you mean "12M"?',
        "pod.yaml:11: spec.containers[0].resources.limits.cpu: expected a "
        'quantity such as "500m" or "128Mi", got boolean true']


def test_other_resources_are_warnings():
    found = warnings(pod(container="""\
        resources:
          limits: {nvidia.com/gpu: 1, hugepages-2Mi: 2Mi}
          claims: [{name: gpu}]
        """))
    assert found == [
        'pod.yaml:10: spec.containers[0].resources.limits["nvidia.com/gpu"]: '
        'resource "nvidia.com/gpu" is valid Kubernetes but not implemented '
        "by minipod yet; ignored",
        'pod.yaml:10: spec.containers[0].resources.limits["hugepages-2Mi"]: '
        'resource "hugepages-2Mi" is valid Kubernetes but not implemented by '
        "minipod yet; ignored",
        "pod.yaml:11: spec.containers[0].resources.claims: field is valid "
        "Kubernetes but not implemented by minipod yet; ignored"]


def test_milli_bytes_are_a_warning_that_names_the_likely_fix():
    text = pod(container="resources: {limits: {memory: 128m}}\n")
    assert warnings(text) == [
        "pod.yaml:9: spec.containers[0].resources.limits.memory: fractional "
        'byte value "128m" is rounded up to whole bytes; "m" means milli '
        '(1/1000): did you mean "128Mi" or "128M"?']
    assert load(text)[0][0].containers[0].resources.memory_limit == 1


# --- security contexts -----------------------------------------------------

def test_pod_security_context_is_inherited_and_overridden():
    pods, _ = load(pod(container="""\
        securityContext:
          runAsUser: 1001
          seccompProfile: {type: Unconfined}
          privileged: true
          capabilities: {add: [NET_ADMIN, SYS_TIME], drop: [ALL]}
        """, spec="""\
        - name: plain
          image: busybox
        securityContext:
          runAsUser: 1000
          runAsGroup: 3000
          fsGroup: 2000
          supplementalGroups: [4000, 5000]
          seccompProfile: {type: RuntimeDefault}
        """))
    own, plain = pods[0].containers
    assert own.security_context == manifest.SecurityContext(
        run_as_user=1001, run_as_group=3000, fs_group=2000,
        supplemental_groups=[4000, 5000], privileged=True,
        capabilities_add=["NET_ADMIN", "SYS_TIME"], capabilities_drop=["ALL"],
        seccomp_profile="Unconfined")
    assert plain.security_context == manifest.SecurityContext(
        run_as_user=1000, run_as_group=3000, fs_group=2000,
        supplemental_groups=[4000, 5000], seccomp_profile="RuntimeDefault")


def test_capability_names():
    found = container_errors("""\
        securityContext:
          capabilities:
            add: [CAP_NET_ADMIN, net_raw, SYS_ADMN, BOGUS]
            drop: [all]
        """)
    where = "pod.yaml:{}: spec.containers[0].securityContext.capabilities."
    assert found == [
        where.format(11) + 'add[0]: unknown capability "CAP_NET_ADMIN"; '
        'Kubernetes writes capabilities in upper case without "CAP_": did you '
        'mean "NET_ADMIN"?',
        where.format(11) + 'add[1]: unknown capability "net_raw"; Kubernetes '
        'writes capabilities in upper case without "CAP_": did you mean '
        '"NET_RAW"?',
        where.format(11) + 'add[2]: unknown capability "SYS_ADMN"; did you '
        'mean "SYS_ADMIN"?',
        where.format(11) + 'add[3]: unknown capability "BOGUS"; see '
        "capabilities(7), without the CAP_ prefix",
        where.format(12) + 'drop[0]: unknown capability "all"; Kubernetes '
        'writes capabilities in upper case without "CAP_": did you mean '
        '"ALL"?']


@pytest.mark.parametrize("extra, message", [
    ("privileged: true", "may not be false when privileged is true: a "
     "privileged container can always gain privileges"),
    ("capabilities: {add: [SYS_ADMIN]}", 'may not be false when '
     'capabilities.add has "SYS_ADMIN", which holds CAP_SYS_ADMIN'),
    ("capabilities: {add: [ALL]}", 'may not be false when capabilities.add '
     'has "ALL", which holds CAP_SYS_ADMIN'),
])
def test_no_privilege_escalation_contradictions(extra, message):
    assert container_errors(f"securityContext:\n"
                            f"  allowPrivilegeEscalation: false\n"
                            f"  {extra}\n") == [
        "pod.yaml:10: spec.containers[0].securityContext."
        f"allowPrivilegeEscalation: {message}"]


def test_seccomp_profiles():
    text = pod(container="securityContext:\n  seccompProfile: {type: "
                         "Localhost, localhostProfile: profiles/audit.json}\n")
    assert warnings(text) == [
        "pod.yaml:10: spec.containers[0].securityContext.seccompProfile.type: "
        "Localhost seccomp profiles are not implemented by minipod yet; "
        "RuntimeDefault is used instead"]
    sc = load(text)[0][0].containers[0].security_context
    assert sc.seccomp_profile == "RuntimeDefault"
    found = errors(pod(container="""\
        securityContext:
          seccompProfile: {type: Localhost}
        """, spec="""\
        securityContext:
          seccompProfile: {type: runtimedefault, localhostProfile: x.json}
        """))
    assert found == [
        "pod.yaml:10: spec.containers[0].securityContext.seccompProfile."
        "localhostProfile: required when type is Localhost",
        'pod.yaml:12: spec.securityContext.seccompProfile.type: unsupported '
        'value "runtimedefault": must be one of "RuntimeDefault", '
        '"Unconfined", "Localhost"; values are case-sensitive: did you mean '
        '"RuntimeDefault"?',
        "pod.yaml:12: spec.securityContext.seccompProfile.localhostProfile: "
        'may be set only when type is "Localhost"']
    assert container_errors("securityContext: {seccompProfile: {}}\n") == [
        "pod.yaml:9: spec.containers[0].securityContext.seccompProfile.type: "
        'required field is missing; e.g. "type: RuntimeDefault"']


def test_run_as_non_root_with_root_user_is_said_once():
    text = pod(container="securityContext: {runAsNonRoot: true}\n", spec="""\
        - name: two
          image: busybox
        securityContext:
          runAsUser: 0
          runAsNonRoot: true
        """)
    assert errors(text) == [
        "pod.yaml:13: spec.securityContext.runAsUser: runAsUser 0 (root) "
        "contradicts runAsNonRoot: true (line 9): the container could never "
        "start"]
    # A container with its own non-root user is fine; the other is not.
    found = errors(text.replace("{runAsNonRoot: true}", "{runAsUser: 1}"))
    assert found == [
        "pod.yaml:13: spec.securityContext.runAsUser: runAsUser 0 (root) "
        "contradicts runAsNonRoot: true (line 14): the container could never "
        "start"]


def test_ids():
    found = errors(pod(container="securityContext: {runAsUser: -1}\n", spec="""\
        securityContext:
          fsGroup: 2147483648
          supplementalGroups: [1, x]
          runAsNonRoot: "true"
        """))
    assert found == [
        "pod.yaml:9: spec.containers[0].securityContext.runAsUser: must be "
        "between 0 and 2147483647, got -1",
        "pod.yaml:11: spec.securityContext.fsGroup: must be between 0 and "
        "2147483647, got 2147483648",
        "pod.yaml:12: spec.securityContext.supplementalGroups[1]: expected an "
        'integer, got string "x"',
        'pod.yaml:13: spec.securityContext.runAsNonRoot: expected a boolean '
        '(true or false), got string "true"; write true without quotes']


def test_pod_and_container_security_fields_are_not_interchangeable():
    found = errors(pod(container="securityContext: {fsGroup: 1}\n",
                       spec="securityContext: {privileged: true}\n"))
    assert found == [
        'pod.yaml:9: spec.containers[0].securityContext.fsGroup: unknown '
        'field "fsGroup"; "fsGroup" is a field of the pod\'s securityContext '
        "(spec.securityContext)",
        'pod.yaml:10: spec.securityContext.privileged: unknown field '
        '"privileged"; "privileged" is a field of a container\'s '
        "securityContext (spec.containers[].securityContext)"]


# --- load_object: no lines, so messages point at fields ---------------------

def test_load_object_messages_name_fields_instead_of_lines():
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "o"},
           "spec": {"containers": [{"name": "c", "image": "busybox"}],
                    "initContainers": [{"name": "c", "image": "busybox"}],
                    "volumes": [{"name": "v"}, {"name": "v"}]}}
    with pytest.raises(ManifestError) as info:
        load_object(obj)
    assert str(info.value).splitlines() == [
        '<object>: spec.volumes[1].name: duplicate volume name "v" (first at '
        "spec.volumes[0].name)",
        '<object>: spec.initContainers[0].name: duplicate container name "c": '
        "spec.containers[0] (spec.containers[0].name) has it too; names are "
        "unique across containers and initContainers"]
