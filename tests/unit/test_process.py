"""Kubernetes' command/args rules over the image config (pure)."""
import pytest

from minipod.runtime import process

IMAGE = {"Entrypoint": ["/bin/entry"], "Cmd": ["--default"], "Env": ["PATH=/img/bin", "A=1"]}


@pytest.mark.parametrize("command,args,expected", [
    (None, None, ["/bin/entry", "--default"]),
    (["/bin/sh"], None, ["/bin/sh"]),                       # image Cmd ignored
    (None, ["--flag"], ["/bin/entry", "--flag"]),           # Entrypoint kept
    (["/bin/sh"], ["-c", "true"], ["/bin/sh", "-c", "true"]),
])
def test_command_and_args_override_the_image(command, args, expected):
    assert process.argv(command, args, IMAGE, {}) == expected


def test_no_command_anywhere_is_an_error():
    with pytest.raises(process.ProcessError, match="no command"):
        process.argv(None, None, {}, {})


def test_variable_references_expand_and_dollar_dollar_escapes():
    env = {"NAME": "kubia"}
    assert process.argv(["echo", "$(NAME)", "$$(NAME)", "$(MISSING)"], None, {}, env) == \
        ["echo", "kubia", "$(NAME)", "$(MISSING)"]


def test_environment_layers_image_then_hostname_then_container():
    env = process.environment(IMAGE, [("A", "2"), ("B", "$(A)-x")], "web")
    assert env["PATH"] == "/img/bin"
    assert env["A"] == "2" and env["B"] == "2-x"
    assert env["HOSTNAME"] == "web" and env["HOME"] == "/root"


def test_default_path_when_image_has_none():
    assert process.environment({}, [], "p")["PATH"] == process.DEFAULT_PATH


PASSWD = "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\nstaff:x:50:\n"


@pytest.mark.parametrize("spec,expected", [
    (None, (0, 0)), ("", (0, 0)), ("nobody", (65534, 65534)), ("1000", (1000, 0)),
    ("1000:1000", (1000, 1000)), ("nobody:staff", (65534, 50)),
])
def test_image_user_resolves_against_the_images_passwd(spec, expected):
    assert process.user(spec, PASSWD, GROUP) == expected


def test_unknown_user_names_the_file():
    with pytest.raises(process.ProcessError, match="/etc/passwd"):
        process.user("daemon", PASSWD, GROUP)


def test_home_comes_from_the_images_passwd_entry_of_the_uid():
    passwd = "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
    assert process.home(1000, passwd) == "/home/app"
    assert process.home(0, passwd) == "/root"


def test_home_is_root_dir_for_a_uid_without_an_entry():
    assert process.home(4242, "root:x:0:0::/root:/bin/sh\n") == "/"
    assert process.home(0, "") == "/"


def test_home_given_is_used_unless_the_env_sets_it():
    assert process.environment({}, [], "p", "/home/app")["HOME"] == "/home/app"
    image = {"Env": ["HOME=/data"]}
    assert process.environment(image, [], "p", "/home/app")["HOME"] == "/data"
    assert process.environment({}, [("HOME", "/x")], "p", "/home/app")["HOME"] == "/x"
