"""The layer explorer in a real browser: JupyterLab runs ``inspect_layers.ipynb`` in headless Chromium.

The widgets are moved with the keyboard and the mouse, as a reader would, and the picture and the
text above it must change. Screenshots go to ``test-artifacts/browser/``.

Without Chromium (``make browser-deps`` installs it when it can) the test skips, except with
``CI=true``, where a missing browser fails it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, sync_playwright

from unet_lib.cli import workspace

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = "notebooks/inspect_layers.ipynb"
ARTIFACTS = REPO / "test-artifacts" / "browser"
INSTALL = "apt-get install chromium"  # Debian's package (`make browser-deps`); no browser is downloaded
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# User settings for a repeatable session: every cell attached to the page (no windowing), the kernel
# started without asking, no autosave (the committed notebook must stay as it is), no news pop-up.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none", "autoStartDefaultKernel": True},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}
RUN_ALL_MS = 150_000  # the whole notebook with the checkpoint already there: about 40 s alone on 2 CPU cores
CHANGE_MS = 30_000  # one redraw of the explorer
LABEL = ".widget-html-content"  # the explorer's line of text (a widgets.HTML, which wraps)


class Lab:
    """A running JupyterLab server: its base URL and token."""

    def __init__(self, port: int, token: str):
        self.base, self.token = f"http://127.0.0.1:{port}", token

    def api(self, path: str, method: str = "GET") -> bytes:
        request = urllib.request.Request(
            f"{self.base}/api/{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.read()

    def url(self, path: str) -> str:
        return (
            f"{self.base}/lab/tree/{path}?token={self.token}&reset"  # reset: only this notebook open, no earlier tabs
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen, lab: Lab) -> None:
    """Shut the kernels and the server down through the API, then end the process group in any case."""
    try:
        for kernel in json.loads(lab.api("kernels")):  # kernels run in sessions of their own
            lab.api(f"kernels/{kernel['id']}", method="DELETE")
        lab.api("shutdown", method="POST")
        process.wait(timeout=15)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        pass  # the server is unresponsive or already gone: the signals below end it
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            return
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            continue


def _why_not_installed() -> str:
    """Why ``make browser-deps`` could not install Chromium here, or what to run when it could."""
    if shutil.which("apt-get") is None:
        return "chromium not found and could not be installed (no apt-get): install Chromium as `chromium` on PATH"
    if os.geteuid() != 0:
        sudo = shutil.which("sudo")
        if sudo is None or subprocess.run([sudo, "-n", "true"], capture_output=True).returncode != 0:
            return f"chromium not found and could not be installed (not root): {INSTALL}"
    return f"chromium not found: run `make browser-deps` ({INSTALL})"


@pytest.fixture(scope="module")
def chromium() -> Path:
    """The Chromium on PATH; without one the test skips, or fails when CI=true."""
    found = shutil.which("chromium")
    if found is None:
        reason = _why_not_installed()
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: the browser test must run)", pytrace=False)
        pytest.skip(reason)
    return Path(found)


@pytest.fixture(scope="module")
def lab(chromium: Path, tmp_path_factory) -> Iterator[Lab]:
    """JupyterLab on the repository, in quick mode, with its settings and runtime files in a temporary folder."""
    workspace.carvana_checkpoint(quick=True)  # trained now if absent, so the notebook only loads it

    home = tmp_path_factory.mktemp("jupyter")
    for plugin, values in LAB_SETTINGS.items():
        path = home / "config" / "lab" / "user-settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = dict(
        os.environ, UNET_QUICK="1", JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime")
    )
    lab = Lab(_free_port(), secrets.token_hex(16))
    command = [
        str(Path(sys.executable).parent / "jupyter"),
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={lab.base.rsplit(':', 1)[1]}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={lab.token}",
        f"--ServerApp.root_dir={REPO}",
        "--ServerApp.allow_root=True",  # CI containers often run as root
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: tells when the kernel is connected
        f"--FileCheckpoints.root_dir={home / 'checkpoints'}",  # no .ipynb_checkpoints/ left in the repository
        "--NotebookNotary.db_file=:memory:",  # no notebook is trusted, as on a fresh clone
    ]
    log_path = home / "lab.log"
    with open(log_path, "wb") as log:  # the child keeps its own copy of the file descriptor
        process = subprocess.Popen(
            command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                lab.api("status")
                break
            except OSError:  # URLError included: not listening yet
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start; its log ends with:\n{log_path.read_text()[-2000:]}")
                time.sleep(0.5)
        yield lab
    finally:
        _stop(process, lab)


@pytest.fixture
def page(chromium: Path) -> Iterator[Page]:
    """A headless Chromium page; the browser is closed however the test ends."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser.new_page(viewport={"width": 1024, "height": 900})  # a laptop, file browser open
        finally:
            browser.close()


