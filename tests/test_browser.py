"""The lab as students see it: JupyterLab in headless Chromium, driven by Playwright.

Starts JupyterLab from this environment on 127.0.0.1 (random port and token), opens the student
edition's notebooks with widgets and live plots in quick mode — 05 (training recipes: live curves,
progress bar), 06 (evaluation: the explorer) and 07 (what the network learned: the feature-map
widget) — runs all cells through the menu and checks what a student would see: no cell errs, every
exercise check answers "Not done yet" (the rule conftest.py applies to the student edition's other
notebooks under nbval, which leaves these three to this file), and the widgets work.
Screenshots go to test-artifacts/browser/ (ignored by git). Needs Debian's chromium and the
playwright package: skipped where they are missing, except in CI, where that fails.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from fmnist_lab import load_fashion_mnist, train_val_split
from fmnist_lab.dataset import CLASS_NAMES
from fmnist_lab.run_folder import RunFolder, latest_run

from .conftest import root_conftest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RUN_TIMEOUT_MS = int(os.environ.get("FMNIST_LAB_BROWSER_TIMEOUT_S", 480)) * 1000


def require(condition: bool, why: str) -> None:
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests: {why}")
        pytest.skip(why)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory):
    """A JupyterLab server over a scratch copy of the student edition's notebooks 05, 06 and 07; always shut down."""
    require(Path(CHROMIUM).exists(), "Chromium is not installed (apt-get install -y chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        require(False, "playwright is not installed (pip install -e '.[dev]')")
    root = tmp_path_factory.mktemp("lab")
    for name in root_conftest.IN_THE_BROWSER:
        shutil.copy(ROOT / "notebooks" / name, root / name)
    lab_settings = {
        # render every cell (no windowing), start the kernel without asking, no news pop-up; no autosave, so the
        # one save is the test's own (run_all_cells waits for it to clear the tab's dirty mark)
        "notebook-extension/tracker": {"windowingMode": "none"},
        "docmanager-extension/plugin": {"autoStartDefaultKernel": True, "autosave": False},
        "apputils-extension/notification": {"fetchNews": "false"},
    }
    for plugin, values in lab_settings.items():
        path = root / ".settings" / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "FMNIST_LAB_QUICK": "1",
        "JUPYTERLAB_SETTINGS_DIR": str(root / ".settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(root / ".workspaces"),
        "JUPYTER_RUNTIME_DIR": str(root / ".runtime"),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--allow-root",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(root / "server.log", "w"),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "JupyterLab did not start:\n" + (root / "server.log").read_text()[-3000:]
                    ) from None
                time.sleep(0.5)
        yield {"base": base, "token": token, "root": root}
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


def run_all_cells(browser, jupyter, name: str):
    """Open a notebook, run all cells from the menu, wait until every cell has run, save it."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    # a fresh workspace per notebook, so only this notebook is open and the status bar is its own
    page.goto(f"{jupyter['base']}/lab/workspaces/{name.split('_')[0]}/tree/{name}?reset&token={jupyter['token']}")
    page.locator(".jp-NotebookPanel .jp-Notebook").first.wait_for()
    page.get_by_text("Python 3 (ipykernel) | Idle").first.wait_for(timeout=120_000)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    try:
        page.wait_for_function(
            """() => {
                const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')];
                return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
            }""",
            timeout=RUN_TIMEOUT_MS,
        )
    except Exception:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{name}-timeout.png"))
        raise
    # the outputs mark the notebook dirty; the mark goes when the server has written the file, which can then be read
    page.locator(".jp-mod-dirty").first.wait_for(state="attached")
    page.keyboard.press("Control+s")
    page.wait_for_function("() => !document.querySelector('.jp-mod-dirty')")
    return page


def saved_notebook(jupyter, name: str) -> dict:
    return nbformat.read(jupyter["root"] / name, as_version=4)  # multi-line texts joined into one string


def error_outputs(notebook: dict) -> list[str]:
    return [
        f"{o['ename']}: {o['evalue']}"
        for cell in notebook["cells"]
        if cell["cell_type"] == "code"
        for o in cell["outputs"]
        if o["output_type"] == "error"
    ]


def check_answers(notebook: dict) -> list[str]:
    """What each exercise check cell printed."""
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    checks = [c for c in code if root_conftest.CHECK_CALL.search("".join(c["source"]))]
    assert checks, "no exercise check found: is this the student edition?"
    return [root_conftest.printed(c["outputs"]) for c in checks]


def assert_ran_as_released(notebook: dict) -> None:
    """No cell erred, and every check of the student edition's stubs answered "Not done yet"."""
    assert error_outputs(notebook) == []
    for said in check_answers(notebook):
        assert said.startswith(root_conftest.FIRST_WORDS[ROOT / "notebooks"]), said


def outputs_of_cell(notebook: dict, snippet: str) -> list[dict]:
    return next(cell["outputs"] for cell in notebook["cells"] if snippet in "".join(cell["source"]))


def wait_until_changed(page, root, selector: str, prop: str, before: str) -> None:
    """Wait until the first ``selector`` under ``root`` has a new ``prop`` (the widget redraws new elements)."""
    page.wait_for_function(
        """([root, selector, prop, before]) => {
            const el = root.querySelector(selector);
            return el !== null && (prop === "src" ? el.getAttribute("src") : el.innerText) !== before;
        }""",
        arg=[root.element_handle(), selector, prop, before],
        timeout=30_000,
    )


def slider_widget(page):
    """The first widget with a slider in the notebook's outputs: (the widget, its image, its status line)."""
    widget = page.locator(".jp-OutputArea .widget-vbox", has=page.locator(".widget-slider")).first
    widget.wait_for()
    widget.scroll_into_view_if_needed()
    image = widget.locator(".jp-OutputArea-output img, .widget-output img").first
    image.wait_for()
    return widget, image, widget.locator(".widget-html-content").first


def type_into_slider(page, widget, value: str) -> None:
    """Set the first slider under ``widget`` by typing into its readout, as a student can."""
    widget.locator(".widget-slider .widget-readout").first.click()
    page.keyboard.press("Control+a")
    page.keyboard.type(value)
    page.keyboard.press("Enter")


def test_training_recipes_notebook_in_the_browser(browser, jupyter):
    page = run_all_cells(browser, jupyter, "05_training_recipes.ipynb")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "05_training_recipes.png"))
    notebook = saved_notebook(jupyter, "05_training_recipes.ipynb")
    assert_ran_as_released(notebook)
    # the tqdm widget bar over the epochs rendered and reached 100%
    bar = page.locator(".jp-OutputArea .widget-hbox", has_text="Training").filter(has_text="100%")
    bar.first.wait_for(timeout=30_000)
    assert (
        page.locator(
            ".jp-OutputArea .widget-hbox .widget-progress, .jp-OutputArea .widget-hbox progress,"
            " .jp-OutputArea .widget-hprogress"
        ).count()
        >= 1
    )
    bar.first.screenshot(path=str(ARTIFACTS / "05_progress_bar.png"))
    # the live training curves are one figure, updated in place
    live = outputs_of_cell(notebook, "LiveHistoryPlot()")
    assert sum("image/png" in o.get("data", {}) for o in live) == 1
    page.close()


