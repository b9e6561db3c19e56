"""The chat page in headless Chromium (Debian's chromium + chromium-driver; `make test` installs them): type a
message, see the answer stream in piece by piece, and find it equal to the API's answer for the same request."""

import os
import shutil

import pytest

from tests.test_server import serving, slow_steps
from tritlm.runtime import Model
from tritlm.runtime.server.app import create_app


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
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    model = Model(tiny_gguf, threads=2, n_ctx=256)
    try:
        with serving(create_app(model, parallel=1)) as url, slow_steps(model, 0.03):
            expected = httpx.post(
                url + "/v1/chat/completions",
                timeout=60,
                json={
                    "messages": [{"role": "user", "content": "Hello there"}],
                    "max_tokens": 20,
                    "temperature": 0,
                },
            ).json()["choices"][0]["message"]["content"]
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
                text = b.find_element(By.CSS_SELECTOR, ".msg.assistant").get_attribute("data-text")
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


def send_and_wait(browser, text, n_done, timeout=120):
    """Types a message and waits until `n_done` answers are finished (the Stop button hidden again)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.find_element(By.ID, "input").send_keys(text + "\n")
    WebDriverWait(browser, timeout, poll_frequency=0.05).until(
        lambda b: (
            len(b.find_elements(By.CSS_SELECTOR, ".msg.assistant")) >= n_done
            and b.find_element(By.ID, "stop").get_attribute("hidden") is not None
        )
    )


@pytest.fixture
def embedded_page(browser, embedded_gguf):
    """The chat page of a server on the embedded model (context 512), with a fresh browser storage."""
    model = Model(embedded_gguf, threads=2)
    try:
        with serving(create_app(model, parallel=1)) as url:
            browser.get(url + "/")
            browser.execute_script("localStorage.clear()")
            browser.refresh()
            yield browser, url, model
    finally:
        model.close()


def test_ten_turns_fit_the_context_and_survive_a_reload(embedded_page):
    """With the default max tokens (256) the second turn used to overflow the 512-token context; now the oldest
    turns are left out and max_tokens is capped, so every turn answers. A reload keeps the conversation."""
    from selenium.webdriver.common.by import By

    browser, url, model = embedded_page
    browser.find_element(By.CSS_SELECTOR, "#settings summary").click()
    for field, value in (("temperature", "0.7"), ("top-k", "20"), ("top-p", "0.9"), ("seed", "3")):
        browser.find_element(By.ID, field).clear()
        browser.find_element(By.ID, field).send_keys(value)
    for turn in range(10):
        send_and_wait(browser, f"Question {turn}: write a class for a stack of plates, with push and pop.", turn + 1)
        assert not browser.find_elements(By.CSS_SELECTOR, ".msg.error"), browser.find_element(
            By.CSS_SELECTOR, ".msg.error"
        ).text
    answers = browser.find_elements(By.CSS_SELECTOR, ".msg.assistant")
    assert len(answers) == 10 and all(a.get_attribute("data-text") for a in answers)
    assert "left out" in browser.find_element(By.ID, "notice").text  # the context did overflow: turns were trimmed
    texts = [a.get_attribute("data-text") for a in answers]
    browser.refresh()
    restored = browser.find_elements(By.CSS_SELECTOR, ".msg.assistant")
    assert [a.get_attribute("data-text") for a in restored] == texts
    assert len(browser.find_elements(By.CSS_SELECTOR, ".msg.user")) == 10
    assert browser.find_element(By.ID, "seed").get_attribute("value") == "3"


def test_model_output_is_text_not_html(embedded_page, monkeypatch):
    """An answer holding an <img onerror> tag shows as text (no element, no script run); a fenced code block is
    rendered monospace."""
    from selenium.webdriver.common.by import By

    import tritlm.runtime.server.app as app_module
    from tests.checkpoints import ScriptedSampler

    browser, url, model = embedded_page
    answer = 'Look: <img src=x onerror="window.pwned=1"> and\n```python\nprint("<b>hi</b>")\n```\n'
    tokens = model.tokenize(answer, add_bos=False) + [min(model.eos_ids)]
    make = app_module._sampler
    monkeypatch.setattr(app_module, "_sampler", lambda body, n_vocab: ScriptedSampler(tokens))
    send_and_wait(browser, "Say something", 1)
    monkeypatch.setattr(app_module, "_sampler", make)
    bubble = browser.find_element(By.CSS_SELECTOR, ".msg.assistant")
    assert bubble.get_attribute("data-text") == answer
    assert '<img src=x onerror="window.pwned=1">' in bubble.text
    assert not browser.find_elements(By.CSS_SELECTOR, "#log img, #log b")
    assert browser.execute_script("return window.pwned") is None
    code = bubble.find_element(By.CSS_SELECTOR, "pre code")
    assert code.text == 'print("<b>hi</b>")'
    assert "mono" in code.value_of_css_property("font-family").lower()
