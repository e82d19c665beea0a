"""The README's Python blocks and the package docstrings' examples run as written (in a
temporary working directory, blocks of one document sharing one namespace, as a reader would
paste them one after the other)."""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest

import snnsim
import snnsim.report

ROOT = Path(__file__).parents[2]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _fenced(text: str, lang: str = "python") -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def _literal_blocks(doc: str) -> list[str]:
    """reST literal blocks (after a line ending with '::') of a docstring."""
    blocks = []
    for m in re.finditer(r"::\n\n((?:(?:    .*)?\n)+)", doc + "\n"):
        blocks.append(textwrap.dedent(m.group(1)))
    return blocks


@pytest.fixture()
def in_tmp(tmp_path: Path):
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(old)


def test_readme_python_blocks_run(in_tmp: Path):
    blocks = _fenced((ROOT / "README.md").read_text())
    assert len(blocks) >= 4
    ns: dict[str, object] = {"__name__": "readme"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"README.md python block {i + 1}", "exec"), ns)
        except Exception as exc:  # pragma: no cover - the message says which block
            pytest.fail(f"README python block {i + 1} failed: {type(exc).__name__}: {exc}")
    assert (in_tmp / "digits-report" / "report.html").is_file()
    assert (in_tmp / "net.nir").is_file()


def test_readme_opens_with_two_commands():
    first = _fenced((ROOT / "README.md").read_text(), "bash")[0].strip().splitlines()
    assert [line.split("#")[0].strip() for line in first] == [
        "bash scripts/demo.sh",
        "bash .ci/run",
    ]


def test_package_docstring_example_runs(in_tmp: Path):
    blocks = _literal_blocks(snnsim.__doc__ or "")
    assert blocks
    for code in blocks:
        exec(compile(code, "snnsim.__doc__", "exec"), {})


def test_report_docstring_example_runs(in_tmp: Path, int8_file: Path):
    from snnsim.data import load_digits_split

    images, labels = load_digits_split("test")
    ns = {"snnsim": snnsim, "model": snnsim.load(int8_file), "images": images, "labels": labels}
    blocks = _literal_blocks(snnsim.report.__doc__ or "")
    assert blocks
    for code in blocks:
        exec(compile(code, "snnsim.report.__doc__", "exec"), ns)
    assert (in_tmp / "report" / "report.html").is_file()
