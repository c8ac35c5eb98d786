// bench_ui.mjs: how fast the raster page (GET /) takes in and draws spikes, in Debian's
// headless Chromium (software rendering: --disable-gpu). Never pass/fail: prints a table.
//   node tests/bench/bench_ui.mjs [--seconds S]    (make bench-ui; SPIKESERVE_BUILD=build)
//
// 1. Drawing: the page's own draw() (three canvases: input raster, last-layer raster,
//    readout) with N spikes in the window, N = 1k .. 1M; made-up step results of 784 inputs
//    and 512 neurons fed through the same ingest() the event stream uses (JSON text parsed,
//    as it arrives). Per N: ms per frame (median of 15).
// 2. Ingest: JSON.parse + ingest of step results, spikes per second (no drawing).
// 3. Live: a real session on models/zoo/fmnist-wide followed by the page while this script
//    POSTs batches as fast as the server answers (rate-coded test images, 10 steps per batch,
//    outputs spikes + readout_all) for S seconds; the spikes per second the server sent, the
//    page received and drew, frames drawn, draw time per frame, and whether the page saw
//    every batch.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const { chromium } = createRequire(path.join(ROOT, 'tests/ui/package.json'))('playwright-core');
const BUILD = path.resolve(ROOT, process.env.SPIKESERVE_BUILD || 'build');
const seconds = +(process.argv[process.argv.indexOf('--seconds') + 1] || 0) || 10;
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spikeserve-bench-ui-'));
const portFile = path.join(dir, 'port');
const server = spawn(path.join(BUILD, 'spikeserve'), ['--model-dir', path.join(ROOT, 'models/zoo'),
  '--bind', '127.0.0.1', '--port', '0', '--port-file', portFile, '--grpc-port', '0', '--workers', '1', '--access-log', '0'],
{ stdio: ['ignore', 'ignore', fs.openSync(path.join(dir, 'server.log'), 'w')] });
let browser;
const stop = async () => {
  if (browser) await browser.close().catch(() => {});
  server.kill('SIGTERM');
  fs.rmSync(dir, { recursive: true, force: true });
};
const bound = setTimeout(async () => { console.error('bench_ui: over 5 minutes, stopping'); await stop(); process.exit(1); }, 300000);

