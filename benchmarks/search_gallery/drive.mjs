// Drives kever's /gallery page in headless Chromium; screenshots and what the page showed go
// to $OUT (session.json). Started by benchmarks/search_gallery/run.sh.
// env: BASE (server), KEY (its API key), OUT, CHROMIUM, PROFILE
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (k, d) => process.env[k] ?? d;
const BASE = env('BASE', 'http://127.0.0.1:8000');
const OUT = env('OUT', 'benchmarks/results/search_gallery');
mkdirSync(OUT, { recursive: true });
const session = { base: BASE, steps: [], checks: {} };
const step = (name, extra = {}) => { session.steps.push({ name, t: new Date().toISOString(), ...extra }); console.error(`drive: ${name}`); };

const ctx = await chromium.launchPersistentContext(env('PROFILE', `/tmp/kever-search-gallery-${Date.now()}`), {
  executablePath: env('CHROMIUM', '/usr/bin/chromium'),
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: ['--headless', '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-gpu',
         '--no-first-run', '--disable-sync'],
});
const page = ctx.pages()[0] ?? await ctx.newPage();
page.setDefaultTimeout(60000);
const errors = [];
page.on('pageerror', (e) => errors.push(String(e)));
const shot = async (name) => { await page.screenshot({ path: join(OUT, `${name}.png`) }); step(`screenshot ${name}`); };
const cards = async () => page.$$eval('#grid .card', (cs) => cs.map((c) => ({
  path: c.dataset.path, label: c.querySelector('.label').textContent, score: Number(c.querySelector('.score').textContent),
  reason: c.querySelector('.reason').textContent, thumb: c.querySelector('img').src.startsWith('blob:') })));
const settle = async () => {
  await page.waitForFunction(() => !/searching/.test(document.querySelector('#status').textContent));
  await page.waitForFunction(() => [...document.querySelectorAll('#grid img')].slice(0, 8).every((i) => i.src.startsWith('blob:') || i.alt.startsWith('no thumbnail')), null, { timeout: 60000 }).catch(() => {});
  await page.waitForTimeout(300);
};

try {
  // 1. without the key: the page says so and shows the key box
  await page.goto(BASE + '/gallery');
  await page.waitForFunction(() => document.querySelector('#status').textContent.length > 0 && !/searching/.test(document.querySelector('#status').textContent));
  session.checks.without_key_status = await page.textContent('#status');
  session.checks.key_box_shown = await page.isVisible('#key');
  await shot('01-needs-key');

  // 2. the key, then the "fear" chip
  await page.fill('#key', env('KEY', ''));
  await page.click('button.chip[data-emotion="fear"]');
  await settle();
  session.fear = { status: await page.textContent('#status'), cards: (await cards()).slice(0, 12) };
  await shot('02-emotion-fear');

  // 3. free text + a valence filter
  await page.click('button.chip[data-emotion="fear"]');  // off again
  await page.fill('#q', 'calm evening by the sea');
  await page.selectOption('#valence', '0.2..1');
  await page.click('form#form button[type=submit]');
  await settle();
  session.text = { status: await page.textContent('#status'), cards: (await cards()).slice(0, 12) };
  await shot('03-text-calm-sea-pleasant');

  // 4. explain the first hit
  await page.click('#grid .card:first-child .links a:first-child');
  await page.waitForSelector('#detailBody h2');
  await page.waitForTimeout(800);
  session.explain = { title: await page.textContent('#detailBody h2'), evidence: await page.$$eval('#detailBody li', (l) => l.map((x) => x.textContent).slice(0, 6)) };
  await shot('04-explain');
  await page.click('#detail button');

  // 5. more like this
  const first = (await cards())[0].path;
  await page.click('#grid .card:first-child .links a:nth-child(2)');
  await settle();
  session.like = { of: first, status: await page.textContent('#status'), cards: (await cards()).slice(0, 12) };
  await shot('05-more-like-this');

  const all = [session.fear, session.text, session.like];
  session.checks.every_step_has_cards = all.every((s) => s.cards.length > 0);
  session.checks.thumbnails_loaded = all.every((s) => s.cards.slice(0, 8).every((c) => c.thumb));
  session.checks.fear_top_labels = session.fear.cards.slice(0, 10).map((c) => c.label.split(' ')[0]);
  session.checks.like_excludes_example = !session.like.cards.some((c) => c.path === first);
  session.checks.text_query_applied = session.text.status.includes('calm evening by the sea');
  session.checks.page_errors = errors;
} catch (e) {
  session.error = String(e);
  await shot('error').catch(() => {});
  process.exitCode = 1;
} finally {
  writeFileSync(join(OUT, 'session.json'), JSON.stringify(session, null, 2));
  await ctx.close();
}