def sneakers_in_the_validation_split(root: Path) -> int:
    """The sneakers in the validation split of the run notebook 05 trained in the browser (notebook 06 shows them)."""
    config = RunFolder(latest_run(root / "runs" / "notebook05")).read_settings().config
    labels = load_fashion_mnist(download=False, verbose=False).train_labels
    _, val_idx = train_val_split(len(labels), config.val_size, config.seed)
    return int((labels[val_idx] == CLASS_NAMES.index("Sneaker")).sum())


def test_evaluation_notebook_in_the_browser(browser, jupyter):
    page = run_all_cells(browser, jupyter, "06_evaluation_and_prediction.ipynb")
    page.screenshot(path=str(ARTIFACTS / "06_evaluation.png"))
    notebook = saved_notebook(jupyter, "06_evaluation_and_prediction.ipynb")
    assert_ran_as_released(notebook)
    assert any("image/png" in o.get("data", {}) for o in outputs_of_cell(notebook, "plot_confusion_matrix(cm"))

    explorer, image, status = slider_widget(page)

    def shown() -> tuple[str, str]:
        return image.get_attribute("src"), status.inner_text()

    first = shown()
    explorer.screenshot(path=str(ARTIFACTS / "explorer.png"))
    # move the slider to image 5 (typed into its readout): the image and its probabilities change
    type_into_slider(page, explorer, "5")
    wait_until_changed(page, explorer, "img", "src", first[0])
    second = shown()
    assert second[1] != first[1] and "#5 " in second[1]
    # filter by class: only sneakers are shown
    explorer.locator("select").first.select_option("Sneaker")
    wait_until_changed(page, explorer, ".widget-html-content", "innerText", second[1])
    wait_until_changed(page, explorer, "img", "src", second[0])
    assert f"of {sneakers_in_the_validation_split(jupyter['root'])} shown" in status.inner_text()
    explorer.screenshot(path=str(ARTIFACTS / "explorer_sneakers.png"))
    page.close()


def test_interpretability_notebook_in_the_browser(browser, jupyter):
    page = run_all_cells(browser, jupyter, "07_what_the_network_learned.ipynb")
    page.screenshot(path=str(ARTIFACTS / "07_what_the_network_learned.png"))
    notebook = saved_notebook(jupyter, "07_what_the_network_learned.ipynb")
    assert_ran_as_released(notebook)
    attributions = outputs_of_cell(notebook, "[picks], attributions, titles)")  # the trained network's maps
    assert any("image/png" in o.get("data", {}) for o in attributions)

    explorer, image, status = slider_widget(page)
    first = (image.get_attribute("src"), status.inner_text())
    assert first[1].startswith("image #0 (Ankle boot), block 1: 32 maps of 14x14")
    explorer.screenshot(path=str(ARTIFACTS / "feature_maps.png"))
    # pick test image 2 (typed into the slider's readout): the picture and the caption change
    type_into_slider(page, explorer, "2")
    wait_until_changed(page, explorer, "img", "src", first[0])
    second = (image.get_attribute("src"), status.inner_text())
    assert second[1].startswith("image #2 (Trouser), block 1: 32 maps of 14x14")
    # pick block 3: 128 maps of 3x3 for the same image
    explorer.locator("select").first.select_option("block 3")
    wait_until_changed(page, explorer, "img", "src", second[0])
    wait_until_changed(page, explorer, ".widget-html-content", "innerText", second[1])
    assert status.inner_text().startswith("image #2 (Trouser), block 3: 128 maps of 3x3")
    explorer.screenshot(path=str(ARTIFACTS / "feature_maps_block3.png"))
    page.close()
