"""Namespaces for real: two pods called web, in default and in team-a, both run.

With the real kubectl (the machine's 1.32 and the 1.37 wheel, test_kubectl's
fixtures) against a real `minipod serve`, and with minipod's own verbs:
each pod has its own IP, logs, exec and port-forward reach the right one,
`get pods -A` shows the NAMESPACE, and deleting a namespace removes its pods
with everything they had (state dir, logs, netns, cgroup).
"""
from __future__ import annotations

import glob
import json
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

from podhelpers import pod_manifest
from test_kubectl import api, forward, kubectl, kubia, stop  # noqa: F401  (fixtures)


def serving(ns: str) -> str:
    """A pod that says which namespace it was made for: in its log, in
    /tmp/who (for exec) and on port 8080 (for port-forward)."""
    return (f"echo {ns} > /tmp/who; mkdir -p /tmp/www; echo page-of-{ns} > /tmp/www/index.html;"
            f" httpd -f -p 8080 -h /tmp/www & echo hello from {ns};"
            f" trap 'exit 0' TERM; while true; do sleep 0.2; done")


def leftovers(minipod, key: str, uid: str) -> list[str]:
    """What of pod KEY (uid UID) is still on the machine: state, logs, netns, cgroups."""
    from minipod.runtime.paths import Paths
    paths = Paths(str(minipod.root))
    found = [str(p) for p in (paths.pod_dir(key), paths.pod_logs / key, paths.netns_path(key),
                              paths.containers / uid) if p.exists()]
    parent = paths.cgroup_parent
    return found + glob.glob(f"/sys/fs/cgroup/*/{parent}/pod{uid}") + \
        glob.glob(f"/sys/fs/cgroup/{parent}/pod{uid}")


