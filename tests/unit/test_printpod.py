"""kubectl's READY / STATUS / RESTARTS columns (podstatus.print_pod), table-driven.

The cases are kubectl's own: TestPrintPod and
TestPrintPodWithRestartableInitContainer of kubernetes
pkg/printers/internalversion/printers_test.go, written as Pod JSON, then the
states minipod itself records (a container that failed to start, an exit
code nobody could see).
"""
import time

import pytest

from minipod.runtime.api import podstatus

NOW = 1_800_000_000


def ago(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - seconds))


RUNNING = {"running": {}}
WAITING = {"waiting": {}}


def cs(state=None, ready=False, restarts=0, last_finished=None, **kw):
    out = {"ready": ready, "restartCount": restarts, "state": state or {}}
    if last_finished is not None:
        out["lastState"] = {"terminated": {"finishedAt": ago(last_finished)}}
    return {**out, **kw}


def waiting(reason):
    return {"waiting": {"reason": reason}}


def terminated(reason="", code=0, signal=0):
    t = {"exitCode": code}
    if reason:
        t["reason"] = reason
    if signal:
        t["signal"] = signal
    return {"terminated": t}


def pod(containers=(), inits=(), phase="podPhase", init_specs=None, deleted=False,
        conditions=(), reason=None, n_containers=None, n_inits=None):
    spec = {"containers": [{}] * (len(containers) if n_containers is None else n_containers)}
    if init_specs is not None:
        spec["initContainers"] = init_specs
    elif inits or n_inits:
        spec["initContainers"] = [{}] * (len(inits) if n_inits is None else n_inits)
    status = {"phase": phase, "containerStatuses": list(containers),
              "initContainerStatuses": list(inits), "conditions": list(conditions)}
    if reason:
        status["reason"] = reason
    meta = {"name": "p"}
    if deleted:
        meta["deletionTimestamp"] = ago(10)
    return {"metadata": meta, "spec": spec, "status": status}


READY_TRUE = {"type": "Ready", "status": "True"}
INITIALIZED = {"type": "Initialized", "status": "True"}
NOT_INITIALIZED = {"type": "Initialized", "status": "False"}
SIDECARS = [{"name": "restartable-init-1", "restartPolicy": "Always"},
            {"name": "restartable-init-2", "restartPolicy": "Always"}]

