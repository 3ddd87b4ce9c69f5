"""The playground at `/` of `trinityx serve`: served from package files with no external URL,
and driven in a real headless Chromium against a live tiny-model server (move a slider, send a
message, see the streamed answer, the routing weights follow the slider, the gate heat map).

The browser test needs `selenium` (dev extra) and Debian's `chromium` + `chromium-driver`; it
skips, saying which is missing, without them. Set TRINITYX_SCREENSHOT_DIR to keep its
screenshot (the README's is taken that way).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import httpx
import pytest

from trinityx.serve.app import STATIC, create_app, serve_in_thread
from trinityx.serve.screenshot import chrome_driver
from trinityx.serve.served import ServedModel
from trinityx.serve.serving import Limits

KEY = "pg-key"


@pytest.fixture(scope="module")
def tx(tmp_path_factory, tiny_backbone_cfg):
    from helpers_mocae import build, make_expert_dirs

    from trinityx.model.presets import Preset

    root = tmp_path_factory.mktemp("playground")
    m = build(tiny_backbone_cfg, make_expert_dirs(tiny_backbone_cfg, root), "token")
    m.presets = {
        "just-right": Preset(
            weights={"helpful": 1, "harmless": 0.5, "honest": 0.5}, description="from a test"
        )
    }
    return m


@pytest.fixture(scope="module")
def url(tx):
    served = ServedModel(tx.model, tx.tokenizer, "tiny", tx=tx)
    app = create_app(
        served, max_wait_ms=5, api_key=KEY, limits=Limits(default_max_tokens=12, max_tokens=64)
    )
    with serve_in_thread(app) as u:
        yield u


def test_page_and_static_files_are_served_without_a_key(url):
    page = httpx.get(url + "/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "TrinityX playground" in page.text
    for src in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        r = httpx.get(f"{url}/{src}")
        assert r.status_code == 200 and r.text, src
    assert httpx.get(url + "/v1/models").status_code == 401  # the API itself keeps its key
    assert httpx.get(url + "/static/nope.js").status_code == 404
    assert "/" not in [r.path for r in []]  # (the page is not in the OpenAPI schema:)
    assert "/" not in httpx.get(url + "/openapi.json").json()["paths"]


def test_static_files_reference_nothing_outside_the_package():
    """Works offline: no CDN, no external URL in any shipped file, and they are package data."""
    files = sorted(STATIC.iterdir())
    assert {f.name for f in files} >= {"index.html", "playground.js", "playground.css"}
    for f in files:
        assert not re.search(r"https?://", f.read_text()), f"{f.name} references a URL"
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert '"trinityx.serve" = ["static/*"]' in pyproject


def test_playground_in_a_real_browser(url, tmp_path):
    from_env = os.environ.get("TRINITYX_SCREENSHOT_DIR")
    driver, why = chrome_driver()
    if driver is None:
        pytest.skip(why)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(driver, 300)  # generous: a loaded CI machine decodes slowly
    try:
        driver.get(url + "/")
        key = driver.find_element(By.ID, "api-key")
        key.send_keys(KEY)
        driver.execute_script("arguments[0].dispatchEvent(new Event('change'))", key)
        wait.until(EC.text_to_be_present_in_element((By.ID, "model-info"), "routing token"))
        assert [o.text for o in Select(driver.find_element(By.ID, "preset")).options] == [
            "(custom)",
            "just-right",
        ]

        def set_slider(name: str, value: float) -> None:
            el = driver.find_element(By.ID, f"w-{name}")
            driver.execute_script(
                "arguments[0].value = arguments[1];arguments[0].dispatchEvent(new Event('input'))",
                el,
                str(value),
            )

        def send(text: str, n: int):
            box = driver.find_element(By.ID, "prompt")
            box.send_keys(text)
            driver.find_element(By.ID, "send").click()
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".answer[data-done]")) >= n)
            return driver.find_elements(By.CSS_SELECTOR, ".answer")[-1]

        set_slider("helpful", 0)
        set_slider("harmless", 2)
        assert driver.find_element(By.ID, "w-harmless-val").text == "2.00"
        driver.find_element(By.ID, "compare-base").click()
        driver.find_element(By.ID, "max-tokens").send_keys("60")  # long enough to watch it grow
        # streamed: the text grows while the answer is still marked as streaming
        driver.find_element(By.ID, "prompt").send_keys("hello there")
        driver.find_element(By.ID, "send").click()
        seen: list[str] = []  # the main answer's text while it streams

        def grows(d) -> bool:
            live = d.find_elements(By.CSS_SELECTOR, ".answer.streaming .text")
            if live and live[0].text:
                seen.append(live[0].text)
            return len(d.find_elements(By.CSS_SELECTOR, ".answer[data-done]")) >= 2

        WebDriverWait(driver, 300, poll_frequency=0.02).until(grows)
        main, base = driver.find_elements(By.CSS_SELECTOR, ".answer")[-2:]
        assert not driver.find_elements(By.CSS_SELECTOR, ".answer .error"), main.text
        final = main.find_element(By.CSS_SELECTOR, ".text").text
        assert seen and all(final.startswith(x) for x in seen), (seen, final)
        assert main.find_element(By.CSS_SELECTOR, ".text").text.strip()
        assert "helpful 0.000" in main.find_element(By.CSS_SELECTOR, ".weights-line").text
        assert "harmless 2.000" in main.find_element(By.CSS_SELECTOR, ".weights-line").text
        assert "gates" in main.find_element(By.CSS_SELECTOR, ".gates-line").text
        toks = main.find_elements(By.CSS_SELECTOR, ".heatmap .tok")
        assert toks and toks[0].get_attribute("style").startswith("background")
        assert "base model" in base.text.lower() and "experts off" in base.text
        # hovering a token shows its per-block gates
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(driver).move_to_element(toks[0]).perform()
        tip = driver.find_element(By.ID, "tooltip")
        wait.until(lambda d: tip.is_displayed())
        assert "block 0" in tip.text and "harm" in tip.text
        shot = tmp_path / "playground.png"
        driver.save_screenshot(str(shot))
        # the weights follow the slider
        driver.find_element(By.ID, "compare-base").click()
        set_slider("helpful", 1.5)
        answer = send("and again", 3)
        assert "helpful 1.500" in answer.find_element(By.CSS_SELECTOR, ".weights-line").text
        # a preset by name
        Select(driver.find_element(By.ID, "preset")).select_by_visible_text("just-right")
        answer = send("with the preset", 4)
        assert "preset just-right" in answer.text
        assert shot.stat().st_size > 10_000
        if from_env:
            Path(from_env).mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, Path(from_env) / "playground.png")
    finally:
        driver.quit()


def test_screenshot_tool_saves_the_page_with_both_answers(url, tmp_path):
    """`python -m trinityx.serve.screenshot` (the README's picture): preset, base beside, PNG."""
    driver, why = chrome_driver()
    if driver is None:
        pytest.skip(why)
    driver.quit()  # only a check: screenshot() starts its own
    from trinityx.serve.screenshot import screenshot

    out = screenshot(
        url,
        tmp_path / "shot.png",
        ["hello there", "and again"],
        "just-right",
        8,
        api_key=KEY,
        timeout_s=300,
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
