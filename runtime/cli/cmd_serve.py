"""`minipod serve`: the Kubernetes API server in the foreground; `serve stop|status`.

Commands that need the server (`minipod kubeconfig`) start it on demand,
in the background; `serve` runs it in the foreground (for systemd). It
does not idle out: a kubeconfig may point at it. See runtime/apiserver/.
"""
from __future__ import annotations

from minipod.runtime.cli.cmdutil import CommandError, add_daemon_action, require_root


def register(sub) -> None:
    p = sub.add_parser("serve", help="run the Kubernetes API server (kubectl talks to it)",
                       description="Serve the Kubernetes API on https://127.0.0.1:6443 "
                                   "(MINIPOD_API_PORT moves it) for kubectl and client "
                                   "libraries; `minipod kubeconfig` prints the credentials. "
                                   "`serve start` starts it in the background, `serve stop` "
                                   "stops it, `serve status` says whether it runs.")
    add_daemon_action(p)
    p.set_defaults(func=run)


def run(args, paths) -> int:
    from minipod.runtime.apiserver import launch
    try:
        if args.action == "status":
            found = launch.running(paths)
            if not found:
                print("API server not running")
                return 1
            print(f"API server running (pid {found[0]}, https://127.0.0.1:{found[1]})")
            return 0
        require_root(f"serve {args.action}" if args.action != "run" else "serve")
        if args.action == "stop":
            pid = launch.stop(paths)
            print("API server not running" if pid is None else f"API server (pid {pid}) stopped")
            return 0
        if args.action == "start":
            pid, port = launch.ensure(paths)
            print(f"API server running (pid {pid}, https://127.0.0.1:{port})")
            return 0
        return launch.serve_foreground(paths)
    except launch.LaunchError as e:
        raise CommandError(str(e))
