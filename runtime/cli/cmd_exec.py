"""`minipod exec POD [-c C] [-i] [-t] -- CMD [ARG…]`: run a command in a container.

The CLI itself enters the container's namespaces (runtime/enter.py); the
agent is not involved. With -t the command gets a real pseudo-terminal:
this terminal is put in raw mode, bytes are relayed both ways, the window
size follows SIGWINCH, and Ctrl-C reaches the process through the pty's
line discipline, as with `kubectl exec -it`. Without -t its stdout and
stderr (and with -i its stdin) are pipes this CLI owns and copies, byte
for byte, to and from its own, as containerd does: the container never
holds the caller's terminal or files, so it cannot type into that
terminal (TIOCSTI) or reopen them. The exit code passes through.
"""
from __future__ import annotations

import errno
import os
import sys

from minipod.runtime.cli.cmdutil import (CommandError, add_namespace, namespace_of, read_pod,
                                     require_root)


def register(sub) -> None:
    p = sub.add_parser("exec", help="run a command in a running container",
                       description="Like `kubectl exec POD [-c CONTAINER] [-i] [-t] -- CMD`.")
    p.add_argument("pod", metavar="POD")
    p.add_argument("-c", "--container")
    p.add_argument("-i", "--stdin", action="store_true", help="pass stdin to the command")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-terminal")
    p.add_argument("--explain", action="store_true",
                   help="print the equivalent nsenter command first")
    add_namespace(p)
    p.add_argument("argv", nargs="+", metavar="-- CMD")
    p.set_defaults(func=run)


def run(args, paths) -> int:
    require_root("exec")
    from minipod.runtime import container as ctr
    from minipod.runtime import enter, state
    name = args.pod.removeprefix("pod/")
    try:
        record = read_pod(paths, namespace_of(args), name)
    except FileNotFoundError:
        raise CommandError(f'Error from server (NotFound): pods "{name}" not found')
    cs = _pick(record, args.container)
    if cs.state != "running" or not state.alive(cs.pid, cs.pid_start):
        raise CommandError(f"cannot exec in a container that is not running: pod {name}, "
                           f"container {cs.name} is {cs.state}")
    argv = args.argv[1:] if args.argv[0] == "--" else args.argv
    if not argv:
        raise CommandError("say what to run: minipod exec POD -- CMD", 2)
    if args.explain:
        import shlex
        flags = "--mount --uts --ipc --net --pid"
        print(f"# join every namespace of the container's PID 1 (host pid {cs.pid}); "
              f"joining its mount namespace also makes its root ours\n"
              f"$ nsenter --target {cs.pid} {flags} -- {shlex.join(argv)}", file=sys.stderr)
    ours = theirs = None
    pipes: dict[str, tuple[int, int]] = {}  # stream -> (read end, write end)
    size = None
    if args.tty:
        import socket
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        size = _terminal_size()
    else:
        pipes = {s: os.pipe() for s in (["stdin"] if args.stdin else []) + ["stdout", "stderr"]}
    stdio = None if args.tty else (pipes["stdin"][0] if args.stdin else None,
                                   pipes["stdout"][1], pipes["stderr"][1])
    try:
        spec = enter.for_container(record, cs, paths, argv, console=theirs, stdio=stdio,
                                   console_size=size, name=f"{name}/{cs.name}")
        child = enter.start(spec)
    except ctr.StartError as e:
        for r, w in pipes.values():
            os.close(r)
            os.close(w)
        raise CommandError(f"exec in {name}/{cs.name} failed: {e}",
                           127 if e.errno == errno.ENOENT else 126)
    finally:
        if theirs is not None:
            theirs.close()
    _pass_signals(child)
    if ours is not None:
        master = enter.receive_pty(ours)
        ours.close()
        _relay_tty(master, child, args.stdin)
    else:
        _relay_pipes(child, pipes)
    _, status = os.waitpid(child, 0)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _pass_signals(child: int) -> None:
    """Pass SIGINT, SIGTERM and SIGHUP on to the command's process group.

    The command is in a session of its own ([2:EXEC] calls setsid), so a
    signal to this CLI or its group (Ctrl-C without -t; the API server
    ending the CLI of an exec whose client went away) would not reach it,
    and it would outlive us in the container. A second signal kills the
    group (SIGKILL): it ignored or trapped the first. The command's host pid
    is [1:JOIN]'s only child; a pidfd makes the signal to the command itself
    race-free, killpg takes what it started in its group along."""
    import signal
    try:
        with open(f"/proc/{child}/task/{child}/children") as f:
            pid = int(f.read().split()[0])
        pidfd = os.pidfd_open(pid)
    except (OSError, ValueError, IndexError):
        return          # it has ended already
    received = []

    def forward(signum, _frame) -> None:
        received.append(signum)
        sig = signum if len(received) == 1 else signal.SIGKILL
        try:
            signal.pidfd_send_signal(pidfd, sig)
            os.killpg(pid, sig)     # the group: pid still names the command (no ESRCH above)
        except ProcessLookupError:
            pass

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)


