"""seccomp: compile a filter with libseccomp, load it with prctl(2).

    SyscallRule                  refuse one system call (maybe on one argument)
    compile_bpf(rules)           the BPF program of an allow-by-default filter
    pseudo_code(rules)           the same filter as libseccomp's text, to read
    load(bpf)                    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prog)

libseccomp (libseccomp.so.2) compiles in the agent, before the fork: after
pivot_root the library is out of sight, and the child then needs one
prctl(2) only. runtime/security.py decides the rules.
"""
from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from minipod.linux.clib import MACHINE, fail, ffi, lib

CDEF = """
    struct sock_filter { uint16_t code; uint8_t jt; uint8_t jf; uint32_t k; };
    struct sock_fprog { unsigned short len; struct sock_filter *filter; };

    typedef void *scmp_filter_ctx;
    struct scmp_arg_cmp { unsigned int arg; int op; uint64_t datum_a; uint64_t datum_b; };
    scmp_filter_ctx seccomp_init(uint32_t def_action);
    void seccomp_release(scmp_filter_ctx ctx);
    uint32_t seccomp_arch_resolve_name(const char *arch_name);
    int seccomp_arch_add(scmp_filter_ctx ctx, uint32_t arch_token);
    int seccomp_syscall_resolve_name(const char *name);
    int seccomp_rule_add_array(scmp_filter_ctx ctx, uint32_t action, int syscall,
                               unsigned int arg_cnt, const struct scmp_arg_cmp *arg_array);
    int seccomp_export_bpf(const scmp_filter_ctx ctx, int fd);
    int seccomp_export_pfc(const scmp_filter_ctx ctx, int fd);
"""


@dataclass(frozen=True)
class SyscallRule:
    """Refuse `name` with `errno`; with `arg` set, only when
    (argument[arg] & mask) == value (SCMP_CMP_MASKED_EQ) or, with mask 0,
    argument[arg] == value (SCMP_CMP_EQ)."""
    name: str
    errno: int = errno.EPERM
    arg: int | None = None
    value: int = 0
    mask: int = 0


_SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_CMP_EQ = 4
_SCMP_CMP_MASKED_EQ = 7
# the compat ABIs a process of this machine can also call the kernel with
_EXTRA_ARCHES = {"x86_64": ["x86", "x32"], "aarch64": ["arm"]}
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
_libseccomp = None


def _seccomp_lib():
    global _libseccomp
    if _libseccomp is None:
        try:
            _libseccomp = ffi.dlopen("libseccomp.so.2")
        except OSError as e:
            raise OSError(errno.ENOENT, f"cannot load libseccomp.so.2 ({e}): install it "
                          f"(apt-get install libseccomp2)", "libseccomp.so.2") from None
    return _libseccomp


def _build_filter(rules: list[SyscallRule]):
    """A libseccomp filter context: allow by default, the rules refuse."""
    slib = _seccomp_lib()
    ctx = slib.seccomp_init(_SCMP_ACT_ALLOW)
    if ctx == ffi.NULL:
        raise OSError(errno.ENOMEM, "seccomp_init failed")
    try:
        for arch in _EXTRA_ARCHES.get(MACHINE, []):
            token = slib.seccomp_arch_resolve_name(arch.encode())
            rc = slib.seccomp_arch_add(ctx, token) if token else 0
            if rc < 0 and -rc != errno.EEXIST:
                raise OSError(-rc, f"seccomp_arch_add({arch}): {os.strerror(-rc)}")
        for rule in rules:
            nr = slib.seccomp_syscall_resolve_name(rule.name.encode())
            if nr == -1:          # __NR_SCMP_ERROR: unknown to this libseccomp
                continue
            action = 0x00050000 | (rule.errno & 0xFFFF)    # SCMP_ACT_ERRNO(errno)
            if rule.arg is None:
                rc = slib.seccomp_rule_add_array(ctx, action, nr, 0, ffi.NULL)
            else:
                op, a, b = (_SCMP_CMP_MASKED_EQ, rule.mask, rule.value) if rule.mask \
                    else (_SCMP_CMP_EQ, rule.value, 0)
                cmp = ffi.new("struct scmp_arg_cmp[1]", [(rule.arg, op, a, b)])
                rc = slib.seccomp_rule_add_array(ctx, action, nr, 1, cmp)
            if rc < 0:
                raise OSError(-rc, f"seccomp rule for {rule.name}: {os.strerror(-rc)}")
        return ctx
    except BaseException:
        slib.seccomp_release(ctx)
        raise


def _export(rules: list[SyscallRule], exporter: str) -> bytes:
    slib = _seccomp_lib()
    ctx = _build_filter(rules)
    fd = os.memfd_create("minipod-seccomp", os.MFD_CLOEXEC)
    try:
        rc = getattr(slib, exporter)(ctx, fd)
        if rc < 0:
            raise OSError(-rc, f"{exporter}: {os.strerror(-rc)}")
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
        slib.seccomp_release(ctx)


def compile_bpf(rules: list[SyscallRule]) -> bytes:
    """The filter's BPF program (libseccomp's seccomp_export_bpf)."""
    return _export(rules, "seccomp_export_bpf")


def pseudo_code(rules: list[SyscallRule]) -> str:
    """The filter as libseccomp's pseudo-code, for reading (seccomp_export_pfc)."""
    return _export(rules, "seccomp_export_pfc").decode()


def load(bpf: bytes) -> None:
    """prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog): from now on the
    kernel runs the program on every system call of this process and its
    children; it cannot be removed."""
    prog_filter = ffi.from_buffer("struct sock_filter[]", bpf)
    prog = ffi.new("struct sock_fprog *", (len(bpf) // 8, prog_filter))
    ul = "unsigned long"
    if lib.prctl(PR_SET_SECCOMP, ffi.cast(ul, SECCOMP_MODE_FILTER), ffi.cast("void *", prog),
                 ffi.cast(ul, 0), ffi.cast(ul, 0)) == -1:
        fail(f"load seccomp filter ({len(bpf) // 8} BPF instructions)")
