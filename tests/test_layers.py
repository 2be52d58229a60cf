"""The architecture's layering, read from the source: every import (function-local ones included) points down.

Layers, bottom to top (docs/architecture.md draws them):

0. foundation  errors, atomic outputs, the demo assets, the version
1. model       the math and the device kernels: losses, features (VGG as data), fused ops, colours, images,
               the seed's code, dlp-sim's device, kernels and cost model
2. formats     config, weights and the compressed artefacts they load
3. pipeline    objectives, backends (devices, dlp.backend), the loop, stages, checkpoints, logs, results
4. commands    what each command does: transfer (run), bench, summary (model), compress commands
5. cli         Typer and rich, and nothing else imports them
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "stylize"

LAYERS = {
    0: ["errors", "outputs", "demo", "version", "yamlsafe"],
    1: ["losses", "features", "fused", "colors", "images", "baseline", "cpu", "plateau", "metrics", "flow", "frames",
        "regions", "dlp"],  # "dlp": dlp and dlp.* ...
    2: ["config", "weights", "compress", "compress.prune", "compress.quantize", "compress.config"],
    3: ["objective", "tiled", "plan", "optimize", "schedule", "memory", "devices", "checkpoint", "board", "logs",
        "callbacks", "results", "stages", "dlp.backend", "ledger"],  # ...but dlp.backend, the device as the pipeline sees it
    4: ["transfer", "bench", "summary", "compress.commands", "compress.report", "video", "workers", "batches"],
    5: ["cli", "__init__", "__main__"],  # the facade and the entry point sit on top
}
LEVEL = {name: level for level, names in LAYERS.items() for name in names}
UI_LIBRARIES = ("typer", "rich", "click")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def level_of(module: str) -> int:
    """The layer of ``module`` (dotted, under stylize): its own entry, else its nearest listed package's."""
    parts = module.split(".")
    for k in range(len(parts), 0, -1):
        if ".".join(parts[:k]) in LEVEL:
            return LEVEL[".".join(parts[:k])]
    raise KeyError(f"stylize.{module} is in no layer: add it to LAYERS in tests/test_layers.py "
                   "(and to docs/architecture.md)")


def imports(path: Path, known: set[str]) -> set[str]:
    """Every module ``path`` imports, as absolute dotted names (``stylize.x`` or a third-party top level);
    ``known``: stylize's modules (``from . import x`` imports the submodule x when there is one)."""
    module = "stylize." + module_name(path) if module_name(path) != "__init__" else "stylize"
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            for alias in node.names:
                sub = f"{prefix}.{alias.name}"
                found.add(sub if sub.removeprefix("stylize.") in known else prefix)
    return found


def graph() -> dict[str, set[str]]:
    """stylize module -> the stylize modules and third-party top-level packages it imports."""
    out = {}
    known = {module_name(p) for p in ROOT.rglob("*.py")}
    for path in ROOT.rglob("*.py"):
        edges = set()
        for name in imports(path, known):
            if name == "stylize" or name.startswith("stylize."):
                inner = name.removeprefix("stylize").removeprefix(".") or "__init__"
                if inner in known:
                    edges.add(inner)
            else:
                edges.add(name.split(".")[0])
        out[module_name(path)] = edges
    return out


def violations(edges: dict[str, set[str]]) -> list[str]:
    """Upward imports, and UI libraries imported outside the CLI."""
    bad = []
    for module, targets in sorted(edges.items()):
        for target in sorted(targets):
            if target in UI_LIBRARIES:
                if level_of(module) != LEVEL["cli"] or module in ("__init__", "__main__"):
                    bad.append(f"stylize.{module} imports {target}: only stylize.cli may")
            elif target in LEVEL or any(target.startswith(p + ".") for p in LEVEL) or target == "__init__":
                if level_of(target) > level_of(module):
                    bad.append(f"stylize.{module} (layer {level_of(module)}) imports stylize.{target} "
                               f"(layer {level_of(target)}): upward")
    return bad


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles among stylize's modules (a package importing its own submodules does not count)."""
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if nxt not in edges or nxt.startswith(node + ".") or (node == "__init__"):
                continue
            if state.get(nxt) == 1:
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def test_every_module_is_in_a_layer():
    for module in graph():
        level_of(module)


def test_no_module_imports_upward():
    assert violations(graph()) == []


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_the_named_rules():
    edges = graph()
    assert not {"transfer", "bench", "cli"} & edges["weights"]
    for fmt in ("compress.prune", "compress.quantize"):
        assert not {"transfer", "bench"} & edges[fmt]
    users_of_dlp = {m for m, targets in edges.items() if any(t == "dlp" or t.startswith("dlp.") for t in targets)}
    assert {m for m in users_of_dlp if not m.startswith("dlp")} == {"config"}  # its spec names, validated early


def test_dlp_code_lives_in_stylize_dlp():
    for path in ROOT.rglob("*.py"):
        if module_name(path).startswith("dlp"):
            continue
        text = path.read_text(encoding="utf-8")
        assert "torch.ops.dlp" not in text and '.type == "dlp"' not in text, f"{path.name} has a dlp branch"


@pytest.mark.parametrize("edge, expected", [
    ({"weights": {"transfer"}}, "upward"),
    ({"losses": {"optimize"}}, "upward"),
    ({"bench": {"rich"}}, "only stylize.cli"),
])
def test_the_checker_catches_an_upward_import(edge, expected):
    assert any(expected in v for v in violations(edge))
