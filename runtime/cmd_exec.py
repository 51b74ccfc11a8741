"""`minipod exec POD [-c C] [-i] [-t] -- CMD [ARG…]`: run a command in a container.

The CLI itself enters the container's namespaces (runtime/enter.py); the
agent is not involved. With -t the command gets a real pseudo-terminal:
this terminal is put in raw mode, bytes are relayed both ways, the window
size follows SIGWINCH, and Ctrl-C reaches the process through the pty's
line discipline, as with `kubectl exec -it`. The exit code passes through.
"""
from __future__ import annotations

import os
import sys

from minipod.runtime.cmdutil import CommandError, require_root


def register(sub) -> None:
    p = sub.add_parser("exec", help="run a command in a running container",
                       description="Like `kubectl exec POD [-c CONTAINER] [-i] [-t] -- CMD`.")
    p.add_argument("pod", metavar="POD")
    p.add_argument("-c", "--container")
    p.add_argument("-i", "--stdin", action="store_true", help="pass stdin to the command")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-terminal")
    p.add_argument("--explain", action="store_true",
                   help="print the equivalent nsenter command first")
    p.add_argument("argv", nargs="+", metavar="-- CMD")
    p.set_defaults(func=run)


def run(args, paths) -> int:
    require_root("exec")
    from minipod.runtime import container as ctr
    from minipod.runtime import enter, state
    name = args.pod.removeprefix("pod/")
    try:
        record = state.read(paths.pod_dir(name))
    except FileNotFoundError:
        raise CommandError(f'Error from server (NotFound): pods "{name}" not found')
    cs = _pick(record, args.container)
    if cs["state"] != "running" or not state.alive(cs.get("pid"), cs.get("pidStart")):
        raise CommandError(f"cannot exec in a container that is not running: pod {name}, "
                           f"container {cs['name']} is {cs['state']}")
    argv = args.argv[1:] if args.argv[0] == "--" else args.argv
    if not argv:
        raise CommandError("say what to run: minipod exec POD -- CMD", 2)
    if args.explain:
        import shlex
        flags = "--mount --uts --ipc --net --pid"
        print(f"# join every namespace of the container's PID 1 (host pid {cs['pid']}); "
              f"joining its mount namespace also makes its root ours\n"
              f"$ nsenter --target {cs['pid']} {flags} -- {shlex.join(argv)}", file=sys.stderr)
    ours = theirs = None
    if args.tty:
        import socket
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    spec = enter.ExecSpec(pid=cs["pid"], argv=argv, console=theirs, stdin=args.stdin,
                          name=f"{name}/{cs['name']}")
    confine(spec, record, cs, paths)
    try:
        child = enter.start(spec)
    except ctr.StartError as e:
        raise CommandError(f"exec in {name}/{cs['name']} failed: {e}", 126 if e.errno != 2 else 127)
    finally:
        if theirs is not None:
            theirs.close()
    if ours is not None:
        master = enter.receive_pty(ours)
        ours.close()
        _relay_tty(master, child, args.stdin)
    _, status = os.waitpid(child, 0)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def confine(spec, record: dict, cs: dict, paths) -> None:
    """The command gets what the container's own process has: its cgroup,
    its user, capabilities, no_new_privs and seccomp filter (the mounts,
    masked paths and read-only root are already in its mount namespace)."""
    import dataclasses
    from minipod import cgroups
    from minipod.runtime import manifest, security
    if cs.get("cgroup"):
        spec.cgroup_procs = cgroups.detect(parent=paths.cgroup_parent).join_paths(cs["cgroup"])
    pod = manifest.load_object(record["manifest"], record.get("source", "<state>"))
    c = next(c for c in pod.init_containers + pod.containers if c.name == cs["name"])
    uid, gid = _ids(cs["pid"])
    plan = security.plan_security(c.security_context, f"{uid}:{gid}")
    spec.security = security.prepare(dataclasses.replace(
        plan, masked_paths=[], readonly_paths=[], readonly_root=False))


def _ids(pid: int) -> tuple[int, int]:
    """The uid and gid the container's process runs as."""
    uid = gid = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                uid = int(line.split()[1])
            elif line.startswith("Gid:"):
                gid = int(line.split()[1])
    return uid, gid


def _pick(record: dict, wanted: str | None) -> dict:
    containers = record["containers"]
    if wanted is None:
        if len(containers) > 1:
            print(f'Defaulted container "{containers[0]["name"]}" out of: '
                  f'{", ".join(c["name"] for c in containers)}', file=sys.stderr)
        return containers[0]
    for c in containers:
        if c["name"] == wanted:
            return c
    raise CommandError(f"container {wanted} not found in pod {record['name']}")


def _relay_tty(master: int, child: int, with_stdin: bool) -> None:
    """Copy between this terminal and the pty until the command's side closes."""
    import select
    import signal
    import termios
    import tty
    stdin = sys.stdin.fileno()
    is_tty = os.isatty(stdin)
    saved = termios.tcgetattr(stdin) if is_tty else None

    def resize(*_):
        if is_tty:
            import fcntl
            size = fcntl.ioctl(stdin, termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(master, termios.TIOCSWINSZ, size)

    resize()
    old_winch = signal.signal(signal.SIGWINCH, resize)
    try:
        if is_tty:
            tty.setraw(stdin, termios.TCSANOW)  # keep what was typed ahead
        inputs = [master] + ([stdin] if with_stdin else [])
        while True:
            try:
                ready, _, _ = select.select(inputs, [], [])
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the slave side is closed, the command ended
                    data = b""
                if not data:
                    break
                os.write(sys.stdout.fileno(), data)
            if stdin in ready:
                data = os.read(stdin, 65536)
                if not data:
                    inputs.remove(stdin)
                    continue
                os.write(master, data)
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        signal.signal(signal.SIGWINCH, old_winch)
        os.close(master)
