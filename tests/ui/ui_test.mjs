// The raster page (GET /) in Debian's headless Chromium against the real server: API keys and
// their errors, the model list, a session opened from the page, a Fashion-MNIST test image
// from the server's dataset route, rate-coded and streamed; then, from the page's DOM, the
// raster must hold exactly the spikes the server sent (read by this script from the same
// session's /events and from the /steps answers the page received), the input raster what
// the server's events carry (`inputs`) or else what the page sent, the readout and the
// prediction the server's; the page's encoding must equal the engine's (/classify with the
// same seed gives the same readout). Then following a session a client drives, another key's
// session, an unknown id, a closed session, and a server without the dataset.
//   node tests/ui/ui_test.mjs     (from the repository root; SPIKESERVE_BUILD=build)
// Screenshots: $SPIKESERVE_BUILD/ui-test.png (and ui-test-follow.png).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BUILD = path.resolve(ROOT, process.env.SPIKESERVE_BUILD || 'build');
const KEYS = ['ui-key-one', 'ui-key-two'];
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let n = 0, failed = 0;
function ok(cond, what, detail) {
  n++;
  console.log(`${cond ? 'ok' : 'not ok'} ${n} - ${what}`);
  if (!cond) { failed++; if (detail !== undefined) console.log('#   ' + String(detail).slice(0, 2000).replace(/\n/g, '\n#   ')); }
  return cond;
}
const is = (got, want, what) => ok(got === want, `${what} (got ${JSON.stringify(got)}, want ${JSON.stringify(want)})`);
const diag = (s) => console.log('# ' + s);

const watchdog = setTimeout(() => { console.log('not ok - the test took over 240 s'); process.exit(1); }, 240000);

/* ---- the server ---- */
const servers = [];
async function startServer(extra) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spikeserve-ui-'));
  const portFile = path.join(dir, 'port'), log = fs.openSync(path.join(dir, 'server.log'), 'w');
  const args = ['--model-dir', path.join(ROOT, 'models/zoo'), '--bind', '127.0.0.1', '--port', '0',
    '--port-file', portFile, '--grpc-port', '0', '--workers', '2', ...extra];
  const proc = spawn(path.join(BUILD, 'spikeserve'), args, { stdio: ['ignore', log, log] });
  const s = { proc, dir, exited: null };
  proc.on('exit', (code, sig) => { s.exited = code ?? 128; s.signal = sig; });
  servers.push(s);
  for (let i = 0; i < 300 && !s.exited; i++) {
    if (fs.existsSync(portFile) && fs.readFileSync(portFile, 'utf8').trim()) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const port = fs.readFileSync(portFile, 'utf8').trim();
  s.base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try { if ((await fetch(s.base + '/readyz')).ok) break; } catch (e) { /* not yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  return s;
}
async function stopServer(s) {
  if (s.exited !== null) return s.exited;
  s.proc.kill('SIGTERM');
  for (let i = 0; i < 300 && s.exited === null; i++) await new Promise((r) => setTimeout(r, 50));
  if (s.exited === null) { s.proc.kill('SIGKILL'); return -1; }
  return s.exited;
}
function dumpLog(s) {
  try { diag('server log:\n' + fs.readFileSync(path.join(s.dir, 'server.log'), 'utf8').slice(-3000)); } catch (e) { /* none */ }
}

async function call(s, method, p, body, key = KEYS[0]) {
  const headers = { Accept: 'application/json' };
  if (key) headers.Authorization = 'Bearer ' + key;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(s.base + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch (e) { /* not JSON */ }
  return { status: r.status, json, text, ctype: r.headers.get('content-type') };
}

// This script's own subscriber to a session's events: every `step` event's data, parsed.
function subscribe(s, sid, key = KEYS[0]) {
  const ctl = new AbortController(), steps = [];
  const ready = fetch(`${s.base}/v1/sessions/${sid}/events`, {
    headers: { Authorization: 'Bearer ' + key, Accept: 'text/event-stream' }, signal: ctl.signal,
  }).then((res) => {
    const reader = res.body.getReader(), dec = new TextDecoder();
    let buf = '';
    (async () => {
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          buf += dec.decode(value, { stream: true });
          let k;
          while ((k = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, k); buf = buf.slice(k + 2);
            const ev = /^event: (.*)$/m.exec(block), data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
            if (ev && ev[1] === 'step') steps.push(JSON.parse(data));
          }
        }
      } catch (e) { /* aborted */ }
    })();
    return res.status;
  });
  return { ready, steps, close: () => ctl.abort() };
}

