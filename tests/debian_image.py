"""A real Debian 12 image with real servers (nginx, redis, PostgreSQL), cached.

`servers_rootfs()` returns a root file system directory made by

    debootstrap --variant=minbase --include=nginx-light,redis-server,postgresql,procps \\
        bookworm DIR MIRROR

where MIRROR is the Debian mirror this machine's apt already uses (read from
/etc/apt/sources.list.d/*.sources or /etc/apt/sources.list). The tree is
built once and kept under CACHE (MINIPOD_TEST_CACHE, by default
/var/cache/minipod-tests) as debian-bookworm-servers-HASH, HASH naming the
package list and the build steps: a change of either builds a new tree.
The build runs under a flock (two test runs never build twice or race) in a
temporary directory renamed into place at the end, so a half-built tree is
never used; a build that failed leaves only its log (CACHE/NAME.log).

The download (debootstrap's first stage) needs the mirror, but the
integration suite runs in a private network namespace with no route out
(tests/run). So the first stage runs in the network namespace the suite was
started from: that of the nearest ancestor process whose namespace differs
from ours (nsenter --net); the rest (the second stage, in a chroot, and the
final touches) needs no network. Traffic goes only to the mirror, the
package registry the machine's apt uses. If the mirror cannot be reached,
`MirrorUnreachable` says which one (the tests skip with that reason).

During the second stage debootstrap's own policy-rc.d (exit 101) keeps the
packages' maintainer scripts from starting their servers in the chroot.
After it, the tree is made to look like the official images: nginx's access and error
logs are symlinks to /dev/stdout and /dev/stderr, /run/postgresql belongs
to postgres, /dev is empty (the runtime makes its own), and apt's caches,
the documentation and PostgreSQL's optional LLVM JIT are gone.

Run `python3 tests/debian_image.py` (as root) to build the cache ahead of
a test run; it prints the tree's path, the build time and its size.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SUITE = "bookworm"
PACKAGES = ["nginx-light", "redis-server", "postgresql", "procps"]
# Bump when the steps below change, so old caches are not reused.
BUILD_STEPS = 2
CACHE = Path(os.environ.get("MINIPOD_TEST_CACHE", "/var/cache/minipod-tests"))
APT_SOURCES = [Path("/etc/apt/sources.list.d"), Path("/etc/apt/sources.list")]


class MirrorUnreachable(Exception):
    """The Debian mirror could not be used to build the image."""


class BuildFailed(Exception):
    """debootstrap or a later build step failed; the message names the log."""


@dataclass(frozen=True)
class ServersImage:
    rootfs: Path        # the cached root file system (read it, never change it)
    key: str            # HASH of the name: the package list and build steps
    postgres_uid: int   # from the image's /etc/passwd
    postgres_gid: int
    postgres_home: str
    pg_bin: str         # /usr/lib/postgresql/15/bin
    pg_conf: str        # /etc/postgresql/15/main/postgresql.conf
    pg_data: str        # /var/lib/postgresql/15/main


def cache_key() -> str:
    doc = json.dumps({"suite": SUITE, "variant": "minbase", "packages": sorted(PACKAGES),
                      "steps": BUILD_STEPS}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


def cache_name() -> str:
    return f"debian-{SUITE}-servers-{cache_key()}"


def apt_mirror(sources: list[Path] = APT_SOURCES) -> str:
    """The URI of the first apt source that serves SUITE's main archive.

    Reads deb822 .sources files (URIs:/Suites:) and one-line sources.list
    entries (`deb URI SUITE COMPONENTS`); raises MirrorUnreachable if none."""
    files: list[Path] = []
    for s in sources:
        if s.is_dir():
            files += sorted(p for p in s.iterdir() if p.suffix in (".sources", ".list"))
        elif s.is_file():
            files.append(s)
    for f in files:
        text = f.read_text()
        if f.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = {}
                for line in stanza.splitlines():
                    m = re.match(r"([A-Za-z-]+):\s*(.*)", line)
                    if m and not line.startswith("#"):
                        fields[m.group(1).lower()] = m.group(2).split()
                if "deb" in fields.get("types", []) and SUITE in fields.get("suites", []):
                    if fields.get("enabled", ["yes"])[0].lower() != "no" and fields.get("uris"):
                        return fields["uris"][0].rstrip("/")
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", "", line).split()
                if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                    return words[1].rstrip("/")
    raise MirrorUnreachable(f"no apt source for Debian {SUITE} in "
                            f"{', '.join(map(str, sources))}")


def _outside_netns() -> int | None:
    """An open fd of the network namespace of our nearest ancestor in a
    different one (the namespace tests/run was started from), or None when
    we are not in a namespace of our own."""
    mine = os.stat("/proc/self/ns/net").st_ino
    pid = os.getpid()
    while pid > 1:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            pid = int(re.search(r"^PPid:\s*(\d+)", status, re.M).group(1))
            if pid <= 1:
                return None
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except (OSError, AttributeError):
            return None
        if os.fstat(fd).st_ino != mine:
            return fd
        os.close(fd)
    return None


def _outside(cmd: list[str], netns_fd: int | None, log) -> int:
    """Run cmd in the outside network namespace (or here), output to log."""
    if netns_fd is not None:
        cmd = ["nsenter", f"--net=/proc/self/fd/{netns_fd}", "--", *cmd]
    log.write(f"$ {' '.join(cmd)}\n".encode())
    log.flush()
    return subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                          pass_fds=() if netns_fd is None else (netns_fd,)).returncode


def _run(cmd: list[str], log) -> None:
    log.write(f"$ {' '.join(cmd)}\n".encode())
    log.flush()
    rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL).returncode
    if rc != 0:
        raise BuildFailed(f"{cmd[0]} exited {rc}; see {log.name}")


def _build(tmp: Path, mirror: str, log) -> None:
    netns = _outside_netns()
    try:
        release = f"{mirror}/dists/{SUITE}/Release"
        if _outside(["curl", "-sSfI", "--max-time", "20", release], netns, log) != 0:
            raise MirrorUnreachable(f"Debian mirror {mirror} unreachable ({release}); "
                                    f"see {log.name}")
        rc = _outside(["debootstrap", "--foreign", "--variant=minbase",
                       f"--include={','.join(PACKAGES)}", SUITE, str(tmp), mirror], netns, log)
        if rc != 0:
            raise BuildFailed(f"debootstrap --foreign from {mirror} exited {rc}; see {log.name}")
    finally:
        if netns is not None:
            os.close(netns)
    # No network needed from here on. (debootstrap's own policy-rc.d keeps
    # the maintainer scripts from starting the servers in the chroot.)
    try:
        _run(["chroot", str(tmp), "/debootstrap/debootstrap", "--second-stage"], log)
    finally:
        _unmount_under(tmp)
    _finish(tmp)


def _unmount_under(tmp: Path) -> None:
    """Unmount what a failed second stage may have left mounted in tmp."""
    prefix = str(tmp.resolve()) + "/"
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for m in sorted((m for m in mounts if m.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "-l", m], check=False)


def _finish(root: Path) -> None:
    """Make the tree look like the official images' (see the module doc)."""
    logs = root / "var/log/nginx"
    logs.mkdir(parents=True, exist_ok=True)
    for name, target in (("access.log", "/dev/stdout"), ("error.log", "/dev/stderr")):
        p = logs / name
        if p.exists() or p.is_symlink():
            p.unlink()
        os.symlink(target, p)
    pg = _passwd(root)["postgres"]
    run_pg = root / "run/postgresql"
    run_pg.mkdir(parents=True, exist_ok=True)
    os.chown(run_pg, pg[0], pg[1])
    run_pg.chmod(0o2775)
    # What no test reads, as slim images do: documentation, and PostgreSQL's
    # optional JIT with the LLVM it pulls in (~130 MB; without llvmjit.so
    # PostgreSQL just runs queries unjitted).
    for pattern in ("usr/share/doc/*", "usr/share/man/*", "usr/share/info/*",
                    "usr/share/locale/*", "usr/lib/postgresql/*/lib/llvmjit*",
                    "usr/lib/postgresql/*/lib/bitcode", "usr/lib/*/libLLVM*", "usr/lib/*/libz3.*"):
        for p in root.glob(pattern):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
    for d in ("dev", "var/cache/apt/archives", "var/lib/apt/lists"):
        for p in (root / d).iterdir():
            if p.is_dir() and not p.is_symlink():
                if p.name != "partial":
                    shutil.rmtree(p)
            elif p.name != "lock":
                p.unlink()