PRINT_POD = [
    # test1: name, number of containers, restarts, ready
    ("test1", pod([cs(RUNNING, True, 3), cs(restarts=3)]), ("1/2", "podPhase", "6")),
    # test2: a container's waiting reason overwrites the phase
    ("test2", pod([cs(RUNNING, True, 3), cs(waiting("ContainerWaitingReason"), restarts=3)]),
     ("1/2", "ContainerWaitingReason", "6")),
    # test3: the first container overwrites the rest
    ("test3", pod([cs(waiting("ContainerWaitingReason"), restarts=3),
                   cs(terminated("ContainerTerminatedReason"), restarts=3)]),
     ("0/2", "ContainerWaitingReason", "6")),
    # test4: ready is not enough for reporting running
    ("test4", pod([cs(RUNNING, True, 3), cs(ready=True, restarts=3)]), ("1/2", "podPhase", "6")),
    # test5: status.reason wins over the phase
    ("test5", pod([cs(RUNNING, True, 3), cs(ready=True, restarts=3)], reason="podReason"),
     ("1/2", "podReason", "6")),
    # test6: one running, one completed, no Ready condition
    ("test6", pod([cs(terminated("Completed"), True, 3), cs(RUNNING, True, 3)], phase="Running"),
     ("1/2", "NotReady", "6")),
    # test6b: the same with the Ready condition
    ("test6b", pod([cs(terminated("Completed"), True, 3), cs(RUNNING, True, 3)],
                   phase="Running", conditions=[READY_TRUE]),
     ("1/2", "Running", "6")),
    # test7: one init container restarting, one container not running
    ("test7", pod([cs(WAITING)], [cs(RUNNING, restarts=3, last_finished=10)]),
     ("0/1", "Init:0/1", "3 (10s ago)")),
    # test8: two init containers, one restarting, one not running
    ("test8", pod([cs(WAITING)], [cs(RUNNING, restarts=3, last_finished=10), cs(WAITING)]),
     ("0/1", "Init:0/2", "3 (10s ago)")),
    # test9: one init completed without restarts, the other restarting
    ("test9", pod([cs(WAITING)], [cs(terminated()), cs(RUNNING, restarts=3, last_finished=10)]),
     ("0/1", "Init:1/2", "3 (10s ago)")),
    # test10: one init completed with restarts, the other restarting
    ("test10", pod([cs(WAITING)], [cs(terminated(), restarts=2, last_finished=120),
                                   cs(RUNNING, restarts=3, last_finished=10)]),
     ("0/1", "Init:1/2", "5 (10s ago)")),
    # test11: init completed with restarts, the container restarting: init's no longer count
    ("test11", pod([cs(RUNNING, restarts=4, last_finished=20)],
                   [cs(terminated(), restarts=2, last_finished=120)], phase="Running"),
     ("0/1", "Running", "4 (20s ago)")),
    # test12: restarted 5 days ago
    ("test12", pod([cs(RUNNING, True, 3, last_finished=5 * 86400)], phase="Running"),
     ("1/1", "Running", "3 (5d ago)")),
    # test13: one never restarted, the other 10 days ago
    ("test13", pod([cs(RUNNING, True), cs(RUNNING, True, 3, last_finished=10 * 86400)],
                   phase="Running"),
     ("2/2", "Running", "3 (10d ago)")),
    # test14: 5 and 20 days ago: the newest counts
    ("test14", pod([cs(RUNNING, True, 6, last_finished=5 * 86400),
                    cs(RUNNING, True, 3, last_finished=20 * 86400)], phase="Running"),
     ("2/2", "Running", "9 (5d ago)")),
    # test15: PodScheduled with reason SchedulingGated
    ("test15", pod(n_containers=2, conditions=[{"type": "PodScheduled", "status": "False",
                                                "reason": "SchedulingGated"}]),
     ("0/2", "SchedulingGated", "0")),
    # test16: succeeded
    ("test16", pod([cs(terminated("Completed"))], phase="Succeeded"), ("0/1", "Completed", "0")),
    # test17: failed
    ("test17", pod([cs(terminated("Error", 1))], phase="Failed"), ("0/1", "Error", "0")),
    # test18: succeeded, being deleted: a final phase is not Terminating
    ("test18", pod([cs(terminated("Completed"))], phase="Succeeded", deleted=True),
     ("0/1", "Completed", "0")),
    # test19: running, being deleted
    ("test19", pod([cs(RUNNING)], phase="Running", deleted=True), ("0/1", "Terminating", "0")),
    # test20: pending, being deleted
    ("test20", pod(n_containers=1, phase="Pending", deleted=True), ("0/1", "Terminating", "0")),
]

RESTARTABLE_INIT = [
    # sidecar 1 running but not started
    ("sidecar-not-started", pod(
        [cs(WAITING)],
        [cs(RUNNING, restarts=3, last_finished=10, name="restartable-init-1", started=False),
         cs(WAITING, name="restartable-init-2", started=False)],
        phase="Pending", init_specs=SIDECARS, conditions=[NOT_INITIALIZED]),
     ("0/3", "Init:0/2", "3 (10s ago)")),
    # sidecar 1 started, sidecar 2 running but not started
    ("sidecar-one-started", pod(
        [cs(WAITING)],
        [cs(RUNNING, restarts=3, last_finished=10, name="restartable-init-1", started=True),
         cs(RUNNING, name="restartable-init-2", started=False)],
        phase="Pending", init_specs=SIDECARS, conditions=[NOT_INITIALIZED]),
     ("0/3", "Init:1/2", "3 (10s ago)")),
    # both sidecars started, the container running
    ("sidecars-started", pod(
        [cs(RUNNING, True, 4, last_finished=20)],
        [cs(RUNNING, restarts=3, last_finished=10, name="restartable-init-1", started=True),
         cs(RUNNING, name="restartable-init-2", started=True)],
        phase="Running", init_specs=SIDECARS, conditions=[INITIALIZED]),
     ("1/3", "Running", "7 (10s ago)")),
    # sidecars ended non-zero, the container completed
    ("sidecars-ended", pod(
        [cs(terminated("Completed"), restarts=4, last_finished=20)],
        [cs(terminated("Error", 137), restarts=3, last_finished=10, name="restartable-init-1",
            started=False),
         cs(terminated("Error", 137), name="restartable-init-2", started=False)],
        phase="Succeeded", init_specs=SIDECARS, conditions=[INITIALIZED]),
     ("0/3", "Completed", "7 (10s ago)")),
    # statuses of init containers and containers the spec does not have
    ("unknown-names", pod(
        [cs(name="containerinvalid"), cs(name="container1")],
        [cs(name="initinvalid"), cs(name="init1"), cs(name="sidecar1")],
        phase="Running", n_containers=1,
        init_specs=[{"name": "init1"}, {"name": "sidecar1", "restartPolicy": "Always"}]),
     ("0/2", "Init:0/2", "0")),
]

