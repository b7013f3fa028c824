"""The package's shape: one import direction through the layers, no cycles, and function-local
imports only where they earn their place. Read from the source (the AST of every module,
function-local imports included), so nothing has to be imported to check it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vidgan"

# Lower layers never import higher ones; layers of one rank never import each other.
RANKS = {"core": 0, "train": 1, "runtime": 2, "pipelines": 3, "evaluation": 3, "tools": 4,
         "cli": 5, "__main__": 6}
# Imported inside functions on purpose: optional (or platform-only) dependencies, and the
# slow imports (half a second or more) that one rarely used function needs, so that running a
# model never pays for exporting or plotting. Anything else goes at the top of the module.
LOCAL_OK = ("tensorrt", "onnxruntime", "pyvirtualcam", "mss", "torch.utils.tensorboard",
            "resource", "onnx", "onnxconverter_common", "matplotlib", "skimage")
CLI = {"vidgan.cli"}  # may import anything inside a command: `vidgan --help` stays instant


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """(module imported, line, inside a function) for every import in the file; for `from X
    import y` the module X.y when that is a module, else X."""
    tree = ast.parse(path.read_text())
    local = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
             for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno, id(node) in local) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.append((sub if sub in MODULES else node.module, node.lineno, id(node) in local))
    return found


def layer(module: str) -> str | None:
    """The layer a vidgan module belongs to; None for the root package (its version only)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def graph() -> dict[str, set[str]]:
    return {name: {m for m, _, _ in imports(path) if m in MODULES and m != name}
            for name, path in MODULES.items()}


def test_every_module_is_in_a_layer():
    assert {layer(m) for m in MODULES} - {None} <= set(RANKS)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_go_down_the_layers(name):
    here = layer(name)
    for target, line, _ in imports(MODULES[name]):
        there = layer(target) if target in MODULES else None
        if there is None or there == here:
            continue
        assert RANKS[there] < RANKS[here], (
            f"{name}:{line} imports {target}: {here} (rank {RANKS[here]}) may only import "
            f"lower layers, not {there} (rank {RANKS[there]})")


@pytest.mark.parametrize("name", sorted(set(MODULES) - CLI))
def test_function_local_imports_are_optional_dependencies(name):
    for target, line, local in imports(MODULES[name]):
        if local:
            assert any(target == ok or target.startswith(ok + ".") for ok in LOCAL_OK), (
                f"{name}:{line} imports {target} inside a function; import it at the top "
                f"(function-local imports are for optional dependencies: {', '.join(LOCAL_OK)})")


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph as a path [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_between_modules():
    assert cycle(graph()) is None, " -> ".join(cycle(graph()))


def test_no_import_cycle_between_packages():
    """Packages and modules under a layer (vidgan.runtime.backends, vidgan.runtime.export, ...)
    import one way too: a package that imports another's modules is never imported by them."""
    def unit(module: str) -> str:
        return ".".join(module.split(".")[:3])

    edges: dict[str, set[str]] = {}
    for name, targets in graph().items():
        edges.setdefault(unit(name), set()).update(unit(t) for t in targets if unit(t) != unit(name))
    assert cycle(edges) is None, " -> ".join(cycle(edges))


def test_the_cycle_finder_finds_cycles():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
