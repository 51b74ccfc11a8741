"""Where minipod keeps things, all movable by one variable, MINIPOD_ROOT;
and the identity of the state root, which every kernel object carries.

    /run/minipod            runtime state: agent socket, one dir per pod
    /var/lib/minipod        images and layers, container upper dirs
    /var/log/minipod        container logs, CRI format

With MINIPOD_ROOT=/some/dir the three become /some/dir/{run,lib,log}, so a
test suite runs beside the host's minipod without touching it.

Identity. A path names a directory only within one mount namespace: two
minipods whose roots are the same string in two mount namespaces (a second
checkout, a CI job, a test suite run twice at once) share the machine's
cgroup tree, /proc, /run/netns and nftables table. So each state root gets
an identity the first time it is used: 8 random hex digits in RUN/identity,
written once (link(2) of a complete temp file: the first writer wins, the
others read its id). Every kernel object minipod makes carries it:

    cgroup parent      /sys/fs/cgroup/.../minipod-ID/pod<uid>/<container>
    pinned netns       /run/netns/minipod-ID-<pod key>
    host veth          ifalias "minipod-ID" (the name is a hash of the pod uid)
    hostPort rules     comment "minipod-ID pod:<uid>"
    pause process      in the pod's cgroup

and gc and every cleanup act only on objects of their own identity, read
back from the kernel (a process is ours if /proc/PID/cgroup puts it under
our parent), never on a path string alone.

Upgrade: a state root that already has pods but no identity file was made
by a minipod without identities; its identity is written with the word
"legacy" after the id. A legacy root keeps the old names (cgroup parent
"minipod", netns prefix "minipod-"; a test root's "minipod-HASH"), so its
running pods stay managed, and its gc also counts untagged veths and rules
as its own, as before. New roots never are legacy.

Pod keys. A pod is namespace + name; everything kept per pod (its state dir,
its log dir, its pinned netns) is named by its key, `pod_key(ns, name)`:

    default/web      web            (as before namespaces: old state stays valid)
    team-a/web       team-a_web     ('_' is in no DNS-1123 name: no key is two pods')

A key longer than MAX_KEY (a 253-byte name in a 63-byte namespace) is cut
and ends in "~" and a hash of namespace/name, so "minipod-ID-KEY" still
fits the 255 bytes of a file name ('~' is in no DNS name either).
"""
from __future__ import annotations

import os

IDENTITY_FILE = "identity"
DEFAULT_NAMESPACE = "default"
MAX_KEY = 255 - len("minipod-12345678-")   # the longest netns prefix, then the key
# The Path attributes of a Paths: name -> (its base, its name there)
PLACES = {"run": ("run", ""), "lib": ("lib", ""), "log": ("log", ""),
          "identity_file": ("run", IDENTITY_FILE), "socket": ("run", "agent.sock"),
          "agent_lock": ("run", "agent.lock"), "agent_log": ("log", "agent.log"),
          "pods": ("run", "pods"), "namespaces": ("run", "namespaces"), "ipam": ("run", "ipam"),
          "hostports": ("run", "hostports"), "images": ("lib", "images"),
          "containers": ("lib", "containers"), "pod_logs": ("log", "pods")}


def pod_key(namespace: str | None, name: str) -> str:
    """The one name of pod NAMESPACE/NAME in file and kernel object names:
    NAME in namespace default (or none), NAMESPACE_NAME elsewhere; at most
    MAX_KEY bytes (a longer one is cut and ends in ~ + 16 hex digits of
    sha256("NAMESPACE/NAME"))."""
    ns = namespace or DEFAULT_NAMESPACE
    key = name if ns == DEFAULT_NAMESPACE else f"{ns}_{name}"
    if len(key.encode()) <= MAX_KEY:
        return key
    import hashlib
    digest = hashlib.sha256(f"{ns}/{name}".encode()).hexdigest()[:16]
    return key.encode()[:MAX_KEY - 17].decode(errors="ignore") + "~" + digest


def record_key(record) -> str:
    """The key of the pod a state record (a PodRecord) describes."""
    return pod_key(record.namespace, record.name)


class Identity:
    """Who a state root is: `id` (8 hex digits), `legacy` (pre-identity names).
    Read-only and compared by value, as a frozen dataclass, but without
    dataclasses: every command makes a Paths, and importing dataclasses
    (inspect, ast, dis) took longer than all the rest of `minipod get`."""
    __slots__ = ("id", "legacy")

    def __init__(self, id: str, legacy: bool = False):
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "legacy", legacy)

    def __setattr__(self, name, value):
        raise AttributeError(f"cannot assign to field {name!r} of an Identity")

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return (self.id, self.legacy) == (other.id, other.legacy)

    def __hash__(self):
        return hash((self.id, self.legacy))

    def __repr__(self) -> str:
        return f"Identity(id={self.id!r}, legacy={self.legacy!r})"

    def __reduce__(self):   # copy and pickle: through __init__, not the refusing __setattr__
        return Identity, (self.id, self.legacy)

    @property
    def tag(self) -> str:
        """The mark objects carry: "minipod-ID" (cgroup parent, ifalias, nft comments)."""
        return f"minipod-{self.id}"