def _pick(record, wanted: str | None):
    """The ContainerRecord to exec in: -c WANTED, or the first main container."""
    containers = record.containers
    if wanted is None:
        if len(containers) > 1:
            print(f'Defaulted container "{containers[0].name}" out of: '
                  f'{", ".join(c.name for c in containers)}', file=sys.stderr)
        return containers[0]
    c = record.container(wanted)   # a running sidecar too
    if c is None:
        raise CommandError(f"container {wanted} not found in pod {record.name}")
    return c


def _terminal_size() -> bytes | None:
    """This terminal's struct winsize (TIOCGWINSZ on stdin), None if stdin is none."""
    import fcntl
    import termios
    try:
        return fcntl.ioctl(sys.stdin.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
    except (OSError, ValueError):
        return None


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


def _relay_pipes(child: int, pipes: dict[str, tuple[int, int]]) -> None:
    """Copy our stdin into the command's stdin pipe (-i; closed at our EOF,
    so the command sees EOF) and its stdout and stderr pipes to ours, until
    both reach EOF, or the command has ended (its [1:JOIN] parent, `child`,
    exits with it) and what it wrote is drained: a background process it
    left holding the pipes does not keep us waiting (containerd's exec
    drains the same way). Binary-safe: bytes in, the same bytes out."""
    import select
    for stream in pipes:  # close the ends the command holds now
        os.close(pipes[stream][0] if stream == "stdin" else pipes[stream][1])
    sink = {pipes["stdout"][0]: sys.stdout.fileno(), pipes["stderr"][0]: sys.stderr.fileno()}
    to_cmd = pipes["stdin"][1] if "stdin" in pipes else None
    stdin = sys.stdin.fileno() if to_cmd is not None else None
    pending = b""
    exited = os.pidfd_open(child)
    try:
        while sink:
            readers = [*sink, exited] + ([stdin] if stdin is not None and not pending else [])
            ready, writable, _ = select.select(readers, [to_cmd] if pending else [], [])
            if exited in ready:  # the command ended: take what it wrote, then stop
                for fd in sink:
                    os.set_blocking(fd, False)
                ready = list(sink)
            for fd in [fd for fd in ready if fd in sink]:
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    data = b""
                if not data or not _write_all(sink[fd], data):
                    os.close(fd)   # EOF, or our side is gone: the command gets EPIPE
                    del sink[fd]
            if stdin is not None and stdin in ready:
                pending = os.read(stdin, 65536)
                if not pending:
                    stdin = None
                    os.close(to_cmd)  # the command reads EOF
                    to_cmd = None
            if to_cmd is not None and to_cmd in writable:
                try:
                    pending = pending[os.write(to_cmd, pending):]
                except BrokenPipeError:  # the command closed its stdin
                    stdin, pending = None, b""
                    os.close(to_cmd)
                    to_cmd = None
    finally:
        os.close(exited)
        for fd in sink:
            os.close(fd)
        if to_cmd is not None:
            os.close(to_cmd)


def _write_all(fd: int, data: bytes) -> bool:
    """Write all of data to fd; False if its reader is gone (EPIPE)."""
    try:
        while data:
            data = data[os.write(fd, data):]
    except BrokenPipeError:
        return False
    return True