const key3 = (t, i) => `${t}:${i}`;
// Compare [[t, index, value]] lists (absolute steps) as multisets; values to 1e-6 relative.
function sameSpikes(got, want) {
  if (!Array.isArray(got)) return 'not a list';
  if (got.length !== want.length) return `${got.length} spikes, want ${want.length}`;
  const m = new Map();
  for (const [t, i, v] of want) { const k = key3(t, i); m.set(k, (m.get(k) || 0) + v); }
  for (const [t, i, v] of got) {
    const k = key3(t, i);
    if (!m.has(k)) return `unexpected spike at step ${t}, index ${i}`;
    const w = m.get(k);
    if (Math.abs(w - v) > 1e-6 * Math.max(1, Math.abs(w))) return `step ${t}, index ${i}: value ${v}, want ${w}`;
    m.delete(k);
  }
  return m.size ? `${m.size} spikes missing` : '';
}
const absolute = (results, field) => results.flatMap((r) => (r[field] || []).map(([s, i, v]) => [r.t0 + s, i, v ?? 1]));

async function waitFor(page, fn, arg, what, timeout = 20000) {
  try { await page.waitForFunction(fn, arg, { timeout }); return true; } catch (e) {
    ok(false, 'waiting for ' + what, e.message.split('\n')[0]); return false;
  }
}
const rasterData = async (page) => JSON.parse(await page.textContent('#raster-data'));
const errorText = async (page) => (await page.isVisible('#error')) ? (await page.textContent('#error-text')) : '';

async function main() {
  const srv = await startServer(['--api-keys', KEYS.join(','), '--access-log', '0']);
  diag('server at ' + srv.base);
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
  try {
    await run(srv, browser);
  } finally {
    await browser.close();
    const code = await stopServer(srv);
    is(code, 0, 'the server exits 0 on SIGTERM');
    if (failed) dumpLog(srv);
    for (const s of servers) { await stopServer(s); fs.rmSync(s.dir, { recursive: true, force: true }); }
  }
}

async function newPage(browser, srv, outside) {
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 980 }, deviceScaleFactor: 1 });
  const page = await ctx.newPage();
  const host = new URL(srv.base).host;
  // nothing but this server may be asked for anything
  await page.route('**/*', (route) => {
    const u = new URL(route.request().url());
    if (u.host === host || u.protocol === 'data:' || u.protocol === 'blob:') return route.continue();
    outside.push(u.href);
    return route.abort();
  });
  page.on('pageerror', (e) => outside.push('page error: ' + e.message));
  return page;
}

