"""Pure logic of the registry client: challenges, Accept, insecure rules, credentials.

No network here: tests/integration/test_registry.py runs the real registry.
"""
import base64
import io
import json
import stat

import pytest

from minipod.rootfs import credentials, pull, registry, transport
from minipod.rootfs.credentials import Credentials


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# -- WWW-Authenticate ---------------------------------------------------------------------

def test_docker_hub_bearer_challenge():
    value = ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
             'scope="repository:library/busybox:pull"')
    assert transport.parse_www_authenticate(value) == [("bearer", {
        "realm": "https://auth.docker.io/token", "service": "registry.docker.io",
        "scope": "repository:library/busybox:pull"})]


def test_a_scope_with_commas_stays_whole():
    value = 'Bearer realm="https://a/t",scope="repository:x/y:pull,push",error="insufficient_scope"'
    (scheme, params), = transport.parse_www_authenticate(value)
    assert params["scope"] == "repository:x/y:pull,push"
    assert params["error"] == "insufficient_scope"


def test_basic_challenge_and_case_and_spaces():
    assert transport.parse_www_authenticate('BASIC  Realm = "Registry Realm"') == [
        ("basic", {"realm": "Registry Realm"})]


def test_two_challenges_in_one_header_and_escapes():
    value = r'Basic realm="a \"quoted\" realm", Bearer realm="https://t/token",service=reg'
    assert transport.parse_www_authenticate(value) == [
        ("basic", {"realm": 'a "quoted" realm'}),
        ("bearer", {"realm": "https://t/token", "service": "reg"})]


def test_garbage_does_not_raise():
    assert transport.parse_www_authenticate("") == []
    transport.parse_www_authenticate('Bearer realm="unterminated')


# -- Accept, hosts, insecure ----------------------------------------------------------------

