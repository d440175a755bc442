"""Dependencies point one way: ground ← nets/entropy ← models ← codec ← api ← pil; train and
evaluate sit on top (siblings: neither imports the other) and the CLI above everything. The
codec core never imports train or evaluate. Read from the source with ``ast``, imports inside
functions included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "lcodec"

LAYERS: dict[str, int] = {
    "errors": 0, "colorimetry": 0,
    "color": 1, "config": 1, "container": 1, "quant": 1, "metrics": 1, "imageio": 1,
    "sidecar": 1, "ratecontrol": 1,
    "nets": 2, "entropy": 2, "correction": 2,
    "models": 3,
    "codec": 4, "correction_search": 4,
    "api": 5,
    "pil": 6,
    "evaluate": 7, "train": 7,
    "cli": 8,
}
SIBLINGS = {frozenset({"evaluate", "train"})}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(("lcodec", *parts))] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The lcodec modules ``name`` imports at run time (``from lcodec import x`` counts as
    lcodec.x when x is a module; ``if TYPE_CHECKING:`` imports do not count)."""
    found = set()
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
                   for stmt in block.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in typing_only:  # type hints only: never executed
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("lcodec"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.startswith("lcodec"):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.add(sub if sub in MODULES else node.module)
    found.discard(name)
    return found


def _top(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None  # None: the package facade ``lcodec``


def test_every_module_has_a_layer() -> None:
    missing = sorted({_top(m) for m in MODULES} - set(LAYERS) - {None})
    assert not missing, f"give these a layer in LAYERS: {missing}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "lcodec"))
def test_imports_point_down_or_sideways_never_up(module: str) -> None:
    here = _top(module)
    bad = []
    for target in sorted(_imports(module, MODULES[module])):
        there = _top(target)
        if there is None:  # the package facade: only its constants are imported
            continue
        if there == here:
            continue
        if LAYERS[there] > LAYERS[here] or frozenset({here, there}) in SIBLINGS:
            bad.append(target)
    assert not bad, f"{module} imports upward: {bad}"


def test_module_imports_have_no_cycles() -> None:
    graph = {m: {t for t in _imports(m, p) if t in MODULES and t != "lcodec"}
             for m, p in MODULES.items() if m != "lcodec"}
    seen: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(m: str, stack: list[str]) -> None:
        seen[m] = 1
        for t in sorted(graph.get(m, ())):
            if seen.get(t) == 1:
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if t not in seen:
                visit(t, [*stack, t])
        seen[m] = 2

    for m in sorted(graph):
        if m not in seen:
            visit(m, [m])
