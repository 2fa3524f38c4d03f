// Browser test of the admin page: playwright-core driving Debian's
// chromium (headless) against a running stack. Run by
// tests/integration/test_ui.py with BASE_URL and MASTER_KEY (and
// SMOKE_URL, the same stack behind another front); prints one
// JSON line of what it saw; exits 1 (the failed check on stderr) when a
// check fails. Screenshots of every view at 1280 and 390 px go to
// tests/ui/artifacts/.
import {chromium} from 'playwright-core';
import {mkdirSync} from 'node:fs';
import {dirname, join} from 'node:path';
import {fileURLToPath} from 'node:url';

let BASE = process.env.BASE_URL;
const MASTER = process.env.MASTER_KEY;
const ART = join(dirname(fileURLToPath(import.meta.url)), 'artifacts');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const VIEWS = ['keys', 'teams', 'users', 'usage', 'logs', 'models'];
// Answers the page is built to take: routes another change adds (the
// swap-aware scheduler's /scheduler/status, llama-swap's running models
// through the gateway). The page says "not available" for them.
const EXPECTED_404 = [/\/scheduler\/status$/, /\/upstream\/running$/];
const XSS = '<img src=x onerror=alert(1)>';

mkdirSync(ART, {recursive: true});
const out = {steps: []};
const problems = [];

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
  out.steps.push(what);
  out.at = out.at || {};
  out.at[what] = Math.round(performance.now());
}

async function api(method, path, body, key = MASTER) {
  const r = await fetch(BASE + path, {
    method,
    headers: {Authorization: 'Bearer ' + key, 'Content-Type': 'application/json'},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  let data = null;
  try {
    data = JSON.parse(text);
  } catch {
    data = text;
  }
  return {status: r.status, data};
}

function watch(page, label) {
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const url = (m.location() && m.location().url) || '';
    if (EXPECTED_404.some((re) => re.test(url))) return;
    problems.push(label + ' console error: ' + m.text() + ' ' + url);
  });
  page.on('pageerror', (e) => problems.push(label + ' page error: ' + e.message));
  page.on('requestfailed', (r) => problems.push(label + ' request failed: ' + r.url() + ' ' + (r.failure() || {}).errorText));
  page.on('response', (r) => {
    const u = new URL(r.url());
    if (r.status() >= 400 && !EXPECTED_404.some((re) => re.test(u.pathname))) {
      problems.push(label + ' answer ' + r.status() + ': ' + u.pathname);
    }
  });
  page.on('dialog', (d) => {
    problems.push(label + ' unexpected dialog: ' + d.message());
    d.dismiss();
  });
}

async function signIn(page, key) {
  await page.goto(BASE + '/ui/');
  await page.getByLabel('API key').fill(key);
  await page.getByRole('button', {name: 'Sign in'}).click();
  await page.locator('main[data-view="keys"] table tbody tr').first().waitFor();
}

async function view(page, id) {
  await page.evaluate((v) => { location.hash = '#/' + v; }, id);
  await page.locator(`main[data-view="${id}"] .page-head`).waitFor();
  // Every view marks itself loaded once its first data is on the page.
  await page.locator(`main[data-view="${id}"][data-loaded="yes"]`).waitFor({timeout: 15000});
}

