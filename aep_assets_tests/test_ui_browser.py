"""The Dagster UI as a user sees it, in a real browser: ``dagster dev`` (webserver and daemon) on 127.0.0.1
with the demo materialised, driven by Debian's Chromium through Playwright. Screenshots of the asset graph and
the model's metadata are kept in docs/screenshots/."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from .conftest import _free_port, wait_for_http, wait_until
from .dagster_ui import start_in_background
from .test_pipeline_e2e import RUN_CONFIG

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (.ci/run installs it)")


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui")
    home = root / "home"
    home.mkdir()
    # Without the community dialog: it opens a second after a page loads, so it could cover whatever a test clicks.
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "AEP_SANDBOX_DIR": str(root / "aep"),
           "AEP_STORAGE_DIR": str(root / "storage")}
    for k in ("AEP_CLIENT_ID", "AEP_STORAGE", "MLFLOW_TRACKING_URI"):
        env.pop(k, None)
    config = root / "run.json"
    config.write_text(json.dumps(RUN_CONFIG))
    subprocess.run([_bin("dagster"), "job", "execute", "-m", "aep_assets.definitions", "-j", "cmle_demo", "-c",
                    str(config)], env=env, cwd=ROOT, check=True, capture_output=True, timeout=600)
    port = _free_port()
    proc = start_in_background(env, port, root / "dagster-dev.log")
    url = f"http://127.0.0.1:{port}"
    if not wait_for_http(f"{url}/server_info"):
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("dagster dev did not start: " + (root / "dagster-dev.log").read_text()[-3000:])
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        # UPDATE_SCREENSHOTS=1 refreshes the pictures the docs show; otherwise they go beside the test's other files.
        shots = ROOT / "docs" / "screenshots" if os.environ.get("UPDATE_SCREENSHOTS") else root / "screenshots"
        shots.mkdir(parents=True, exist_ok=True)
        yield {"url": url, "page": page, "home": home, "shots": shots}
        browser.close()
    _wait_for_runs(home)  # the sensor's runs may still be going; stopping dagster dev would interrupt them
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _wait_for_runs(home, timeout_s: float = 240) -> None:
    """Until no run of this instance is queued or in progress (or the timeout passes)."""
    def finished() -> bool:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            return all(r.is_finished for r in instance.get_runs())

    try:
        wait_until(finished, timeout_s=timeout_s, what="the sensor's runs to finish")
    except AssertionError:
        pass  # stopping dagster dev then interrupts them, which the tests after this one do not read


def _open(ui, path: str):
    page = ui["page"]
    page.goto(f"{ui['url']}{path}")
    page.wait_for_load_state("networkidle")
    return page


def test_the_asset_graph_shows_the_models_groups(ui):
    page = _open(ui, "/asset-groups")
    for group in ("cmle_demo_model", "cmle_demo_scoring", "cmle_demo_activation", "cmle_demo_outcomes"):
        page.get_by_text(group).first.wait_for(timeout=60_000)
    page.screenshot(path=str(ui["shots"] / "asset_graph.png"))


def test_the_models_plots_render_as_images(ui):
    page = _open(ui, "/assets/cmle_demo/propensity_model")
    page.locator("tr", has_text="roc_auc").first.wait_for(timeout=60_000)
    page.screenshot(path=str(ui["shots"] / "model_metadata.png"))
    for key, title in (("roc_curve", "ROC"), ("gains_chart", "Gains"), ("reliability_diagram", "Reliability")):
        page.locator("tr", has_text=key).first.get_by_text("[Show Markdown]").click()
        image = page.locator(f'img[alt="{title}"]').first
        image.wait_for(timeout=60_000)
        assert image.get_attribute("src").startswith("data:image/png;base64,")
        assert image.evaluate("img => img.naturalWidth") > 100  # decoded and drawn, not a broken image
        if key == "roc_curve":
            page.wait_for_timeout(600)  # the dialog fades in
            page.screenshot(path=str(ui["shots"] / "model_roc.png"))
        page.get_by_role("button", name="Close").last.click()
        image.wait_for(state="detached", timeout=30_000)


def test_the_asset_checks_show_their_results(ui):
    page = _open(ui, "/assets/cmle_demo/propensity_model?view=checks")
    page.get_by_text("Checks (4)").first.wait_for(timeout=60_000)
    text = page.locator("body").inner_text()
    for check in ("auc_floor", "calibrated", "no_leakage", "champion_challenger"):
        assert f"{check}\n{check}\nSucceeded" in text, text[:2000]
    assert "Evaluation result\nPassed" in text


def test_the_sensor_ticks(ui):
    """The daemon evaluates the new-events sensor (on by default) and the UI lists its ticks."""
    def sensor_page() -> str | None:
        page = _open(ui, "/automation")
        page.get_by_text("cmle_demo_new_events_sensor").first.click(timeout=60_000)
        page.get_by_text("Latest tick").first.wait_for(timeout=60_000)
        text = page.locator("body").inner_text()
        return text if "runs requested" in text or "run requested" in text else None

    text = wait_until(sensor_page, timeout_s=150, what="a tick of the new-events sensor that requested runs")
    assert "Running" in text


def test_a_materialisation_launched_from_the_ui_succeeds(ui):
    with dg.DagsterInstance.from_config(str(ui["home"])) as instance:
        before = {r.run_id for r in instance.get_runs()}
    page = _open(ui, "/assets/cmle_demo/propensity_scores")
    page.locator("button", has_text="Materialize").first.click(timeout=60_000)

    def finished_run():
        with dg.DagsterInstance.from_config(str(ui["home"])) as instance:
            new = [r for r in instance.get_runs() if r.run_id not in before]
            return new[0] if new and new[0].is_finished else None

    run = wait_until(finished_run, timeout_s=300, what="the run launched from the UI to finish")
    new = [run]
    assert run.status == dg.DagsterRunStatus.SUCCESS, run
    page = _open(ui, f"/runs/{new[0].run_id}")
    page.get_by_text("Success").first.wait_for(timeout=60_000)
