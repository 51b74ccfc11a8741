"""Pod create and delete: the sandbox, its network, its teardown; events.

create_pod(pod) is the act step of `minipod run` (numbered in its body):
each acquisition registers its undo at once, so a failure leaves nothing
behind. delete_pod(key, grace) is the kubelet's killPod: preStop hooks,
SIGTERM, SIGKILL after the grace period (a timer), and once the last
container is gone, teardown(record) undoes what create_pod made and the
waiting clients are answered. Namespace deletion (the namespace
controller's order) deletes each pod of the namespace, then the namespace.

Every kernel call goes through self.node (node.py).
"""
from __future__ import annotations

import contextlib
import signal
import socket
import traceback
import uuid
from pathlib import Path

from minipod import cgroups
from minipod.linux import explain
from minipod.netns import antispoof, bridge, hostport
from minipod.runtime import configobjects, faults, namespaces, serviceaccount, timings, volumes
from minipod.runtime.agent.loop import RequestError, log, now_iso, send_answer, update
from minipod.runtime.agent.running import RunningContainer
from minipod.runtime.agent.spec import limits_of
from minipod.runtime.api import manifest, qos
from minipod.runtime.api.record import PodRecord, ProcessRef
from minipod.runtime.paths import pod_key, record_key

class Pods:
    """Pod create and delete (mixed into Agent)."""

    # ---- pod creation ------------------------------------------------------

    def create_pod(self, pod: manifest.Pod) -> PodRecord:
        """Create the sandbox, network and containers of a validated pod.

        Each acquisition registers its undo at once; if any step fails,
        the undo runs in reverse order and the first error is reported."""
        key = pod_key(pod.namespace, pod.name)
        if key in self.records or self.paths.pod_dir(key).exists():
            raise RequestError("AlreadyExists", f'pods "{pod.name}" already exists')
        ns = namespaces.read(self.paths, pod.namespace)
        if ns is None:
            raise RequestError("NotFound", f'namespaces "{pod.namespace}" not found')
        if ns.get("deletionTimestamp"):
            raise RequestError("Forbidden", f'pods "{pod.name}" is forbidden: unable to create '
                                            f"new content in namespace {pod.namespace} because "
                                            f"it is being terminated")
        from minipod.rootfs import reference
        for c in pod.init_containers + pod.containers:
            try:
                reference.parse(c.image)
            except ValueError as e:
                raise RequestError("InvalidImageName", f"container {c.name}: {e}") from None
        first_wait = "PodInitializing" if pod.init_containers else "ContainerCreating"
        pod_dir = self.paths.pod_dir(key)
        uid = str(uuid.uuid4())
        record = PodRecord.from_dict({   # the keys as stored (runtime/api/record.py)
            "name": pod.name, "namespace": pod.namespace, "uid": uid,
            "manifest": pod.raw, "source": pod.source,
            "creationTimestamp": now_iso(), "phase": "Pending",
            "restartPolicy": pod.restart_policy,
            "terminationGracePeriodSeconds": pod.termination_grace_period_seconds,
            "nodeName": socket.gethostname(), "netns": self.paths.netns_name(key),
            "containers": [{"name": c.name, "image": c.image, "imageID": "",
                            "state": "waiting", "reason": first_wait,
                            "restartCount": 0} for c in pod.containers],
            "initContainers": [{"name": c.name, "image": c.image,
                                "imageID": "", "state": "waiting",
                                "reason": "PodInitializing", "restartCount": 0,
                                "sidecar": c.restart_policy == "Always"}
                               for c in pod.init_containers],
        })
        netns_path = self.paths.netns_path(key)
        with contextlib.ExitStack() as undo:
            pod_dir.mkdir(parents=True)
            undo.callback(self.node.owners.dirs.remove_pod_dir, self.paths, key, True)
            faults.point("create:dir")
            # 0. hostPorts claimed first: a clash fails before any kernel work
            mappings = [hostport.Mapping(host_port=p.host_port, container_port=p.container_port,
                                         protocol=p.protocol, host_ip=p.host_ip or "")
                        for c in pod.containers + pod.init_containers for p in c.ports
                        if p.host_port]
            if mappings:
                api = serviceaccount.api_port(self.paths)
                taken = next((m for m in mappings if m.host_port == api and m.protocol == "TCP"
                              and m.host_ip in ("", "0.0.0.0", "127.0.0.1")), None)
                if taken is not None:   # its DNAT would take the API over from kubectl and pods
                    raise RequestError("Conflict", f"hostPort {api} is the port of minipod's "
                                                   f"Kubernetes API server; choose another "
                                                   f"hostPort")
                undo.callback(self.node.owners.network.remove_hostports, self.paths, uid,
                              rules=False)
                try:
                    self.node.hostport.claim(self.paths.hostports, uid, namespaces.display(
                        pod.namespace, pod.name), mappings)
                except hostport.HostPortConflict as e:
                    raise RequestError("Conflict", str(e)) from None
            self.records[key] = record
            undo.callback(self.records.pop, key, None)
            self.store.event(key, "Scheduled", f"Successfully assigned {pod.namespace}/{pod.name} "
                                         f"to {record.node_name}")
            timings.mark("agent: pod dir, hostPorts claimed")
            self.store.save(key)
            timings.mark("agent: state saved (Pending)")
            faults.point("create:state")
            # the pod network's NAT, once per agent: its nft runs while the pod is made
            undo.callback(self.node.nat_in_place)     # never left running (it is our child)
            self.node.start_nat()
            # 1. namespaces: net, ipc, uts, pinned by bind mounts
            undo.callback(self.node.owners.pins.remove, self.paths, key)
            self.node.owners.pins.create(self.paths, key, pod.name)
            timings.mark("sandbox: net, ipc, uts namespaces made and pinned")
            faults.point("create:namespaces")
            # 2. an IP from the pod network
            undo.callback(self.ipam.release, uid)
            ip = self.ipam.allocate(uid)
            timings.mark("IPAM: lease an IP")
            faults.point("create:ip")
            explain.step(f"echo {uid} > {self.paths.ipam}/{ip}",
                         f"lease an IP from {self.net.subnet}: one file per IP, taken under "
                         f"a lock, so two pods never get the same one")
            # 3. the bridge, and a veth pair into the pod
            ifname = bridge.host_ifname(uid)
            undo.callback(self.node.owners.network.remove_veth, self.node.ipr, ifname)
            link = self.node.attach(str(netns_path), ifname, str(ip))
            timings.mark("veth: pair made, pod side addressed, host side on the bridge")
            undo.callback(self.node.owners.network.remove_filter, self.paths, uid)
            # nft applies it while the next steps run; in place before any process (below)
            self.node.owners.network.add_filter(self.paths, uid, link.host_ifname, link.mac,
                                                str(ip), wait=False)
            timings.mark("anti-spoofing filter: nft started")
            try:
                self.node.ensure_nat(required=bool(mappings))
            except hostport.HostPortError as e:
                raise RequestError("HostPortError", str(e)) from None
            update(record, pod_ip=str(ip), host_ifname=link.host_ifname,
                          host_ip=self.node.host_ip(), bridge=self.net.bridge)
            timings.mark("NAT, host IP")
            faults.point("create:veth")
            if mappings:
                undo.callback(self.node.owners.network.remove_hostport_rules, self.paths, uid)
                try:
                    self.node.hostport.add_rules(uid, str(ip), mappings, host_ifname=ifname,
                                       owner=self.paths.identity.tag)
                except hostport.HostPortError as e:
                    raise RequestError("HostPortError", str(e)) from None
                for m in mappings:
                    explain.step(f"nft add rule ip minipod ... {m.protocol.lower()} dport {m.host_port} dnat to "
                                 f"{ip}:{m.container_port}",
                                 f"hostPort {m.host_port}: the kernel rewrites traffic to the "
                                 f"host's port into the pod's")
            # 4. the files every container of the pod sees: hosts, hostname, resolv.conf
            self._write_etc_files(pod_dir, pod.hostname or pod.name, str(ip))
            # and the ServiceAccount token, ca.crt, namespace (runtime/serviceaccount.py)
            record.service_account_dir = serviceaccount.prepare(self.paths, pod_dir, record)
            timings.mark("/etc files of the pod")
            undo.callback(self.node.owners.dirs.remove_container_dir, self.paths, uid, True)
            undo.callback(self.node.owners.dirs.remove_log_dir, self.paths, key, True)
            # 5. a cgroup for the pod (limits: the sum of its containers')
            undo.callback(self.node.owners.processes.remove_cgroup, self.cgroups, uid)
            running = pod.containers + [c for c in pod.init_containers
                                        if c.restart_policy == "Always"]
            record.cgroup = self.cgroups.create_pod(
                uid, cgroups.pod_limits([limits_of(c) for c in running]))
            record.qos_class = qos.pod_qos([qos.resources_of(c.resources)
                                              for c in pod.init_containers + pod.containers])
            timings.mark("cgroup of the pod")
            faults.point("create:cgroup")
            # shareProcessNamespace: one PID namespace, held by a pause process
            if pod.share_process_namespace:
                undo.callback(self.node.owners.processes.stop_pause, record)
                pause = self.node.sandbox.start_pause(pod.name, self.paths.pod_dir(key) / "pause-root")
                record.pause = ProcessRef(pause, self.node.start_time(pause))
                self.store.save(key)  # a crash from here on must know to kill it
                self.cgroups.adopt_pause(record.cgroup, pause)  # it carries our identity
            # 6. volumes: emptyDirs made (tmpfs for medium Memory), hostPaths checked
            vol_base = self.paths.containers / uid / "volumes"
            undo.callback(self.node.owners.dirs.unmount_volumes, self.paths, uid)
            try:
                record.volumes = self.node.volumes.prepare(pod.volumes, vol_base)
            except volumes.VolumeError as e:
                raise RequestError("FailedMount", str(e)) from None
            timings.mark("volumes")
            faults.point("create:volumes")
            self.node.owners.network.filter_in_place(uid)  # before any process runs
            self.node.nat_in_place()
            timings.mark("anti-spoofing filter and NAT: nft done")
            undo.pop_all()
        record.sandbox_ready = True
        record.start_time = now_iso()
        self.idle_since = self.loop.clock()
        # 7. the containers: init containers one by one, then the others in
        # order; a failure here is a container status, not a failed run
        self.sync(key)
        self.store.save(key)
        timings.mark("agent: state saved (Running)")
        faults.point("create:containers")
        return record

    def _write_etc_files(self, pod_dir: Path, name: str, ip: str) -> None:
        (pod_dir / "hostname").write_text(name + "\n")
        (pod_dir / "hosts").write_text(
            "# Kubernetes-managed hosts file (written by minipod).\n"
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            "fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\n"
            f"fe00::2\tip6-allrouters\n{ip}\t{name}\n")
        lines = []
        with contextlib.suppress(OSError):
            for line in Path("/etc/resolv.conf").read_text().splitlines():
                # a loopback resolver (systemd-resolved's stub) is unreachable in the pod
                if line.startswith("nameserver") and line.split()[1:2] and \
                        line.split()[1].startswith("127."):
                    continue
                lines.append(line)
        (pod_dir / "resolv.conf").write_text("\n".join(lines) + "\n")

    # ---- deletion ----------------------------------------------------------

    def delete_pod(self, name: str, grace: int | None) -> None:
        """SIGTERM every container, SIGKILL after the grace period, then
        tear the sandbox down (kubelet's killPod)."""
        record = self.records[name]
        if grace is None:
            grace = record.termination_grace_period_seconds
        first = not record.deletion_timestamp
        record.deletion_timestamp = record.deletion_timestamp or now_iso()
        self.store.save(name)
        timings.mark("agent: state saved (deletionTimestamp)")
        faults.point("delete:marked")
        if first or grace == 0:
            for rc in self._live_of(name):
                self.store.event(name, "Killing", f"Stopping container {rc.name}")
                hook = self.store.container_of(record, rc.name).lifecycle.pre_stop
                if hook is not None and grace > 0:
                    # preStop first, inside the grace period; SIGTERM after it
                    def then_term(ok, message, rc=rc):
                        if not ok:
                            self.store.event(name, "FailedPreStopHook", message, warning=True)
                        with contextlib.suppress(ProcessLookupError):
                            self.node.kill(rc.pid, signal.SIGTERM)
                    self.prober.spawn_check(name, rc.name, hook, grace, then_term)
                    continue
                with contextlib.suppress(ProcessLookupError):
                    self.node.kill(rc.pid, signal.SIGKILL if grace == 0 else signal.SIGTERM)
                explain.step(f"kill -{'KILL' if grace == 0 else 'TERM'} {rc.pid}",
                             f"container {rc.name}: ask its PID 1 to stop"
                             + (f"; SIGKILL after {grace}s if it does not" if grace else ""))
            self.call_later(grace, self._kill_all, name, record.uid)
            timings.mark("signal the containers")
        self._maybe_finish_delete(name)

    def _live_of(self, name: str) -> list[RunningContainer]:
        return [rc for (pod, _), rc in self.live.items() if pod == name]

    def _kill_all(self, name: str, uid: str) -> None:
        record = self.records.get(name)
        if record is None or record.uid != uid:
            return
        for rc in self._live_of(name):
            log(f"pod {name} container {rc.name}: grace period over, SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                self.node.kill(rc.pid, signal.SIGKILL)

    def _maybe_finish_delete(self, name: str) -> None:
        if self._live_of(name):
            return
        record = self.records.pop(name)
        self.specs.pop(name, None)
        steps = self.explain_delete.pop(name, None)
        if steps is not None:
            explain.start()
        marks = self.timings_delete.pop(name, None)
        if marks is not None and not timings.active():   # not active: the exits came later
            timings.start(marks)
            timings.mark("wait for the containers to exit")
        try:
            self.teardown(record)
            answer = {"ok": True, "name": name}
        except Exception as e:
            log(f"teardown of pod {name} failed:\n" + traceback.format_exc())
            answer = {"ok": False, "code": "InternalError",
                      "error": f"pod {name} deleted with errors: {e}"}
        if steps is not None:
            answer["explain"] = steps + explain.stop()
        if marks is not None:
            answer["timings"] = timings.stop()
        for conn in self.delete_waiters.pop(name, []):
            send_answer(conn, answer)
        if not self.records:
            self.idle_since = self.loop.clock()
        self._finish_namespace(record.namespace or namespaces.DEFAULT)

    def teardown(self, record: PodRecord) -> None:
        """Undo everything create_pod made; each step tolerates 'already gone'.
        Every step runs; the first error is raised at the end."""
        name, uid = record_key(record), record.uid
        pod_dir = self.paths.pod_dir(name)
        errors = []
        # What the pod was given is known from its record: no nft listing
        # for a pod without hostPorts, nor for its filter (two nft runs less)
        spec = (record.manifest or {}).get("spec") or {}
        ports = any(p.get("hostPort") for c in spec.get("containers", []) +
                    spec.get("initContainers", []) for p in c.get("ports") or [])
        known = None
        if record.pod_ip and record.host_ifname:
            known = antispoof.Filter(uid, record.host_ifname,
                                     bridge.mac_for_ip(record.pod_ip), record.pod_ip)
        owners, paths = self.node.owners, self.paths   # runtime/owners/: one per kind
        steps = [
            ("remove hostPort rules", lambda: owners.network.remove_hostports(paths, uid, ports)),
            ("remove anti-spoofing filter", lambda: owners.network.remove_filter(paths, uid,
                                                                                  known)),
            ("remove veth", lambda: owners.network.remove_veth(
                self.node.ipr, record.host_ifname or bridge.host_ifname(uid))),
            ("release IP", lambda: (self.ipam.release(uid), explain.step(
                f"rm {self.paths.ipam}/{record.pod_ip}", "return the pod's IP"))),
            ("unpin namespaces", lambda: owners.pins.remove(paths, name)),
            ("stop the pause process", lambda: owners.processes.stop_pause(record)),
            ("remove cgroups", lambda: owners.processes.remove_cgroup(self.cgroups, uid)),
            ("unmount volumes", lambda: owners.dirs.unmount_volumes(paths, uid)),
            ("remove container dirs", lambda: owners.dirs.remove_container_dir(paths, uid)),
            ("remove logs", lambda: owners.dirs.remove_log_dir(paths, name)),
            ("remove state", lambda: owners.dirs.remove_pod_dir(paths, name)),
        ]
        for what, step in steps:
            faults.point(f"teardown:{what}")
            try:
                step()
            except Exception as e:
                errors.append(f"{what}: {e}")
            timings.mark(what)
        explain.step(f"rm -rf {self.paths.containers / uid} {self.paths.pod_logs / name} {pod_dir}",
                     "the containers' upper dirs, the logs, the pod's state: nothing stays")
        log(f"pod {name} deleted" + (f" with errors: {errors}" if errors else ""))
        if errors:
            raise RuntimeError("; ".join(errors))

    def _delete_namespace_pods(self, ns: str) -> None:
        for key, record in list(self.records.items()):
            if (record.namespace or namespaces.DEFAULT) == ns and key in self.records \
                    and not record.deletion_timestamp:
                self.delete_pod(key, None)

    def _finish_namespace(self, ns: str) -> bool:
        """Remove a Terminating namespace once it holds no pod; True if it is gone."""
        if any((r.namespace or namespaces.DEFAULT) == ns for r in self.records.values()):
            return False
        try:
            if (namespaces.read(self.paths, ns) or {}).get("deletionTimestamp"):
                for resource, in_ns, name, _ in configobjects.scan(self.paths):
                    if in_ns == ns:     # its ConfigMaps and Secrets go with it
                        configobjects.remove(self.paths, resource, ns, name)
            gone = namespaces.remove_if_terminating(self.paths, ns)
        except OSError as e:
            log(f"namespace {ns}: cannot remove it: {e}")
            return False
        if gone:
            log(f"namespace {ns} deleted")
        return gone

    def _resume_namespace_deletions(self) -> None:
        """A namespace the last agent was deleting: delete the rest of it."""
        for record in namespaces.read_all(self.paths):
            if record.get("deletionTimestamp"):
                self._delete_namespace_pods(record["name"])
                self._finish_namespace(record["name"])

