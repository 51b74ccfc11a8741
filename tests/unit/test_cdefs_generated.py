"""minipod/linux/_cdefs.py is what build_cdefs.py writes from the CDEF strings.

The generated module is committed (installing runs no build step), so a
CDEF changed without regenerating it would ship old declarations. The
script runs here as a user would, into a temp dir, from the repository's
sources (the tests otherwise use the installed package).
"""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINUX = REPO / "minipod" / "linux"
COMMAND = "python minipod/linux/build_cdefs.py"


def test_the_committed_cdefs_module_is_what_the_builder_writes(tmp_path):
    out = tmp_path / "_cdefs.py"
    subprocess.run([sys.executable, "-P", str(LINUX / "build_cdefs.py"), str(out)],
                   check=True, cwd=REPO, capture_output=True, text=True)
    committed = LINUX / "_cdefs.py"
    assert committed.exists(), f"minipod/linux/_cdefs.py is missing: run `{COMMAND}`"
    assert committed.read_text() == out.read_text(), (
        f"minipod/linux/_cdefs.py is stale (a CDEF changed): run `{COMMAND}` and commit it")


def test_the_floor_loads_without_cffis_c_parser():
    """The installed floor: every module that calls C imports, and neither
    pycparser nor the cffi package (only _cffi_backend) is loaded."""
    modules = "clib mount seccomp inotify files namespaces bpf capabilities descriptors"
    code = ("import sys\n"
            + "".join(f"import minipod.linux.{m}\n" for m in modules.split())
            + "print(sorted(m for m in sys.modules if m.split('.')[0] in ('cffi', 'pycparser')))")
    out = subprocess.run([sys.executable, "-P", "-c", code], check=True, cwd="/",
                         capture_output=True, text=True).stdout
    assert out.strip() == "[]"
