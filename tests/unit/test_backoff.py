"""The kubelet's restart back-off (runtime/agent/backoff.py), exit by exit."""
from minipod.runtime.agent import backoff

BASE, CAP = 10.0, 300.0


def crash_loop(exits: list[tuple[float, float]]) -> list[float]:
    """Feed (ran seconds, then exit) pairs; return each exit's wait."""
    entry, now, waits = None, 1000.0, []
    for ran in exits:
        now += ran
        finished = now
        w = backoff.wait(entry, finished, now, CAP)
        waits.append(w)
        now += w
        entry = backoff.next_entry(entry, finished, now, BASE, CAP)
    return waits


def test_first_restart_is_immediate_then_doubling_to_the_cap():
    assert crash_loop([1] * 8) == [0, 10, 20, 40, 80, 160, 300, 300]


def test_ten_minutes_of_running_start_over_at_once():
    waits = crash_loop([1, 1, 1, 601, 1])
    assert waits == [0, 10, 20, 0, 10]


def test_the_wait_counts_from_the_exit_not_from_now():
    entry = {"seconds": 40.0, "since": 0.0}
    assert backoff.wait(entry, finished=100.0, now=125.0, cap=CAP) == 15.0
    assert backoff.wait(entry, finished=100.0, now=150.0, cap=CAP) == 0.0


def test_an_old_record_without_an_entry_restarts_at_once():
    assert backoff.wait(3, 100.0, 100.0, CAP) == 0.0      # the old integer counter
    assert backoff.next_entry(3, 100.0, 100.0, BASE, CAP) == {"seconds": BASE, "since": 100.0}


def test_go_durations_as_the_kubelet_prints_them():
    assert [backoff.go_duration(s) for s in (0.5, 1, 10, 80, 160, 300, 3725)] == \
        ["500ms", "1s", "10s", "1m20s", "2m40s", "5m0s", "1h2m5s"]