def test_two_pods_called_web_in_two_namespaces(kubectl, minipod, tmp_path):
    k = kubectl
    try:
        assert k("create", "ns", "team-a").stdout.strip() == "namespace/team-a created"
        bad = k("create", "ns", "Team_A", check=False)
        assert bad.stderr.strip().startswith(
            'The Namespace "Team_A" is invalid: metadata.name: Invalid value: "Team_A": a '
            "lowercase RFC 1123 label must consist of"), bad.stderr
        table = [r.split() for r in k("get", "ns").stdout.splitlines()]
        assert table[0] == ["NAME", "STATUS", "AGE"]
        assert ["team-a", "Active"] == next(r for r in table if r[0] == "team-a")[:2]
        ns = yaml.safe_load(k("get", "ns", "team-a", "-o", "yaml").stdout)
        assert (ns["kind"], ns["status"]["phase"]) == ("Namespace", "Active")
        assert ns["metadata"]["labels"]["kubernetes.io/metadata.name"] == "team-a"
        assert k("label", "ns", "team-a", "tier=web").stdout.strip() == "namespace/team-a labeled"
        assert k("get", "ns", "-l", "tier=web", "-o", "name").stdout.split() == \
            ["namespace/team-a"]
        # a Namespace in a file: apply makes it, then leaves it unchanged
        doc = tmp_path / "ns.yaml"
        doc.write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-b\n"
                       "  labels: {tier: db}\n")
        assert k("apply", "-f", str(doc)).stdout.strip() == "namespace/team-b created"
        assert k("apply", "-f", str(doc)).stdout.strip() == "namespace/team-b unchanged"
        assert k("get", "ns", "team-b", "-o", "jsonpath={.metadata.labels.tier}").stdout == "db"
        assert k("delete", "-f", str(doc)).stdout.strip() == 'namespace "team-b" deleted'
        for where in ("default", "team-a"):
            path = tmp_path / f"web-{where}.yaml"
            path.write_text(kubia("web", serving(where)))
            out = k("create", "-n", where, "-f", str(path))
            assert out.stdout.strip() == "pod/web created"
        for where in ("default", "team-a"):
            k("wait", "-n", where, "--for=condition=Ready", "pod/web", "--timeout=60s")
        ips = {where: k("get", "pod", "web", "-n", where, "-o", "jsonpath={.status.podIP}").stdout
               for where in ("default", "team-a")}
        assert ips["default"] != ips["team-a"] and all(ips.values())
        uid = k("get", "pod", "web", "-n", "team-a", "-o", "jsonpath={.metadata.uid}").stdout
        for where in ("default", "team-a"):
            deadline = time.monotonic() + 20
            while (logs := k("logs", "web", "-n", where).stdout) == "":
                assert time.monotonic() < deadline, f"no log line from {where}/web"
                time.sleep(0.1)
            assert logs == f"hello from {where}\n"
            assert k("exec", "-n", where, "web", "--", "cat", "/tmp/who").stdout == f"{where}\n"
            hosts = k("exec", "-n", where, "web", "--", "tail", "-n1", "/etc/hosts").stdout
            assert hosts.split() == [ips[where], "web"]
        rows = [r.split() for r in k("get", "pods", "-A").stdout.splitlines()]
        assert rows[0][:3] == ["NAMESPACE", "NAME", "READY"]
        assert ["default", "web", "1/1", "Running"] in [r[:4] for r in rows]
        assert ["team-a", "web", "1/1", "Running"] in [r[:4] for r in rows]
        assert k("get", "pods", "-n", "team-a", "-o", "name").stdout.split() == ["pod/web"]
        assert k("logs", "-l", "app=web", "-n", "team-a").stdout == "hello from team-a\n"
        events = json.loads(k("get", "events", "-n", "team-a", "-o", "json").stdout)["items"]
        assert {e["involvedObject"]["namespace"] for e in events} == {"team-a"}
        assert any(e["reason"] == "Scheduled" and e["message"].startswith(
            "Successfully assigned team-a/web to ") for e in events)
        events = json.loads(k("get", "events", "-o", "json").stdout)["items"]
        assert not any(e["message"].startswith("Successfully assigned team-a/") for e in events)
        top = [r.split() for r in k("top", "pod", "-n", "team-a").stdout.splitlines()]
        assert top[0][0] == "NAME" and [r[0] for r in top[1:]] == ["web"]
        # delete -l in a namespace: its pod only
        extra = tmp_path / "extra.yaml"
        extra.write_text(kubia("extra"))
        k("create", "-n", "team-a", "-f", str(extra))
        k("wait", "-n", "team-a", "--for=condition=Ready", "pod/extra", "--timeout=60s")
        said = k("delete", "pods", "-l", "app=extra", "-n", "team-a").stdout.strip()
        where = "" if k.version == "1.32" else " from team-a namespace"   # newer ones say it
        assert said == f'pod "extra" deleted{where}'
        assert k("get", "pods", "-n", "team-a", "-o", "name").stdout.split() == ["pod/web"]
        assert k("get", "pods", "-o", "name").stdout.split().count("pod/web") == 1
        proc, (port,) = forward(k, "web", "0:8080", namespace="team-a")
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read()
                    break
                except OSError:         # httpd not listening yet
                    assert time.monotonic() < deadline
                    time.sleep(0.2)
            assert page == b"page-of-team-a\n"
        finally:
            stop(proc)
        refused = k("delete", "ns", "default", check=False)
        assert refused.returncode == 1
        assert refused.stderr.strip() == ('Error from server (Forbidden): namespaces "default" '
                                          'is forbidden: this namespace may not be deleted')
        assert k("delete", "ns", "team-a", timeout=90).stdout.strip() == \
            'namespace "team-a" deleted'
        gone = k("get", "ns", "team-a", check=False)
        assert gone.stderr.strip() == 'Error from server (NotFound): namespaces "team-a" not found'
        assert k("get", "pods", "-n", "team-a").stderr.strip() == \
            "No resources found in team-a namespace."
        assert leftovers(minipod, "team-a_web", uid) == []
        # the other web is untouched
        assert k("get", "pod", "web", "-o", "jsonpath={.status.phase}").stdout == "Running"
        assert k("exec", "web", "--", "cat", "/tmp/who").stdout == "default\n"
    finally:
        k("delete", "pod", "web", "--grace-period=0", "--ignore-not-found", check=False)
        for ns in ("team-a", "team-b"):
            k("delete", "ns", ns, "--ignore-not-found", check=False, timeout=90)


