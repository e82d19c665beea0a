"""The typed stub python/snnsim/_core.pyi describes the compiled module: every class, method,
property, function and constant it declares exists in snnsim._core, and vice versa for public
names."""

import ast
from pathlib import Path

import snnsim._core as core

STUB = Path(__file__).parents[2] / "python" / "snnsim" / "_core.pyi"


def _declared() -> dict[str, set[str]]:
    tree = ast.parse(STUB.read_text())
    out: dict[str, set[str]] = {"": set()}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            out[""].add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[""].add(node.target.id)
        elif isinstance(node, ast.ClassDef) and not any(
            isinstance(b, ast.Name) and b.id == "TypedDict" for b in node.bases
        ):
            out[""].add(node.name)
            out[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
    return out


def test_stub_matches_compiled_module() -> None:
    declared = _declared()
    public = {n for n in dir(core) if not n.startswith("_")}
    assert declared[""] == public
    for cls, members in declared.items():
        if not cls:
            continue
        actual = {n for n in dir(getattr(core, cls)) if not n.startswith("_")}
        assert members == actual, cls


def test_thread_bound_is_one_number() -> None:
    from snnsim.limits import MAX_THREADS

    assert core.MAX_THREADS == MAX_THREADS
