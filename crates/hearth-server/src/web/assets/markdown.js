// A small, safe markdown renderer for model answers. Every piece of the model's text
// is HTML-escaped before any markup is added, and the only markup is made here, so no
// raw HTML from the model ever reaches the page. Links are kept only for http(s).
'use strict';

const Markdown = (() => {
  const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
  const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => ESC[c]);

  const LIST_ITEM = /^\s*([-*+]|\d{1,9}[.)])\s+(.*)$/;
  const FENCE = /^\s*(```|~~~)\s*([\w+#.-]*)/;
  const HEADING = /^(#{1,6})\s+(.*)$/;
  const RULE = /^\s*(-{3,}|\*{3,}|_{3,})\s*$/;
  const QUOTE = /^\s*&gt;\s?(.*)$/;
  // Matched on escaped text: the URL holds no quote or angle bracket by then.
  const LINK = /\[([^\]\n]+)\]\((https?:\/\/[^\s()]+)\)/g;

  // Bold, italic and strike-through on escaped text.
  function emphasis(s) {
    return s
      .replace(/\*\*(?=\S)([^*]*?\S)\*\*/g, '<strong>$1</strong>')
      .replace(/__(?=\S)([^_]*?\S)__/g, '<strong>$1</strong>')
      .replace(/~~(?=\S)([^~]*?\S)~~/g, '<del>$1</del>')
      .replace(/(^|[^\w*])\*(?=\S)([^*]*?\S)\*(?![\w*])/g, '$1<em>$2</em>')
      .replace(/(^|[^\w])_(?=\S)([^_]*?\S)_(?!\w)/g, '$1<em>$2</em>');
  }

  // Links in escaped text; the text around and inside them gets emphasis.
  function links(s) {
    let out = '';
    let last = 0;
    for (const m of s.matchAll(LINK)) {
      out += emphasis(s.slice(last, m.index));
      out += '<a href="' + m[2] + '" rel="noopener noreferrer" target="_blank">' + emphasis(m[1]) + '</a>';
      last = m.index + m[0].length;
    }
    return out + emphasis(s.slice(last));
  }

  // Inline markup of escaped text: code spans are left as they are.
  function inline(escaped) {
    return escaped
      .split(/(`[^`\n]+`)/)
      .map((part, i) => (i % 2 ? '<code>' + part.slice(1, -1) + '</code>' : links(part)))
      .join('');
  }

  function startsBlock(line) {
    return FENCE.test(line) || HEADING.test(line) || LIST_ITEM.test(line) || RULE.test(line) || QUOTE.test(line);
  }

  // Markdown text (unescaped, from the model) to safe HTML.
  function render(text) {
    const lines = escapeHtml(text).replace(/\r\n?/g, '\n').split('\n');
    const out = [];
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      const fence = line.match(FENCE);
      if (fence) {
        const code = [];
        i++;
        // An unclosed fence runs to the end (the answer may still be streaming).
        while (i < lines.length && !lines[i].trim().startsWith(fence[1])) code.push(lines[i++]);
        i++;
        const cls = fence[2] ? ' class="language-' + fence[2] + '"' : '';
        out.push('<pre><code' + cls + '>' + code.join('\n') + '</code></pre>');
        continue;
      }
      if (!line.trim()) {
        i++;
        continue;
      }
      const h = line.match(HEADING);
      if (h) {
        const n = h[1].length;
        out.push('<h' + n + '>' + inline(h[2]) + '</h' + n + '>');
        i++;
        continue;
      }
      if (RULE.test(line)) {
        out.push('<hr>');
        i++;
        continue;
      }
      if (LIST_ITEM.test(line)) {
        const ordered = /^\s*\d/.test(line);
        const items = [];
        let m;
        while (i < lines.length && (m = lines[i].match(LIST_ITEM)) && /^\s*\d/.test(lines[i]) === ordered) {
          items.push('<li>' + inline(m[2]) + '</li>');
          i++;
        }
        const start = ordered ? parseInt(line.trim(), 10) : 1;
        const open = ordered ? (start !== 1 ? '<ol start="' + start + '">' : '<ol>') : '<ul>';
        out.push(open + items.join('') + (ordered ? '</ol>' : '</ul>'));
        continue;
      }
      if (QUOTE.test(line)) {
        const quoted = [];
        let m;
        while (i < lines.length && (m = lines[i].match(QUOTE))) {
          quoted.push(inline(m[1]));
          i++;
        }
        out.push('<blockquote>' + quoted.join('<br>') + '</blockquote>');
        continue;
      }
      const para = [];
      while (i < lines.length && lines[i].trim() && !startsBlock(lines[i])) para.push(inline(lines[i++]));
      out.push('<p>' + para.join('<br>') + '</p>');
    }
    return out.join('');
  }

  return { render, escapeHtml };
})();
