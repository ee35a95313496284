// Talking to this server's OpenAI API: the Authorization header from the key field,
// error messages from OpenAI-shaped bodies, and SSE streams read chunk by chunk.
'use strict';

function headers() {
  const h = { 'Content-Type': 'application/json' };
  const key = document.getElementById('api-key').value.trim();
  if (key) h.Authorization = 'Bearer ' + key;
  return h;
}

// The server's error message from an OpenAI-shaped error body.
async function errorText(resp) {
  const body = await resp.text();
  try {
    return 'HTTP ' + resp.status + ': ' + JSON.parse(body).error.message;
  } catch (_) {
    return 'HTTP ' + resp.status + ': ' + body;
  }
}

// Reads an SSE body, calling `onDelta` with each piece of content until [DONE].
async function readStream(resp, onDelta) {
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).replace(/\r$/, '');
      buf = buf.slice(nl + 1);
      if (!line.startsWith('data:')) continue;
      const data = line.slice(5).trim();
      if (data === '[DONE]') return;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
      if (delta && delta.content) onDelta(delta.content);
    }
  }
}