def test_minipod_verbs_take_n_and_A(minipod, tmp_path):
    m = minipod
    made = []
    try:
        assert m("create", "namespace", "team-m").stdout.strip() == "namespace/team-m created"
        made.append("team-m")
        again = m("create", "namespace", "team-m", check=False)
        assert again.stderr.strip() == \
            'error: Error from server (AlreadyExists): namespaces "team-m" already exists'
        table = [r.split() for r in m("get", "ns").stdout.splitlines()]
        assert table[0] == ["NAME", "STATUS", "AGE"]
        assert [r[0] for r in table[1:]] == ["default", "kube-node-lease", "kube-public",
                                             "kube-system", "team-m"]
        plain = tmp_path / "web.yaml"           # no namespace in the file
        plain.write_text(pod_manifest("web", serving("team-m")))
        assert m("run", "-n", "team-m", str(plain)).stdout.strip() == "pod/web created"
        other = tmp_path / "web-default.yaml"
        other.write_text(pod_manifest("web", serving("default")))
        assert m("run", str(other)).stdout.strip() == "pod/web created"
        # run again: the same pod, unchanged, in its namespace
        assert m("run", "-n", "team-m", str(plain)).stdout.strip() == "pod/web unchanged"

        rows = [r.split() for r in m("get", "pods", "-n", "team-m").stdout.splitlines()]
        assert rows[0][0] == "NAME" and [r[0] for r in rows[1:]] == ["web"]
        every = [r.split() for r in m("get", "pods", "-A").stdout.splitlines()]
        assert every[0][:2] == ["NAMESPACE", "NAME"]
        assert [r[:2] for r in every[1:]] == [["default", "web"], ["team-m", "web"]]
        obj = json.loads(m("get", "pod", "web", "-n", "team-m", "-o", "json").stdout)
        assert obj["metadata"]["namespace"] == "team-m"
        uid = obj["metadata"]["uid"]
        assert uid != json.loads(m("get", "pod", "web", "-o", "json").stdout)["metadata"]["uid"]
        deadline = time.monotonic() + 20
        while (logs := m("logs", "web", "-n", "team-m").stdout) == "":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert logs == "hello from team-m\n"
        assert m("exec", "-n", "team-m", "web", "--", "cat", "/tmp/who").stdout == "team-m\n"
        assert m("exec", "web", "--", "cat", "/tmp/who").stdout == "default\n"
        assert "Namespace:        team-m" in m("describe", "pod", "web", "-n", "team-m").stdout
        top = [r.split() for r in m("top", "pod", "-A").stdout.splitlines()]
        assert top[0][:2] == ["NAMESPACE", "NAME"]
        assert ["team-m", "web"] in [r[:2] for r in top[1:]]
        # team-m_web is the key of team-m's web, but no name of it in default
        out = m("get", "pod", "team-m_web", check=False)
        assert out.stderr.strip() == \
            'error: Error from server (NotFound): pods "team-m_web" not found'
        out = m("delete", "pod", "team-m_web", check=False)
        assert (out.returncode, out.stderr.strip()) == (
            1, 'error: Error from server (NotFound): pods "team-m_web" not found')
        assert m("get", "pod", "web", "-n", "team-m", "-o", "name").stdout.strip() == "pod/web"
        out = m("get", "pods", "-n", "Team_M", check=False)
        assert out.returncode == 2 and out.stderr.startswith('error: invalid namespace "Team_M"')
        report = json.loads(m("inspect", "pod", "web", "-n", "team-m", "-o", "json").stdout)
        assert report["uid"] == uid and report["netnsPath"].endswith("-team-m_web")
        # port-forward -n: the team-m pod's page
        pf = subprocess.Popen([sys.executable, "-m", "minipod", "port-forward", "-n", "team-m",
                               "web", "0:8080"], env=m.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
        try:
            line = pf.stdout.readline()
            assert line.startswith("Forwarding from 127.0.0.1:"), line + pf.stderr.read()
            port = int(line.split(":")[1].split()[0])
            deadline = time.monotonic() + 20
            while True:
                try:
                    page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read()
                    break
                except OSError:
                    assert time.monotonic() < deadline
                    time.sleep(0.2)
            assert page == b"page-of-team-m\n"
        finally:
            pf.terminate()          # the port-forward this test started
            pf.communicate(timeout=10)

        # a -n that contradicts the file; a namespace that does not exist: nothing is made
        placed = tmp_path / "placed.yaml"
        doc = yaml.safe_load(pod_manifest("placed", "sleep 100"))
        doc["metadata"]["namespace"] = "team-m"
        placed.write_text(yaml.safe_dump(doc))
        out = m("run", "-n", "other", str(placed), check=False)
        assert (out.returncode, out.stderr.strip()) == (1, (
            'error: the namespace from the provided object "team-m" does not match the '
            "namespace \"other\". You must pass '--namespace=team-m' to perform this operation."))
        doc["metadata"]["namespace"] = "nowhere"
        placed.write_text(yaml.safe_dump(doc))
        out = m("run", str(placed), check=False)
        assert (out.returncode, out.stderr.strip()) == (
            1, 'error: Error from server (NotFound): namespaces "nowhere" not found')
        assert not (m.root / "run" / "pods" / "nowhere_placed").exists()
        assert m("get", "pod", "placed", "-n", "nowhere", check=False).returncode == 1
        refused = m("delete", "ns", "kube-system", check=False)
        assert refused.stderr.strip() == ('Error from server (Forbidden): namespaces '
                                          '"kube-system" is forbidden: this namespace may not '
                                          'be deleted')

        # delete ns: Terminating while a pod takes its grace period, then gone
        slow = tmp_path / "slow.yaml"
        slow.write_text(pod_manifest("slow", "trap '' TERM; while true; do sleep 0.2; done",
                                     terminationGracePeriodSeconds=3))
        m("run", "-n", "team-m", str(slow))
        slow_uid = json.loads(m("get", "pod", "slow", "-n", "team-m", "-o", "json").stdout)[
            "metadata"]["uid"]
        deleting = subprocess.Popen([sys.executable, "-m", "minipod", "delete", "ns", "team-m"],
                                    env=m.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
        try:
            deadline = time.monotonic() + 10
            while "Terminating" not in m("get", "ns", "team-m", check=False).stdout:
                assert time.monotonic() < deadline, "team-m never went Terminating"
                time.sleep(0.05)
            late = tmp_path / "late.yaml"
            late.write_text(pod_manifest("late", "sleep 100"))
            out = m("run", "-n", "team-m", str(late), check=False)
            assert out.stderr.strip() == (
                'error: Error from server (Forbidden): pods "late" is forbidden: unable to '
                "create new content in namespace team-m because it is being terminated")
            stdout, stderr = deleting.communicate(timeout=60)
        finally:
            if deleting.poll() is None:
                deleting.kill()     # the delete this test started
                deleting.communicate()
        assert (deleting.returncode, stdout.strip()) == (0, 'namespace "team-m" deleted'), stderr
        made.remove("team-m")
        out = m("get", "ns", "team-m", check=False)
        assert out.stderr.strip() == \
            'error: Error from server (NotFound): namespaces "team-m" not found'
        assert m("get", "pods", "-n", "team-m").stderr.strip() == \
            "No resources found in team-m namespace."
        assert leftovers(m, "team-m_web", uid) == []
        assert leftovers(m, "team-m_slow", slow_uid) == []
        assert [r.split()[:2] for r in m("get", "pods", "-A").stdout.splitlines()[1:]] == \
            [["default", "web"]]
    finally:
        m("delete", "pod", "web", "--grace-period", "0", "--ignore-not-found", check=False)
        for ns in made:
            m("delete", "ns", ns, check=False, timeout=60)


def test_namespace_deletion_goes_on_after_an_agent_crash(minipod, tmp_path):
    """The agent is killed (-9) while a namespace waits for a pod's grace
    period; the next agent finishes the deletion: the pod, then the namespace."""
    import os
    import signal
    m = minipod
    m("create", "namespace", "team-c")
    try:
        slow = tmp_path / "slow.yaml"
        slow.write_text(pod_manifest("slow", "trap '' TERM; while true; do sleep 0.2; done",
                                     terminationGracePeriodSeconds=60))
        m("run", "-n", "team-c", str(slow))
        uid = json.loads(m("get", "pod", "slow", "-n", "team-c", "-o", "json").stdout)[
            "metadata"]["uid"]
        deleting = subprocess.Popen([sys.executable, "-m", "minipod", "delete", "ns", "team-c"],
                                    env=m.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
        try:
            deadline = time.monotonic() + 10
            while "Terminating" not in m("get", "ns", "team-c", check=False).stdout:
                assert time.monotonic() < deadline, "team-c never went Terminating"
                time.sleep(0.05)
            pid = m.agent_pid()
            os.kill(pid, signal.SIGKILL)        # the agent this session started
            deadline = time.monotonic() + 10
            while True:                         # until it is gone, or a zombie
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        if f.read().rsplit(") ", 1)[1].startswith("Z"):
                            break
                except FileNotFoundError:
                    break
                assert time.monotonic() < deadline
                time.sleep(0.05)
            # still Terminating, with no agent (its file; `get` would start an agent)
            record = json.loads((m.root / "run" / "namespaces" / "team-c.json").read_text())
            assert record["phase"] == "Terminating"
            m("get", "pods", "-n", "team-c")    # a reader brings the agent back
            stdout, stderr = deleting.communicate(timeout=60)
        finally:
            if deleting.poll() is None:
                deleting.kill()     # the delete this test started
                deleting.communicate()
        assert (deleting.returncode, stdout.strip()) == (0, 'namespace "team-c" deleted'), stderr
        assert leftovers(m, "team-c_slow", uid) == []
    finally:
        m("delete", "ns", "team-c", "--ignore-not-found", check=False, timeout=60)


def test_configmaps_live_in_their_namespace_and_go_with_it(minipod, tmp_path):
    """One ConfigMap name in two namespaces, each pod reads its own; -n/-A
    on get; a ConfigMap in a missing namespace is refused; deleting the
    namespace deletes its ConfigMaps."""
    m = minipod

    def reader(ns: str | None) -> str:
        meta = f"  namespace: {ns}\n" if ns else ""
        return f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
{meta}data:
  who: {ns or 'default'}
---
apiVersion: v1
kind: Pod
metadata:
  name: reader
{meta}spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: minipod.test/busybox:1
    command: [sh, -c, 'cat /cfg/who; echo; exec sleep 100000']
    volumeMounts: [{{name: cfg, mountPath: /cfg}}]
  volumes:
  - {{name: cfg, configMap: {{name: settings}}}}
"""
    made = False
    try:
        missing = tmp_path / "missing.yaml"
        missing.write_text(reader("team-c"))
        out = m("run", str(missing), check=False)
        assert out.returncode != 0 and 'namespaces "team-c" not found' in out.stderr
        assert m("get", "cm", "-A", "-o", "name").stdout == ""   # nothing was stored
        m("create", "namespace", "team-c")
        made = True
        files = {}
        for ns in (None, "team-c"):
            files[ns] = tmp_path / f"{ns or 'default'}.yaml"
            files[ns].write_text(reader(ns))
            assert m("run", str(files[ns])).stdout.split() == \
                ["configmap/settings", "created", "pod/reader", "created"]
        for ns in ("default", "team-c"):
            deadline = time.monotonic() + 20
            while (logs := m("logs", "reader", "-n", ns, check=False)).stdout.strip() != ns:
                assert time.monotonic() < deadline, (logs.stdout, logs.stderr)
                time.sleep(0.1)
        rows = [r.split() for r in m("get", "cm", "-A").stdout.splitlines()]
        assert rows[0] == ["NAMESPACE", "NAME", "DATA", "AGE"]
        assert [r[:3] for r in rows[1:]] == [["default", "settings", "1"],
                                             ["team-c", "settings", "1"]]
        only = json.loads(m("get", "cm", "settings", "-n", "team-c", "-o", "json").stdout)
        assert only["data"] == {"who": "team-c"}
        m("delete", "ns", "team-c")
        made = False
        deadline = time.monotonic() + 30
        while "team-c" in m("get", "ns", "-o", "name").stdout:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert m("get", "cm", "-A", "-o", "name").stdout.split() == ["configmap/settings"]
    finally:
        m("delete", "-f", str(tmp_path / "default.yaml"), "--grace-period", "0",
          "--ignore-not-found", check=False)
        if made:
            m("delete", "ns", "team-c", check=False)
