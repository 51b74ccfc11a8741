"""Unit tests for minipod.runtime.manifest: parse -> validate, no kernel.

Most tests assert on the text a user reads: file, line, field and message.
"""

import io
import json
import sys
import textwrap
import time
from pathlib import Path

import pytest

from minipod.runtime import manifest
from minipod.runtime.manifest import (ManifestError, Problem, default_pull_policy,
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
                               "supported: minipod runs Pods only (kind: Pod)")


def test_kind_list():
    [found] = errors("apiVersion: v1\nkind: List\nitems: []\n")
    assert 'put each Pod in its own YAML document, separated by "---"' in found


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
        (6, "metadata.uid"), (8, "spec.nodeSelector"), (10, "spec.volumes"),
        (16, "spec.containers[0].resources"),
        (19, "spec.containers[0].livenessProbe"),
        (24, "spec.containers[0].env[0].valueFrom"), (29, "status")]
    assert found[0].message == ("field is valid Kubernetes but not "
                                "implemented by minipod yet; ignored")
    assert found[5].message.endswith('variable "POD_IP" is not set')
    # valueFrom's variable is skipped, the plain one kept.
    assert pods[0].containers[0].env == [manifest.EnvVar("PLAIN", "1")]


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
