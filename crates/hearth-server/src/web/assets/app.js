// hearth's web chat: talks to this server's OpenAI API only (same origin), streams
// answers over SSE, keeps conversations and settings in this browser's localStorage.
'use strict';

const $ = (id) => document.getElementById(id);
const KEYS = { convs: 'hearth.conversations', current: 'hearth.current', apiKey: 'hearth.apiKey', settings: 'hearth.settings' };

const state = { convs: [], current: null, controller: null };

function load(key, fallback) {
  try {
    const v = JSON.parse(localStorage.getItem(key));
    return v === null ? fallback : v;
  } catch (_) {
    return fallback;
  }
}

function saveConvs() {
  localStorage.setItem(KEYS.convs, JSON.stringify(state.convs));
  localStorage.setItem(KEYS.current, JSON.stringify(state.current));
}

function saveSettings() {
  localStorage.setItem(KEYS.settings, JSON.stringify({
    model: $('model').value,
    temperature: $('temperature').value,
    maxTokens: $('max-tokens').value,
    system: $('system').value,
  }));
}

function setStatus(text) {
  $('status').textContent = text;
}

async function loadModels() {
  const select = $('model');
  const wanted = load(KEYS.settings, {}).model || select.value;
  try {
    const resp = await fetch('/v1/models', { headers: headers() });
    if (!resp.ok) throw new Error(await errorText(resp));
    const ids = (await resp.json()).data.map((m) => m.id);
    select.replaceChildren(...ids.map((id) => new Option(id, id)));
    if (ids.includes(wanted)) select.value = wanted;
    setStatus(ids.length ? '' : 'the server lists no model');
  } catch (e) {
    setStatus('models: ' + e.message);
  }
}

function currentConv() {
  return state.convs.find((c) => c.id === state.current) || null;
}

function newConv() {
  const conv = { id: Date.now().toString(36) + Math.random().toString(36).slice(2, 8), title: 'New chat', messages: [] };
  state.convs.unshift(conv);
  state.current = conv.id;
  saveConvs();
  renderAll();
  return conv;
}

function deleteConv(id) {
  if (state.controller) return;
  state.convs = state.convs.filter((c) => c.id !== id);
  if (state.current === id) state.current = state.convs.length ? state.convs[0].id : null;
  saveConvs();
  renderAll();
}

function renderList() {
  const list = $('conversations');
  list.replaceChildren(...state.convs.map((c) => {
    const li = document.createElement('li');
    li.className = c.id === state.current ? 'active' : '';
    const open = document.createElement('button');
    open.type = 'button';
    open.className = 'open';
    open.textContent = c.title;
    open.addEventListener('click', () => {
      if (state.controller) return;
      state.current = c.id;
      saveConvs();
      renderAll();
    });
    const del = document.createElement('button');
    del.type = 'button';
    del.className = 'delete';
    del.textContent = '\u00d7';
    del.title = 'Delete this conversation';
    del.setAttribute('aria-label', 'Delete ' + c.title);
    del.addEventListener('click', () => deleteConv(c.id));
    li.append(open, del);
    return li;
  }));
}

// One message element; assistant text goes through the safe markdown renderer.
function messageElement(msg) {
  const el = document.createElement('div');
  el.className = 'msg ' + msg.role;
  const body = document.createElement('div');
  body.className = 'body';
  el.append(body);
  fillMessage(el, msg);
  return el;
}

function fillMessage(el, msg) {
  const body = el.querySelector('.body');
  if (msg.role === 'assistant') body.innerHTML = Markdown.render(msg.content);
  else body.textContent = msg.content;
  el.dataset.state = msg.state || 'done';
  if (msg.state === 'stopped' || msg.state === 'error') {
    const note = document.createElement('div');
    note.className = 'note';
    note.textContent = msg.state === 'stopped' ? '(stopped)' : msg.error;
    body.append(note);
  }
}

function renderMessages() {
  const conv = currentConv();
  $('messages').replaceChildren(...(conv ? conv.messages.map(messageElement) : []));
  scrollDown();
}