def _menu(page: Page, menu: str, item: str) -> None:
    """Click ``item`` in the menu bar's ``menu``, as a reader would."""
    page.locator(".lm-MenuBar-item", has_text=re.compile(f"^{menu}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{item}$")).click()


def _run_all_cells(page: Page) -> None:
    # Code sent while the page is still connecting to the kernel is dropped, so wait for a connected, idle kernel.
    page.wait_for_function(
        """() => {
            const kernel = window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel;
            return kernel?.connectionStatus === 'connected' && kernel.status === 'idle';
        }""",
        timeout=60_000,
    )
    _menu(page, "Edit", "Clear Outputs of All Cells")  # also clears the execution counts saved in the file
    page.locator(".jp-Notebook .jp-CodeCell .jp-InputArea .jp-InputPrompt", has_text=re.compile(r"\d")).first.wait_for(
        state="detached", timeout=10_000
    )
    _menu(page, "Run", "Run All Cells")
    # A collapsed input (a solution) shows a placeholder with a prompt of its own that never gets a count: only the
    # prompts of input areas are read.
    # Done when every code cell has an execution count (an error stops the run, leaving the rest without one).
    page.wait_for_function(
        """() => {
            const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputArea .jp-InputPrompt')];
            return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
        }""",
        timeout=RUN_ALL_MS,
    )


def _shown(explorer: Locator) -> tuple[str, str]:
    """The explorer's picture (the ``src`` of its image) and the text of its label."""
    return explorer.locator(".widget-output img").first.get_attribute("src"), explorer.locator(LABEL).inner_text()


def _wait_for_change(
    page: Page, explorer: Locator, before: tuple[str, str], expect: str = "", label: bool = True
) -> tuple[str, str]:
    """Wait until the picture differs from ``before`` and (with ``label``) the label differs and contains ``expect``."""
    # The output area replaces its <img> on every redraw, so look it up again on each poll.
    page.wait_for_function(
        """([root, selector, [src, text], expect, label]) => {
            const img = root.querySelector('.widget-output img'), line = root.querySelector(selector);
            return img !== null && img.getAttribute('src') !== src
                && (!label || line.textContent !== text) && line.textContent.includes(expect);
        }""",
        arg=[explorer.element_handle(), LABEL, list(before), expect, label],
        timeout=CHANGE_MS,
    )
    return _shown(explorer)


def _view(explorer: Locator, name: str) -> Locator:
    return explorer.locator(".widget-toggle-button", has_text=re.compile(f"^{re.escape(name)}$"))


def _fingerprint() -> tuple[str, ...]:
    """Hashes of the notebook pair, which the session must leave untouched."""
    return tuple(hashlib.sha256((REPO / NOTEBOOK).with_suffix(s).read_bytes()).hexdigest() for s in (".ipynb", ".py"))