class Paths:
    """All paths of one minipod installation (one MINIPOD_ROOT).

    Its attributes (PLACES: run, pods, socket, ...) are pathlib.Paths, made
    on first use; string(name) is the same path as a str, for the commands
    that only read state: they need not import pathlib (3 ms of `get`).

    identity: given by unit tests; otherwise read from (or made in)
    RUN/identity the first time a name that needs it is asked for."""

    def __init__(self, root: str | None = None, identity: Identity | None = None):
        root = root if root is not None else os.environ.get("MINIPOD_ROOT", "")
        self.root = root
        if root:
            self._bases = {b: os.path.join(root, b) for b in ("run", "lib", "log")}
        else:
            self._bases = {"run": "/run/minipod", "lib": "/var/lib/minipod",
                           "log": "/var/log/minipod"}
        self._identity = identity

    def string(self, name: str) -> str:
        """The path attribute `name` (a key of PLACES) as a str."""
        base, under = PLACES[name]
        return os.path.join(self._bases[base], under) if under else self._bases[base]

    def __getattr__(self, name: str):
        """A path attribute, made (and kept) when first asked for."""
        if name not in PLACES:
            raise AttributeError(f"'Paths' object has no attribute {name!r}")
        from pathlib import Path
        value = Path(self.string(name))
        setattr(self, name, value)
        return value

    # ---- identity ----------------------------------------------------------

    @property
    def identity(self) -> Identity:
        """This root's identity, made on first use (needs write access to RUN)."""
        if self._identity is None:
            self._identity = read_identity(self.identity_file) or self._make_identity()
        return self._identity

    def _make_identity(self) -> Identity:
        """Write RUN/identity once: a complete temp file, then link(2), which
        fails if another process made it first (then theirs counts)."""
        self.run.mkdir(parents=True, exist_ok=True)
        legacy = any(self.pods.iterdir()) if self.pods.is_dir() else False
        import secrets  # here: it loads OpenSSL, which most commands never need
        ident = Identity(secrets.token_hex(4), legacy)
        tmp = self.run / f".{IDENTITY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, f"{ident.id}{' legacy' if legacy else ''}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, self.identity_file)
        except FileExistsError:
            ident = read_identity(self.identity_file)
            if ident is None:
                raise
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        return ident

    @property
    def cgroup_parent(self) -> str:
        """The cgroup every pod of this root lives under: minipod-ID."""
        ident = self.identity
        return _legacy_names(self.root)[1] if ident.legacy else ident.tag

    @property
    def netns_prefix(self) -> str:
        """The start of this root's names in /run/netns: minipod-ID-."""
        ident = self.identity
        return _legacy_names(self.root)[0] if ident.legacy else ident.tag + "-"

    # ---- paths -------------------------------------------------------------

    # A pod is named here by its key (pod_key): NAME in default, NS_NAME
    # elsewhere. Each returns a pathlib.Path (not annotated: the name would
    # need pathlib imported at the top).

    def pod_dir(self, key: str):
        return self.pods / key

    def netns_name(self, key: str) -> str:
        return self.netns_prefix + key

    def netns_path(self, key: str):
        from pathlib import Path
        return Path("/run/netns") / self.netns_name(key)

    def container_dir(self, pod_uid: str, container: str):
        return self.containers / pod_uid / container

    def log_path(self, key: str, container: str, restart: int):
        return self.pod_logs / key / container / f"{restart}.log"

    def namespace_file(self, name: str):
        return self.namespaces / f"{name}.json"


def read_identity(path) -> Identity | None:
    """The identity in `path` (a Path: "ID" or "ID legacy"); None if there is none.
    A file that says anything else is an error that names it."""
    try:
        words = path.read_text().split()
    except FileNotFoundError:
        return None
    ok = words and len(words[0]) == 8 and all(c in "0123456789abcdef" for c in words[0])
    if not ok or words[1:] not in ([], ["legacy"]):
        raise ValueError(f"{path}: not a minipod identity (expected 8 hex digits, "
                         f"optionally followed by 'legacy'): {' '.join(words)!r}")
    return Identity(words[0], legacy=words[1:] == ["legacy"])


def _legacy_names(root: str) -> tuple[str, str]:
    """(netns prefix, cgroup parent) of minipod before identities."""
    if not root:
        return "minipod-", "minipod"
    import hashlib
    tag = hashlib.sha256(root.encode()).hexdigest()[:6]
    return f"minipod-{tag}-", f"minipod-{tag}"
