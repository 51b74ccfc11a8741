"""Image reference parsing: Docker's normalisation rules, table-driven."""
import pytest

from minipod.rootfs.reference import Reference, parse

D = "sha256:" + "a" * 64

VALID = [
    # input                              registry            repository          tag        digest   familiar
    ("busybox",                          "docker.io",        "library/busybox",  "latest",  None,    "busybox:latest"),
    ("busybox:1.36",                     "docker.io",        "library/busybox",  "1.36",    None,    "busybox:1.36"),
    ("luksa/kubia",                      "docker.io",        "luksa/kubia",      "latest",  None,    "luksa/kubia:latest"),
    ("docker.io/luksa/kubia:v2",         "docker.io",        "luksa/kubia",      "v2",      None,    "luksa/kubia:v2"),
    ("index.docker.io/library/nginx",    "docker.io",        "library/nginx",    "latest",  None,    "nginx:latest"),
    ("docker.io/library/a/b",            "docker.io",        "library/a/b",      "latest",  None,    "library/a/b:latest"),
    ("localhost/x",                      "localhost",        "x",                "latest",  None,    "localhost/x:latest"),
    ("localhost:5000/x",                 "localhost:5000",   "x",                "latest",  None,    "localhost:5000/x:latest"),
    ("127.0.0.1:5000/a/b:t",             "127.0.0.1:5000",   "a/b",              "t",       None,    "127.0.0.1:5000/a/b:t"),
    ("registry.example.com/a/b:1@" + D,  "registry.example.com", "a/b",          "1",       D,       "registry.example.com/a/b:1@" + D),
    ("busybox@" + D,                     "docker.io",        "library/busybox",  None,      D,       "busybox@" + D),
    ("Registry.Example/x",               "Registry.Example", "x",                "latest",  None,    "Registry.Example/x:latest"),
    ("quay.io/a-b_c.d__e/f---g:T_1.x-y", "quay.io",          "a-b_c.d__e/f---g", "T_1.x-y", None,    "quay.io/a-b_c.d__e/f---g:T_1.x-y"),
]


@pytest.mark.parametrize("text,registry,repository,tag,digest,familiar", VALID)
def test_parse_valid(text, registry, repository, tag, digest, familiar):
    ref = parse(text)
    assert ref == Reference(registry, repository, tag, digest)
    assert ref.familiar == familiar
    # str() is the full form, and parsing it again gives the same reference.
    assert parse(str(ref)) == ref


def test_str_full_form():
    assert str(parse("luksa/kubia")) == "docker.io/luksa/kubia:latest"
    assert str(parse("busybox")) == "docker.io/library/busybox:latest"
    assert str(parse("busybox@" + D)) == "docker.io/library/busybox@" + D


INVALID = [
    ("",                       "empty"),
    ("Busybox",                "must be lowercase"),
    ("luksa/Kubia",            "must be lowercase"),
    ("busybox:",               "invalid tag"),
    ("busybox:-x",             "invalid tag"),
    ("busybox:a/b",            "invalid registry"),   # a ":" before a "/" means a host:port
    ("busybox:" + "t" * 129,   "invalid tag"),
    ("busybox@sha256:abc",     "invalid digest"),
    ("busybox@sha256:" + "A" * 64, "lowercase"),
    ("busybox@md5:" + "a" * 32, "unsupported algorithm"),
    ("a" * 64,                 "image id"),
    ("-x",                     "invalid repository name"),
    ("x_",                     "invalid repository name"),
    ("a//b",                   "invalid repository name"),
    ("localhost:abc/x",        "invalid registry"),
    ("bad host/x",             "whitespace"),
    ("x/" + "a" * 260,         "longer than 255"),
]


@pytest.mark.parametrize("text,why", INVALID)
def test_parse_invalid(text, why):
    with pytest.raises(ValueError) as e:
        parse(text)
    assert why in str(e.value)
    assert f'"{text}"' in str(e.value)        # the message quotes the input
