// Drives Open WebUI in headless Chromium as a person would: pick kever's model, attach a photo,
// read the streamed answer (and the "thinking" block), ask follow-ups; screenshots and what the
// page showed go to $OUT (session.json). Started by benchmarks/chat_ui/run.sh.
//
// env: WEBUI_URL, MODEL (kever | kever-emotion6 | kever-sentiment), IMAGE, OUT, CHROMIUM, PROFILE,
//      ANSWER_TIMEOUT_MS (default 600000: a judgment with a rationale on a slow CPU)
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (k, d) => process.env[k] ?? d;
const WEBUI_URL = env('WEBUI_URL', 'http://127.0.0.1:8080');
const MODEL = env('MODEL', 'kever');
const IMAGE = env('IMAGE');
const OUT = env('OUT', 'benchmarks/results/chat_ui');
const TIMEOUT = Number(env('ANSWER_TIMEOUT_MS', '600000'));
const RAW_CITATION = /\[(C\d+|E\d+)\]/;
mkdirSync(OUT, { recursive: true });

const session = { model: MODEL, image: IMAGE, webui: WEBUI_URL, steps: [], checks: {} };
const step = (name, extra = {}) => { session.steps.push({ name, t: new Date().toISOString(), ...extra }); console.error(`drive: ${name}`); };

const ctx = await chromium.launchPersistentContext(env('PROFILE', `/tmp/kever-chat-ui-profile-${Date.now()}`), {
  executablePath: env('CHROMIUM', '/usr/bin/chromium'),
  headless: true,
  viewport: { width: 1280, height: 1000 },
  args: ['--headless', '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-gpu',
         '--disable-quic', '--no-first-run', '--disable-sync'],
});
const page = ctx.pages()[0] ?? await ctx.newPage();
page.setDefaultTimeout(60000);
const shot = async (name) => { await page.screenshot({ path: join(OUT, `${name}.png`), fullPage: false }); step(`screenshot ${name}`); };

async function dismissDialogs() {
  for (const name of [/Okay, Let's Go/i, /^Close$/]) {
    const b = page.getByRole('button', { name });
    if (await b.count() && await b.first().isVisible()) { await b.first().click(); await page.waitForTimeout(500); }
  }
}

// Assistant messages as the page renders them (text a person reads).
const assistantTexts = () => page.$$eval('[id^="message-"] .chat-assistant, .chat-assistant', els =>
  [...new Set(els)].map(e => e.innerText.trim()));

async function waitForAnswer(count, marker) {
  // the count-th assistant message holds `marker` and the stream has ended (no stop button)
  await page.waitForFunction(([n, m]) => {
    const els = document.querySelectorAll('.chat-assistant');
    return els.length >= n && els[n - 1].innerText.includes(m);
  }, [count, marker], { timeout: TIMEOUT, polling: 250 });
  await page.waitForFunction(() => !document.querySelector('button[aria-label="Stop"], button.stop-button'), null, { timeout: TIMEOUT });
  await page.waitForTimeout(1000);
}

async function send(text) {
  const input = page.locator('#chat-input');
  await input.click();
  await page.keyboard.type(text);
  await page.keyboard.press('Enter');
}

try {
  await page.goto(WEBUI_URL, { waitUntil: 'domcontentloaded', timeout: 120000 });
  await page.waitForSelector('#chat-input', { timeout: 120000 });
  await page.waitForTimeout(1500);
  await dismissDialogs();
  step('loaded');

  // 1. pick the model
  const picker = page.locator('button[aria-label^="Selected model"]').first();
  await picker.click();
  await page.waitForTimeout(500);
  await shot('01-model-picker');
  session.models_listed = await page.locator('div.line-clamp-1').evaluateAll(els =>
    els.map(e => e.innerText.trim()).filter(t => /^kever/.test(t)));
  await page.locator('div.line-clamp-1').getByText(MODEL, { exact: true }).first().click();
  await page.waitForTimeout(500);
  session.checks.model_selected = (await picker.getAttribute('aria-label')) === `Selected model: ${MODEL}`;
  step('model picked', { label: await picker.getAttribute('aria-label') });

  // 2. attach the photo, ask
  await page.locator('input[type=file]').first().setInputFiles(IMAGE);
  await page.waitForSelector('img[alt="input"], img[src^="data:image"], button[aria-label="Remove file"]', { timeout: 60000 })
    .catch(() => step('no attachment preview found'));
  await shot('02-photo-attached');
  await send('What emotion does this photo evoke, and why?');
  step('asked');
  await page.waitForFunction(() => location.pathname.startsWith('/c/'), null, { timeout: 60000 });
  session.chat_id = new URL(page.url()).pathname.split('/c/')[1];
  await page.waitForTimeout(1500);
  await shot('03-streaming');
  await waitForAnswer(1, 'Ask a follow-up');
  await shot('04-answer');
  let texts = await assistantTexts();
  session.answer = texts[0];

  // 3. the "thinking" block: one line per step
  const thought = page.getByText(/Thought for|Thinking/).first();
  if (await thought.count()) {
    await thought.click();
    await page.waitForTimeout(700);
    await shot('05-thinking-open');
    texts = await assistantTexts();
    session.answer_with_thinking = texts[0];
  } else {
    step('no thinking block found');
  }
  const label = (session.answer.match(/\*?\*?([a-z]+)\*?\*? \(\d+% confidence/) || [])[1];
  session.label = label;

  // 4. follow-ups, in the same chat
  await send('why not fear?');
  await waitForAnswer(2, 'scored');
  await shot('06-why-not-fear');
  await send(`what in the image made it ${label ?? 'that'}?`);
  await waitForAnswer(3, 'What points to');
  await page.mouse.wheel(0, 4000);
  await page.waitForTimeout(500);
  await shot('07-what-made-it');
  texts = await assistantTexts();
  session.follow_ups = texts.slice(1);

  // 5. what reads badly, checked
  const all = [session.answer, ...session.follow_ups].join('\n');
  session.checks.no_raw_citations = !RAW_CITATION.test(all);
  session.checks.sources_listed = /Sources/.test(session.answer);
  session.checks.answers = texts.length;
  if (session.answer_with_thinking) {
    // the lines the open block adds to the message are the progress lines
    const shown = new Set(session.answer.split('\n').map(s => s.trim()));
    const lines = session.answer_with_thinking.split('\n').map(s => s.trim()).filter(s => s && !shown.has(s));
    session.thinking = lines;
    session.checks.thinking_lines = lines.length;
    session.checks.thinking_lines_unique = new Set(lines).size === lines.length;
  }
  step('done');
} catch (e) {
  session.error = String(e);
  await shot('99-error').catch(() => {});
  console.error(`drive: failed: ${e}`);
  process.exitCode = 1;
} finally {
  writeFileSync(join(OUT, 'session.json'), JSON.stringify(session, null, 2));
  await ctx.close();
}
if (!process.exitCode) {
  const bad = Object.entries(session.checks).filter(([, v]) => v === false).map(([k]) => k);
  if (bad.length) { console.error(`drive: checks failed: ${bad.join(', ')}`); process.exitCode = 1; }
}
