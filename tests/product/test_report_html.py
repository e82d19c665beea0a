"""Reports: the files a report folder holds, and the HTML page opened in headless Chromium
(Debian's package; .ci/run installs it): every embedded plot must decode to a nonzero size.
The screenshot is kept in a temporary directory whose path the test prints (a CI artefact)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

import snnsim
from snnsim.data import load_digits_split
from snnsim.report import build_report
from snnsim.verify import verify

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PLOTS = {
    "firing_rates",
    "spikes_per_step",
    "raster",
    "energy_layers",
    "energy_compare",
    "energy_vs_rate",
}


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("headless Chromium is required (Debian: apt-get install -y chromium; .ci/run does)")


@pytest.fixture(scope="module")
def report_dir(int8_file: Path, run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    x, y = load_digits_split("test")
    m = snnsim.load(int8_file)
    ver = verify(m, x[:100], y[:100], torch_model=snnsim.exporter.load_trained(run_dir).model)
    rep = build_report(m, x[:100], y[:100], verification=ver, extra={"note": "test"})
    return rep.write(tmp_path_factory.mktemp("report"))


def test_report_folder_holds_html_png_json_markdown(report_dir: Path):
    names = {p.name for p in report_dir.iterdir()}
    assert {"report.html", "report.md", "report.json"} <= names
    assert {f"{p}.png" for p in PLOTS} <= names
    for p in PLOTS:
        assert (report_dir / f"{p}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    d = json.loads((report_dir / "report.json").read_text())
    assert d["run"]["samples"] == 100 and d["run"]["steps"] == 5
    assert set(d["firing_rates"]) == {"sn1", "sn2"}
    assert set(d["neurobench"]["SynapticOperations"]) == {
        "Effective_MACs",
        "Effective_ACs",
        "Dense",
    }
    cmp = d["energy"]["comparison"]
    assert set(cmp) == {"snn", "ann_fp32", "ann_same_width"}
    assert cmp["ann_same_width"]["weight_bits"] == 8
    assert d["verify"]["bit_exact"] is True
    md = (report_dir / "report.md").read_text()
    assert md.count("## Cost table") == 1 and "](raster.png)" in md
    html = (report_dir / "report.html").read_text()
    assert html.count("<h2>Cost table</h2>") == 1
    # self-contained: no file or network references
    assert not re.search(r'src="(?!data:)', html) and "http" not in html.replace("http-equiv", "")


def test_every_plot_renders_in_headless_chromium(report_dir: Path):
    chromium = _chromium()
    url = (report_dir / "report.html").resolve().as_uri()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000"]
    dom = subprocess.run(
        [chromium, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120
    ).stdout
    m = re.search(r'id="plot-check" data-ok="(\d+)" data-total="(\d+)"', dom)
    assert m, "the page's plot check did not run: " + dom[:300]
    ok, total = int(m.group(1)), int(m.group(2))
    assert total == len(PLOTS) and ok == total
    # the screenshot, kept as an artefact
    keep = Path(tempfile.mkdtemp(prefix="snnsim-report-shot-"))
    shot = keep / "report.png"
    subprocess.run(
        [
            chromium,
            *flags,
            "--hide-scrollbars",
            "--window-size=1200,3000",
            f"--screenshot={shot}",
            url,
        ],
        capture_output=True,
        timeout=120,
    )
    print(f"report screenshot: {shot}")
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"))
    assert img.shape == (3000, 1200)
    assert (img < 128).mean() > 0.01  # text and plots drawn, not a blank page


def test_report_of_one_sample(int8_file: Path):
    x, y = load_digits_split("test")
    rep = build_report(snnsim.load(int8_file), x[0], y[:1])
    assert rep.data["run"]["samples"] == 1
    assert set(rep.figures) == PLOTS