def test_accept_lists_oci_and_docker_manifests_and_indexes():
    accept = [t.strip() for t in registry.accept_header().split(",")]
    assert set(accept) == {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json"}


def test_docker_hub_is_served_by_registry_1():
    assert transport.registry_host("docker.io") == "registry-1.docker.io"
    assert transport.registry_host("quay.io") == "quay.io"
    assert transport.registry_host("localhost:5000") == "localhost:5000"


@pytest.mark.parametrize("name, listed, insecure, plain_http", [
    ("registry.example.com", set(), False, False),
    ("docker.io", set(), False, False),
    ("localhost:5000", set(), False, True),          # loopback: HTTP allowed, TLS verified
    ("127.0.0.1:5000", set(), False, True),
    ("127.9.9.9", set(), False, True),
    ("[::1]:5000", set(), False, True),
    ("registry.example.com:5000", {"registry.example.com:5000"}, True, True),
    ("registry.example.com:5000", {"registry.example.com"}, True, True),
    ("registry.example.com:5000", {"registry.example.com:6000"}, False, False),
    ("10.1.2.3:5000", {"10.0.0.0/8"}, True, True),
    ("192.168.1.1", {"10.0.0.0/8"}, False, False),
])
def test_insecure_decisions(name, listed, insecure, plain_http):
    assert transport.is_insecure(name, listed) is insecure
    assert transport.plain_http_allowed(name, listed) is plain_http


def test_insecure_file_has_comments_and_blank_lines(tmp_path):
    f = tmp_path / "insecure-registries"
    f.write_text("# mine\nreg.lan:5000\n\n  10.0.0.0/8  # lab\n")
    assert transport.read_insecure_file(f) == {"reg.lan:5000", "10.0.0.0/8"}
    assert transport.read_insecure_file(tmp_path / "none") == set()


def test_split_host():
    assert transport.split_host("127.0.0.1:5000") == ("127.0.0.1", 5000)
    assert transport.split_host("[::1]:5000") == ("::1", 5000)
    assert transport.split_host("quay.io") == ("quay.io", None)


# -- secrets stay secret -------------------------------------------------------------------

def test_credentials_repr_and_errors_hold_no_password():
    creds = Credentials("bob", "hunter2", "/root/.docker/config.json")
    assert "hunter2" not in repr(creds)
    client = registry.Registry("reg.example.com", credentials=creds)
    err = client._unauthorized("registry reg.example.com refused")
    assert "hunter2" not in str(err)
    assert "bob" in str(err) and "/root/.docker/config.json" in str(err)
    assert "minipod login reg.example.com" in str(err)


def test_anonymous_unauthorized_says_to_log_in():
    err = registry.Registry("reg.example.com")._unauthorized("x", repo="a/b")
    assert str(err) == ("unauthorized: pull access denied for reg.example.com/a/b: the "
                        "repository does not exist or needs credentials: run "
                        "`minipod login reg.example.com`")


# -- credential files ------------------------------------------------------------------------

def env_for(tmp_path, **extra):
    return {"HOME": str(tmp_path / "home"), **extra}


def write(path, doc):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def test_candidate_files_in_order(tmp_path):
    env = {"REGISTRY_AUTH_FILE": "/a.json", "XDG_RUNTIME_DIR": "/run/user/0", "HOME": "/root"}
    assert [str(p) for p in credentials.candidate_files(tmp_path / "own.json", env)] == [
        "/a.json", str(tmp_path / "own.json"), "/run/user/0/containers/auth.json",
        "/root/.docker/config.json"]
    env["DOCKER_CONFIG"] = "/etc/dockercfg"
    assert str(credentials.candidate_files(None, env)[-1]) == "/etc/dockercfg/config.json"


def test_docker_hub_legacy_key_is_found_for_docker_io(tmp_path):
    write(tmp_path / "home/.docker/config.json",
          {"auths": {"https://index.docker.io/v1/": {"auth": b64("me:pw")}}})
    creds = credentials.lookup("docker.io", "library/busybox", env=env_for(tmp_path))
    assert (creds.username, creds.password) == ("me", "pw")
    assert creds.source == str(tmp_path / "home/.docker/config.json")


def test_a_repository_key_wins_over_the_host_key(tmp_path):
    f = write(tmp_path / "auth.json", {"auths": {
        "quay.io": {"auth": b64("host:1")},
        "quay.io/team": {"auth": b64("team:2")},
        "quay.io/team/app": {"auth": b64("app:3")}}})
    env = {"REGISTRY_AUTH_FILE": str(f)}
    assert credentials.lookup("quay.io", "team/app", env=env).username == "app"
    assert credentials.lookup("quay.io", "team/other", env=env).username == "team"
    assert credentials.lookup("quay.io", "else/x", env=env).username == "host"
    assert credentials.lookup("ghcr.io", "team/app", env=env) is None


def test_first_file_wins(tmp_path):
    first = write(tmp_path / "first.json", {"auths": {"r.io": {"auth": b64("one:1")}}})
    own = write(tmp_path / "own.json", {"auths": {"r.io": {"auth": b64("two:2")}}})
    assert credentials.lookup("r.io", own=own,
                              env={"REGISTRY_AUTH_FILE": str(first)}).username == "one"
    assert credentials.lookup("r.io", own=own, env={}).username == "two"


def test_credential_helpers_are_ignored_with_a_warning(tmp_path):
    write(tmp_path / "home/.docker/config.json",
          {"auths": {"gcr.io": {}}, "credHelpers": {"gcr.io": "gcloud"}, "credsStore": "desktop"})
    said = []
    assert credentials.lookup("gcr.io", "p/i", env=env_for(tmp_path), warn=said.append) is None
    assert len(said) == 1
    assert "docker-credential-gcloud" in said[0] and "docker-credential-desktop" in said[0]
    assert "minipod login gcr.io" in said[0]


def test_no_warning_when_nothing_applies(tmp_path):
    write(tmp_path / "home/.docker/config.json", {"credHelpers": {"gcr.io": "gcloud"}})
    said = []
    assert credentials.lookup("quay.io", env=env_for(tmp_path), warn=said.append) is None
    assert said == []


def test_bad_base64_names_the_file_not_the_value(tmp_path):
    f = write(tmp_path / "auth.json", {"auths": {"r.io": {"auth": "!!not-base64!!"}}})
    with pytest.raises(ValueError) as e:
        credentials.lookup("r.io", env={"REGISTRY_AUTH_FILE": str(f)})
    assert str(f) in str(e.value) and "not-base64" not in str(e.value)


def test_broken_json_is_an_error_naming_the_file(tmp_path):
    f = tmp_path / "auth.json"
    f.write_text("{")
    with pytest.raises(ValueError, match=str(f)):
        credentials.lookup("r.io", env={"REGISTRY_AUTH_FILE": str(f)})


def test_login_writes_0600_keeps_others_and_logout_removes(tmp_path):
    own = tmp_path / "lib" / "auth.json"
    credentials.login(own, "r.io", "u1", "p:1")
    credentials.login(own, "https://index.docker.io/v1/", "hub", "p2")
    assert stat.S_IMODE(own.stat().st_mode) == 0o600
    doc = json.loads(own.read_text())
    assert set(doc["auths"]) == {"r.io", "docker.io"}
    creds = credentials.lookup("r.io", own=own, env={})
    assert (creds.username, creds.password) == ("u1", "p:1")     # ":" in a password is fine
    credentials.login(own, "r.io", "u2", "p3")                    # replaces
    assert credentials.lookup("r.io", own=own, env={}).username == "u2"
    assert credentials.logout(own, "r.io") is True
    assert credentials.logout(own, "r.io") is False
    assert credentials.lookup("r.io", own=own, env={}) is None
    assert credentials.lookup("docker.io", own=own, env={}).username == "hub"


def test_normalize_key():
    assert credentials.normalize_key("https://index.docker.io/v1/") == "docker.io"
    assert credentials.normalize_key("registry-1.docker.io") == "docker.io"
    assert credentials.normalize_key("http://reg.lan:5000/v2/") == "reg.lan:5000"
    assert credentials.normalize_key("quay.io/team/app") == "quay.io/team/app"


# -- what pull refuses before downloading ------------------------------------------------------

GZ = "application/vnd.oci.image.layer.v1.tar+gzip"


def test_foreign_layer_without_urls_is_refused():
    layer = {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
             "digest": "sha256:" + "a" * 64, "size": 1}
    with pytest.raises(pull.PullError, match="no urls"):
        pull._check_layers("x", [layer])
    pull._check_layers("x", [dict(layer, urls=["https://example.com/l"])])


def test_an_artifact_is_not_a_container_image():
    layer = {"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
             "digest": "sha256:" + "a" * 64}
    with pytest.raises(pull.PullError, match="not a container image"):
        pull._check_layers("charts/x:1", [layer])
    pull._check_layers("x", [{"mediaType": GZ, "digest": "sha256:" + "a" * 64}])


def test_zstd_without_the_module_says_what_to_install(monkeypatch):
    monkeypatch.setattr(pull.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(pull.PullError, match="pip install zstandard"):
        pull._check_layers("x", [{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
                                  "digest": "sha256:" + "a" * 64}])


# -- progress display --------------------------------------------------------------------------

def test_line_progress_prints_state_changes_only():
    out = io.StringIO()
    p = pull.LineProgress(out)
    d = "sha256:" + "0123456789ab" + "f" * 52
    p.layer(d, "Downloading", 1, 10)
    p.layer(d, "Downloading", 5, 10)
    p.layer(d, "Pull complete")
    assert out.getvalue() == "0123456789ab: Downloading\n0123456789ab: Pull complete\n"


def test_terminal_progress_redraws_a_layer_in_place():
    out = io.StringIO()
    p = pull.TerminalProgress(out)
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    p.layer(a, "Pulling fs layer")
    p.layer(b, "Pulling fs layer")
    p.layer(a, "Downloading", 500, 1000)
    text = out.getvalue()
    assert text.startswith("aaaaaaaaaaaa: Pulling fs layer\nbbbbbbbbbbbb: Pulling fs layer\n")
    # two rows up, clear, the bar, two rows down
    assert "\x1b[2A\x1b[2K\raaaaaaaaaaaa: Downloading [" in text
    assert "500B/1kB" in text and text.endswith("\x1b[2B\r")
