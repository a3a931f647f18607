"""Which part of dockyard may import which, read from the sources with ``ast``.

The parts and the rules (README's layout section):

* ``leaf`` (runtime/kernel/): imports nothing of dockyard outside itself;
* ``runtime`` (the rest of runtime/: dockyard-runc's CLI and container code):
  the leaf and itself, nothing of cri/, shim/ or api/ (it is a drop-in for runc);
* ``api`` (the shim protocol): the leaf only;
* ``shim``: the leaf and api/, nothing of cri/ (it outlives the daemon);
* ``cri``: the leaf and api/; it talks to the shim only through api/, and
  imports of the runtime only through the leaf;
* ``ctl`` (the ``dockyard`` admin command): api/ only; it reaches the daemon
  through the admin protocol and knows nothing of its insides.

And one rule across parts: nothing the shim imports, however indirectly,
loads grpc or protobuf (api/admin.py does; the shim's memory is paid per pod).

Every import counts: at the top, in a function, or under TYPE_CHECKING.
Loading a module by name at run time (``__import__``, importlib) and naming
a dockyard module in a string are held to the same rules, with one
exception, written here: shim/fork_bundled.py, the shim's "fork" launch
strategy, runs the bundled runtime's CLI in a fork of the shim and so names
it (see that module for why).

CPython's private modules (``_json``, ``_ctypes``, ``_signal``, ...) and
``posix``, which the start-up diet relies on, are imported only in
runtime/kernel/lean/, where their use is measured and pinned (README.md there).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = {"runtime": "dockyard.runtime", "cri": "dockyard.cri", "shim": "dockyard.shim", "api": "dockyard.api",
            "ctl": "dockyard.ctl"}
LEAF = "dockyard.runtime.kernel"
LEAN = "runtime/kernel/lean/"

ALLOWED = {
    "leaf": {"leaf"},
    "runtime": {"leaf", "runtime"},
    "api": {"leaf", "api"},
    "shim": {"leaf", "api", "shim"},
    "cri": {"leaf", "api", "cri"},
    "ctl": {"api", "ctl"},
}

# The one place a part may name (and load at run time) what its rules forbid.
EXCEPTIONS = {
    "shim/fork_bundled.py": {"dockyard.runtime.cli.main", "dockyard.runtime"},
}

PRIVATE_ALLOWED = {"__future__"}


def part_of_file(rel: str) -> str:
    if rel.startswith("runtime/kernel/"):
        return "leaf"
    return rel.split("/", 1)[0]


def part_of_module(module: str) -> str | None:
    if module == LEAF or module.startswith(LEAF + "."):
        return "leaf"
    for part, package in PACKAGES.items():
        if module == package or module.startswith(package + "."):
            return part
    return None


def module_of_file(rel: str) -> str:
    top, _, rest = rel[:-3].partition("/")
    dotted = [PACKAGES[top], *rest.split("/")] if rest else [PACKAGES[top]]
    if dotted[-1] == "__init__":
        dotted.pop()
    return ".".join(dotted)


def imports(rel: str, tree: ast.AST, modules: set[str]) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in the file, relative ones resolved."""
    package = module_of_file(rel)
    if not rel.endswith("__init__.py"):
        package = package.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            for alias in node.names:
                # `from package import module` imports the module
                full = f"{base}.{alias.name}"
                found.append((node.lineno, full if full in modules else base))
    return found


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def named_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """Strings that name a dockyard module (what ``__import__`` or importlib would load), docstrings aside."""
    skip = _docstrings(tree)
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
            and part_of_module(node.value) is not None and " " not in node.value]


def dynamic_loads(tree: ast.AST) -> list[int]:
    """Lines that load a module by name at run time."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if (isinstance(f, ast.Name) and f.id == "__import__") or \
                    (isinstance(f, ast.Attribute) and f.attr == "import_module"):
                lines.append(node.lineno)
    return lines


def violations(sources: dict[str, str]) -> list[str]:
    """Every broken rule in ``sources`` (repo-relative path -> Python source)."""
    modules = {module_of_file(rel) for rel in sources}
    out: list[str] = []
    for rel, text in sorted(sources.items()):
        tree = ast.parse(text, rel)
        part = part_of_file(rel)
        allowed = ALLOWED[part]
        excepted = EXCEPTIONS.get(rel, set())
        for line, module in imports(rel, tree, modules):
            target = part_of_module(module)
            if target is not None and target not in allowed:
                out.append(f"{rel}:{line}: {part} imports {module} ({target})")
            top = module.split(".")[0]
            if (top.startswith("_") or top == "posix") and top not in PRIVATE_ALLOWED and not rel.startswith(LEAN):
                out.append(f"{rel}:{line}: CPython's private module {top} outside {LEAN}")
        for line, name in named_modules(tree):
            target = part_of_module(name)
            if target not in allowed and name not in excepted:
                out.append(f"{rel}:{line}: {part} names {name} ({target})")
        if part != "runtime" and part != "leaf" and not excepted:
            out += [f"{rel}:{line}: {part} loads a module by name at run time" for line in dynamic_loads(tree)]
    return out


def tree_sources() -> dict[str, str]:
    return {str(p.relative_to(REPO)): p.read_text() for top in PACKAGES for p in (REPO / top).rglob("*.py")}


def test_the_tree_keeps_the_rules() -> None:
    """No part imports, names or loads what its rules forbid; private modules stay in the diet's package."""
    assert violations(tree_sources()) == []


