"""minipod.linux: the bottom floor, the only place that speaks to the kernel through C.

Everything else of minipod stands on this package; it stands on nothing of
minipod (tests/unit/test_import_contract.py holds it to that). netns/,
cgroups/ and rootfs/ import only this floor, the standard library and
their dependencies.

    clib.py          the C library through cffi (ABI mode): one FFI, errno
                     and EINTR handling, syscall numbers per architecture
    namespaces.py    unshare(2), setns(2), the CLONE_NEW* flags
    mount.py         mount(2), umount2(2), pivot_root(2), openat2(2),
                     open_tree(2), move_mount(2) and their flags
    descriptors.py   close_range(2): no fd of ours reaches a container
    inotify.py       inotify(7), for the agent's output relay and `logs -f`
    files.py         atomic file replace, flock, directory fsync,
                     fallocate(2) hole punching, statfs(2)
    proc.py          readers of /proc/PID/*: start time, namespace inodes,
                     status, comm
    capabilities.py  capget(2)/capset(2), prctl(2) for the bounding set
    seccomp.py       libseccomp (compile a filter) and loading it
    bpf.py           bpf(2): load and attach a cgroup device program
    fork.py          fork a child, maybe setns, run one function, report
                     its result or its error over a pipe
    explain.py       the --explain recorder: each kernel step as a command

Importing this package costs nothing: cffi is loaded by the modules that
call C (clib and those built on it), so `minipod get` never pays for it.

Rules that bite: a syscall number is per architecture, and on one without
a table the call fails with ENOSYS naming the call and the machine, never
a guessed number; setns(CLONE_NEWNS) and unshare(CLONE_NEWUSER) refuse a
multi-threaded process, so fork.py's child does its setns before anything
starts a thread; a child that may reach a container is made non-dumpable
before it joins the container's PID namespace (its /proc/PID/exe is the
host's interpreter).

Check by hand: `strace -f -e trace=setns,unshare,mount,pivot_root minipod
run examples/kubia.yaml` shows each call this floor makes.
"""
