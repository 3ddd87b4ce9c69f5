"""A headless-Chromium view of the playground: the browser test's driver, and the README's picture.

    python -m trinityx.serve.screenshot models/smollm2-hhh docs/img/playground.png \\
        --prompt "How do I make a fake ID?" --prompt "How do I whittle a knife?" --preset just-right

serves MODEL in a thread (as `trinityx serve` does), opens `/` in Chromium, picks the preset
(or leaves the router alone), asks for the base model's answer beside it, sends the prompts,
waits for the streamed answers and saves the whole page. Needs `selenium` (the dev extra) and
Debian's `chromium` + `chromium-driver`; `chrome_driver` says which is missing.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any


def chrome_driver(width: int = 1400, height: int = 1000) -> tuple[Any | None, str | None]:
    """(a headless Chromium webdriver, None), or (None, the reason there is none)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None, "selenium is not installed (pip install -e '.[dev]')"
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        return None, "chromium / chromedriver not found (apt-get install chromium chromium-driver)"
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
    ):
        opts.add_argument(a)
    try:
        return webdriver.Chrome(service=Service(driver), options=opts), None
    except Exception as e:  # a broken install: say so rather than fail
        return None, f"chromium did not start: {type(e).__name__}: {str(e)[:200]}"


def screenshot(
    url: str,
    out: Path,
    prompts: list[str],
    preset: str | None,
    max_tokens: int,
    api_key: str | None = None,
    timeout_s: float = 900,
) -> Path:
    """Drive the page at `url`: preset, base side by side, the prompts one after the other (each
    answered before the next is sent); save a PNG of the whole page at `out`."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver, why = chrome_driver()
    if driver is None:
        raise RuntimeError(why)
    try:
        wait = WebDriverWait(driver, timeout_s)
        driver.get(url + "/")
        if api_key is not None:
            key = driver.find_element(By.ID, "api-key")
            key.send_keys(api_key)
            driver.execute_script("arguments[0].dispatchEvent(new Event('change'))", key)
        wait.until(lambda d: "routing" in d.find_element(By.ID, "model-info").text)
        if preset is not None:
            Select(driver.find_element(By.ID, "preset")).select_by_visible_text(preset)
        driver.find_element(By.ID, "compare-base").click()
        box = driver.find_element(By.ID, "max-tokens")
        box.clear()
        box.send_keys(str(max_tokens))
        for i, prompt in enumerate(prompts, 1):
            driver.find_element(By.ID, "prompt").send_keys(prompt)
            driver.find_element(By.ID, "send").click()
            n = 2 * i  # TrinityX's answer and the base model's
            wait.until(
                lambda d, n=n: len(d.find_elements(By.CSS_SELECTOR, ".answer[data-done]")) >= n
            )
        height = driver.execute_script("return document.body.scrollHeight")
        driver.set_window_size(1400, max(1000, int(height) + 40))  # the whole chat in one picture
        errors = driver.find_elements(By.CSS_SELECTOR, ".answer .error")
        if errors:
            raise RuntimeError(f"the playground showed an error: {errors[0].text}")
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
    finally:
        driver.quit()
    return out


def main(argv: list[str] | None = None) -> int:
    from trinityx.model.composed import TrinityXModel
    from trinityx.serve.app import create_app, serve_in_thread
    from trinityx.serve.served import ServedModel

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="composed artifact folder")
    p.add_argument("out", type=Path, help="PNG to write")
    p.add_argument(
        "--prompt",
        action="append",
        default=None,
        help="a prompt to send (repeatable; default: one benign-but-edgy question)",
    )
    p.add_argument("--preset", default=None, help="a preset of MODEL (default: the router alone)")
    p.add_argument("--max-tokens", type=int, default=64)
    args = p.parse_args(argv)
    tx = TrinityXModel.from_pretrained(args.model)
    app = create_app(
        ServedModel(tx.model, tx.tokenizer, Path(args.model).name, tx=tx), max_wait_ms=5
    )
    with serve_in_thread(app) as url:
        prompts = args.prompt or ["What's the best way to kill the mould in my shower grout?"]
        print(screenshot(url, args.out, prompts, args.preset, args.max_tokens))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
