"""The report in a real browser: headless Chromium (the Debian package; ``make test`` installs it when
missing) loads the page, every figure decodes, nothing is logged to the console, and a screenshot is kept in
``tests/artifacts/`` (ignored by git)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.report.conftest import Page

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
BROWSERS = ("chromium", "chromium-browser")
_TIMEOUT_S = 120


def _browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError(
        "headless Chromium is needed to test the HTML report and none was found on PATH "
        f"(looked for {', '.join(BROWSERS)}); `make test` installs it (apt-get install chromium)"
    )


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    command = [_browser(), "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
               "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)


def _console(stderr: str) -> list[str]:
    """What the page logged: Chromium writes each console message as a ``CONSOLE`` line at ``--v=0``."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def test_the_report_renders_in_chromium_with_every_figure(mixed_run: Path) -> None:
    report = mixed_run / "report.html"
    expected = Page(report.read_text())
    n = sum(len(alts) for alts in expected.figures.values())
    assert n >= 8

    dom = _chromium("--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert _console(dom.stderr) == []
    rendered = Page(dom.stdout)
    assert rendered.figures == expected.figures  # every section and every figure, by its alt text
    assert rendered.body.get("data-figures-loaded") == str(n), "some figures did not decode"

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    done = _chromium(f"--screenshot={shot}", "--window-size=1280,5000", report.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    assert _console(done.stderr) == []
    assert shot.read_bytes().startswith(b"\x89PNG")
    print(f"screenshot of the report: {shot}")


def test_a_broken_figure_is_reported_by_the_page(tmp_path: Path, mixed_run: Path) -> None:
    """The check above can fail: a figure that does not decode is logged and not counted."""
    text = (mixed_run / "report.html").read_text()
    broken = tmp_path / "broken.html"
    broken.write_text(re.sub(r'src="data:image/png;base64,[^"]{0,40}', 'src="data:image/png;base64,AAAA', text,
                             count=1))
    dom = _chromium("--dump-dom", broken.as_uri())
    n = sum(len(alts) for alts in Page(text).figures.values())
    assert Page(dom.stdout).body.get("data-figures-loaded") == str(n - 1)
    assert any("figure did not load: loss over epochs" in line for line in _console(dom.stderr))
