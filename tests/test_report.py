"""The HTML report: self-contained, escaped, flagged; rendered in a real headless browser."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from iff.report import render_report

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def _install_chromium() -> str | None:
    """Debian's chromium, installed with apt-get when missing (sudo -n when not root)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found or not shutil.which("apt-get"):
        return found
    prefix = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if prefix is None:
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*prefix, "apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]
    for cmd in (install, [*prefix, "apt-get", "update", "-q"], install):
        subprocess.run(cmd, capture_output=True, env=env, timeout=900, check=False)
        found = shutil.which("chromium")
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def chromium():
    path = _install_chromium()
    if path is None:
        pytest.skip("chromium is missing and could not be installed (apt-get install -y "
                    "chromium needs root or passwordless sudo): browser tests not run")
    return path


def _browser(chromium_path: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([chromium_path, *CHROMIUM_FLAGS, *args], capture_output=True,
                          text=True, timeout=180)


def _dump_dom(chromium_path: str, html_path) -> str:
    proc = _browser(chromium_path, "--virtual-time-budget=10000", "--dump-dom",
                    html_path.resolve().as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(scope="module")
def report_file(demo_forward, tmp_path_factory):
    """The report written by the installed ``iff report`` command."""
    out = tmp_path_factory.mktemp("report") / "report.html"
    proc = subprocess.run([str(Path(sys.executable).parent / "iff"), "report",
                           str(demo_forward.out_dir), "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return out


def test_report_is_self_contained(report_file):
    html = report_file.read_text(encoding="utf-8")
    srcs = re.findall(r'src="([^"]*)"', html)
    assert len(srcs) == 5 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(href|src)="(https?:|file:|//)', html)
    assert "<link" not in html
    for section in ("SDG 16.4.1 table", "By market, direction and phase", "Figures",
                    "Markets: assumptions and input sources", "Convergence", "Provenance"):
        assert f"<h2>{section}</h2>" in html
    assert 'id="headline"' in html and "USD" in html and "90% equal-tailed interval" in html
    assert 'id="alert-illustrative"' in html and 'id="alert-convergence"' not in html
    assert "interdiction_rate" in html and "Beta(alpha=" in html  # the market's assumptions
    assert "config SHA-256" in html and "flows SHA-256" in html


def test_report_renders_in_a_browser_with_every_image(chromium, report_file, tmp_path):
    dom = _dump_dom(chromium, report_file)
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert 'data-images-loaded="yes"' in body, body
    assert 'data-images-count="5"' in body
    shot = tmp_path / "report.png"
    proc = _browser(chromium, f"--screenshot={shot}", "--window-size=1280,2000",
                    report_file.resolve().as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000


def test_the_image_check_can_fail(chromium, report_file, tmp_path):
    """A report with a broken image is detected: the check is not vacuous."""
    html = report_file.read_text(encoding="utf-8")
    broken = re.sub(r'src="data:image/png;base64,[^"]{0,40}', 'src="data:image/png;base64,AAAA',
                    html, count=1)
    path = tmp_path / "broken.html"
    path.write_text(broken, encoding="utf-8")
    body = re.search(r"<body[^>]*>", _dump_dom(chromium, path)).group(0)
    assert 'data-images-loaded="no"' in body, body


def test_unconverged_report_has_the_banner(failed_results, run_iff, tmp_path):
    out = tmp_path / "r.html"
    code, _, err = run_iff("report", failed_results, "--out", out)
    assert code == 3 and "NOT CONVERGED" in err
    html = out.read_text(encoding="utf-8")
    banner = html.index('id="alert-convergence"')
    assert banner < html.index("<h1>") and banner < html.index('id="headline"')
    assert "<h1>NOT CONVERGED - " in html and 'data-convergence="FAILED"' in html
    assert "R-hat 1.080 &gt; 1.01" in html


def test_text_from_the_results_is_escaped(demo_forward):
    tree = demo_forward.tree.copy()
    cfg = json.loads(tree.attrs["config_json"])
    cfg["description"] = '<script>alert("x")</script> & <b>bold</b>'
    tree.attrs = {**tree.attrs, "config_json": json.dumps(cfg),
                  "warnings": json.dumps(["list <A> & <B> never overlap"])}
    html, caveats = render_report(tree, "hdi", 0.8)
    assert '<script>alert("x")</script>' not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold" in html
    assert "list &lt;A&gt; &amp; &lt;B&gt; never overlap" in html
    assert "80% highest-density interval (HDI)" in html and caveats.kind == "hdi"
    assert html.count("<script>") == 1  # only the image check


def test_existing_report_not_overwritten(demo_forward, run_iff, tmp_path):
    out = tmp_path / "r.html"
    out.write_text("sentinel")
    code, _, err = run_iff("report", demo_forward.out_dir, "--out", out)
    assert code == 2 and "--force" in err and out.read_text() == "sentinel"
    code, _, err = run_iff("report", demo_forward.out_dir, "--out", out, "--force")
    assert code == 0, err
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_market_assumptions_and_sources_flag_illustrative_inputs(smoke_results, tmp_path):
    tree = smoke_results.tree.copy()
    inputs = json.loads(tree.attrs["input_sha256"])
    obs = Path(inputs["observations"]["path"])
    html, _ = render_report(tree, "eti", 0.9)
    section = html[html.index("<h2>Markets"):html.index("<h2>Convergence")]
    assert "<h4>Priors (assumptions)</h4>" in section and "interdiction_rate" in section
    assert "<h4>Observed quantities</h4>" in section and "<td>production</td><td>2</td>" in section
    assert "<h4>Input sources</h4>" in section and "<li>test</li>" in section
    assert "ILLUSTRATIVE" not in section
    # the same rows labelled illustrative in a copy of the observation file: flagged
    copy = tmp_path / "obs.csv"
    copy.write_text(obs.read_text().replace(",test", ",illustrative (expert guess)"))
    inputs["observations"] = {"path": str(copy),
                              "sha256": hashlib.sha256(copy.read_bytes()).hexdigest()}
    tree.attrs = {**tree.attrs, "input_sha256": json.dumps(inputs)}
    html, _ = render_report(tree, "eti", 0.9)
    assert "<li class=flag>illustrative (expert guess) (ILLUSTRATIVE)</li>" in html
    # a file changed since the run is not trusted for per-market sources
    copy.write_text(copy.read_text() + "\n")
    html, _ = render_report(tree, "eti", 0.9)
    assert "sources are not split by market" in html
