"""Dependencies point one way: ground ← nets/entropy ← models ← codec ← api ← pil; train and
evaluate sit on top (siblings: neither imports the other) and the CLI above everything. The
codec core never imports train or evaluate, and reaches syntheses and entropy methods through
their registries. Read from the source with ``ast``, imports inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "lcodec"

LAYERS: dict[str, int] = {
    "errors": 0, "colorimetry": 0, "fileio": 0,
    "color": 1, "exact_colour": 1, "codemask": 1, "threads": 1,
    "config": 1, "container": 1, "quant": 1, "metrics": 1, "imageio": 1,
    "sidecar": 1, "ratecontrol": 1, "settings": 1, "effort": 1,
    "nets": 2, "entropy": 2, "correction": 2,
    "models": 3, "synthesis": 3,
    "codec": 4, "encoder": 4, "devices": 1,
    "api": 5, "conformance": 5,
    "pil": 6,
    "evaluate": 7, "train": 7,
    "cluster": 7,  # Ray Data actors over api (Ray imported there only, lazily)
    "cli": 8,
}
SIBLINGS = {frozenset({"evaluate", "train"})}

# Registry packages: outside the package, only these modules of it are imported (the lookups
# synthesis_for / for_encoding and methods.coder_for); its member modules (one per synthesis
# or method, and whatever they are split into) are reached through them.
REGISTRIES: dict[str, frozenset[str]] = {
    "lcodec.synthesis": frozenset({"lcodec.synthesis"}),
    "lcodec.entropy": frozenset({"lcodec.entropy", "lcodec.entropy.methods"}),
}
# What legitimately needs a registry package's members: importer (a module or a package) ->
# prefixes of the members it may import.
REGISTRY_BYPASSES: dict[str, tuple[str, ...]] = {
    # training builds what the registries serve: the TCAE and the static tables (train/tcae,
    # train/export), and fine-tunes with EXACT_INT_V2's rounding in the loop (train/qat)
    "lcodec.train": ("lcodec.entropy.", "lcodec.synthesis."),
    # loading an installed TCAE file once per process (models.load_tcae)
    "lcodec.models": ("lcodec.entropy.tcae",),
    # the range coder, not an entropy method: the decoder and the encoder time it (Timer,
    # timed_coding) and the CORRECTION section is coded with it
    "lcodec.codec": ("lcodec.entropy.coder",),
    "lcodec.encoder": ("lcodec.entropy.coder",),
    "lcodec.correction": ("lcodec.entropy.coder",),
}


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


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _bypasses(module: str, targets: set[str]) -> list[str]:
    """The registry members among ``targets`` that ``module`` may not import."""
    bad = []
    for target in sorted(targets):
        for package, public in REGISTRIES.items():
            if not target.startswith(package + ".") or target in public or _within(module,
                                                                                   package):
                continue
            allowed = (prefix for importer, prefixes in REGISTRY_BYPASSES.items()
                       if _within(module, importer) for prefix in prefixes)
            if not any(target.startswith(prefix) for prefix in allowed):
                bad.append(target)
    return bad


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "lcodec"))
def test_syntheses_and_entropy_methods_are_reached_through_their_registries(module: str
                                                                            ) -> None:
    bad = _bypasses(module, _imports(module, MODULES[module]))
    assert not bad, f"{module} bypasses a registry, importing {bad}; ask the registry " \
                    "(lcodec.synthesis, lcodec.entropy.methods) or add a commented " \
                    "REGISTRY_BYPASSES entry"


def test_the_registry_rule_catches_a_member_imported_from_outside() -> None:
    assert _bypasses("lcodec.codec", {"lcodec.synthesis.exact_int_v2"})
    assert _bypasses("lcodec.api", {"lcodec.entropy.tcae_store"})
    assert _bypasses("lcodec.evaluate.runner", {"lcodec.synthesis.registry"})
    assert not _bypasses("lcodec.codec", {"lcodec.synthesis", "lcodec.entropy.methods",
                                          "lcodec.entropy.coder"})
    assert not _bypasses("lcodec.synthesis.exact_int_v2", {"lcodec.synthesis.exact_int_v1"})
    assert not _bypasses("lcodec.train.qat", {"lcodec.synthesis.exact_int_v2_layers"})
