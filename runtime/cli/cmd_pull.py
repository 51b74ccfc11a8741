"""`minipod pull`, `minipod login`, `minipod logout`: images from registries.

    sudo minipod pull busybox                    # docker.io/library/busybox:latest
    sudo minipod pull localhost:5000/app:1 -q    # prints only the name
    sudo minipod login registry.example.com -u me --password-stdin < pw.txt
    sudo minipod logout registry.example.com

Settings live under /etc/minipod (MINIPOD_ROOT=/d moves them to /d/etc):
    certs.d/HOST[:PORT]/ca.crt     a registry's own CA (as /etc/docker/certs.d)
    insecure-registries            HOST[:PORT] or CIDR per line: plain HTTP allowed
Credentials: /var/lib/minipod/auth.json (written by `login`, mode 0600),
then podman's and Docker's files (see rootfs/credentials.py).

A failed pull prints one line whose second word is a stable reason class,
for the agent to put in a pod's status (as the kubelet does):
    error: ErrImagePull: image docker.io/library/nope:1 not found in registry
    error: InvalidImageName: invalid image reference "Bad": …
"""
from __future__ import annotations

import sys

from minipod.runtime.cli.cmdutil import CommandError, require_root


def register(sub) -> None:
    p = sub.add_parser("pull", help="pull an image from a registry",
                       description="Like `docker pull`: fetch NAME[:TAG|@DIGEST] (Docker Hub "
                                   "if no registry is named) into the local store.")
    p.add_argument("image", metavar="NAME[:TAG|@DIGEST]")
    p.add_argument("--insecure", action="store_true",
                   help="allow plain HTTP and unverified TLS for this image's registry")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image name")
    p.set_defaults(func=run)
    li = sub.add_parser("login", help="store credentials for a registry",
                        description="Check the credentials with the registry, then store "
                                    "them in LIB/auth.json (mode 0600).")
    li.add_argument("server", metavar="HOST[:PORT]", nargs="?", default="docker.io")
    li.add_argument("-u", "--username")
    li.add_argument("--password-stdin", action="store_true",
                    help="read the password from standard input")
    li.add_argument("--insecure", action="store_true",
                    help="allow plain HTTP and unverified TLS for this registry")
    li.set_defaults(func=run)
    lo = sub.add_parser("logout", help="remove stored credentials for a registry")
    lo.add_argument("server", metavar="HOST[:PORT]", nargs="?", default="docker.io")
    lo.set_defaults(func=run)


def etc_dir(paths):
    """/etc/minipod, or ROOT/etc when MINIPOD_ROOT is set."""
    from pathlib import Path
    return Path(paths.root, "etc") if paths.root else Path("/etc/minipod")


def _insecure(paths, args, registry: str) -> set[str]:
    from minipod.rootfs.transport import read_insecure_file
    listed = read_insecure_file(etc_dir(paths) / "insecure-registries")
    return listed | {registry} if args.insecure else listed


def run(args, paths) -> int:
    if args.verb == "pull":
        return _pull(args, paths)
    if args.verb == "login":
        return _login(args, paths)
    return _logout(args, paths)


def _pull(args, paths) -> int:
    from minipod.rootfs import pull, reference
    from minipod.rootfs.transport import RegistryError
    from minipod.rootfs.blobs import BlobError
    from minipod.rootfs.store import ImageStore
    from minipod.rootfs.unpack import LayerError
    try:
        ref = reference.parse(args.image)
    except ValueError as e:
        raise CommandError(f"InvalidImageName: {e}")
    require_root("pull")
    if args.quiet:
        progress = pull.Progress()
    elif sys.stderr.isatty():
        progress = pull.TerminalProgress(sys.stderr)
    else:
        progress = pull.LineProgress(sys.stderr)
    try:
        image = pull.pull(ImageStore(paths.images), str(ref), progress=progress,
                          insecure=_insecure(paths, args, ref.registry),
                          certs_dir=etc_dir(paths) / "certs.d",
                          auth_file=paths.lib / "auth.json")
    except (RegistryError, pull.PullError, BlobError, LayerError, ValueError) as e:
        raise CommandError(f"ErrImagePull: {e}")
    except OSError as e:
        raise CommandError(f"ErrImagePull: {e.strerror or e}: {e.filename or ''}".rstrip(": "))
    print(image.reference)
    return 0


def _registry_name(server: str) -> str:
    """"https://index.docker.io/v1/" or "docker.io" -> the name references use."""
    from minipod.rootfs.credentials import normalize_key
    return normalize_key(server).split("/", 1)[0]


def _login(args, paths) -> int:
    import getpass

    from minipod.rootfs import credentials
    from minipod.rootfs.credentials import Credentials
    from minipod.rootfs.registry import Registry
    from minipod.rootfs.transport import RegistryError, is_insecure
    registry = _registry_name(args.server)
    username = args.username
    try:
        if not username:
            if args.password_stdin:
                raise CommandError("--password-stdin needs --username", 2)
            username = input("Username: ").strip()
        if args.password_stdin:
            password = sys.stdin.read().rstrip("\r\n")
        else:
            password = getpass.getpass("Password: ")
    except EOFError:
        raise CommandError("no user name or password given (stdin closed)", 2)
    if not username or not password:
        raise CommandError("a user name and a password are needed", 2)
    own = paths.lib / "auth.json"
    creds = Credentials(username, password)
    client = Registry(registry, insecure=is_insecure(registry, _insecure(paths, args, registry)),
                      certs_dir=etc_dir(paths) / "certs.d", credentials=creds)
    try:
        client.check_login()
        credentials.login(own, registry, username, password)
    except RegistryError as e:
        raise CommandError(f"login to {registry} failed: {e}")
    except ValueError as e:
        raise CommandError(str(e))
    except OSError as e:
        raise CommandError(f"cannot store credentials: {e.strerror or e}: {e.filename or own}")
    finally:
        client.close_all()
    print("Login Succeeded")
    return 0


def _logout(args, paths) -> int:
    from minipod.rootfs import credentials
    registry = _registry_name(args.server)
    try:
        removed = credentials.logout(paths.lib / "auth.json", registry)
    except ValueError as e:
        raise CommandError(str(e))
    except OSError as e:
        raise CommandError(f"cannot update credentials: {e.strerror or e}: {e.filename or ''}")
    print(f"Removed login credentials for {registry}" if removed
          else f"Not logged in to {registry}")
    return 0
