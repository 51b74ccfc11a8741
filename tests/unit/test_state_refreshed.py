"""state.refreshed: a record's running container whose process is gone is
shown ended (reason Unknown), init containers as well as app containers."""
import os
import subprocess

from minipod.linux import proc as linux_proc
from minipod.runtime import state
from minipod.runtime.api.record import PodRecord


def _ended_pid() -> tuple[int, int]:
    """A pid with its start time, of a process that has ended and been reaped."""
    proc = subprocess.Popen(["sleep", "30"])
    start = linux_proc.start_time(proc.pid)
    proc.kill()
    proc.wait()
    return proc.pid, start


def test_a_gone_init_container_is_not_shown_running():
    pid, start = _ended_pid()
    me = os.getpid()
    record = PodRecord.from_dict({
        "name": "web",
        "initContainers": [{"name": "sidecar", "state": "running", "pid": pid,
                            "pidStart": start}],
        "containers": [{"name": "main", "state": "running", "pid": me,
                        "pidStart": linux_proc.start_time(me)}]})
    state.refreshed(record)
    init, main = record.init_containers[0], record.containers[0]
    assert (init.state, init.reason, init.exit_code) == ("terminated", "Unknown", None)
    assert main.state == "running"    # a live process stays running
