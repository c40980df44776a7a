"""The demo report in a real browser: Debian's ``chromium`` driven by Playwright for Python.

The test builds ``visjax demo --quick`` into a temporary folder, opens its ``report.html`` in the
system Chromium (Playwright's ``executable_path``; nothing is downloaded) and checks what a reader
would see: no console errors, no failed requests, no broken images, and every table-of-contents link
lands on its section. It saves one screenshot per section under ``out/browser/`` (git-ignored).

It skips, saying why, when Playwright or the system Chromium is absent (CI installs Chromium with
the system package manager in ``.ci/run``; Playwright is in the ``test`` extra).

Everything runs in one test on purpose: xdist would otherwise build the demo once per worker.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from visjax.cli import main

SCREENSHOTS = Path(__file__).resolve().parents[2] / "out" / "browser"
VIEWPORT = {"width": 1280, "height": 900}
# How far a section's top may sit from where the browser should scroll it (its scroll-margin-top).
LANDING_TOLERANCE_PX = 2

# The page's top-level sections (a section nested in another is part of its parent).
_TOP_SECTIONS = "section:not(section section)"

# Whether each <img> loaded (resolves once every image has loaded or failed).
_BROKEN_IMAGES_JS = """
async () => {
  const imgs = [...document.images];
  for (const img of imgs) img.loading = "eager";
  await Promise.all(imgs.map(img => img.complete ? null : new Promise(done => {
    img.addEventListener("load", done, {once: true});
    img.addEventListener("error", done, {once: true});
  })));
  return imgs.filter(img => !(img.complete && img.naturalWidth > 0))
             .map(img => (img.getAttribute("src") || "(no src)").slice(0, 120));
}
"""

# True once the element `id` sits at the viewport's top (less its scroll-margin-top), or, when the
# page cannot scroll further, anywhere inside the viewport. Polled: smooth scrolling takes a while.
_LANDED_JS = """
([id, tol]) => {
  const el = document.getElementById(id);
  const top = el.getBoundingClientRect().top;
  const want = parseFloat(getComputedStyle(el).scrollMarginTop) || 0;
  const page = document.scrollingElement;
  const atEnd = page.scrollTop + window.innerHeight >= page.scrollHeight - 1;
  return Math.abs(top - want) <= tol || (atEnd && top >= 0 && top < window.innerHeight);
}
"""


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "section"


@pytest.fixture(scope="module")
def playwright_api():
    """Playwright's sync API and the system Chromium's path, or a skip saying which is missing."""
    api = pytest.importorskip(
        "playwright.sync_api",
        reason="Playwright for Python is not installed (it is in the `test` extra)",
    )
    executable = _chromium()
    if executable is None:
        pytest.skip(
            "no system Chromium (`chromium` on PATH); install it with the system package manager, "
            "e.g. `apt-get install chromium` (the test never downloads a browser)"
        )
    return api, executable


@pytest.fixture(scope="module")
def demo_report(playwright_api, tmp_path_factory, _private_weight_cache):
    """``visjax demo --quick`` written into a temporary folder (weights in the run's test cache)."""
    out = tmp_path_factory.mktemp("browser-demo")
    assert main(["demo", "--out", str(out), "--quick"]) == 0
    return out / "report.html"


@pytest.mark.slow  # trains the digits CNN and renders every demo section, then drives a browser
def test_demo_report_in_chromium(playwright_api, demo_report):
    api, executable = playwright_api
    problems: list[str] = []

    def on_console(msg):
        if msg.type == "error":
            problems.append(f"console error: {msg.text}")

    def on_response(resp):
        if resp.status >= 400:
            problems.append(f"HTTP {resp.status}: {resp.url[:120]}")

    with api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.on("console", on_console)
            page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
            page.on(
                "requestfailed",
                lambda req: problems.append(f"failed request: {req.url[:120]} ({req.failure})"),
            )
            page.on("response", on_response)
            page.goto(demo_report.as_uri(), wait_until="load")

            problems += [f"broken image: {src}" for src in page.evaluate(_BROKEN_IMAGES_JS)]
            problems += _check_toc(page, api.TimeoutError)
            n_shots = _screenshot_sections(page)
        finally:
            browser.close()

    assert n_shots > 0, "the report has no <section> to screenshot"
    assert not problems, f"{len(problems)} problem(s) in {demo_report}:\n" + "\n".join(problems)


def _check_toc(page, timeout_error: type[Exception]) -> list[str]:
    """Every TOC link targets an existing id and, clicked, scrolls its target to the top.

    The TOC is the first ``<nav>``; its links are ``a[href^="#"]``; every top-level section has an
    id that the TOC links to.
    """
    nav = page.locator("nav").first
    if nav.count() == 0:
        return ["no table of contents: the page has no <nav>"]
    links = nav.locator('a[href^="#"]')
    hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
    if not hrefs:
        return ['the table of contents (<nav>) has no a[href^="#"] links']
    problems = []
    section_ids = page.locator(_TOP_SECTIONS).evaluate_all("els => els.map(e => e.id)")
    linked = {h[1:] for h in hrefs}
    problems += [
        f"section #{i} ({sid or 'no id'}) is not in the table of contents"
        for i, sid in enumerate(section_ids)
        if not sid or sid not in linked
    ]
    for i, href in enumerate(hrefs):
        target = href[1:]
        if page.locator(f'[id="{target}"]').count() != 1:
            problems.append(f"TOC link {href}: no single element with id {target!r}")
            continue
        page.evaluate("window.scrollTo(0, 0)")
        links.nth(i).click()
        try:
            page.wait_for_function(_LANDED_JS, arg=[target, LANDING_TOLERANCE_PX], timeout=3000)
        except timeout_error:
            top = page.evaluate(
                "id => document.getElementById(id).getBoundingClientRect().top", target
            )
            problems.append(f"TOC link {href}: its target's top is at {top:.0f} px after the click")
        if page.evaluate("location.hash") != href:
            problems.append(f"TOC link {href}: location.hash is {page.evaluate('location.hash')}")
    return problems


def _screenshot_sections(page) -> int:
    """One element screenshot per top-level section into ``out/browser/`` (old ones replaced)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
    sections = page.locator(_TOP_SECTIONS)
    for i in range(sections.count()):
        sec = sections.nth(i)
        name = sec.evaluate("el => el.id || (el.querySelector('h1, h2')?.textContent ?? '')")
        sec.screenshot(path=SCREENSHOTS / f"{i:02d}-{_slug(name)}.png")
    return sections.count()
