"""What the agent holds for one live container (RunningContainer).

The pid (with a pidfd when the container is not the agent's child: an
adopted one), the output files being relayed (output.py), the log writer,
the probes' state (prober.py), and whether it is being killed.
"""
from __future__ import annotations

from minipod.runtime import logs, probes


class RunningContainer:
    """What the agent holds for one live container: pid, pidfd, log pipes."""

    def __init__(self, pod: str, name: str):
        self.pod, self.name = pod, name
        self.uid: str | None = None         # the pod's uid (its output files' dir)
        self.pid: int | None = None
        self.pidfd: int | None = None       # only for adopted (non-child) pids
        self.fifo_fds: dict[int, str] = {}  # output fd -> "stdout" | "stderr"
        self.out_pos: dict[int, int] = {}   # output file fd -> bytes read (FIFOs: absent)
        self.out_wd: dict[int, int] = {}    # output file fd -> its inotify watch
        self.punched: dict[int, float] = {} # output file fd -> bytes given back (holes)
        self.tail: dict[int, bytes] = {}    # output file fd -> the last bytes read, to
                                            # notice the file emptied and written again
        self.pos_fd: int | None = None      # the file that keeps out_pos across agents
        self.writer: logs.LogWriter | None = None
        self.probes: dict[str, probes.ProbeState] = {}
        self.stopping = False               # being killed (a probe or hook failed)
