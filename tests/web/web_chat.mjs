// Drives hearth's web chat page (GET /) in Debian's headless Chromium via playwright-core.
//
// Usage: node web_chat.mjs BASE_URL MODEL SCREENSHOT_PATH [API_KEY]
// Run by crates/hearth/tests/web_chat.rs against a spawned `hearth serve`. With API_KEY (a
// server that requires keys) it checks the key field instead of the chat flow. Prints
// "web chat OK" / "web chat with key OK" at the end; any failed check exits non-zero.
import { api, check, openBrowser, waitFor } from "./browser.mjs";

const [BASE, MODEL, SCREENSHOT, KEY] = process.argv.slice(2);
const QUESTION = "What is the capital of France?";
const LONG = "Write a very long story about a dragon.";
const MAX_TOKENS = 24;

const call = (path, body) => api(BASE, KEY, path, body);
const stored = (p) => p.evaluate(() => JSON.parse(localStorage.getItem("hearth.conversations") || "[]"));
const modelNames = (p) => p.evaluate(() => [...document.querySelectorAll("#model option")].map((o) => o.value));
const lastAssistant = (p) =>
  p.evaluate(() => {
    const m = [...document.querySelectorAll("#messages .msg.assistant")].pop();
    return m ? { state: m.dataset.state, text: m.querySelector(".body").textContent } : null;
  });
const lastIn = (p, state, more = () => true) =>
  lastAssistant(p).then((m) => (m && m.state === state && more(m) ? m : null));
const disabled = async (p, sel) => (await p.getAttribute(sel, "disabled")) !== null;
const direct = () =>
  call("/v1/chat/completions", {
    model: MODEL,
    messages: [{ role: "user", content: QUESTION }],
    temperature: 0,
    max_tokens: MAX_TOKENS,
  });

// A screenshot beside SCREENSHOT, its name ending in `suffix`.
async function shoot(p, suffix) {
  const path = SCREENSHOT.replace(/(\.png)?$/, `${suffix}.png`);
  await p.screenshot({ path });
  console.log("screenshot:", path);
}

async function send(p, text) {
  await p.fill("#input", text);
  await p.click("#send");
}

async function checkRenderer(p) {
  // The safe renderer, in the real browser: markup from the model stays text.
  const html = await p.evaluate(
    (src) => Markdown.render(src),
    "<img src=x onerror=alert(1)> **bold** `<b>` [bad](javascript:alert(1)) [ok](https://example.com/a_b)\n" +
      "```js\nlet a = '<script>';\n```\n- one\n- two",
  );
  check(!html.includes("<img") && html.includes("&lt;img src=x onerror=alert(1)&gt;"), "img escaped", html);
  check(html.includes("<strong>bold</strong>") && html.includes("<code>&lt;b&gt;</code>"), "inline markup", html);
  check(!html.includes('href="javascript'), "no javascript: link", html);
  check(
    html.includes('<a href="https://example.com/a_b" rel="noopener noreferrer" target="_blank">ok</a>'),
    "safe link",
    html,
  );
  check(html.includes('<pre><code class="language-js">let a = &#39;&lt;script&gt;&#39;;</code></pre>'), "code block", html);
  check(html.includes("<ul><li>one</li><li>two</li></ul>"), "list", html);
}

