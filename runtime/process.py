"""What a container runs: Kubernetes' rules over the image's config (pure).

    command  args     runs
    -------  -------  -----------------------------------------
    unset    unset    image Entrypoint + image Cmd
    set      unset    command            (image Cmd is ignored)
    unset    set      image Entrypoint + args
    set      set      command + args

(kubernetes.io, "Define a Command and Arguments for a Container".)
`$(VAR)` in command, args and env values expands to the container's
variable, `$$(VAR)` stays literal, an unknown `$(VAR)` is left as it is.
"""
from __future__ import annotations

import re

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_REF = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")


class ProcessError(ValueError):
    """Nothing to run, or an unusable user: the pod cannot start."""


def expand(text: str, env: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return _REF.sub(sub, text)


def argv(command: list[str] | None, args: list[str] | None, image_config: dict,
         env: dict[str, str]) -> list[str]:
    entrypoint = image_config.get("Entrypoint") or []
    cmd = image_config.get("Cmd") or []
    if command:
        result = list(command) + list(args or [])
    else:
        result = list(entrypoint) + list(args if args is not None else cmd)
    if not result:
        raise ProcessError("no command: the container sets neither command nor args, "
                           "and the image has no Entrypoint or Cmd")
    return [expand(a, env) for a in result]


def environment(image_config: dict, container_env: list[tuple[str, str]],
                hostname: str, home: str = "/root") -> dict[str, str]:
    """Image Env, then HOSTNAME, then the container's env (later wins);
    HOME, unless one of them set it, is `home` (see home())."""
    env: dict[str, str] = {}
    for item in image_config.get("Env") or []:
        key, _, value = item.partition("=")
        env[key] = value
    env.setdefault("PATH", DEFAULT_PATH)
    env["HOSTNAME"] = hostname
    for name, value in container_env:
        env[name] = expand(value, env)
    env.setdefault("HOME", home)
    return env


def home(uid: int, passwd: str) -> str:
    """The home directory of uid in the image's /etc/passwd text, or "/"
    when it has no entry: what runc sets as HOME when the environment has
    none (libcontainer/init_linux.go, user.GetExecUser's default), so a
    non-root user never gets /root."""
    for line in passwd.splitlines():
        f = line.split(":")
        if len(f) >= 6 and f[2] == str(uid) and f[5]:
            return f[5]
    return "/"


def user(spec: str | None, passwd: str = "", group: str = "") -> tuple[int, int]:
    """Resolve the image's User ("1000", "1000:1000", "nobody", "nobody:nogroup")
    against the image's /etc/passwd and /etc/group texts."""
    if not spec:
        return 0, 0
    name, _, grp = spec.partition(":")
    uid = gid = None
    if name.isdigit():
        uid = int(name)
    for line in passwd.splitlines():
        f = line.split(":")
        if len(f) >= 4 and (f[0] == name or (uid is not None and f[2] == str(uid))):
            uid, gid = int(f[2]), int(f[3])
            break
    if uid is None:
        raise ProcessError(f'image user "{name}" is not in the image\'s /etc/passwd')
    if grp:
        if grp.isdigit():
            gid = int(grp)
        else:
            for line in group.splitlines():
                f = line.split(":")
                if len(f) >= 3 and f[0] == grp:
                    gid = int(f[2])
                    break
            else:
                raise ProcessError(f'image group "{grp}" is not in the image\'s /etc/group')
    return uid, gid if gid is not None else 0