async function shots(page, tag, width) {
  for (const v of VIEWS) {
    await view(page, v);
    // The live figures need two samples of /metrics (a second apart).
    await page.waitForTimeout(v === 'models' ? 1600 : 150);
    await page.screenshot({path: join(ART, `${v}-${width}${tag}.png`), fullPage: true});
  }
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
});
let code = 0;
try {
  const ctx = await browser.newContext({viewport: {width: 1280, height: 860}});
  const page = await ctx.newPage();
  watch(page, 'admin');

  // Sign in with the master key: the key is in sessionStorage, not in the URL.
  await signIn(page, MASTER);
  check(!page.url().includes(MASTER), 'the key is not in the URL');
  check((await page.evaluate(() => sessionStorage.getItem('llmgw.key'))) === MASTER, 'the key is in sessionStorage');
  check((await page.locator('.role').textContent()) === 'Admin', 'the master key signs in as Admin');

  // Create a key in the page, models picked from /v1/models.
  const alias = 'ui-test-' + Date.now().toString(36);
  await page.getByRole('button', {name: '+ Create key'}).click();
  const dlg = page.locator('dialog[open]');
  await dlg.getByLabel('Alias').fill(alias);
  await dlg.getByLabel('User').fill('ui-alice');
  await dlg.locator('label.check', {hasText: /^gpt-4$/}).click();
  await dlg.getByLabel('Budget (USD)').fill('5');
  await dlg.getByLabel('Requests per minute').fill('120');
  await dlg.getByLabel('Metadata (JSON)').fill('{"env": "ui-test"}');
  await dlg.getByRole('button', {name: 'Create key'}).click();
  const newKey = await page.locator('dialog[open] input.newkey').inputValue();
  check(/^sk-[A-Za-z0-9_-]{20,}$/.test(newKey), 'the new key is shown once');
  await page.locator('dialog[open]').getByRole('button', {name: 'Done'}).click();
  const row = page.locator('main tbody tr', {hasText: alias});
  await row.waitFor();
  check((await row.locator('td').nth(1).textContent()) === 'ui-alice', 'the new key is listed with its user');
  check((await row.locator('.chip').allTextContents()).join(',') === 'gpt-4', 'with its models');
  check((await row.locator('.badge').textContent()) === 'Active', 'active');
  const info = await api('GET', '/key/info?key=' + encodeURIComponent(newKey));
  check(info.status === 200 && info.data.info.max_budget === 5 && info.data.info.rpm_limit === 120 &&
    info.data.info.metadata.env === 'ui-test', 'the gateway has the key with its budget, limit and metadata');

  // Call chat with it through the API; its spend and its log row appear.
  const chat = await api('POST', '/v1/chat/completions',
    {model: 'gpt-4', messages: [{role: 'user', content: 'Hello'}]}, newKey);
  check(chat.status === 200, 'chat with the new key answers 200');
  let spendText = '';
  for (let i = 0; i < 40; i++) {
    await view(page, 'usage');
    await view(page, 'keys');
    spendText = await page.locator('main tbody tr', {hasText: alias}).locator('.spend-figures .num').textContent();
    if (spendText !== '$0.00') break;
    await page.waitForTimeout(250);
  }
  out.spend_text = spendText;
  check(spendText !== '$0.00' && spendText.startsWith('$'), 'its spend shows in the keys table');

  await view(page, 'logs');
  const logRow = page.locator('main tbody tr', {hasText: alias}).first();
  await logRow.waitFor();
  const logText = await logRow.textContent();
  check(logText.includes('gpt-4') && logText.includes('qwen3-30b-a3b') && logText.includes('200'),
    'its log row shows model → actual model and status');
  out.log_row = logText;

  await view(page, 'usage');
  const usage = await page.locator('main .kpis').textContent();
  check(!usage.includes('$0.00 ') && /\$\d/.test(usage), 'usage shows spend');
  check(await page.locator('main .u-wrap canvas').count() > 0, 'usage draws its chart');
  check((await page.locator('main table', {hasText: alias}).count()) > 0, 'usage lists the key');

  // Block it: the page says so and the gateway refuses it.
  await view(page, 'keys');
  await page.locator('main tbody tr', {hasText: alias}).locator('button[data-action="block"]').click();
  await page.locator('main tbody tr', {hasText: alias}).locator('.badge', {hasText: 'Blocked'}).waitFor();
  const refused = await api('POST', '/v1/chat/completions',
    {model: 'gpt-4', messages: [{role: 'user', content: 'Hello'}]}, newKey);
  check(refused.status === 401, 'the blocked key is refused (401)');
  await page.locator('main tbody tr', {hasText: alias}).locator('button[data-action="unblock"]').click();
  await page.locator('main tbody tr', {hasText: alias}).locator('.badge', {hasText: 'Active'}).waitFor();
  check(true, 'unblocked');

  // Delete it, after the confirmation.
  await page.locator('main tbody tr', {hasText: alias}).locator('button[data-action="delete"]').click();
  await page.locator('dialog[open]').getByRole('button', {name: 'Delete key'}).click();
  await page.locator('main tbody tr', {hasText: alias}).waitFor({state: 'detached'});
  const gone = await api('GET', '/key/info?key=' + encodeURIComponent(newKey));
  check(gone.status === 404, 'the deleted key is gone from the gateway');

  // An alias that is markup shows as text.
  await api('POST', '/key/delete', {key_aliases: [XSS]}); // from an earlier run on this stack
  const x = await api('POST', '/key/generate', {key_alias: XSS, user_id: 'ui-mallory', models: ['gpt-4']});
  check(x.status === 200, 'the XSS alias key is created');
  await view(page, 'teams');
  await view(page, 'keys');
  const xCell = page.locator('main tbody tr', {hasText: XSS}).locator('.cell-main');
  check((await xCell.textContent()) === XSS, 'the XSS alias renders as text');
  check((await page.locator('main img').count()) === 0, 'no <img> came from it');

  // A team made in the page, with a member.
  await view(page, 'teams');
  await page.getByRole('button', {name: '+ New team'}).click();
  let d = page.locator('dialog[open]');
  await d.getByLabel('Team id').fill('ui-team');
  await d.getByLabel('Name').fill('UI team');
  await d.getByLabel('Budget (USD)').fill('20');
  await d.getByLabel('Team id').press('Enter');
  const card = page.locator('main section.team[data-team="ui-team"]');
  await card.waitFor();
  await card.getByRole('button', {name: 'Add member'}).click();
  d = page.locator('dialog[open]');
  await d.getByLabel('User id').fill('ui-alice');
  await d.getByRole('button', {name: 'Add member'}).click();
  await card.locator('.members li', {hasText: 'ui-alice'}).waitFor();
  check((await card.locator('h2').textContent()) === 'UI team' && (await card.locator('.spend-figures').textContent()).includes('$20.00'),
    'a team made in the page (Enter submits) shows its name, budget and member');

  // Screenshots of every view at both widths.
  await shots(page, '', 1280);
  await page.setViewportSize({width: 390, height: 844});
  await shots(page, '', 390);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  check(overflow <= 390, 'no page-wide horizontal scroll at 390 px');

  // Sign out clears the key.
  await page.getByRole('button', {name: 'Sign out'}).click();
  await page.getByLabel('API key').waitFor();
  check((await page.evaluate(() => sessionStorage.getItem('llmgw.key'))) === null, 'sign-out clears the key');
  await ctx.close();

  // A viewer (a key without a user): the same views, no write buttons.
  const v = await api('POST', '/key/generate', {key_alias: 'ui-viewer-' + Date.now().toString(36)});
  check(v.status === 200, 'the viewer key is created');
  const vctx = await browser.newContext({viewport: {width: 1280, height: 860}});
  const vpage = await vctx.newPage();
  watch(vpage, 'viewer');
  await signIn(vpage, v.data.key);
  check((await vpage.locator('.role').textContent()) === 'Viewer', 'the viewer key signs in as Viewer');
  for (const id of VIEWS) {
    await view(vpage, id);
    const writes = await vpage.locator('main button[data-action]').count();
    check(writes === 0, 'the viewer\'s ' + id + ' view has no write buttons');
  }
  await vpage.screenshot({path: join(ART, 'viewer-models-1280.png'), fullPage: true});
  await view(vpage, 'keys');
  await vpage.screenshot({path: join(ART, 'viewer-keys-1280.png'), fullPage: true});
  await vctx.close();

  // An internal_user manages its own keys: create, regenerate, delete, no block.
  const uid = 'ui-bob-' + Date.now().toString(36);
  const u = await api('POST', '/user/new', {user_id: uid, user_role: 'internal_user'});
  check(u.status === 200 && u.data.key, 'the internal_user is created with a key');
  const uctx = await browser.newContext({viewport: {width: 1280, height: 860}});
  const upage = await uctx.newPage();
  watch(upage, 'internal_user');
  await signIn(upage, u.data.key);
  check((await upage.locator('.role').textContent()) === 'User', 'the internal_user signs in as User');
  check(await upage.locator('main [data-action="create-key"]').count() === 1, 'it may create keys');
  check(await upage.locator('main [data-action="delete"]').count() === 1 &&
    await upage.locator('main [data-action="block"]').count() === 0, 'it may delete its key, not block it');
  const rows = await upage.locator('main tbody tr').count();
  check(rows === 1, 'it sees only its own key');
  await view(upage, 'users');
  check((await upage.locator('main h2').first().textContent()) === uid && await upage.locator('main button[data-action]').count() === 0,
    'its users view is its own user, without buttons');
  await uctx.close();

  // The same page behind another front (SMOKE_URL: the Apache twin of
  // the stack): sign in, every view loads, nothing fails.
  if (process.env.SMOKE_URL) {
    const base = BASE;
    BASE = process.env.SMOKE_URL;
    const sctx = await browser.newContext({viewport: {width: 1280, height: 860}});
    const spage = await sctx.newPage();
    watch(spage, 'smoke');
    await signIn(spage, MASTER);
    for (const id of VIEWS) await view(spage, id);
    check((await spage.locator('main[data-view="models"] .facts').textContent()).includes('ready'),
      'behind the other front too, every view loads and the models view says ready');
    await sctx.close();
    BASE = base;
  }

  check(problems.length === 0, 'no console error or failed request on any view: ' + problems.join('; '));
} catch (e) {
  code = 1;
  out.error = String(e && e.stack ? e.stack : e);
  out.problems = problems;
  process.stderr.write(out.error + '\n' + problems.join('\n') + '\n');
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out) + '\n');
process.exit(code);
