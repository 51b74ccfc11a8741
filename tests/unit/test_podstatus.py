"""Pod phase and kubectl's STATUS column from a state record (pure)."""
from minipod.runtime.api import podstatus


def rec(*containers, **kw):
    return {"name": "p", "phase": "Running", "containers": list(containers), **kw}


def running(name="c"):
    return {"name": name, "state": "running", "restartCount": 0}


def terminated(code, reason, name="c"):
    return {"name": name, "state": "terminated", "exitCode": code, "reason": reason}


def test_phases():
    assert podstatus.phase(rec(running())) == "Running"
    assert podstatus.phase(rec(terminated(0, "Completed"))) == "Succeeded"
    assert podstatus.phase(rec(terminated(0, "Completed"), terminated(1, "Error", "d"))) == "Failed"
    assert podstatus.phase(rec(running(), terminated(1, "Error", "d"))) == "Running"
    assert podstatus.phase({"phase": "Pending", "containers": [running()]}) == "Pending"


def test_status_column_shows_the_container_reason():
    assert podstatus.status_column(rec(running())) == "Running"
    assert podstatus.status_column(rec(terminated(0, "Completed"))) == "Completed"
    assert podstatus.status_column(rec(terminated(2, "Error"))) == "Error"
    waiting = {"name": "c", "state": "waiting", "reason": "CrashLoopBackOff", "restartCount": 3}
    assert podstatus.status_column(rec(waiting)) == "CrashLoopBackOff"
    assert podstatus.status_column(rec(running(), deletionTimestamp="x")) == "Terminating"


def test_ready_counts_running_containers():
    assert podstatus.ready_count(rec(running(), terminated(1, "Error", "d"))) == (1, 2)


def test_unknown_exit_code_is_shown_as_unknown_not_invented():
    c = terminated(None, "Unknown")
    status = podstatus.container_status(c)
    assert status["state"]["terminated"]["exitCode"] is None
    assert status["state"]["terminated"]["reason"] == "Unknown"


def test_age_like_kubectl():
    now = 1_700_000_000
    stamp = lambda secs_ago: __import__("time").strftime(  # noqa: E731
        "%Y-%m-%dT%H:%M:%SZ", __import__("time").gmtime(now - secs_ago))
    assert podstatus.age(stamp(45), now) == "45s"
    assert podstatus.age(stamp(192), now) == "3m12s"
    assert podstatus.age(stamp(3600 * 5), now) == "5h"
    assert podstatus.age(stamp(86400 * 3), now) == "3d"


def test_pod_object_is_kubernetes_shaped():
    obj = podstatus.pod_object(rec(running(), podIP="10.89.0.2", uid="u",
                                   manifest={"metadata": {"labels": {"a": "b"}},
                                             "spec": {"containers": []}}))
    assert obj["apiVersion"] == "v1" and obj["kind"] == "Pod"
    assert obj["metadata"]["labels"] == {"a": "b"}
    assert obj["status"]["podIP"] == "10.89.0.2"
    assert obj["status"]["containerStatuses"][0]["ready"] is True
    assert obj["spec"]["restartPolicy"] == "Always"


def test_one_of_two_containers_finished_is_not_ready_or_error():
    never = {"restartPolicy": "Never"}
    assert podstatus.status_column(rec(running(), terminated(0, "Completed", "d"), **never)) \
        == "NotReady"
    assert podstatus.status_column(rec(running(), terminated(1, "Error", "d"), **never)) \
        == "Error"
    assert podstatus.status_column(rec(terminated(0, "Completed"), terminated(0, "Completed", "d"),
                                       **never)) == "Completed"


def test_terminating_only_while_the_phase_is_not_final():
    done = rec(terminated(0, "Completed"), restartPolicy="Never", deletionTimestamp="x")
    assert podstatus.status_column(done) == "Completed"


def test_init_columns_from_a_state_record():
    spec = {"manifest": {"spec": {"initContainers": [{"name": "i"}], "containers": [{"name": "c"}]}}}
    init = {"name": "i", "state": "waiting", "reason": "CrashLoopBackOff", "restartCount": 2}
    main = {"name": "c", "state": "waiting", "reason": "PodInitializing", "restartCount": 0}
    assert podstatus.status_column(rec(main, initContainers=[init], **spec)) == \
        "Init:CrashLoopBackOff"
    init = {"name": "i", "state": "running", "restartCount": 0}
    assert podstatus.status_column(rec(main, initContainers=[init], **spec)) == "Init:0/1"