def _passwd(root: Path) -> dict[str, tuple[int, int, str]]:
    users = {}
    for line in (root / "etc/passwd").read_text().splitlines():
        f = line.split(":")
        if len(f) >= 7:
            users[f[0]] = (int(f[2]), int(f[3]), f[5])
    return users


def _describe(rootfs: Path, key: str) -> ServersImage:
    uid, gid, home = _passwd(rootfs)["postgres"]
    versions = sorted(p.name for p in (rootfs / "usr/lib/postgresql").iterdir())
    v = versions[-1]
    return ServersImage(rootfs=rootfs, key=key, postgres_uid=uid, postgres_gid=gid,
                        postgres_home=home, pg_bin=f"/usr/lib/postgresql/{v}/bin",
                        pg_conf=f"/etc/postgresql/{v}/main/postgresql.conf",
                        pg_data=f"/var/lib/postgresql/{v}/main")


def servers_rootfs(cache: Path = CACHE) -> ServersImage:
    """The cached tree, built first if missing (see the module doc).

    Raises MirrorUnreachable (skip) or BuildFailed (a real failure)."""
    if shutil.which("debootstrap") is None and not (cache / cache_name()).is_dir():
        raise BuildFailed("debootstrap is not installed (vagrant/provision.sh installs it)")
    cache.mkdir(parents=True, exist_ok=True)
    name = cache_name()
    final = cache / name
    with open(cache / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not final.is_dir():
            mirror = apt_mirror()
            tmp = cache / f".{name}.tmp-{os.getpid()}"
            if tmp.exists():
                shutil.rmtree(tmp)
            started = time.monotonic()
            with open(cache / f"{name}.log", "wb") as log:
                try:
                    _build(tmp, mirror, log)
                except BaseException as e:
                    _unmount_under(tmp)
                    shutil.rmtree(tmp, ignore_errors=True)
                    if isinstance(e, BuildFailed):
                        log.flush()
                        tail = Path(log.name).read_text(errors="replace").splitlines()[-15:]
                        raise BuildFailed(f"{e}; its end:\n" + "\n".join(tail)) from None
                    raise
                log.write(f"built in {time.monotonic() - started:.0f} s\n".encode())
            os.rename(tmp, final)
        # Leftovers of builds killed before their cleanup ran.
        for old in cache.glob(f".{name}.tmp-*"):
            shutil.rmtree(old, ignore_errors=True)
    return _describe(final, cache_key())


def tree_size(root: Path) -> int:
    total = 0
    for dirpath, dirs, files in os.walk(root):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


if __name__ == "__main__":
    t0 = time.monotonic()
    try:
        image = servers_rootfs()
    except (MirrorUnreachable, BuildFailed) as e:
        sys.exit(f"debian_image: {e}")
    print(f"{image.rootfs}: {time.monotonic() - t0:.0f} s, "
          f"{tree_size(image.rootfs) / 2**20:.0f} MiB in files")