def test_the_exception_is_still_needed() -> None:
    """Each exception is used, so none outlives the code it was written for: the fork strategy
    loads the runtime's CLI by name at run time."""
    sources = tree_sources()
    for rel, names in EXCEPTIONS.items():
        tree = ast.parse(sources[rel])
        assert dynamic_loads(tree), f"{rel} no longer loads a module by name"
        assert names <= {name for _, name in named_modules(tree)}, f"{rel} no longer names {names}"


HEAVY = ("grpc", "google.protobuf")


def heavy_reach(sources: dict[str, str], part: str) -> list[str]:
    """Chains ``module -> ... -> heavy`` by which a module of ``part`` loads grpc or protobuf."""
    modules = {module_of_file(rel): rel for rel in sources}
    edges: dict[str, list[str]] = {}
    heavy: dict[str, str] = {}
    for module, rel in modules.items():
        found = imports(rel, ast.parse(sources[rel], rel), set(modules))
        edges[module] = [m for _, m in found if m in modules]
        for _, m in found:
            if m == "grpc" or m.startswith(HEAVY):
                heavy[module] = m
    out = []
    for start, rel in modules.items():
        if part_of_file(rel) != part:
            continue
        seen, stack = {start}, [[start]]
        while stack:
            chain = stack.pop()
            if chain[-1] in heavy:
                out.append(" -> ".join(chain + [heavy[chain[-1]]]))
                break
            for nxt in edges.get(chain[-1], []):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(chain + [nxt])
    return out


def test_the_shim_never_loads_grpc() -> None:
    """No module of shim/ imports grpc or protobuf, directly or through api/ (the admin protocol does)."""
    assert heavy_reach(tree_sources(), "shim") == []


def test_heavy_reach_is_seen() -> None:
    sources = {"shim/service.py": "from dockyard.api import shim\n",
               "api/shim.py": "from dockyard.api import admin\n",
               "api/admin.py": "import grpc\n"}
    assert heavy_reach(sources, "shim") == ["dockyard.shim.service -> dockyard.api.shim -> dockyard.api.admin -> grpc"]


# A broken rule of each kind, in a tree of one file: the checker must see it.
BROKEN = [
    ("runtime/cli/kill.py", "from dockyard.cri import errors\n", "runtime imports dockyard.cri (cri)"),
    ("runtime/cli/kill.py", "from ...shim import main\n", "runtime imports dockyard.shim (shim)"),
    ("runtime/kernel/syscalls.py", "from ..spawn import run\n", "leaf imports dockyard.runtime.spawn (runtime)"),
    ("runtime/kernel/lean/ffi.py", "import dockyard.api.shim\n", "leaf imports dockyard.api.shim (api)"),
    ("api/shim.py", "from dockyard.runtime import spawn\n", "api imports dockyard.runtime (runtime)"),
    ("api/shim.py", "from dockyard.shim import service\n", "api imports dockyard.shim (shim)"),
    ("shim/service.py", "from dockyard.cri.errors import NotFound\n", "shim imports dockyard.cri.errors (cri)"),
    ("shim/service.py", "if TYPE_CHECKING:\n    from dockyard.runtime.container import load\n",
     "shim imports dockyard.runtime.container (runtime)"),
    ("cri/shims.py", "from dockyard.shim.service import Shim\n", "cri imports dockyard.shim.service (shim)"),
    ("cri/stats.py", "def f():\n    from dockyard.runtime.cgroups.locate import new_manager\n",
     "cri imports dockyard.runtime.cgroups.locate (runtime)"),
    ("shim/service.py", "CLI = 'dockyard.runtime.cli.main'\n", "shim names dockyard.runtime.cli.main (runtime)"),
    ("shim/service.py", "m = __import__(name)\n", "shim loads a module by name at run time"),
    ("cri/daemon.py", "import importlib\nm = importlib.import_module(n)\n", "cri loads a module by name at run time"),
    ("runtime/spawn.py", "import _socket\n", "CPython's private module _socket outside runtime/kernel/lean/"),
    ("shim/io.py", "from posix import read\n", "CPython's private module posix outside runtime/kernel/lean/"),
    ("ctl/main.py", "from dockyard.cri.server import images\n", "ctl imports dockyard.cri.server (cri)"),
    ("ctl/images.py", "from dockyard.runtime.kernel import errors\n", "ctl imports dockyard.runtime.kernel (leaf)"),
]


@pytest.mark.parametrize(("path", "source", "expected"), BROKEN)
def test_a_broken_rule_is_found(path: str, source: str, expected: str) -> None:
    found = violations({path: source})
    assert len(found) == 1 and expected in found[0], found


@pytest.mark.parametrize(("path", "source"), [
    ("runtime/cli/kill.py", "from ..kernel import syscalls\nfrom .. import container\n"),
    ("api/shim.py", "from dockyard.runtime.kernel.lean import jsonfast\n"),
    ("shim/service.py", "from dockyard.api import shim as api\nfrom dockyard.runtime.kernel.lean import leansignal\n"),
    ("cri/stats.py", "from dockyard.runtime.kernel.cgroupfs import stats\nfrom dockyard.api.shim import Code\n"),
    ("runtime/kernel/lean/leanos.py", "from posix import *\nfrom . import leanpath\n"),
    ("runtime/cgroups/__init__.py", "x = __import__(name)\n"),  # within the runtime: its own business
])
def test_what_the_rules_allow(path: str, source: str) -> None:
    assert violations({path: source}) == []
