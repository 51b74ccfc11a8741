"""The house's import rules (issue 12), read from the source with ast.

Dependencies point one way, down to the bottom floor:

    minipod/linux/           imports nothing of minipod but itself
    netns/ cgroups/ rootfs/  import only minipod.linux and themselves
                             (and `from minipod import __version__`: the root
                             package holds the version and nothing else);
                             rootfs does not import netns, nor the reverse
    runtime/api/             pure: none of minipod.linux, netns, cgroups,
                             rootfs (but rootfs.reference, image names as
                             plain strings), nothing of runtime outside api/
    runtime/cli/             reaches the agent only through runtime/client.py:
                             no minipod.runtime.agent, except cmd_agent.py,
                             the verb that starts the agent in the foreground
    runtime/*.py, owners/    the node library: nothing of cli/, agent/ or
                             apiserver/ (the front ends stand on it)
    runtime/agent/           its managers depend one way, in the order of
                             runtime/agent/__init__.py: no import of a higher
                             one, and no call up into a higher one's methods
                             (the Agent mixes them into one class: a lower
                             one reports up by callback)

Every import counts, also the late ones inside functions (minipod imports
heavy modules where they are used), so each statement of the tree is
walked, not only the module's top.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# source folder -> the package it installs as (pyproject.toml package-dir)
PACKAGES = {"minipod": "minipod", "runtime": "minipod.runtime", "netns": "minipod.netns",
            "cgroups": "minipod.cgroups", "rootfs": "minipod.rootfs"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = [PACKAGES[rel.parts[0]], *rel.parts[1:]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    out = {}
    for folder in PACKAGES:
        for path in sorted((REPO / folder).rglob("*.py")):
            out[_module_name(path)] = path
    return out


SOURCES = _sources()


def imports(module: str) -> list[tuple[int, str]]:
    """(line, module imported) for every import statement of `module`'s
    source; `from P import name` counts as P.name when that is a module."""
    path = SOURCES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            for a in node.names:
                full = f"{base}.{a.name}"
                out.append((node.lineno, full if full in SOURCES else base))
    return [(line, name) for line, name in out if name.split(".")[0] == "minipod"]


def violations(folder_package: str, allowed) -> list[str]:
    """Imports of modules under folder_package that allowed(importer, imported) refuses."""
    bad = []
    for module in SOURCES:
        if module == folder_package or module.startswith(folder_package + "."):
            for line, name in imports(module):
                if not allowed(module, name):
                    bad.append(f"{SOURCES[module].relative_to(REPO)}:{line}: imports {name}")
    return bad


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_floor_imports_nothing_above_it():
    assert violations("minipod.linux", lambda _m, n: _within(n, "minipod.linux")) == []


@pytest.mark.parametrize("package", ["minipod.netns", "minipod.cgroups", "minipod.rootfs"])
def test_node_libraries_stand_on_the_floor_only(package):
    def allowed(_module, name):
        return (_within(name, "minipod.linux") or _within(name, package)
                or name == "minipod")   # `from minipod import __version__`
    assert violations(package, allowed) == []


def test_api_objects_are_pure():
    def allowed(_module, name):
        return _within(name, "minipod.runtime.api") or name == "minipod.rootfs.reference"
    assert violations("minipod.runtime.api", allowed) == []


def test_cli_reaches_the_agent_through_the_client_only():
    def allowed(module, name):
        # cmd_agent runs the agent itself (`minipod agent`, for systemd)
        return not _within(name, "minipod.runtime.agent") or \
            module == "minipod.runtime.cli.cmd_agent"
    assert violations("minipod.runtime.cli", allowed) == []


def test_the_rules_see_late_imports():
    """A check of the checker: an import inside a function is found
    (inspection.py imports the /proc readers and the manifest there)."""
    found = [name for _, name in imports("minipod.runtime.inspection")]
    assert "minipod.linux.proc" in found and "minipod.runtime.api.manifest" in found


def test_the_node_library_imports_no_front_end_and_no_agent():
    """The flat runtime/*.py modules and runtime/owners/ stand below the
    agent and both front ends (the CLI, the API server)."""
    above = ("minipod.runtime.cli", "minipod.runtime.agent", "minipod.runtime.apiserver")
    flat = [m for m, path in SOURCES.items()
            if path.parent == REPO / "runtime" and path.name != "__init__.py"]
    bad = []
    for package in flat + ["minipod.runtime.owners"]:
        bad += violations(package, lambda _m, n: not any(_within(n, a) for a in above))
    assert flat and bad == []


# runtime/agent/__init__.py's order, top first; a module may use its own
# level and those below it
AGENT_LEVELS = [
    ("agent",),
    ("server",),
    ("pods", "adopt"),
    ("worker",),
    ("spec", "images", "prober", "output"),
    ("store", "running", "loop", "node", "backoff", "eviction", "gc"),
]


def _level(module: str) -> int | None:
    name = module.rpartition(".")[2]
    return next((i for i, names in enumerate(AGENT_LEVELS) if name in names), None)


def _agent_modules() -> list[str]:
    return [m for m in SOURCES if m.startswith("minipod.runtime.agent.")]


def test_every_agent_module_has_its_level():
    assert [m for m in _agent_modules() if _level(m) is None] == []


def test_agent_managers_import_one_way():
    def allowed(module, name):
        if not _within(name, "minipod.runtime.agent") or name == "minipod.runtime.agent":
            return True
        return _level(name) >= _level(module)
    assert violations("minipod.runtime.agent", allowed) == []


def _methods(module: str) -> set[str]:
    tree = ast.parse(SOURCES[module].read_text())
    return {f.name for c in tree.body if isinstance(c, ast.ClassDef)
            for f in c.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))}


def _self_calls(module: str) -> list[tuple[int, str]]:
    tree = ast.parse(SOURCES[module].read_text())
    return [(n.lineno, n.func.attr) for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and isinstance(n.func.value, ast.Name) and n.func.value.id == "self"]


def test_agent_managers_call_no_method_of_a_higher_one():
    """The managers are mixed into one Agent class, so `self.x()` could
    reach any of them: a call to a method only a higher manager defines is
    a call up (the worker once finished a delete that way)."""
    methods = {m: _methods(m) for m in _agent_modules()}
    bad = []
    for module in _agent_modules():
        for line, name in _self_calls(module):
            owners = [m for m, defined in methods.items() if name in defined]
            if owners and all(_level(m) < _level(module) for m in owners):
                bad.append(f"{SOURCES[module].relative_to(REPO)}:{line}: self.{name}() "
                           f"is {', '.join(owners)}'s")
    assert bad == []
