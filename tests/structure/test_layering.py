"""The package's import structure (README "Layout"): the torch layers (``snnsim.nn``) below the
named architectures (``snnsim.models``) below training (``snnsim.train``) below export and the
command line; the engine side (graph, file, run, reference, energy) independent of all the
torch training code; no cycle between subpackages; no private name imported across modules.
The rules are checked on the source (every import, including those inside functions)."""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import snnsim

PKG = Path(snnsim.__file__).parent

#: Who may not import whom (by subpackage or top-level module).
FORBIDDEN = {
    "snnsim.nn": {"models", "train", "exporter", "qat", "verify", "report", "cli", "api"},
    "snnsim.models": {"train", "exporter", "qat", "verify", "report", "cli", "api"},
    "snnsim.train": {"exporter", "qat", "verify", "report", "cli"},
}
ENGINE_SIDE = (
    "api",
    "atomic",
    "container",
    "energy",
    "errors",
    "events",
    "graph",
    "inputs",
    "model_file",
    "native",
    "neurons",
    "reference",
    "result",
)
TRAINING_SIDE = {"nn", "models", "train", "exporter", "qat"}

#: Private names a module may import from another (the compiled module is private by design
#: and loaded by snnsim.native only).
ALLOWED_PRIVATE = {
    ("snnsim.native", "snnsim._core"),
}


@dataclass(frozen=True)
class Import:
    importer: str  # module name, e.g. "snnsim.nn.dsr"
    target: str  # imported module or module.attribute, e.g. "snnsim.neurons.dsr_if_step"
    line: int


def _module_name(path: Path) -> tuple[str, list[str]]:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
        return ".".join(parts), parts
    return ".".join(parts), parts[:-1]


def imports() -> list[Import]:
    out: list[Import] = []
    for path in sorted(PKG.rglob("*.py")):
        mod, pkg = _module_name(path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg[: len(pkg) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                if source.split(".")[0] != "snnsim":
                    continue
                for alias in node.names:
                    out.append(Import(mod, f"{source}.{alias.name}", node.lineno))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "snnsim":
                        out.append(Import(mod, alias.name, node.lineno))
    return out


def _unit(name: str) -> str:
    """The subpackage or top-level module a dotted name belongs to (``snnsim.nn.dsr`` ->
    ``nn``); ``""`` for the package root."""
    parts = name.split(".")
    if len(parts) < 2:
        return ""
    unit = parts[1]
    is_module = (PKG / f"{unit}.py").exists() or (PKG / unit).is_dir() or unit == "_core"
    return unit if is_module else ""  # else an attribute of the package root


def test_the_source_is_found() -> None:
    found = imports()
    assert len(found) > 200
    assert any(i.importer == "snnsim.models.dsr_nets" and _unit(i.target) == "nn" for i in found)


def test_layers_below_models_below_training() -> None:
    bad = [
        f"{i.importer}:{i.line} imports {i.target}"
        for i in imports()
        for scope, banned in FORBIDDEN.items()
        if (i.importer == scope or i.importer.startswith(scope + ".")) and _unit(i.target) in banned
    ]
    assert not bad, "\n".join(bad)


def test_the_engine_side_does_not_import_training_code() -> None:
    bad = [
        f"{i.importer}:{i.line} imports {i.target}"
        for i in imports()
        if _unit(i.importer) in ENGINE_SIDE and _unit(i.target) in TRAINING_SIDE
    ]
    assert not bad, "\n".join(bad)


def test_no_cycle_between_subpackages() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for i in imports():
        a, b = _unit(i.importer), _unit(i.target)
        if a and b and a != b:
            graph[a].add(b)
    seen: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(u: str, path: list[str]) -> None:
        seen[u] = 1
        for v in sorted(graph[u]):
            assert seen.get(v) != 1, "import cycle: " + " -> ".join(path + [u, v])
            if v not in seen:
                visit(v, path + [u])
        seen[u] = 2

    for u in sorted(graph):
        if u not in seen:
            visit(u, [])


def test_no_private_name_is_imported_across_modules() -> None:
    bad = []
    for i in imports():
        last = i.target.rsplit(".", 1)[-1]
        if last.startswith("_") and not last.startswith("__"):
            if (i.importer, i.target) not in ALLOWED_PRIVATE:
                bad.append(f"{i.importer}:{i.line} imports {i.target}")
    assert not bad, "\n".join(bad)