MINIPOD_STATES = [
    # the case: one of two containers finished (restartPolicy Never)
    ("one-finished", pod([cs(RUNNING, True), cs(terminated("Completed"))], phase="Running"),
     ("1/2", "NotReady", "0")),
    ("one-failed", pod([cs(RUNNING, True), cs(terminated("Error", 1))], phase="Running"),
     ("1/2", "Error", "0")),
    # a container that could not start, then waits in back-off
    ("start-error", pod([cs(terminated("StartError", 128))], phase="Running"),
     ("0/1", "StartError", "0")),
    ("crash-loop", pod([cs(waiting("CrashLoopBackOff"), restarts=1, last_finished=3)],
                       phase="Running"),
     ("0/1", "CrashLoopBackOff", "1 (3s ago)")),
    # an init container that failed, or waits in back-off
    ("init-error", pod([cs(waiting("PodInitializing"))], [cs(terminated("Error", 3))],
                       phase="Failed"),
     ("0/1", "Init:Error", "0")),
    ("init-crash-loop", pod([cs(waiting("PodInitializing"))],
                            [cs(waiting("CrashLoopBackOff"), restarts=2, last_finished=1)],
                            phase="Pending"),
     ("0/1", "Init:CrashLoopBackOff", "2 (1s ago)")),
    ("init-signal", pod([cs(WAITING)], [cs({"terminated": {"exitCode": 137, "signal": 9}})]),
     ("0/1", "Init:Signal:9", "0")),
    ("init-exit-code", pod([cs(WAITING)], [cs({"terminated": {"exitCode": 2}})]),
     ("0/1", "Init:ExitCode:2", "0")),
    # init done, the containers not started yet
    ("pod-initializing", pod([cs(waiting("PodInitializing"))], [cs(terminated("Completed"))],
                             phase="Pending"),
     ("0/1", "PodInitializing", "0")),
    # an exit code nobody saw is not a success
    ("unknown-exit", pod([cs({"terminated": {"exitCode": None, "reason": "Unknown"}})],
                         phase="Failed"),
     ("0/1", "Unknown", "0")),
    ("main-signal", pod([cs({"terminated": {"exitCode": 143, "signal": 15}})], phase="Failed"),
     ("0/1", "Signal:15", "0")),
    ("node-lost", pod([cs(RUNNING)], phase="Running", deleted=True, reason="NodeLost"),
     ("0/1", "Unknown", "0")),
]


@pytest.mark.parametrize("name,pod_json,expected", PRINT_POD + RESTARTABLE_INIT + MINIPOD_STATES,
                         ids=[c[0] for c in PRINT_POD + RESTARTABLE_INIT + MINIPOD_STATES])
def test_print_pod(name, pod_json, expected):
    assert podstatus.print_pod(pod_json, now=NOW) == expected


@pytest.mark.parametrize("seconds,shown", [
    (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (119, "119s"), (120, "2m"), (192, "3m12s"),
    (600, "10m"), (3 * 3600 - 1, "179m"), (3 * 3600, "3h"), (5 * 3600 + 30 * 60, "5h30m"),
    (8 * 3600, "8h"), (47 * 3600, "47h"), (48 * 3600, "2d"), (50 * 3600, "2d2h"),
    (8 * 86400, "8d"), (2 * 365 * 86400, "2y"), (2 * 365 * 86400 + 86400, "2y1d"),
    (9 * 365 * 86400, "9y"),
])
def test_human_duration_as_apimachinery(seconds, shown):
    assert podstatus.human_duration(seconds) == shown