async function run(srv, browser) {
  /* ---- the routes themselves ---- */
  const html = await call(srv, 'GET', '/', undefined, null);
  is(html.status, 200, 'GET / needs no API key');
  ok(/^text\/html/.test(html.ctype || ''), 'GET / is HTML', html.ctype);
  ok(!/(src|href|url)\s*[=(]\s*["']?(https?:)?\/\//i.test(html.text) && !/@import/i.test(html.text),
    'the page names no outside address for a script, style, font or image');
  ok((await call(srv, 'GET', '/ui', undefined, null)).text === html.text, 'GET /ui is the same page');
  is((await call(srv, 'GET', '/ui/fmnist/0', undefined, null)).status, 401, 'a test image needs the key');
  const img0 = await call(srv, 'GET', '/ui/fmnist/0');
  is(img0.status, 200, 'GET /ui/fmnist/0');
  ok(img0.json && img0.json.pixels.length === 784 && img0.json.pixels.every((p) => p >= 0 && p <= 255 && p === Math.round(p)),
    'test image 0 has 784 pixels in 0..255');
  is(img0.json && img0.json.label_name, 'Ankle boot', 'test image 0 is the ankle boot (class 9)');
  const bad = await call(srv, 'GET', '/ui/fmnist/abc');
  ok(bad.status === 400 && /index "abc"/.test(bad.json.error.message), 'a bad index: 400 naming it', bad.text);
  const far = await call(srv, 'GET', '/ui/fmnist/10000');
  ok(far.status === 404 && /0\.\.9999/.test(far.json.error.message), 'index 10000: 404 with the range', far.text);

  /* ---- keys and their errors in plain words ---- */
  const outside = [];
  const page = await newPage(browser, srv, outside);
  await page.goto(srv.base + '/');
  await waitFor(page, () => !document.getElementById('error').hidden, null, 'an error without a key');
  ok(/needs an API key/.test(await errorText(page)), 'no key: the page says the server needs one', await errorText(page));
  await page.fill('#key', 'not-a-key'); await page.dispatchEvent('#key', 'change');
  await waitFor(page, () => /does not know/.test(document.getElementById('error-text').textContent), null, 'the unknown-key error');
  ok(/does not know this API key/.test(await errorText(page)), 'a wrong key: the page says so', await errorText(page));
  await page.fill('#key', KEYS[0]); await page.dispatchEvent('#key', 'change');
  await waitFor(page, () => document.querySelectorAll('#model option').length > 0, null, 'the model list');
  const names = await page.$$eval('#model option', (os) => os.map((o) => o.value));
  const listed = (await call(srv, 'GET', '/v1/models')).json.models.map((m) => m.name);
  is(names.join(','), listed.join(','), 'the page lists the server\'s models');
  ok(await page.isHidden('#error'), 'the error is gone once the key is right');

  /* ---- open a session, load an image, stream it ---- */
  await page.selectOption('#model', 'fmnist');
  ok(/784 → 256 → 256 → 10/.test(await page.textContent('#model-info')), 'the model\'s layers are shown', await page.textContent('#model-info'));
  await page.click('#open');
  await waitFor(page, () => document.getElementById('conn').textContent === 'live', null, 'following the new session');
  const sid = await page.inputValue('#sid');
  ok(/^[0-9a-f]{32}$/.test(sid), 'the page opened a session: ' + sid);
  const info = await call(srv, 'GET', `/v1/sessions/${sid}`);
  is(info.json && info.json.model, 'fmnist', 'the server has that session on fmnist');

  const mine = subscribe(srv, sid);
  is(await mine.ready, 200, 'this script follows the same session\'s events');
  await page.fill('#index', '0'); await page.click('#load');
  await waitFor(page, () => /Ankle boot/.test(document.getElementById('img-info').textContent), null, 'the image label');
  is(+(await page.getAttribute('#img', 'data-sum')), img0.json.pixels.reduce((a, b) => a + b, 0),
    'the page shows the server\'s pixels (sum)');

  const seed = 7, sent = [], answers = [];
  page.on('request', (r) => { if (r.method() === 'POST' && /\/steps$/.test(r.url())) sent.push(JSON.parse(r.postData())); });
  page.on('response', async (r) => {
    if (r.request().method() !== 'POST' || !/\/steps$/.test(r.url())) return;
    const k = answers.length; // in the order the answers came (the page sends one at a time)
    answers.push(null);
    answers[k] = { status: r.status(), body: await r.json().catch(() => null) };
  });
  await page.fill('#seed', String(seed)); await page.fill('#chunk', '5');
  await page.uncheck('#reset'); // a new session: no reset (a reset would end this script's stream)
  await page.click('#stream');
  await waitFor(page, () => document.body.dataset.busy === '0' && !document.getElementById('stream').disabled, null, 'the stream to finish');
  // the response handler reads each body asynchronously: let the last ones land
  const settle = async () => {
    for (let i = 0; i < 100 && (answers.length < sent.length || answers.includes(null)); i++) await new Promise((r) => setTimeout(r, 50));
  };
  await settle();
  const model = (await call(srv, 'GET', '/v1/models/fmnist')).json;
  const total = model.encoding.warmup_steps + model.encoding.steps;
  is(sent.length, Math.ceil(total / 5), `the page sent ${total} steps in batches of 5`);
  ok(answers.length === sent.length && answers.every((a) => a.status === 200), 'every batch answered 200',
    JSON.stringify(answers.map((a) => a.status)));
  ok(sent.every((b, k) => b.seq === k + 1 && b.steps === 5), 'batches carry seq 1.. and 5 steps each');
  await waitFor(page, (k) => +document.body.dataset.exported === k, sent.length, 'the page to export its data');
  for (let i = 0; i < 100 && mine.steps.length < sent.length; i++) await new Promise((r) => setTimeout(r, 50));
  is(mine.steps.length, sent.length, 'this script saw one step event per batch');

  const d = await rasterData(page);
  const results = answers.map((a) => a.body);
  const serverSpikes = absolute(mine.steps, 'spikes');
  ok(serverSpikes.length > 0, `the server sent spikes (${serverSpikes.length})`);
  ok(!sameSpikes(absolute(results, 'spikes'), serverSpikes), 'the events and the /steps answers agree');
  let why = sameSpikes(d.spikes, serverSpikes);
  ok(!why, `the page's raster holds exactly the spikes the server sent (${d.spikes.length})`, why);
  const withInputs = mine.steps.every((r) => Array.isArray(r.inputs));
  const wantInputs = withInputs ? absolute(mine.steps, 'inputs')
    : sent.flatMap((b, k) => b.events.map(([s, i, v]) => [results[k].t0 + s, i, v ?? 1]));
  is(d.input_source, withInputs ? 'server' : 'page', 'the input raster\'s source');
  diag(withInputs ? 'the step events carry `inputs`: the input raster is checked against the server\'s'
    : 'the step events carry no `inputs`: the input raster is checked against what the page sent');
  why = sameSpikes(d.inputs, wantInputs);
  ok(wantInputs.length > 100 && !why, `the input raster holds the ${wantInputs.length} input events`, why);
  const shown = await page.$eval('#c-out', (c) => [+c.dataset.shown, +c.dataset.count]);
  is(shown[0], serverSpikes.length, 'every spike is inside the raster\'s window');
  // the canvas really has them: count the plot's pixels that are not the background
  const painted = await page.$eval('#c-out', (c) => {
    const g = c.getContext('2d').getImageData(62, 8, c.width - 76, c.height - 42).data;
    let k = 0;
    for (let i = 0; i < g.length; i += 4) if (g[i] + g[i + 1] + g[i + 2] > 200) k++;
    return k;
  });
  ok(painted > serverSpikes.length / 4, `the raster canvas is painted (${painted} bright pixels)`);

  const last = mine.steps[mine.steps.length - 1];
  const pred = await page.$eval('#prediction', (e) => ({ index: e.dataset.index, label: e.dataset.label }));
  is(+pred.index, last.prediction.index, 'the prediction shown is the server\'s for the last step');
  is(await page.textContent('#pred-text'), last.prediction.label, 'the label shown is the server\'s');
  ok(d.readout_last && d.readout_last.every((v, k) => Math.abs(v - last.readout[k]) < 1e-6),
    'the readout plot ends at the server\'s last readout');
  is(d.t_end, total, 'the plots end at the last step');

  // the page's rate coding is the engine's: /classify with the same seed, the same readout
  const cls = await call(srv, 'POST', '/v1/models/fmnist/classify',
    { values: img0.json.pixels.map((p) => p / 255), seed, outputs: ['readout'] });
  ok(cls.status === 200 && cls.json.readout.every((v, k) => Math.abs(v - last.readout[k]) <= 1e-5 * Math.max(1, Math.abs(v))),
    'the page encodes like the engine: /classify with the same seed gives the same readout',
    JSON.stringify([cls.json && cls.json.readout, last.readout]));
  is(cls.json.prediction.index, last.prediction.index, '... and the same prediction');

  fs.mkdirSync(BUILD, { recursive: true });
  await page.screenshot({ path: path.join(BUILD, 'ui-test.png'), fullPage: true });
  diag('screenshot: ' + path.join(BUILD, 'ui-test.png'));

  // a second image without a reset: the plots continue after step `total`
  await page.fill('#index', '1'); await page.click('#load');
  await waitFor(page, () => /Test image 1 /.test(document.getElementById('img-info').textContent), null, 'image 1');
  await page.uncheck('#reset');
  const before = sent.length;
  await page.click('#stream');
  await waitFor(page, (k) => +document.body.dataset.exported >= k && document.body.dataset.busy === '0', before * 2, 'the second image');
  await settle();
  const d2 = await rasterData(page);
  is(d2.t_end, 2 * total, 'without a reset the session goes on (t_end doubles)');
  is(sent[before].seq, before + 1, 'the page continues the session\'s seq');
  mine.close();

  // with a reset: the session starts over at step 0 and seq 1, and so do the plots
  await page.check('#reset');
  const before2 = sent.length;
  await page.click('#stream');
  await waitFor(page, (k) => document.body.dataset.busy === '0' && +document.body.dataset.exported === k,
    Math.ceil(total / 5), 'the image after a reset');
  await settle();
  const d3 = await rasterData(page);
  ok(d3.t_start === 0 && d3.t_end === total && d3.batches === Math.ceil(total / 5),
    'after a reset the plots start over at step 0', JSON.stringify([d3.t_start, d3.t_end, d3.batches]));
  is(sent[before2] && sent[before2].seq, 1, 'after a reset the page numbers batches from seq 1 again');
  const lastAnswer = answers[answers.length - 1].body;
  why = sameSpikes(d3.spikes, absolute(answers.slice(before2).map((a) => a.body), 'spikes'));
  ok(!why, 'after a reset the raster holds that run\'s spikes only', why);
  is(+(await page.getAttribute('#prediction', 'data-index')), lastAnswer.prediction.index,
    'after a reset the prediction is the last answer\'s');

  // the previous image's text would match at once: blank it, so that the wait sees the new
  // one (loadImage sets #index, the text and the canvas's data-sum in one task)
  await page.evaluate(() => { document.getElementById('img-info').textContent = ''; });
  await page.click('#random');
  await waitFor(page, () => /^Test image \d+ of 10000/.test(document.getElementById('img-info').textContent), null, 'a random image');
  const rnd = +(await page.inputValue('#index'));
  const rimg = await call(srv, 'GET', `/ui/fmnist/${rnd}`);
  is(+(await page.getAttribute('#img', 'data-sum')), rimg.json.pixels.reduce((a, b) => a + b, 0), `Random loads a test image (${rnd})`);

  /* ---- follow a session that a client drives ---- */
  const outside2 = [];
  const watcher = await newPage(browser, srv, outside2);
  await watcher.goto(srv.base + '/');
  await watcher.fill('#key', KEYS[0]); await watcher.dispatchEvent('#key', 'change');
  const opened = await call(srv, 'POST', '/v1/models/fmnist-wide/sessions', {});
  const csid = opened.json.session_id;
  await watcher.fill('#sid', csid); await watcher.click('#attach');
  await waitFor(watcher, () => document.getElementById('conn').textContent === 'live', null, 'following the client\'s session');
  ok(!(await watcher.isChecked('#reset')), 'following a session by id unticks "reset before the image" (it is not ours to reset)');
  const client = [];
  for (let b = 1; b <= 4; b++) {
    const events = [];
    for (let s = 0; s < 10; s++) for (let i = 0; i < 784; i += 3) if ((i * 7 + s * 13 + b) % 5 === 0) events.push([s, i]);
    const r = await call(srv, 'POST', `/v1/sessions/${csid}/steps`, { seq: b, steps: 10, events, outputs: ['spikes', 'readout'] });
    client.push({ req: events, res: r.json });
  }
  await waitFor(watcher, () => +document.body.dataset.exported === 4, null, 'the watcher to see four batches');
  const w = await rasterData(watcher);
  why = sameSpikes(w.spikes, absolute(client.map((c) => c.res), 'spikes'));
  ok(!why, `the follower's raster holds the client's spikes (${w.spikes.length})`, why);
  if (w.input_source === 'server') {
    why = sameSpikes(w.inputs, client.flatMap((c) => c.req.map(([s, i]) => [c.res.t0 + s, i, 1])));
    ok(!why, 'the follower draws the client\'s inputs from the events', why);
  } else {
    const note = await watcher.textContent('#in-note');
    ok(w.input_source === 'none' && w.n_inputs === 0 && /carry no inputs/.test(note),
      'without `inputs` in the events the follower draws no inputs, and says so', JSON.stringify([w.input_source, w.n_inputs, note]));
  }
  is(+(await watcher.getAttribute('#prediction', 'data-index')), client[3].res.prediction.index, 'the follower shows the client\'s last prediction');
  ok(/fmnist-wide/.test(await watcher.textContent('#status')), 'the follower names the session\'s model');
  await watcher.screenshot({ path: path.join(BUILD, 'ui-test-follow.png'), fullPage: true });
  // the client closes the session: the page says so
  await call(srv, 'DELETE', `/v1/sessions/${csid}`);
  await waitFor(watcher, () => document.getElementById('conn').textContent === 'ended', null, 'the end of the stream');
  ok(/session was closed/.test(await errorText(watcher)), 'a closed session: the page says it was closed', await errorText(watcher));

  /* ---- sessions the page cannot follow ---- */
  await watcher.fill('#sid', 'no-such-session-0000'); await watcher.click('#attach');
  await waitFor(watcher, () => /no such session/.test(document.getElementById('error-text').textContent), null, 'the unknown-session error');
  ok(/no such session/.test(await errorText(watcher)), 'an unknown id: "there is no such session"', await errorText(watcher));
  await watcher.fill('#key', KEYS[1]); await watcher.dispatchEvent('#key', 'change');
  await watcher.fill('#sid', sid); await watcher.click('#attach');
  await waitFor(watcher, () => /another API key/.test(document.getElementById('error-text').textContent), null, 'the other-key error');
  ok(/no such session.*another API key/.test(await errorText(watcher)), 'another key\'s session is not found, and the page says why', await errorText(watcher));
  is(outside.concat(outside2).join(' '), '', 'the pages asked for nothing outside the server and threw no error');

  /* ---- a server without the dataset ---- */
  const bare = await startServer(['--ui-dataset-dir', path.join(os.tmpdir(), 'no-fmnist-here'), '--access-log', '0']);
  const p3 = await newPage(browser, bare, []);
  await p3.goto(bare.base + '/');
  await waitFor(p3, () => document.querySelectorAll('#model option').length > 0, null, 'the models (no keys)');
  await p3.click('#load');
  await waitFor(p3, () => !document.getElementById('error').hidden, null, 'the missing-dataset error');
  ok(/not installed.*dataset-fashion-mnist/.test(await errorText(p3)), 'no dataset: the page says it is not installed and which package', await errorText(p3));
  is((await call(bare, 'GET', '/ui/fmnist/0', undefined, null)).status, 404, 'no dataset: 404');
  // an uploaded picture (this test's own screenshot: dark, so not inverted), then cleared
  await p3.setInputFiles('#upload', path.join(BUILD, 'ui-test.png'));
  await waitFor(p3, () => /Uploaded ui-test\.png/.test(document.getElementById('img-info').textContent), null, 'the upload');
  ok(+(await p3.getAttribute('#img', 'data-sum')) > 0, 'an uploaded picture becomes the image');
  await p3.click('#clear');
  is(+(await p3.getAttribute('#img', 'data-sum')), 0, 'Clear blanks it');
  // a drawn image streams without the dataset
  await p3.click('#open');
  await waitFor(p3, () => document.getElementById('conn').textContent === 'live', null, 'a session on the bare server');
  const box = await p3.locator('#img').boundingBox();
  await p3.mouse.move(box.x + 30, box.y + 20); await p3.mouse.down();
  for (let k = 0; k <= 20; k++) await p3.mouse.move(box.x + 30 + k * 4, box.y + 20 + k * 5);
  await p3.mouse.up();
  ok(+(await p3.getAttribute('#img', 'data-sum')) > 5000, 'drawing with the mouse paints the image');
  await p3.click('#stream');
  await waitFor(p3, () => document.body.dataset.busy === '0' && +document.body.dataset.exported === 6, null, 'the drawn image streamed');
  const dd = await rasterData(p3);
  ok(dd.n_inputs > 50 && dd.prediction && dd.prediction.index >= 0, `a drawn image streams and is classified (${dd.n_inputs} input spikes, ${dd.prediction && dd.prediction.label})`);
}

main().catch((e) => { ok(false, 'the test ran to its end', e.stack); }).finally(() => {
  clearTimeout(watchdog);
  console.log(`# ${n - failed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
});
