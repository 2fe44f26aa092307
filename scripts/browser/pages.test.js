// The billing page and the sync-health page in headless Chromium, against
// scripts/demo's set-up (paysync on SQLite + localstripe), as their users
// would use them. Run by scripts/browser-test, which starts the demo and
// passes its URLs, tokens and pids in the environment.
//
// Every wait is for a condition on the page (never a fixed sleep), with
// generous time-outs: the machine may be busy.
'use strict';

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { test, after, before } = require('node:test');
const puppeteer = require('puppeteer-core');

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run scripts/browser-test)`);
  return v;
};
const URL = env('URL');
const STRIPE = env('STRIPE');
const SHOTS = env('SCREENSHOTS');
const WAIT = 60_000;

const CARDS = { visa: '4242424242424242', threeDs: '4000002760003184', declined: '4000000000000002' };

let browser;
const pageErrors = [];
const foreignRequests = [];
const cardNumbersSeenByPaysync = [];

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', `--user-data-dir=${env('CHROME_PROFILE')}`],
    protocolTimeout: 120_000,
  });
});

after(async () => {
  if (browser) await browser.close();
});

/** A new tab that records what the page does wrong or sends where it should not. */
async function open(width = 1024) {
  const page = await browser.newPage();
  page.setDefaultTimeout(WAIT);
  await page.setViewport({ width, height: 900 });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('request', (req) => {
    const origin = new globalThis.URL(req.url()).origin;
    if (origin !== URL && origin !== STRIPE && !req.url().startsWith('data:')) foreignRequests.push(req.url());
    const body = req.postData() || '';
    if (origin === URL && Object.values(CARDS).some((n) => body.includes(n))) cardNumbersSeenByPaysync.push(req.url());
  });
  return page;
}

const text = (page, selector) => page.$eval(selector, (n) => n.textContent.trim());
const visible = (page, selector) => page.$eval(selector, (n) => !n.closest('[hidden]') && n.getClientRects().length > 0).catch(() => false);

async function waitText(page, selector, wanted) {
  await page.waitForFunction((s, w) => {
    const n = document.querySelector(s);
    return n && n.textContent.includes(w) && !n.closest('[hidden]');
  }, { timeout: WAIT }, selector, wanted);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

async function addCard(page, number, { keyboard = false } = {}) {
  await page.type('#card-number', number);
  await page.type('#card-exp', '12/30');
  await page.type('#card-cvc', '123');
  if (keyboard) await page.keyboard.press('Enter'); // submits the form from the CVC field
  else await page.click('#card-form button[type=submit]');
}

/** Sign a webhook body the way Stripe (and localstripe) do. */
function signed(body) {
  const t = Math.floor(Date.now() / 1000);
  const v1 = crypto.createHmac('sha256', env('WEBHOOK_SECRET')).update(`${t}.${body}`).digest('hex');
  return `t=${t},v1=${v1}`;
}

async function admin(method, p) {
  const resp = await fetch(URL + p, { method, headers: { Authorization: `Bearer ${env('ADMIN_TOKEN')}` } });
  return { status: resp.status, body: await resp.json() };
}

test('billing page: cards, SEPA, subscribe through 3-D Secure, invoice and receipt, cancel and resume', async () => {
  const page = await open();
  await page.goto(`${URL}/billing#token=${env('TOKEN')}`);
  await waitText(page, '#plan-name', 'free');
  assert.equal(page.url(), `${URL}/billing`, 'the token is taken out of the address bar');

  // Two cards (the second submitted from the keyboard), then a declined one.
  await addCard(page, CARDS.visa);
  await page.waitForSelector('#cards li[data-last4="4242"]');
  await waitText(page, '#notice', 'Card •••• 4242 added');
  await addCard(page, CARDS.threeDs, { keyboard: true });
  await page.waitForSelector('#cards li[data-last4="3184"]');
  await addCard(page, CARDS.declined);
  await waitText(page, '#alert', 'declined');
  assert.match(await text(page, '#alert'), /The card was declined: .+/);
  assert.equal((await page.$$('#cards li[data-card]')).length, 2, 'the declined card is not listed');

  // The 3-D Secure card becomes the default.
  assert.match(await text(page, '#cards li[data-last4="4242"]'), /Default/);
  await page.click('#cards li[data-last4="3184"] button.secondary');
  await waitText(page, '#cards li[data-last4="3184"]', 'Default');
  assert.doesNotMatch(await text(page, '#cards li[data-last4="4242"]'), /Default/);

  // SEPA: a typo is refused with the IBAN check's message, then a valid account is saved.
  await page.type('#iban-input', 'DE89 3704 0044 0532 0130 01');
  await page.type('#holder-input', 'Jane Doe');
  await page.click('#bank-form button[type=submit]');
  await waitText(page, '#iban-error', 'check digits');
  assert.equal(await page.$eval('#iban-input', (n) => n.getAttribute('aria-invalid')), 'true');
  await page.$eval('#iban-input', (n) => { n.value = ''; });
  await page.type('#iban-input', 'DE89370400440532013000');
  await page.click('#bank-form button[type=submit]');
  await page.waitForSelector('#bank-account[data-last4="3000"]');
  assert.match(await text(page, '#bank-account'), /Jane Doe/);

  // Company details.
  await page.type('#company-input', 'Acme Robotics');
  await page.type('#email-input', 'billing@acme.test');
  await page.click('#metadata-form button[type=submit]');
  await waitText(page, '#notice', 'Company details saved');

  // Subscribe: the default card asks for 3-D Secure; the challenge is completed from the keyboard.
  await page.select('#plan-select', 'starter');
  await page.click('#subscribe-form button[type=submit]');
  await page.waitForSelector('#challenge[open]');
  await shot(page, 'billing-3ds');
  await page.keyboard.press('Enter'); // "Complete authentication" has the focus
  await waitText(page, '#plan-name', 'starter');
  await waitText(page, '#subscription-status', 'active');
  await page.waitForSelector('#invoices tr[data-invoice]');
  await page.waitForSelector('#receipts tr[data-receipt]');
  assert.match(await text(page, '#invoices tbody'), /\$19\.00/);
  assert.match(await text(page, '#invoices tbody'), /paid/);
  assert.match(await text(page, '#receipts tbody'), /\$19\.00/);
  await shot(page, 'billing');

  // Cancel at period end, then resume.
  await page.click('#cancel-end');
  await waitText(page, '#period-end', 'canceled at period end');
  assert.ok(await visible(page, '#resume'));
  assert.equal(await text(page, '#plan-name'), 'starter', 'the plan stays until the period ends');
  await shot(page, 'billing-canceled');
  await page.click('#resume');
  await page.waitForFunction(() => document.querySelector('#resume').hidden);
  await waitText(page, '#plan', 'Renews on');
  assert.ok(await visible(page, '#cancel-end'));

  // A phone's width: nothing wider than the screen.
  await page.setViewport({ width: 375, height: 800 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than a phone`);
  await shot(page, 'billing-phone');
  await page.close();
});

test("billing page: a member's view is read-only", async () => {
  const page = await open();
  await page.goto(`${URL}/billing#token=${env('MEMBER_TOKEN')}`);
  await waitText(page, '#plan-name', 'starter');
  await page.waitForSelector('#cards li[data-last4="3184"]');
  assert.ok(await visible(page, '#read-only'));
  const controls = await page.$$eval('main button, main select, main input:not([readonly])',
    (nodes) => nodes.filter((n) => !n.closest('[hidden]') && !n.closest('dialog') && n.getClientRects().length).map((n) => n.outerHTML));
  assert.deepEqual(controls, [], 'a member sees no control that changes anything');
  assert.equal(await page.$eval('#company-input', (n) => n.value), 'Acme Robotics');
  await shot(page, 'billing-member');
  await page.close();
});

