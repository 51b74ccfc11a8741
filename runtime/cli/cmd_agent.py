"""`minipod agent`: the node agent in the foreground; `agent stop|status`."""
from __future__ import annotations

from minipod.runtime.cli.cmdutil import CommandError, add_daemon_action, require_root


DESCRIPTION = ("Run the node agent in the foreground (for systemd). `agent start` starts it "
               "in the background (it re-adopts the pods and repairs half-done work); `agent "
               "stop` stops it and the API server of `minipod serve`, if one runs (pods keep "
               "running); `agent status` says whether it runs.")


def register(sub) -> None:
    p = sub.add_parser("agent", help="run the node agent (started on demand otherwise)",
                       description=DESCRIPTION)
    add_daemon_action(p)
    p.add_argument("--wait", action="store_true",
                   help="if another agent runs, wait for it to end, then serve (for a "
                        "supervisor such as systemd; without it, exit at once)")
    p.set_defaults(func=run)


def run(args, paths) -> int:
    from minipod.runtime import client
    if args.action == "run":
        require_root("agent run")
        if args.wait:
            # systemd's ExecStart: if an agent a CLI started holds the lock, wait
            # for it to end, then serve, instead of exiting at once (and being
            # restarted in a loop)
            client.wait_for_lock(paths)
        from minipod.runtime.agent import agent
        return agent.main(paths)
    try:
        return _control(args, paths)
    except client.AgentError as e:     # it died or refused while we asked: one line
        raise CommandError(str(e)) from None


def _control(args, paths) -> int:
    """`agent status|start|stop`: ask the agent, print its answer."""
    from minipod.runtime import client
    if args.action == "status":
        if client.agent_running(paths):
            answer = client.request(paths, {"op": "ping"}, start=False)
            print(f"agent running (pid {answer['pid']}, {answer['pods']} pods)")
            return 0
        print("agent not running")
        return 1
    require_root(f"agent {args.action}")
    if args.action == "start":
        answer = client.request(paths, {"op": "ping"})
        print(f"agent running (pid {answer['pid']}, {answer['pods']} pods)")
        return 0
    if not client.agent_running(paths):
        print("agent not running")
    else:
        answer = client.request(paths, {"op": "stop"}, start=False)
        print(f"agent (pid {answer['pid']}) stopping; pods keep running")
    # the API server goes too: it would start a new agent on its next request
    from minipod.runtime.apiserver import launch
    try:
        pid = launch.stop(paths)
    except launch.LaunchError as e:
        raise CommandError(str(e)) from None
    if pid is not None:
        print(f"API server (pid {pid}) stopped")
    return 0
