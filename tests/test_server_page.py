"""The chat page in headless Chromium (Debian's chromium + chromium-driver; `make test` installs them): type a
message, see the answer stream in piece by piece, and find it equal to the API's answer for the same request."""

import os
import shutil

import pytest

from runtime import Model
from runtime.server.app import create_app
from tests.test_server import serving, slow_decode


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "chromium and chromium-driver are not installed: run `make chromium`"
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.binary_location = chromium
    # An explicit driver path: Selenium Manager must not try to download one.
    browser = webdriver.Chrome(options=options, service=Service(driver, log_output=os.devnull))
    yield browser
    browser.quit()


def test_page_streams_an_answer(browser, tiny_gguf):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    import httpx

    model = Model(tiny_gguf, threads=2, n_ctx=256)
    try:
        with serving(create_app(model, parallel=1)) as url, slow_decode(model, 0.03):
            expected = httpx.post(url + "/v1/chat/completions", timeout=60, json={
                "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 20, "temperature": 0,
            }).json()["choices"][0]["message"]["content"]
            browser.get(url + "/")
            WebDriverWait(browser, 10).until(lambda b: b.find_element(By.ID, "model-name").text == model.name)
            browser.find_element(By.CSS_SELECTOR, "#settings summary").click()
            for field, value in (("max-tokens", "20"), ("temperature", "0")):
                browser.find_element(By.ID, field).clear()
                browser.find_element(By.ID, field).send_keys(value)
            browser.find_element(By.ID, "input").send_keys("Hello there\n")

            seen = []

            def finished(b):  # reads "done" before the text, so a finished answer is read whole
                done = b.find_element(By.ID, "stop").get_attribute("hidden") is not None
                text = b.find_element(By.CSS_SELECTOR, ".msg.assistant").get_property("textContent")
                if not seen or seen[-1] != text:
                    seen.append(text)
                return done and bool(text)

            WebDriverWait(browser, 30, poll_frequency=0.02).until(finished)
        assert not browser.find_elements(By.CSS_SELECTOR, ".msg.error")
        assert browser.find_element(By.CSS_SELECTOR, ".msg.user").text == "Hello there"
        assert seen[-1] == expected
        assert len([s for s in seen if s]) >= 3, f"the answer did not stream: {seen}"
    finally:
        model.close()
