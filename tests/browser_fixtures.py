"""Browser fixtures for the web UI tests: the app served on loopback, headless Chromium (Debian's, driven by
Playwright) with an injected test wallet, and :func:`audit`, which checks a page the way a user on a phone and
on a laptop sees it and keeps a screenshot of each.

:func:`audit` sets the viewport to 390x844 (a phone) and to 1366x900 (a laptop) in turn and, at each width:

* runs axe-core (vendored from npm into the static files, injected here only: no page loads it) over the page
  and reports every serious or critical violation of WCAG 2.x A/AA and axe's best practices;
* checks the page fits the width (no horizontal scrolling: wide tables scroll inside their own box or stack into
  cards), that the header's links and buttons are inside the screen and each on one line (no "Post / a / job"),
  and that disabled buttons and the coloured labels (status pills, flags, the connected address) have a
  contrast of at least 4.5:1 (axe leaves disabled controls out);
* writes ``reports/screenshots/<name>-<width>.png`` (full page).

It returns the problems as sentences, so a test can report every page's at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, sync_playwright

from marketplace.web.main import create_app
from marketplace.web.server import BackgroundServer, serve_in_background
from marketplace.web.settings import WebSettings

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "reports" / "screenshots"
AXE_JS = ROOT / "marketplace" / "web" / "static" / "vendor" / "axe.min.js"
WALLET_JS = (Path(__file__).parent / "web_injected_wallet.js").read_text()
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 20_000
#: (width, height) of the viewports every page is audited at: a phone, a laptop.
VIEWPORTS = ((390, 844), (1366, 900))
#: What axe checks: WCAG 2.0-2.2 levels A and AA, and its best practices.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
BLOCKING = ("serious", "critical")


@pytest.fixture
def server(web_settings: WebSettings) -> Iterator[BackgroundServer]:
    with serve_in_background(create_app(web_settings)) as running:
        yield running


def chromium_context(pw_root: Path, *, wallet: bool = True) -> Iterator[BrowserContext]:
    """Chromium with a fresh profile in ``pw_root`` (and the injected wallet, unless ``wallet`` is false)."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: run `make install-browser` (apt-get install -y chromium)")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(pw_root / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(TIMEOUT_MS)
        if wallet:
            context.add_init_script(WALLET_JS)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def browser_context(tmp_path: Path) -> Iterator[BrowserContext]:
    """Chromium with a fresh profile directory and the injected test wallet."""
    yield from chromium_context(tmp_path)


def use_wallet(context: BrowserContext, rpc_url: str, account: LocalAccount) -> None:
    """Pages opened from now on see ``account`` in their injected wallet."""
    config = json.dumps({"rpcUrl": rpc_url, "account": account.address})
    # Init scripts run in the order added: this one runs before the wallet, the latest wins.
    context.add_init_script(f"window.__TEST_WALLET__ = {config};")


def watch_errors(page: Page) -> list[str]:
    """Collects the page's JavaScript errors and failed resource loads."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))

    def on_console(msg: ConsoleMessage) -> None:
        expected = any(f"status of {code}" in msg.text for code in (404, 422))  # the invalid form, the 404 page
        if msg.type == "error" and not expected:
            errors.append(f"console: {msg.text}")

    page.on("console", on_console)
    return errors


_LAYOUT_JS = r"""
() => {
  const vw = document.documentElement.clientWidth;
  const problems = [];
  const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
    (el.classList.length ? "." + Array.from(el.classList).join(".") : "");
  const shown = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden";
  const scrollsX = (el) => ["auto", "scroll", "hidden", "clip"].includes(getComputedStyle(el).overflowX);
  const width = document.documentElement.scrollWidth;
  if (width > vw) {
    const culprits = [];
    for (const el of document.body.querySelectorAll("*")) {
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.right <= vw + 1) continue;
      let a = el.parentElement, inside = false;
      const placed = ["absolute", "fixed"].includes(getComputedStyle(el).position);  // may escape its scroller
      while (!placed && a && a !== document.body) { if (scrollsX(a)) { inside = true; break; } a = a.parentElement; }
      const parentOut = el.parentElement && el.parentElement.getBoundingClientRect().right > vw + 1;
      if (!inside && !parentOut) culprits.push(name(el));
    }
    const out = culprits.slice(0, 6).join(", ");
    problems.push(`the page is ${width} px wide in a ${vw} px viewport (sticking out: ${out})`);
  }
  const lines = (el) => {
    const range = document.createRange();
    range.selectNodeContents(el);
    return new Set(Array.from(range.getClientRects()).filter((r) => r.width > 0).map((r) => Math.round(r.top))).size;
  };
  for (const el of document.querySelectorAll("header.top a, header.top button")) {
    if (!shown(el)) continue;
    const r = el.getBoundingClientRect();
    const label = el.textContent.trim();
    if (r.left < 0 || r.right > vw + 0.5) {
      problems.push(`the header's "${label}" is outside the screen (${Math.round(r.left)}-${Math.round(r.right)} px)`);
    }
    if (lines(el) > 1) problems.push(`the header's "${label}" wraps over ${lines(el)} lines`);
  }
  // Contrast of what axe leaves out (disabled buttons) and of the small coloured labels, computed here too.
  const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
  const luminance = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let a = el; a; a = a.parentElement) {
      const c = rgb(getComputedStyle(a).backgroundColor);
      if (c.length === 3 || c[3] > 0) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const labels = "button[disabled], .status, .phase, .flag, .flag-mini, .slashed, #wallet-address, .skip-link";
  for (const el of document.querySelectorAll(labels)) {
    if (!shown(el) || !el.textContent.trim()) continue;
    const [fg, bg] = [luminance(rgb(getComputedStyle(el).color)), luminance(background(el))];
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    const what = `"${el.textContent.trim()}" (${name(el)})`;
    if (ratio < 4.5) problems.push(`${what} has a contrast of ${ratio.toFixed(2)}:1, under 4.5:1`);
  }
  return problems;
}
"""

_AXE_RUN_JS = """
async (tags) => {
  const result = await axe.run(document, { runOnly: { type: "tag", values: tags }, resultTypes: ["violations"] });
  return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 4).map((n) => `${n.target.join(" ")}: ${n.failureSummary.replace(/\\s+/g, " ")}`) }));
}
"""

_cleared = False


def audit(page: Page, name: str, *, screenshots: bool = True) -> list[str]:
    """Audits ``page`` at each of :data:`VIEWPORTS` (axe-core, fits the width, header, contrast) and, unless
    ``screenshots`` is false, writes ``reports/screenshots/<name>-<width>.png``; returns the problems found, each
    a sentence naming the page and width. The viewport is put back as it was."""
    global _cleared
    if screenshots and not _cleared:  # a run's screenshots only: remove those of earlier runs once
        for old in SCREENSHOTS.glob("*.png"):
            old.unlink()
        _cleared = True
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size
    problems: list[str] = []
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE_JS))
    for width, height in VIEWPORTS:
        page.set_viewport_size({"width": width, "height": height})
        page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
        where = f"{name} at {width} px"
        problems += [f"{where}: {p}" for p in page.evaluate(_LAYOUT_JS)]
        for v in page.evaluate(_AXE_RUN_JS, AXE_TAGS):
            if v["impact"] in BLOCKING:
                problems.append(f"{where}: axe {v['impact']} {v['id']} ({v['help']}): " + " | ".join(v["nodes"]))
        if screenshots:
            page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
    if before is not None:
        page.set_viewport_size(before)
    return problems


__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "SCREENSHOTS",
    "TIMEOUT_MS",
    "VIEWPORTS",
    "audit",
    "browser_context",
    "chromium_context",
    "server",
    "use_wallet",
    "watch_errors",
]