async function run(p, logs) {
  await p.goto(BASE + "/");
  check((await p.title()) === "hearth chat", "title", await p.title());
  await waitFor("the model picker", async () => JSON.stringify(await modelNames(p)) === JSON.stringify([MODEL]));
  await checkRenderer(p);

  // A greedy answer equals the API's answer to the same request.
  await p.fill("#temperature", "0");
  await p.fill("#max-tokens", String(MAX_TOKENS));
  await send(p, QUESTION);
  const done = await waitFor("the first answer", () => lastIn(p, "done"));
  let convs = await stored(p);
  check(convs.length === 1, "one stored conversation", convs);
  const msgs = convs[0].messages;
  check(JSON.stringify(msgs.map((m) => m.role)) === '["user","assistant"]', "roles", msgs);
  const answer = msgs[1].content;
  check(msgs[0].content === QUESTION && answer.trim(), "stored question and answer", msgs);
  check(done.text.trim(), "answer shown", done);
  const want = (await direct()).choices[0].message.content;
  check(answer === want, "page answer equals the API's", { answer, want });
  console.log("answer:", JSON.stringify(answer));

  // A long answer streams (its text grows while it runs) and Stop ends it.
  await p.click("#new-chat");
  await p.fill("#max-tokens", "4000");
  const abortedBefore = (await call("/stats")).aborted_requests;
  await send(p, LONG);
  const first = await waitFor("streaming text", () => lastIn(p, "streaming", (m) => m.text.length > 20));
  const grown = await waitFor("more streamed text", () =>
    lastIn(p, "streaming", (m) => m.text.length > first.text.length + 20),
  );
  check(await disabled(p, "#send"), "send disabled while streaming");
  await shoot(p, "_streaming");
  await p.click("#stop");
  const stopped = await waitFor("the stop", () => lastIn(p, "stopped"));
  check(stopped.text.length >= grown.text.length, "stopped text kept", { grown, stopped });
  const stats = await waitFor(
    "the server to abort",
    async () => {
      const s = await call("/stats");
      return s.running === 0 && s.aborted_requests === abortedBefore + 1 ? s : null;
    },
    20_000,
  );
  check(stats.generated_tokens < 4000 + MAX_TOKENS, "generation ended early", stats);
  await new Promise((r) => setTimeout(r, 1000));
  const after = await lastAssistant(p);
  check(JSON.stringify(after) === JSON.stringify(stopped), "nothing streamed after stop", { stopped, after });
  check(await disabled(p, "#stop"), "stop disabled after stop");
  check(!(await disabled(p, "#send")), "send enabled after stop");
  const partial = (await stored(p))[0].messages[1];
  check(partial.state === "stopped" && partial.content, "stored partial answer", partial);
  await shoot(p, "_stopped");

  // A reload keeps both conversations; the first one reads as it did.
  await p.reload();
  const items = p.locator("#conversations li");
  await waitFor("the conversation list", async () => (await items.count()) === 2);
  const titles = await p.locator("#conversations li .open").allInnerTexts();
  check(JSON.stringify(titles) === JSON.stringify([LONG.slice(0, 40), QUESTION]), "titles", titles);
  check((await lastAssistant(p)).state === "stopped", "stopped answer after reload");
  await p.locator("#conversations li .open").nth(1).click();
  await waitFor("the first conversation", async () => {
    const users = await p.locator("#messages .msg.user").allTextContents();
    return JSON.stringify(users) === JSON.stringify([QUESTION]);
  });
  const reread = await lastAssistant(p);
  check(reread.state === "done" && reread.text.trim(), "first answer after reload", reread);
  check((await stored(p))[1].messages[1].content === answer, "stored answer kept");

  // Deleting a conversation removes it from the page and from storage.
  await p.locator("#conversations li .delete").nth(0).click();
  await waitFor("the delete", async () => (await items.count()) === 1);
  convs = await stored(p);
  check(JSON.stringify(convs.map((c) => c.title)) === JSON.stringify([QUESTION]), "stored after delete", convs);

  // Nothing was refused by the Content-Security-Policy, and nothing failed to load.
  const bad = logs.filter(
    (e) => e.type === "error" || e.type === "pageerror" || /Content Security Policy|Refused to/.test(e.text),
  );
  check(bad.length === 0, "no console errors or CSP refusals", bad);
  console.log("browser console entries:", logs.length);

  // And the policy is in force: an inline script added to the page does not run.
  const ran = await p.evaluate(() => {
    const s = document.createElement("script");
    s.textContent = "window.hearthInline = 1";
    document.body.append(s);
    return window.hearthInline === 1;
  });
  check(ran === false, "an inline script ran: the CSP is not applied");
  await waitFor("the CSP refusal in the console", () => logs.some((e) => e.text.includes("Content Security Policy")), 5_000);
  console.log("web chat OK");
}

async function runWithKey(p, logs) {
  // The page loads without a key; its API calls carry the key typed in, kept across a reload.
  await p.goto(BASE + "/");
  await waitFor("the 401 shown", async () => (await p.textContent("#status")).includes("API key is required"));
  check((await modelNames(p)).length === 0, "no models without the key");
  await p.fill("#api-key", KEY);
  await p.click("#temperature"); // leaving the field stores it and reloads the models
  await waitFor("the models with the key", async () => JSON.stringify(await modelNames(p)) === JSON.stringify([MODEL]));
  check((await p.evaluate(() => localStorage.getItem("hearth.apiKey"))) === KEY, "key stored");
  await p.fill("#temperature", "0");
  await p.fill("#max-tokens", String(MAX_TOKENS));
  await send(p, QUESTION);
  await waitFor("the answer", () => lastIn(p, "done"));
  const answer = (await stored(p))[0].messages[1].content;
  const want = (await direct()).choices[0].message.content;
  check(answer === want, "page answer equals the API's", { answer, want });
  await p.reload();
  await waitFor("the key after a reload", async () => (await p.inputValue("#api-key")) === KEY);
  await waitFor("the models after a reload", async () => (await modelNames(p)).length === 1);
  // Only the page's own 401 (before the key) reached the console.
  const bad = logs.filter((e) => (e.type === "error" || e.type === "pageerror") && !e.text.includes("401"));
  check(bad.length === 0, "no console errors besides the 401", bad);
  // The console is really watched: the 401 before the key was typed is in it.
  check(logs.some((e) => e.type === "error" && e.text.includes("401")), "the 401 in the console", logs);
  console.log("browser console entries:", logs.length);
  console.log("web chat with key OK");
}

const { page, logs, close } = await openBrowser();
try {
  await (KEY ? runWithKey(page, logs) : run(page, logs));
} catch (e) {
  console.error(e.stack || String(e));
  console.error("browser console:", JSON.stringify(logs, null, 1));
  process.exitCode = 1;
} finally {
  try {
    await page.screenshot({ path: SCREENSHOT });
    console.log("screenshot:", SCREENSHOT);
  } finally {
    await close();
  }
}
