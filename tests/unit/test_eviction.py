"""Local storage limits: the du-like walk and the kubelet's checks (no root)."""
import os

from minipod.runtime.agent import eviction

from minipod.runtime.api import manifest

MiB = 1 << 20


def _fill(path, size):
    with open(path, "wb") as f:
        f.write(b"x" * size)  # real blocks, not a sparse file


def test_usage_counts_blocks_and_each_hard_link_once(tmp_path):
    (tmp_path / "d" / "e").mkdir(parents=True)
    _fill(tmp_path / "d" / "e" / "big", MiB)
    os.link(tmp_path / "d" / "e" / "big", tmp_path / "d" / "again")
    used = eviction.disk_usage(str(tmp_path / "d"))
    assert MiB <= used < MiB + 64 * 1024


def test_usage_does_not_follow_symlinks(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    _fill(outside / "big", 2 * MiB)
    vol = tmp_path / "vol"
    vol.mkdir()
    os.symlink(outside, vol / "link")
    os.symlink(outside / "big", vol / "file-link")
    assert eviction.disk_usage(str(vol)) < 64 * 1024


def test_usage_stops_once_over_the_limit_and_a_missing_dir_is_zero(tmp_path):
    for i in range(5):
        _fill(tmp_path / f"f{i}", MiB)
    assert MiB < eviction.disk_usage(str(tmp_path), stop_above=MiB) < 5 * MiB
    assert eviction.disk_usage(str(tmp_path / "gone")) == 0


def test_a_tree_deeper_than_the_walk_goes_is_over_every_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(eviction, "MAX_DEPTH", 5)
    (tmp_path / "v" / "1" / "2" / "3" / "4" / "5" / "6").mkdir(parents=True)
    check = eviction.Check("p", "uid", [str(tmp_path / "v")], 10 * MiB, "over")
    assert [i for i, _ in eviction.violations([check])] == [0]


def test_quantity_prints_like_kubernetes():
    assert [eviction.quantity(n) for n in (MiB, 10 * MiB, 500 * 10**6, 1234, 1536 * 1024)] == \
        ["1Mi", "10Mi", "500M", "1234", "1536Ki"]


POD = """apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  volumes:
  - {name: scratch, emptyDir: {sizeLimit: 1Mi}}
  - {name: ram, emptyDir: {medium: Memory, sizeLimit: 1Mi}}
  - {name: free, emptyDir: {}}
  initContainers:
  - {name: init, image: busybox, resources: {limits: {ephemeral-storage: 50Mi}}}
  containers:
  - {name: a, image: busybox, resources: {limits: {ephemeral-storage: 10Mi}}}
  - {name: b, image: busybox, resources: {limits: {ephemeral-storage: 20Mi}}}
  - {name: c, image: busybox}
"""


def test_checks_come_in_the_kubelets_order_with_its_messages():
    [pod], _ = manifest.load_text(POD, "pod.yaml")
    vols = {"scratch": "/v/scratch", "ram": "/v/ram", "free": "/v/free"}
    names = ["init", "a", "b", "c"]
    checks = eviction.plan(pod, "uid", vols, {n: f"/u/{n}" for n in names},
                           {n: f"/l/{n}" for n in names})
    assert [(c.limit, c.message) for c in checks] == [
        (MiB, 'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi".'),
        # the sum of the containers' limits (30Mi) is below init's 50Mi
        (50 * MiB, "Pod ephemeral local storage usage exceeds the total limit of containers "
                   "50Mi."),
        (10 * MiB, 'Container a exceeded its local ephemeral storage limit "10Mi".'),
        (20 * MiB, 'Container b exceeded its local ephemeral storage limit "20Mi".'),
    ]
    # the pod's total counts every writable layer and log, and the disk emptyDirs
    assert checks[1].paths == ["/u/init", "/l/init", "/u/a", "/l/a", "/u/b", "/l/b",
                               "/u/c", "/l/c", "/v/scratch", "/v/free"]
    assert checks[2].paths == ["/u/a", "/l/a"]


def test_a_pod_without_limits_has_nothing_to_measure():
    [pod], _ = manifest.load_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  volumes:\n"
        "  - {name: v, emptyDir: {}}\n  containers:\n  - {name: a, image: busybox}\n", "pod.yaml")
    assert eviction.plan(pod, "uid", {"v": "/v"}, {"a": "/u"}, {"a": "/l"}) == []


def test_the_report_of_the_child_reads_back():
    assert eviction.parse_report("0 2000000\n3 12\ngarbage\n") == [(0, 2000000), (3, 12)]


def test_an_evicted_pod_is_failed_and_restarts_nothing():
    from minipod.runtime.api import podstatus
    cs = {"name": "main", "state": "terminated", "exitCode": 137, "reason": "Error",
          "restartCount": 0}
    record = {"name": "p", "phase": "Failed", "reason": "Evicted", "restartPolicy": "Always",
              "message": 'Usage of EmptyDir volume "x" exceeds the limit "1Mi".',
              "containers": [cs]}
    assert not podstatus.will_restart(record, cs)
    status = podstatus.pod_object(record)["status"]
    assert (status["phase"], status["reason"], status["message"]) == (
        "Failed", "Evicted", 'Usage of EmptyDir volume "x" exceeds the limit "1Mi".')
    # the same pod not evicted would restart its container
    assert podstatus.will_restart(dict(record, phase="Running"), cs)
