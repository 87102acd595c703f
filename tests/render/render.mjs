// Renders rollguard's Markdown reports as GitHub shows them: marked (GFM)
// to HTML, mermaid to SVG, in headless Chromium; measures the result and
// keeps a PNG screenshot of each.
//
//   node render.mjs MANIFEST.json NODE_MODULES_DIR
//
// The manifest lists { name, markdown, png, visible: [text…] }. Prints one
// JSON object per report on stdout: what the page shows (chart ticks,
// series, legend, verdict mark, repeated sentences, visible escapes, which
// of the `visible` texts can be seen without clicking).

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';

const [manifestPath, modules] = process.argv.slice(2);
const require = createRequire(join(modules, 'noop.js'));
const { chromium } = require('playwright-core');
const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
const markedJs = join(modules, 'marked', 'lib', 'marked.umd.js');
const mermaidJs = join(modules, 'mermaid', 'dist', 'mermaid.min.js');

const profile = mkdtempSync(join(tmpdir(), 'rollguard-chromium-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
  viewport: { width: 900, height: 800 },
});

try {
  for (const item of manifest) {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    // Nothing leaves the machine: the page is built from local files only.
    await page.route('**/*', (route) => route.abort());
    await page.setContent(
      '<!doctype html><html><head><meta charset="utf-8"><style>' +
        'body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:860px;margin:16px;' +
        'font-size:14px;line-height:1.5;color:#1f2328}' +
        'table{border-collapse:collapse}td,th{border:1px solid #d0d7de;padding:4px 10px}' +
        'pre{background:#f6f8fa;padding:8px;overflow:auto;white-space:pre-wrap}' +
        'code{background:#eff1f3;padding:0 3px}' +
        '</style></head><body><article id="md"></article></body></html>',
    );
    await page.addScriptTag({ path: markedJs });
    await page.addScriptTag({ path: mermaidJs });
    const result = await page.evaluate(async ({ markdown, visible }) => {
      const root = document.getElementById('md');
      root.innerHTML = window.marked.parse(markdown, { gfm: true });
      // GitHub draws ```mermaid blocks as diagrams.
      const blocks = [...root.querySelectorAll('pre > code.language-mermaid')];
      const nodes = blocks.map((code) => {
        const div = document.createElement('div');
        div.className = 'mermaid';
        div.textContent = code.textContent;
        code.parentElement.replaceWith(div);
        return div;
      });
      window.mermaid.initialize({ startOnLoad: false, securityLevel: 'strict' });
      let mermaidError = null;
      if (nodes.length) {
        try {
          await window.mermaid.run({ nodes });
        } catch (e) {
          mermaidError = String(e);
        }
      }
      const charts = [...root.querySelectorAll('div.mermaid svg')].map((svg) => {
        const texts = (sel) => [...svg.querySelectorAll(sel)].map((t) => t.textContent.trim());
        const box = svg.getBoundingClientRect();
        return {
          xTicks: texts('.bottom-axis .label text'),
          yTicks: texts('.left-axis .label text'),
          lines: svg.querySelectorAll('.line-plot-0 path, [class*="line-plot"] path').length,
          lineColors: [...svg.querySelectorAll('[class*="line-plot"] path')].map((p) => p.getAttribute('stroke')),
          bars: svg.querySelectorAll('[class*="bar-plot"] rect').length,
          width: box.width,
          height: box.height,
        };
      });
      // The visible text, as a reader sees it (closed <details> hide theirs).
      const text = root.innerText;
      const sentences = [];
      for (const el of root.querySelectorAll('h1,h2,h3,h4,p,li,td,pre,summary')) {
        if (!el.checkVisibility()) continue;
        if (el.closest('pre') && el.tagName !== 'PRE') continue;
        // Only the element's own text (a list item's nested list is its own).
        const own = el.tagName === 'LI'
          ? [...el.childNodes].filter((n) => n.nodeType === 3 || !['UL', 'OL'].includes(n.tagName)).map((n) => n.textContent).join('')
          : el.innerText;
        for (const line of own.split('\n')) {
          for (const s of line.split(/(?<=[.!?])\s+/)) {
            const t = s.trim();
            if (t.length >= 30) sentences.push(t);
          }
        }
      }
      const seen = new Map();
      for (const s of sentences) seen.set(s, (seen.get(s) || 0) + 1);
      const repeated = [...seen].filter(([, n]) => n > 1).map(([s]) => s);
      // Markdown or HTML that did not render: entities, backslash escapes,
      // emphasis markers, fences, tags.
      const escapes = [];
      const patterns = [/&(amp|lt|gt|quot|#\d+);/, /\\[\\`*_\[\]#|!~<>-]/, /\*\*/, /```/, /<\/?(details|summary|sub|br)>/];
      for (const el of root.querySelectorAll('h1,h2,h3,h4,p,li,td,summary')) {
        if (!el.checkVisibility()) continue;
        for (const p of patterns) {
          const m = el.innerText.match(p);
          if (m) escapes.push(`${m[0]} in: ${el.innerText.slice(0, 120)}`);
        }
      }
      // Which of the expected texts can be seen without opening anything.
      const shown = {};
      for (const want of visible) {
        const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
        let ok = false;
        for (let n = walker.nextNode(); n; n = walker.nextNode()) {
          if (n.textContent.includes(want) && n.parentElement.checkVisibility()) {
            ok = true;
            break;
          }
        }
        shown[want] = ok;
      }
      return {
        charts,
        mermaidError,
        text,
        repeated,
        escapes,
        shown,
        closedDetails: root.querySelectorAll('details:not([open])').length,
        height: document.body.scrollHeight,
      };
    }, { markdown: readFileSync(item.markdown, 'utf8'), visible: item.visible });
    await page.screenshot({ path: item.png, fullPage: true });
    const chartPng = item.png.replace(/\.png$/, '-chart.png');
    const svg = await page.$('div.mermaid svg');
    if (svg) await svg.screenshot({ path: chartPng });
    result.name = item.name;
    result.pageErrors = errors;
    process.stdout.write(JSON.stringify(result) + '\n');
    await page.close();
  }
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