function renderAll() {
  renderList();
  renderMessages();
}

function scrollDown() {
  const box = $('messages');
  box.scrollTop = box.scrollHeight;
}

function setBusy(busy) {
  $('send').disabled = busy;
  $('stop').disabled = !busy;
  document.body.classList.toggle('busy', busy);
}

// The request body for a conversation: the page's settings, history without errors.
function requestBody(conv) {
  const messages = [];
  const system = $('system').value.trim();
  if (system) messages.push({ role: 'system', content: system });
  for (const m of conv.messages) {
    if (m.state === 'error') continue;
    messages.push({ role: m.role, content: m.content });
  }
  const body = { model: $('model').value, messages, stream: true };
  const t = parseFloat($('temperature').value);
  if (Number.isFinite(t)) body.temperature = t;
  const n = parseInt($('max-tokens').value, 10);
  if (Number.isFinite(n) && n > 0) body.max_tokens = n;
  return body;
}

async function send() {
  const input = $('input');
  const text = input.value.trim();
  if (!text || state.controller) return;
  const conv = currentConv() || newConv();
  if (!conv.messages.length) conv.title = text.slice(0, 40);
  conv.messages.push({ role: 'user', content: text });
  input.value = '';
  setStatus('');
  const body = requestBody(conv);
  const answer = { role: 'assistant', content: '', state: 'streaming' };
  conv.messages.push(answer);
  saveConvs();
  renderAll();
  const el = $('messages').lastElementChild;

  const controller = new AbortController();
  state.controller = controller;
  setBusy(true);
  let pending = false;
  const redraw = () => {
    pending = false;
    fillMessage(el, answer);
    scrollDown();
  };
  try {
    const resp = await fetch('/v1/chat/completions', {
      method: 'POST', headers: headers(), body: JSON.stringify(body), signal: controller.signal,
    });
    if (!resp.ok) throw new Error(await errorText(resp));
    await readStream(resp, (delta) => {
      answer.content += delta;
      if (!pending) {
        pending = true;
        requestAnimationFrame(redraw);
      }
    });
    answer.state = 'done';
  } catch (e) {
    if (controller.signal.aborted) {
      answer.state = 'stopped';
    } else {
      answer.state = 'error';
      answer.error = e.message;
    }
  } finally {
    state.controller = null;
    if (answer.state === 'error' && !answer.content) {
      // Nothing came back: drop the turn and give the question back to the input box.
      conv.messages.splice(conv.messages.indexOf(answer) - 1, 2);
      input.value = input.value || text;
      setStatus(answer.error);
      renderMessages();
    } else {
      fillMessage(el, answer);
      scrollDown();
    }
    saveConvs();
    renderList();
    setBusy(false);
  }
}

function stop() {
  if (state.controller) state.controller.abort();
}

function init() {
  state.convs = load(KEYS.convs, []);
  state.current = load(KEYS.current, null);
  // An answer cut off by a reload was stopped.
  for (const c of state.convs) for (const m of c.messages) if (m.state === 'streaming') m.state = 'stopped';
  if (!currentConv() && state.convs.length) state.current = state.convs[0].id;

  const s = load(KEYS.settings, {});
  if (s.temperature !== undefined) $('temperature').value = s.temperature;
  if (s.maxTokens !== undefined) $('max-tokens').value = s.maxTokens;
  if (s.system !== undefined) $('system').value = s.system;
  $('api-key').value = localStorage.getItem(KEYS.apiKey) || '';

  $('send').addEventListener('click', send);
  $('stop').addEventListener('click', stop);
  $('new-chat').addEventListener('click', () => {
    if (!state.controller) newConv();
  });
  $('input').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  for (const id of ['model', 'temperature', 'max-tokens', 'system']) $(id).addEventListener('change', saveSettings);
  $('api-key').addEventListener('change', () => {
    localStorage.setItem(KEYS.apiKey, $('api-key').value.trim());
    loadModels();
  });

  renderAll();
  setBusy(false);
  loadModels();
}

document.addEventListener('DOMContentLoaded', init);