@pytest.mark.parametrize("name", ["train_carvana", "test_carvana", "inspect_layers", "train_cityscapes"])
def test_committed_notebooks_read_well_untrusted_without_a_kernel_run(lab: Lab, page: Page, name: str):
    """Opened as a fresh clone would be: figures where figures belong, no saved progress bars or widget reprs."""
    path = REPO / "notebooks" / f"{name}.ipynb"
    committed = json.loads(path.read_text())
    figures = sum("image/png" in o.get("data", {}) for c in committed["cells"] for o in c.get("outputs", []))
    page.goto(lab.url(f"notebooks/{name}.ipynb"))
    page.locator(".jp-Notebook .jp-CodeCell").first.wait_for(timeout=60_000)
    images = page.locator(".jp-OutputArea-output img")
    images.nth(figures - 1).wait_for(timeout=30_000)
    assert images.count() >= figures  # a saved widget may add its own picture
    text = page.locator(".jp-Notebook").inner_text()
    assert not re.search(r"\d+%\|", text), "a saved progress bar"
    assert not re.search(r"[HV]Box\(children=", text), "a widget's repr where a figure should be"
    assert "Error displaying widget" not in text


def test_layer_explorer_reacts_in_jupyterlab(lab: Lab, page: Page):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    before = _fingerprint()
    try:
        page.goto(lab.url(NOTEBOOK))
        page.locator(".jp-Notebook .jp-CodeCell").first.wait_for(timeout=60_000)
        _run_all_cells(page)
        assert page.locator(".jp-OutputArea-output", has_text="Traceback").count() == 0

        explorer = page.locator(".widget-vbox").filter(has=page.locator(".widget-dropdown")).last
        explorer.locator(".widget-output img").first.wait_for(timeout=CHANGE_MS)
        explorer.scroll_into_view_if_needed()
        page.screenshot(path=ARTIFACTS / "1-run-all.png")
        shown = _shown(explorer)
        assert shown[0].startswith("data:image/png;base64,") and "shape (C, H, W)" in shown[1]

        if "mod-active" not in (_view(explorer, "channel").get_attribute("class") or ""):
            _view(explorer, "channel").click()  # the notebook left another view on
            shown = _wait_for_change(page, explorer, shown, expect="shape (C, H, W)")

        slider = explorer.locator(".widget-hslider", has_text="channel")
        handle = slider.locator(".noUi-handle")
        channel = int(handle.get_attribute("aria-valuenow").split(".")[0]) + 1
        handle.press("ArrowRight")  # one step: one redraw
        shown = _wait_for_change(page, explorer, shown, expect=f"channel {channel}:")
        assert slider.locator(".widget-readout").inner_text().strip() == str(channel)
        page.screenshot(path=ARTIFACTS / "2-channel-moved.png")

        layer = "ups.0" if shown[1].startswith("bottleneck,") else "bottleneck"
        explorer.locator("select").select_option(layer)
        shown = _wait_for_change(page, explorer, shown, expect=f"{layer}, shape (C, H, W)")
        assert shown[1].startswith(f"{layer}, shape (C, H, W)")
        page.screenshot(path=ARTIFACTS / "3-layer-changed.png")

        # The grid pages through every channel: the slider stays live and moves the page.
        _view(explorer, "grid").click()
        shown = _wait_for_change(page, explorer, shown, expect="channels ")
        first = int(re.search(r"channels (\d+)\.\.", shown[1]).group(1))
        handle.press("ArrowRight")
        shown = _wait_for_change(page, explorer, shown, expect=f"channels {first + 1}..{first + 16} of")
        page.screenshot(path=ARTIFACTS / "4-grid-paged.png")

        for view, expect in (("filters", "filter"), ("grad-cam", "Grad-CAM"), ("mean", "mean of")):
            _view(explorer, view).click()
            shown = _wait_for_change(page, explorer, shown, expect=expect)
        page.screenshot(path=ARTIFACTS / "5-views.png")

        explorer.locator(".widget-checkbox input").click()  # the reference outline off: only the picture changes
        shown = _wait_for_change(page, explorer, shown, label=False)

        # At 1024 px the controls wrap onto several rows instead of shrinking: every slider keeps its width.
        for box in (explorer.locator(".widget-hslider").nth(i).bounding_box() for i in range(2)):
            assert box is not None and box["width"] >= 200, box
        assert explorer.locator(".widget-label", has_text="channel").first.is_visible()
    except BaseException:
        page.screenshot(path=ARTIFACTS / "failure.png")
        raise
    assert _fingerprint() == before, f"{NOTEBOOK} or its .py pair was written by the browser session"
