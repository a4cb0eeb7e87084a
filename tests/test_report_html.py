"""OUT/report.html (report_html.py): self-contained, and working in a real browser (headless
Chromium; skipped where none is installed)."""

import re
import shutil
import subprocess

import pytest
from test_trees_bootstrap import setting

from mechprobe.probing.result import ProbeResult

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def saved_report(folder):
    """A run of one synthetic setting with example details, saved; returns report.html's path."""
    result, useful, _ = setting()
    result["predictions"].details = [
        {"statements": [f"statement {j} of {i}" for j in range(len(u))], "question": f"q{i}?",
         "answer": "True", "predicted": "True" if i % 2 else "False", "correct": bool(i % 2),
         "edges": [[0, 1]]} for i, u in enumerate(useful)]
    probed = ProbeResult({"task": "test", "model": "synthetic", "probe": {"neighbors": 5}},
                         {"s": {**result, "accuracy": 0.5}})
    probed.save(str(folder))
    return folder / "report.html", probed


def test_the_report_needs_no_network(tmp_path):
    path, probed = saved_report(tmp_path)
    page = path.read_text()
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", page)   # nothing fetched
    assert "<script src" not in page and "@DATA@" not in page
    assert "data:image/png;base64," in page and "S_P1_95" in page
    assert "flag: the S_P interval includes 0 in s (S_P2)" in page   # the notes stay in sight
    assert probed._repr_html_().startswith("<iframe") and "srcdoc=" in probed._repr_html_()


def browse(path, fragment, tmp_path):
    """Chromium's DOM of the page at `fragment` after its script ran, and its log."""
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
         "--v=0", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
         "--dump-dom", f"file://{path}#{fragment}"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (.ci/run installs it as root)")
def test_the_report_works_in_chromium(tmp_path):
    path, _ = saved_report(tmp_path / "run")
    dom, log = browse(path, "setting=s&example=3", tmp_path)
    assert 'data-ready="yes"' in dom, "the page's script did not finish"
    assert re.search(r'<div id="errors">\s*</div>', dom), dom[:2000]
    assert "Uncaught" not in log and "CONSOLE" not in log, log[-2000:]
    assert "<p><b>3</b>: q3?" in dom and "statement 5 of 3" in dom
    assert len(re.findall(r'title="layer \d', dom)) == 2 * 6 * 4   # model, twin; 6 statements, 4 layers
    # the trees drawn: gold, model, twin, as inline SVG; the gold tree holds the useful statements
    view = dom.split('<div id="view">', 1)[1].split('<p class="na">', 1)[0]
    assert view.count('<svg class="tree"') == 3
    gold = view.split('<svg class="tree"')[1]
    useful = re.findall(r"<tr><td>\d+</td><td>statement \d+ of 3</td><td>1</td>", dom)
    assert useful and gold.count('<g class="node ok">') == len(useful)
    # the example browser switches: "next" pressed twice from example 3, and the filter
    dom, _ = browse(path, "setting=s&example=3&next=2", tmp_path)
    assert "<p><b>5</b>: q5?" in dom
    dom, _ = browse(path, "setting=s&filter=wrong&example=1", tmp_path)
    assert "<p><b>2</b>: q2?" in dom and "20 shown of the first 40" in dom   # even ids are wrong
    shot = tmp_path / "report.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1300,1200",
                    "--virtual-time-budget=5000", f"--screenshot={shot}",
                    f"file://{path}#setting=s&example=3"],
                   capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 20_000                   # a page was drawn, not a blank one
