"""`minipod kubeconfig [--merge FILE]`: credentials for kubectl, context `minipod`.

Starts the API server if it is not running (that also makes its
certificates on first start) and prints a kubeconfig with the CA and the
admin client certificate and key inline, so that

    minipod kubeconfig > ~/.kube/config      or      KUBECONFIG=<(minipod kubeconfig)

is all a user does. --merge FILE adds (or replaces) the cluster, user and
context named `minipod` in FILE and leaves every other entry, and the
current context if one is set, as it was. The output holds a private key:
a merged file is written 0600.
"""
from __future__ import annotations

import base64
import sys

from minipod.runtime.cli.cmdutil import CommandError, require_root

NAME = "minipod"
USER = "minipod-admin"


def register(sub) -> None:
    p = sub.add_parser("kubeconfig", help="print a kubeconfig for kubectl (starts the API server)",
                       description="Print a kubeconfig (context minipod) for the API server "
                                   "`minipod serve` runs; --merge FILE adds it to FILE.")
    p.add_argument("--merge", metavar="FILE",
                   help="add the minipod context to FILE, leaving its other entries")
    p.set_defaults(func=run)


def entries(port: int, pki_files) -> dict:
    def b64(path) -> str:
        return base64.b64encode(path.read_bytes()).decode()
    return {
        "clusters": [{"name": NAME, "cluster": {
            "server": f"https://127.0.0.1:{port}",
            "certificate-authority-data": b64(pki_files.ca_crt)}}],
        "users": [{"name": USER, "user": {
            "client-certificate-data": b64(pki_files.admin_crt),
            "client-key-data": b64(pki_files.admin_key)}}],
        "contexts": [{"name": NAME, "context": {"cluster": NAME, "user": USER,
                                                "namespace": "default"}}],
    }


def merge(config: dict, ours: dict) -> dict:
    """config with our cluster, user and context put in (by name), the rest kept."""
    config = dict(config or {})
    config.setdefault("apiVersion", "v1")
    config.setdefault("kind", "Config")
    for key in ("clusters", "users", "contexts"):
        names = {e["name"] for e in ours[key]}
        kept = [e for e in (config.get(key) or []) if e.get("name") not in names]
        config[key] = kept + ours[key]
    if not config.get("current-context"):
        config["current-context"] = NAME
    config.setdefault("preferences", {})
    return config


def run(args, paths) -> int:
    import yaml
    from minipod.runtime import pki
    from minipod.runtime.apiserver import launch
    require_root("kubeconfig")
    try:
        _, port = launch.ensure(paths)
    except launch.LaunchError as e:
        raise CommandError(str(e))
    ours = entries(port, pki.files(paths))
    if not args.merge:
        config = {"apiVersion": "v1", "kind": "Config", **ours, "current-context": NAME,
                  "preferences": {}}
        sys.stdout.write(yaml.safe_dump(config, sort_keys=False, default_flow_style=False))
        return 0
    try:
        with open(args.merge) as f:
            existing = yaml.safe_load(f) or {}
    except FileNotFoundError:
        existing = {}
    except (OSError, yaml.YAMLError) as e:
        raise CommandError(f"cannot read kubeconfig {args.merge}: {e}")
    if not isinstance(existing, dict):
        raise CommandError(f"{args.merge} is not a kubeconfig (expected a map at the top)")
    config = merge(existing, ours)
    from minipod.linux.files import replace_file
    replace_file(args.merge, yaml.safe_dump(config, sort_keys=False,
                                            default_flow_style=False).encode(),
                 0o600, durable=True)
    current = config["current-context"]
    print(f"context {NAME} added to {args.merge}"
          + ("" if current == NAME else f" (current context stays {current}; "
                                        f"kubectl config use-context {NAME} switches)"),
          file=sys.stderr)
    return 0