test('billing page: API errors are shown, not a blank page', async () => {
  const page = await open();
  // A token paysync refuses (a real 401).
  await page.goto(`${URL}/billing#token=not-a-token`);
  await waitText(page, '#alert', 'Sign in again');
  assert.ok(await visible(page, '#signin'));
  await page.close();
  // The database down (paysync answers 503 to every API read): the page says so.
  const down = await open();
  await down.setRequestInterception(true);
  down.on('request', (req) => {
    if (req.url().startsWith(`${URL}/api/`)) {
      req.respond({ status: 503, contentType: 'application/json', body: JSON.stringify({ error: { code: 'unavailable', message: 'database unavailable' } }) });
    } else {
      req.continue();
    }
  });
  await down.goto(`${URL}/billing#token=${env('TOKEN')}`);
  await waitText(down, '#alert', 'cannot reach its database');
  await shot(down, 'billing-error');
  await down.close();
});

test('ops page: an event parked as dead while Stripe was down, replayed with the button', async () => {
  const bucket = await admin('GET', `/admin/buckets/${env('BUCKET')}`);
  assert.equal(bucket.status, 200);
  const customer = bucket.body.stripe_customer_id;
  assert.ok(customer, 'the demo bucket has a Stripe customer by now');

  // Stripe stops answering; an event whose apply needs Stripe arrives (the
  // demo re-fetches customers: PAYSYNC_REFETCH=customer).
  const stripePid = Number(env('STRIPE_PID'));
  process.kill(stripePid, 'SIGSTOP');
  const id = `evt_browser_${Date.now()}`;
  try {
    const body = JSON.stringify({
      id, object: 'event', type: 'customer.updated', created: Math.floor(Date.now() / 1000), livemode: false,
      data: { object: { id: customer, object: 'customer', created: 1, metadata: { bucket_id: env('BUCKET') } } },
    });
    const delivered = await fetch(`${URL}/webhooks/stripe`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', 'Stripe-Signature': signed(body) }, body,
    });
    assert.equal(delivered.status, 200, await delivered.text());

    const page = await open(1100);
    await page.goto(`${URL}/ops#token=${env('ADMIN_TOKEN')}`);
    await page.waitForSelector(`#problems tr[data-event="${id}"][data-state="dead"]`, { timeout: 90_000 });
    assert.match(await text(page, `#problems tr[data-event="${id}"]`), /customer\.updated/);
    assert.match(await text(page, `#problems tr[data-event="${id}"] td.error`), /stripe unreachable|timed out|connection/i);
    assert.notEqual(await text(page, '#dead-count'), '0');
    assert.match(await text(page, '#api-version'), /^\d{4}-\d{2}-\d{2}/);
    await shot(page, 'ops-dead');

    // Stripe is back: the replay button puts the event back in line, and it is applied.
    process.kill(stripePid, 'SIGCONT');
    await page.click(`#problems tr[data-event="${id}"] button`);
    await waitText(page, '#notice', 'put back in line');
    await page.waitForFunction((e) => !document.querySelector(`#problems tr[data-event="${e}"]`), { timeout: 90_000 }, id);
    await waitText(page, '#dead-count', '0');
    const health = await admin('GET', '/admin/ops');
    assert.equal(health.body.inbox.dead, 0);
    assert.ok(health.body.webhooks_per_minute.some((m) => m.count > 0), 'deliveries are counted');
    await shot(page, 'ops');

    // A wrong admin token (handed to the open page): a clear message and the sign-in form.
    await page.goto(`${URL}/ops#token=wrong-admin-token`);
    await waitText(page, '#alert', 'Sign in again');
    assert.ok(await visible(page, '#signin'));
    await page.close();
  } finally {
    process.kill(stripePid, 'SIGCONT');
  }
});

test('the pages load nothing from elsewhere, never send card numbers to paysync, and raise no script error', () => {
  assert.deepEqual(foreignRequests, []);
  assert.deepEqual(cardNumbersSeenByPaysync, []);
  assert.deepEqual(pageErrors, []);
});