async function main() {
  for (let i = 0; i < 300 && !(fs.existsSync(portFile) && fs.readFileSync(portFile, 'utf8').trim()); i++)
    await new Promise((r) => setTimeout(r, 50));
  const base = `http://127.0.0.1:${fs.readFileSync(portFile, 'utf8').trim()}`;
  for (let i = 0; i < 100; i++) {
    try { if ((await fetch(base + '/readyz')).ok) break; } catch (e) { /* not yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: FLAGS });
  const page = await (await browser.newContext({ viewport: { width: 1440, height: 980 } })).newPage();
  await page.goto(base + '/');
  await page.waitForFunction(() => document.querySelectorAll('#model option').length > 0);
  const ver = browser.version();

  /* 1 and 2: drawing and ingest, in the page */
  const rows = await page.evaluate(async () => {
    const { ingest, draw, resetPlots, setShape } = window.ssui;
    const labels = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
    let seed = 12345;
    const rnd = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x80000000; };
    // a step result of `steps` steps with about `per` spikes in all (60 % outputs, 40 % inputs)
    const result = (t0, steps, per) => {
      const spikes = [], inputs = [], ro = [];
      for (let s = 0; s < steps; s++) {
        for (let k = 0; k < per * 0.6 / steps; k++) spikes.push([s, (rnd() * 512) | 0, +rnd().toFixed(6)]);
        for (let k = 0; k < per * 0.4 / steps; k++) inputs.push([s, (rnd() * 784) | 0, 1]);
        ro.push(labels.map(() => +(rnd() * 4 - 2).toFixed(5)));
      }
      spikes.sort((a, b) => a[0] - b[0]); inputs.sort((a, b) => a[0] - b[0]);
      return JSON.stringify({ session_id: 'bench', seq: t0 / steps + 1, t0, steps, spikes, inputs,
        readout_steps: ro, prediction: { index: 3, label: 'Dress' } });
    };
    document.getElementById('window').value = '300';
    const out = [];
    for (const n of [1000, 10000, 100000, 1000000]) {
      setShape(784, 512, labels); resetPlots();
      const steps = 10, batches = 30, per = n / batches; // 300 steps: the window
      const texts = []; for (let b = 0; b < batches; b++) texts.push(result(b * steps, steps, per));
      const bytes = texts.reduce((a, t) => a + t.length, 0);
      const t0 = performance.now();
      for (const t of texts) ingest(JSON.parse(t));
      const ingestMs = performance.now() - t0;
      const times = [];
      for (let k = 0; k < 15; k++) { const a = performance.now(); draw(); times.push(performance.now() - a); }
      times.sort((a, b) => a - b);
      const c = document.getElementById('c-out');
      out.push({ n: window.ssui.D.inp.n + window.ssui.D.out.n, ms: times[7], ingestMs, bytes,
        shown: +c.dataset.shown + +document.getElementById('c-in').dataset.shown });
    }
    resetPlots();
    return out;
  });

  /* 3: live, from a real session */
  await page.selectOption('#model', 'fmnist-wide');
  await page.click('#open');
  await page.waitForFunction(() => document.getElementById('conn').textContent === 'live');
  const sid = await page.inputValue('#sid');
  const imgs = [];
  for (let i = 0; i < 16; i++) imgs.push((await (await fetch(`${base}/ui/fmnist/${i}`)).json()).pixels);
  const model = await (await fetch(`${base}/v1/models/fmnist-wide`)).json();
  const gain = model.encoding.gain;
  const bodies = [];
  let seedv = 1;
  const rnd = () => { seedv = (seedv * 1103515245 + 12345) & 0x7fffffff; return seedv / 0x80000000; };
  for (let b = 0; b < 48; b++) { // 48 batches of 10 steps: 3 per image
    const px = imgs[Math.floor(b / 3)], events = [];
    for (let s = 0; s < 10; s++) for (let j = 0; j < 784; j++) if (rnd() < Math.min(1, gain * px[j] / 255)) events.push([s, j]);
    bodies.push(events);
  }
  await page.evaluate(() => { const D = window.ssui.D; D.frames = 0; D.drawTotalMs = 0; });
  const t0 = Date.now();
  let seq = 0, sentOut = 0, sentIn = 0;
  while (Date.now() - t0 < seconds * 1000) {
    const r = await fetch(`${base}/v1/sessions/${sid}/steps`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ seq: ++seq, steps: 10, events: bodies[seq % bodies.length], outputs: ['spikes', 'readout_all'] }) });
    const j = await r.json();
    if (!r.ok) throw new Error(JSON.stringify(j));
    sentOut += j.spikes.length; sentIn += bodies[seq % bodies.length].length;
  }
  const wall = (Date.now() - t0) / 1000;
  await page.waitForFunction((k) => window.ssui.D.lastSeq === k, seq, { timeout: 30000 }).catch(() => {});
  const live = await page.evaluate(() => {
    const D = window.ssui.D;
    return { batches: D.nBatches, recOut: D.totalOut, recIn: D.totalIn, frames: D.frames, drawMs: D.drawTotalMs / Math.max(1, D.frames),
      inView: +document.getElementById('c-out').dataset.shown + +document.getElementById('c-in').dataset.shown,
      source: D.inputSource };
  });

  const f = (x, d = 0) => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
  console.log(`bench_ui: ${ver}, headless, software rendering; 1440x980 viewport, plots ~1000 px wide`);
  console.log('\ndrawing (three canvases, 300-step window, 784 inputs + 512 neurons):');
  console.log('| spikes in window | draw ms/frame (median of 15) | frames/s it allows | JSON parse + ingest of those spikes |');
  console.log('|---:|---:|---:|---:|');
  for (const r of rows)
    console.log(`| ${f(r.n)} | ${f(r.ms, 2)} | ${f(Math.min(60, 1000 / r.ms))}${r.ms < 1000 / 60 ? ' (display-bound)' : ''} | ${f(r.n / r.ingestMs * 1000)} spikes/s (${f(r.bytes / 1e6, 1)} MB in ${f(r.ingestMs)} ms) |`);
  console.log(`\nlive: one fmnist-wide session followed by the page, batches of 10 steps POSTed back to back for ${f(wall, 1)} s`);
  console.log('| batches sent | seen by the page | last-layer spikes/s sent | received and drawn by the page | input spikes/s sent | drawn by the page | frames drawn | draw ms/frame | spikes in window at the end |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  console.log(`| ${f(seq)} | ${f(live.batches)} | ${f(sentOut / wall)} | ${f(live.recOut / wall)} | ${f(sentIn / wall)} | ${f(live.recIn / wall)} | ${f(live.frames)} (${f(live.frames / wall, 1)}/s) | ${f(live.drawMs, 2)} | ${f(live.inView)} |`);
  console.log(`(input raster drawn from: ${live.source}: without \`inputs\` in the step events a follower cannot know another client's inputs)`);
}

main().catch((e) => { console.error('bench_ui: ' + (e.stack || e)); process.exitCode = 1; })
  .finally(async () => { clearTimeout(bound); await stop(); });
