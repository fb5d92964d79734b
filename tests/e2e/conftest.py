"""Browser end-to-end tests: Playwright for Python driving Debian's chromium (no browser
download) against the session's shared dev and production stacks (tests/conftest.py), each
a copy of the working tree with its own project names and ports. A failed test leaves a
screenshot and the page's console log under reports/e2e/."""

import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from playwright.sync_api import sync_playwright

from tests.helpers import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
ARTIFACTS = ROOT / "reports" / "e2e"
PORT = {"dev": "FRONTEND_PORT", "prod": "PROD_PORT"}
PHASE_REPORTS = pytest.StashKey()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can see how the test went."""
    report = yield
    item.stash.setdefault(PHASE_REPORTS, {})[report.when] = report
    return report


def failed(request):
    reports = request.node.stash.get(PHASE_REPORTS, {})
    return any(report.failed for report in reports.values())


@pytest.fixture(scope="session", params=["dev", "prod"])
def app(request):
    """A running, migrated stack: .mode ("dev" or "prod") and .url, the frontend's origin
    (dev: Vite's port; prod: nginx's)."""
    mode = request.param
    stack = request.getfixturevalue(f"{mode}_stack")
    return SimpleNamespace(mode=mode, url=stack.url(PORT[mode]))


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} not found: `inv setup --test-tools` installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


# Every Content-Security-Policy violation the page meets (blocked or, under a report-only
# policy, only reported), handed to the test through an exposed binding: the page's own
# variables would not outlive a reload.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.reportCspViolation(
    `${event.effectiveDirective} blocked ${event.blockedURI || "(inline)"} at ${event.sourceFile}:${event.lineNumber}`
  );
});
"""


@pytest.fixture
def page(browser, request):
    """A fresh browser context and page. Collects the console, and as page.csp_violations the
    Content-Security-Policy violations (securitypolicyviolation events); on failure saves a
    screenshot and the console log as reports/e2e/<test>.png and .log."""
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    context.set_default_timeout(15_000)
    violations = []
    context.expose_binding("reportCspViolation", lambda source, text: violations.append(text))
    context.add_init_script(REPORT_CSP_VIOLATIONS)
    page = context.new_page()
    page.csp_violations = violations
    console = []
    page.console_log = console
    started = time.monotonic()

    def stamp():
        return f"{time.monotonic() - started:7.3f}s"

    page.on("console", lambda message: console.append(f"{stamp()} {message.type}: {message.text}"))
    page.on("pageerror", lambda error: console.append(f"{stamp()} pageerror: {error}"))
    page.on(
        "requestfailed", lambda req: console.append(f"{stamp()} requestfailed: {req.method} {req.url} {req.failure}")
    )
    yield page
    if failed(request):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        try:
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        except Exception as error:  # the page may be gone; the log still says what happened
            console.append(f"screenshot failed: {error}")
        (ARTIFACTS / f"{name}.log").write_text(f"url: {page.url}\n" + "\n".join(console) + "\n")
    context.close()
