#!/usr/bin/env python3
"""Drives hearth's web chat page (GET /) in headless Chromium through selenium.

Usage: test_web_chat.py BASE_URL MODEL SCREENSHOT_PATH [API_KEY]
Run by crates/hearth/tests/web_chat.rs against a spawned `hearth serve`. With API_KEY
(a server that requires keys) it checks the key field instead of the chat flow.
"""
import json
import os
import shutil
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

BASE, MODEL, SCREENSHOT = sys.argv[1], sys.argv[2], sys.argv[3]
KEY = sys.argv[4] if len(sys.argv) > 4 else None
QUESTION = "What is the capital of France?"
LONG = "Write a very long story about a dragon."
MAX_TOKENS = 24


def wait_for(what, cond, timeout=90.0, every=0.02):
    deadline = time.time() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(every)


def api(path, body=None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if KEY:
        headers["Authorization"] = "Bearer " + KEY
    req = urllib.request.Request(BASE + path, data=data, headers=headers)
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.load(resp)


def browser():
    opts = Options()
    opts.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900",
                "--no-first-run", "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver: selenium must not look for (or download) one.
    service = Service(executable_path=shutil.which("chromedriver"))
    return webdriver.Chrome(service=service, options=opts)


def set_field(d, id_, value):
    el = d.find_element(By.ID, id_)
    el.clear()
    el.send_keys(str(value))


def stored(d):
    return d.execute_script("return JSON.parse(localStorage.getItem('hearth.conversations') || '[]')")


def last_assistant(d):
    return d.execute_script(
        "const m = [...document.querySelectorAll('#messages .msg.assistant')].pop();"
        "return m ? {state: m.dataset.state, text: m.querySelector('.body').textContent} : null")


def send(d, text):
    set_field(d, "input", text)
    d.find_element(By.ID, "send").click()


def main():
    d = browser()
    try:
        if KEY:
            run_with_key(d)
        else:
            run(d)
    finally:
        try:
            d.save_screenshot(SCREENSHOT)
            print("screenshot:", SCREENSHOT)
        finally:
            d.quit()


def run(d):
    d.get(BASE + "/")
    assert d.title == "hearth chat", d.title
    wait_for("the model picker", lambda: d.execute_script(
        "return [...document.querySelectorAll('#model option')].map(o => o.value)") == [MODEL])

    # The safe renderer, in the real browser: markup from the model stays text.
    html = d.execute_script(
        "return Markdown.render(arguments[0])",
        "<img src=x onerror=alert(1)> **bold** `<b>` [bad](javascript:alert(1)) [ok](https://example.com/a_b)\n"
        "```js\nlet a = '<script>';\n```\n- one\n- two")
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html, html
    assert "<strong>bold</strong>" in html and "<code>&lt;b&gt;</code>" in html, html
    assert 'href="javascript' not in html, html
    assert '<a href="https://example.com/a_b" rel="noopener noreferrer" target="_blank">ok</a>' in html, html
    assert '<pre><code class="language-js">let a = &#39;&lt;script&gt;&#39;;</code></pre>' in html, html
    assert "<ul><li>one</li><li>two</li></ul>" in html, html

    # A greedy answer equals the API's answer to the same request.
    set_field(d, "temperature", 0)
    set_field(d, "max-tokens", MAX_TOKENS)
    send(d, QUESTION)
    done = wait_for("the first answer", lambda: (lambda m: m if m and m["state"] == "done" else None)(last_assistant(d)))
    convs = stored(d)
    assert len(convs) == 1, convs
    msgs = convs[0]["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant"], msgs
    answer = msgs[1]["content"]
    assert msgs[0]["content"] == QUESTION and answer.strip(), msgs
    assert done["text"].strip(), done
    direct = api("/v1/chat/completions", {
        "model": MODEL, "messages": [{"role": "user", "content": QUESTION}],
        "temperature": 0, "max_tokens": MAX_TOKENS})
    assert answer == direct["choices"][0]["message"]["content"], (answer, direct)
    print("answer:", json.dumps(answer))

    # A long answer streams (its text grows while it runs) and Stop ends it.
    d.find_element(By.ID, "new-chat").click()
    set_field(d, "max-tokens", 4000)
    aborted_before = api("/stats")["aborted_requests"]
    send(d, LONG)
    first = wait_for("streaming text", lambda: (lambda m: m if m and m["state"] == "streaming" and len(m["text"]) > 20 else None)(last_assistant(d)))
    grown = wait_for("more streamed text", lambda: (lambda m: m if m["state"] == "streaming" and len(m["text"]) > len(first["text"]) + 20 else None)(last_assistant(d)))
    assert d.find_element(By.ID, "send").get_attribute("disabled") is not None
    d.find_element(By.ID, "stop").click()
    stopped = wait_for("the stop", lambda: (lambda m: m if m["state"] == "stopped" else None)(last_assistant(d)))
    assert len(stopped["text"]) >= len(grown["text"]), (grown, stopped)
    stats = wait_for("the server to abort", lambda: (lambda s: s if s["running"] == 0 and s["aborted_requests"] == aborted_before + 1 else None)(api("/stats")), timeout=20)
    assert stats["generated_tokens"] < 4000 + MAX_TOKENS, stats
    time.sleep(1.0)
    after = last_assistant(d)
    assert after == stopped, (stopped, after)
    assert d.find_element(By.ID, "stop").get_attribute("disabled") is not None
    assert d.find_element(By.ID, "send").get_attribute("disabled") is None
    partial = stored(d)[0]["messages"][1]
    assert partial["state"] == "stopped" and partial["content"], partial

    # A reload keeps both conversations; the first one reads as it did.
    d.refresh()
    wait_for("the conversation list", lambda: len(d.find_elements(By.CSS_SELECTOR, "#conversations li")) == 2)
    titles = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#conversations li .open")]
    assert titles == [LONG[:40], QUESTION], titles
    assert last_assistant(d)["state"] == "stopped"
    d.find_elements(By.CSS_SELECTOR, "#conversations li .open")[1].click()
    wait_for("the first conversation", lambda: [e.text for e in d.find_elements(By.CSS_SELECTOR, "#messages .msg.user")] == [QUESTION])
    assert last_assistant(d)["state"] == "done" and last_assistant(d)["text"].strip()
    assert stored(d)[1]["messages"][1]["content"] == answer

    # Deleting a conversation removes it from the page and from storage.
    d.find_elements(By.CSS_SELECTOR, "#conversations li .delete")[0].click()
    wait_for("the delete", lambda: len(d.find_elements(By.CSS_SELECTOR, "#conversations li")) == 1)
    assert [c["title"] for c in stored(d)] == [QUESTION]

    # Nothing was refused by the Content-Security-Policy, and nothing failed to load.
    logs = d.get_log("browser")
    bad = [e for e in logs if e["level"] == "SEVERE" or "Content Security Policy" in e["message"]
           or "Refused to" in e["message"]]
    assert not bad, bad
    print("browser log entries:", len(logs))

    # And the policy is in force: an inline script added to the page does not run.
    ran = d.execute_script(
        "const s = document.createElement('script'); s.textContent = 'window.hearthInline = 1';"
        "document.body.append(s); return window.hearthInline === 1")
    assert ran is False, "an inline script ran: the CSP is not applied"
    refused = [e for e in d.get_log("browser") if "Content Security Policy" in e["message"]]
    assert refused, "the browser reported no CSP refusal of the inline script"
    print("web chat OK")


def run_with_key(d):
    """The page loads without a key; its API calls carry the key typed in, kept across a reload."""
    d.get(BASE + "/")
    wait_for("the 401 shown", lambda: "API key is required" in d.find_element(By.ID, "status").text)
    assert d.execute_script("return document.querySelectorAll('#model option').length") == 0
    set_field(d, "api-key", KEY)
    d.find_element(By.ID, "temperature").click()  # leaving the field stores it and reloads the models
    wait_for("the models with the key", lambda: d.execute_script(
        "return [...document.querySelectorAll('#model option')].map(o => o.value)") == [MODEL])
    assert d.execute_script("return localStorage.getItem('hearth.apiKey')") == KEY
    set_field(d, "temperature", 0)
    set_field(d, "max-tokens", MAX_TOKENS)
    send(d, QUESTION)
    wait_for("the answer", lambda: (lambda m: m if m and m["state"] == "done" else None)(last_assistant(d)))
    answer = stored(d)[0]["messages"][1]["content"]
    direct = api("/v1/chat/completions", {
        "model": MODEL, "messages": [{"role": "user", "content": QUESTION}],
        "temperature": 0, "max_tokens": MAX_TOKENS})
    assert answer == direct["choices"][0]["message"]["content"], (answer, direct)
    d.refresh()
    wait_for("the key after a reload", lambda: d.find_element(By.ID, "api-key").get_attribute("value") == KEY)
    wait_for("the models after a reload", lambda: d.execute_script(
        "return document.querySelectorAll('#model option').length") == 1)
    # Only the page's own 401 (before the key) reached the console.
    bad = [e for e in d.get_log("browser") if e["level"] == "SEVERE" and "401" not in e["message"]]
    assert not bad, bad
    print("web chat with key OK")


if __name__ == "__main__":
    main()
