// The script of paysync's two pages (/billing and /ops), embedded in the
// binary. No framework, no build step: DOM APIs only, and text is always set
// with textContent, never parsed as HTML. Both pages call paysync's JSON API
// with a bearer token kept in sessionStorage (this tab only).
'use strict';

(() => {
  const $ = (selector) => document.querySelector(selector);
  const page = document.body.dataset.page;

  /** An element with attributes / properties and children (strings become text). */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'dataset') Object.assign(node.dataset, value);
      else if (key === 'style') Object.assign(node.style, value); // CSSOM: allowed by the pages' CSP
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else if (key in node && typeof value !== 'string') node[key] = value;
      else node.setAttribute(key, value === true ? '' : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // ---- messages ------------------------------------------------------------

  /** An answer of the API that is not a 2xx. */
  class ApiFailure extends Error {
    constructor(status, body, retryAfter) {
      const error = (body && body.error) || {};
      super(error.message || `HTTP ${status}`);
      this.status = status;
      this.code = error.code || null;
      this.error = error;
      this.retryAfter = retryAfter;
    }
  }

  function sentence(text) {
    const s = String(text || '').trim();
    return s ? s[0].toUpperCase() + s.slice(1) + (/[.!?]$/.test(s) ? '' : '.') : '';
  }

  /** What went wrong, in words a person can act on. */
  function describe(err) {
    if (!(err instanceof ApiFailure)) return sentence(err && err.message ? err.message : String(err));
    const e = err.error;
    const code = err.code ? ` (${err.code})` : '';
    switch (true) {
      case err.status === 0:
        return 'Cannot reach paysync: the network failed or the server is down. Try again in a moment.';
      case err.status === 401:
        return 'Your sign-in is not valid (missing, wrong or expired token). Sign in again.';
      case err.status === 402:
        return `The card was declined: ${String(e.message || 'no reason given').replace(/\.$/, '')}` +
          (e.decline_code ? ` (${e.decline_code})` : '') + '. Try another card.';
      case err.status === 403:
        return `Not allowed: ${e.message || 'your role does not allow this'}${code}.`;
      case err.status === 500 && err.code === 'stripe_error':
        return `Stripe failed or could not be reached, so nothing was changed: ${e.message}. ` +
          (err.retryAfter ? `Try again in ${err.retryAfter} s.` : 'Try again in a moment.');
      case err.status === 503:
        return `paysync cannot reach its database right now (503): ${e.message || 'unavailable'}. Try again in a moment.`;
      case err.status >= 500:
        return `paysync failed (HTTP ${err.status})${code}. Try again; if it keeps failing, tell the service's operators.`;
      default:
        return `${sentence(e.message || `HTTP ${err.status}`)}${code ? ` ${code.trim()}` : ''}`;
    }
  }

  function showError(err, context) {
    const box = $('#alert');
    box.textContent = (context ? `${context}: ` : '') + describe(err);
    box.hidden = false;
    box.focus();
    if (err instanceof ApiFailure && err.status === 401) signOut(false);
  }

  function clearError() {
    $('#alert').hidden = true;
    $('#alert').textContent = '';
  }

  function notice(text) {
    $('#notice').textContent = text;
  }

  // ---- formatting ----------------------------------------------------------

  const ZERO_DECIMAL = new Set(['bif', 'clp', 'djf', 'gnf', 'jpy', 'kmf', 'krw', 'mga', 'pyg', 'rwf', 'ugx', 'vnd', 'vuv', 'xaf', 'xof', 'xpf']);

  function money(amount, currency) {
    if (typeof amount !== 'number') return '—';
    const cur = String(currency || 'usd').toLowerCase();
    const value = ZERO_DECIMAL.has(cur) ? amount : amount / 100;
    try {
      return new Intl.NumberFormat(undefined, { style: 'currency', currency: cur.toUpperCase() }).format(value);
    } catch (_) {
      return `${value} ${cur.toUpperCase()}`;
    }
  }

  function date(unix) {
    return typeof unix === 'number' ? new Date(unix * 1000).toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' }) : '—';
  }

  function time(unix) {
    return typeof unix === 'number' ? new Date(unix * 1000).toLocaleString() : '—';
  }

  function age(seconds) {
    if (typeof seconds !== 'number') return '—';
    if (seconds < 120) return `${seconds} s`;
    if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
    if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
    return `${Math.round(seconds / 86400)} days`;
  }

  function badge(text, tone) {
    return el('span', { class: `badge ${tone || ''}` }, text);
  }

  function facts(dl, rows) {
    dl.replaceChildren(...rows.filter(Boolean).flatMap(([term, value]) => [el('dt', {}, term), el('dd', {}, value)]));
  }

  // ---- sign-in -------------------------------------------------------------

  const KEY = `paysync.${page}`;
  let token = null;

  /** `#token=…&bucket=…` from the host app: taken, then removed from the address bar. */
  function fromFragment() {
    const params = new URLSearchParams(location.hash.slice(1));
    if (location.hash) history.replaceState(null, '', location.pathname + location.search);
    return { token: params.get('token'), bucket: params.get('bucket') };
  }

  function signOut(forget = true) {
    token = null;
    sessionStorage.removeItem(`${KEY}.token`);
    if (forget) clearError();
    $('#app').hidden = true;
    $('#sign-out').hidden = true;
    $('#signin').hidden = false;
    if (page === 'billing') $('#who').hidden = true;
  }

  function signedIn(t) {
    token = t;
    sessionStorage.setItem(`${KEY}.token`, t);
    $('#signin').hidden = true;
    $('#sign-out').hidden = false;
  }

  async function api(method, path, body) {
    let resp;
    try {
      resp = await fetch(path, {
        method,
        headers: Object.assign({ Authorization: `Bearer ${token}` }, body ? { 'Content-Type': 'application/json' } : {}),
        body: body ? JSON.stringify(body) : undefined,
      });
    } catch (_) {
      throw new ApiFailure(0, null, null);
    }
    const text = await resp.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
    if (!resp.ok) throw new ApiFailure(resp.status, json, resp.headers.get('Retry-After'));
    return json;
  }

  /** Disable a form's (or a button's) controls while `work` runs. */
  async function busy(target, work) {
    const controls = target.matches('form') ? [...target.querySelectorAll('button, input, select')] : [target];
    controls.forEach((c) => { c.disabled = true; });
    target.setAttribute('aria-busy', 'true');
    try {
      return await work();
    } finally {
      controls.forEach((c) => { c.disabled = false; });
      target.removeAttribute('aria-busy');
    }
  }

  function start(load) {
    const fragment = fromFragment();
    $('#signin-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const value = $('#token-input').value.trim();
      if (!value) return;
      $('#token-input').value = '';
      clearError();
      signedIn(value);
      load(null);
    });
    $('#sign-out').addEventListener('click', () => signOut());
    // A host app may hand over a new token to an open page.
    window.addEventListener('hashchange', () => {
      const handed = fromFragment();
      if (!handed.token) return;
      clearError();
      signedIn(handed.token);
      load(handed.bucket);
    });
    const saved = fragment.token || sessionStorage.getItem(`${KEY}.token`);
    if (saved) {
      signedIn(saved);
      load(fragment.bucket);
    } else {
      signOut(false);
      $('#token-input').focus();
    }
  }

  // ---- Stripe: card tokens and 3-D Secure ----------------------------------
  // With Stripe, Stripe.js does both; with a stand-in (the demo's localstripe),
  // the page does what Stripe.js would: post the card to /v1/tokens with the
  // publishable key, and complete 3-D Secure with the stand-in's _authenticate.

  function stripeGateway() {
    const mode = document.body.dataset.cards;
    const key = document.body.dataset.stripeKey;
    if (mode === 'stripe-js') {
      if (typeof window.Stripe !== 'function') {
        return { error: 'Stripe.js did not load (blocked or offline): cards cannot be added right now.' };
      }
      const stripe = window.Stripe(key);
      const card = stripe.elements().create('card');
      $('#card-element').hidden = false;
      card.mount('#card-element');
      return {
        async token() {
          const result = await stripe.createToken(card);
          if (result.error) throw new Error(result.error.message);
          card.clear();
          return result.token.id;
        },
        async authenticate(clientSecret) {
          const result = await stripe.handleNextAction({ clientSecret });
          if (result.error) throw new Error(`3-D Secure failed: ${result.error.message}`);
        },
      };
    }
    if (mode === 'stand-in') {
      const api = document.body.dataset.stripeApi;
      $('#stand-in-fields').hidden = false;
      const post = async (path, fields) => {
        let resp;
        try {
          resp = await fetch(api + path, { method: 'POST', body: new URLSearchParams(fields) });
        } catch (_) {
          throw new Error(`the Stripe stand-in at ${api} cannot be reached`);
        }
        const json = await resp.json().catch(() => ({}));
        if (!resp.ok || json.error) throw new Error((json.error && json.error.message) || `Stripe answered HTTP ${resp.status}`);
        return json;
      };
      return {
        async token() {
          const number = $('#card-number').value.replace(/[\s-]/g, '');
          const exp = $('#card-exp').value.trim().match(/^(\d{1,2})\s*\/\s*(\d{2}|\d{4})$/);
          if (!/^\d{12,19}$/.test(number)) throw new Error('Enter the card number (digits only).');
          if (!exp) throw new Error('Enter the expiry date as MM/YY.');
          const year = exp[2].length === 2 ? `20${exp[2]}` : exp[2];
          const token = await post('/v1/tokens', {
            key,
            'card[number]': number,
            'card[exp_month]': String(Number(exp[1])),
            'card[exp_year]': year,
            'card[cvc]': $('#card-cvc').value.trim(),
          });
          for (const id of ['#card-number', '#card-exp', '#card-cvc']) $(id).value = '';
          return token.id;
        },
        async authenticate(clientSecret) {
          const dialog = $('#challenge');
          const success = await new Promise((resolve) => {
            const done = (value) => () => { dialog.close(); resolve(value); };
            $('#challenge-ok').onclick = done(true);
            $('#challenge-fail').onclick = done(false);
            dialog.oncancel = done(false);
            dialog.showModal();
            $('#challenge-ok').focus();
          });
          const intent = clientSecret.split('_secret_')[0];
          const result = await post(`/v1/payment_intents/${encodeURIComponent(intent)}/_authenticate?success=${success}`,
            { key, client_secret: clientSecret });
          if (result.status !== 'succeeded') {
            throw new Error('3-D Secure failed: the payment was not confirmed, so the plan did not change. Try again or use another card.');
          }
        },
      };
    }
    return { error: null };
  }

  // ---- /billing --------------------------------------------------------------

  const LIVE = ['active', 'trialing', 'past_due', 'unpaid', 'incomplete'];
  const billing = { bucketId: null, bucket: null, plans: [], cards: [], defaultId: null, bank: null };
  let gateway = null;

  function bucketPath(rest) {
    return `/api/bucket/${encodeURIComponent(billing.bucketId)}${rest}`;
  }

  /** A read that answers 404 when there is nothing (no cards, no invoices…): null then. */
  async function maybe(path) {
    try {
      return await api('GET', path);
    } catch (err) {
      if (err instanceof ApiFailure && err.status === 404 && err.code !== 'bucket_not_found') return null;
      throw err;
    }
  }

  async function loadBilling(wantedBucket) {
    let buckets;
    try {
      buckets = await api('GET', '/api/bucket');
    } catch (err) {
      showError(err, 'Could not load your buckets');
      return;
    }
    if (!buckets.length) {
      showError(new Error('your account is not a member of any bucket'));
      return;
    }
    const remembered = sessionStorage.getItem(`${KEY}.bucket`);
    const pick = [wantedBucket, billing.bucketId, remembered].find((id) => id && buckets.some((b) => b.id === id));
    billing.bucketId = pick || buckets[0].id;
    sessionStorage.setItem(`${KEY}.bucket`, billing.bucketId);
    const select = $('#bucket-select');
    select.replaceChildren(...buckets.map((b) => el('option', { value: b.id, selected: b.id === billing.bucketId }, `${b.name} (${b.role})`)));
    $('#bucket-choice').hidden = buckets.length < 2;
    $('#app').hidden = false;
    await refreshBilling();
  }

  /** Read everything again (after every write: the answers come from paysync's
   *  cache, which has the write). `quiet`: after a failed write, whose message stays. */
  async function refreshBilling(quiet = false) {
    const report = quiet ? () => {} : showError;
    const reads = await Promise.allSettled([
      api('GET', bucketPath('')),
      api('GET', '/api/plans'),
      maybe(bucketPath('/payment/cards')),
      maybe(bucketPath('/payment/card')),
      maybe(bucketPath('/payment/banks')),
      api('GET', bucketPath('/payment')),
      maybe(bucketPath('/payment/invoices')),
      maybe(bucketPath('/payment/receipts')),
    ]);
    const failed = reads.find((r) => r.status === 'rejected');
    const value = (i) => (reads[i].status === 'fulfilled' ? reads[i].value : undefined);
    if (reads[0].status === 'rejected') {
      report(reads[0].reason, 'Could not load the bucket');
      return;
    }
    if (failed) report(failed.reason, 'Some of the billing could not be loaded');
    billing.bucket = value(0);
    billing.plans = value(1) || [];
    billing.cards = (value(2) && value(2).data) || [];
    billing.defaultId = value(3) && value(3).data ? value(3).data.id : null;
    billing.bank = value(4) ? value(4).data : null;
    const b = billing.bucket;
    $('#who').textContent = `${b.name} · you are ${b.role === 'member' ? 'a member (read-only)' : `an ${b.role}`}`;
    $('#who').hidden = false;
    renderPlan();
    renderCards(reads[2].status === 'rejected');
    renderBank(reads[4].status === 'rejected');
    renderMetadata(value(5));
    renderInvoices(value(6), reads[6].status === 'rejected');
    renderReceipts(value(7), reads[7].status === 'rejected');
    const readOnly = b.role === 'member';
    if (readOnly) document.querySelectorAll('.write').forEach((node) => { node.hidden = true; });
    $('#metadata-form button').hidden = readOnly;
    $('#read-only').hidden = !readOnly;
    $('#metadata-form').querySelectorAll('input').forEach((i) => { i.readOnly = readOnly; });
    document.body.dataset.loaded = String(Date.now());
  }

  const writer = () => billing.bucket && billing.bucket.role !== 'member';

  function planLabel(p) {
    return `${p.name} · ${money(p.amount, p.currency)} / ${p.interval}`;
  }

  function renderPlan() {
    const b = billing.bucket;
    const sub = b.subscription;
    const live = sub && LIVE.includes(sub.status);
    const tone = { active: 'ok', trialing: 'ok', past_due: 'warn', incomplete: 'warn', unpaid: 'bad', canceled: 'bad' }[sub && sub.status];
    facts($('#plan'), [
      ['Plan', el('strong', { id: 'plan-name' }, b.plan)],
      sub && ['Subscription', el('span', { id: 'subscription-status' }, badge(sub.status, tone), ' ', sub.plan ? `on ${sub.plan}` : '')],
      sub && live && sub.current_period_end && [sub.cancel_at_period_end ? 'Ends on' : 'Renews on',
        el('span', { id: 'period-end' }, date(sub.current_period_end), sub.cancel_at_period_end ? ' (canceled at period end)' : '')],
      sub && !live && sub.canceled_at && ['Canceled on', date(sub.canceled_at)],
      b.trial && ['Trial', `${b.trial.plan}, ${b.trial.active ? 'ends' : 'ended'} ${date(b.trial.ends_at)}`],
    ]);
    $('#subscription-actions').hidden = !(writer() && live);
    $('#cancel-end').hidden = !!(sub && sub.cancel_at_period_end) || (sub && sub.status === 'incomplete');
    $('#resume').hidden = !(sub && sub.cancel_at_period_end);
    const choices = billing.plans.filter((p) => p.subscribable);
    $('#plan-select').replaceChildren(...choices.map((p) => el('option', { value: p.name, selected: sub && sub.plan === p.name }, planLabel(p))));
    $('#subscribe-form').hidden = !writer() || !choices.length;
    $('#subscribe-form button[type=submit]').textContent = live && sub.status !== 'incomplete' ? 'Change plan' : 'Subscribe';
    const trials = choices.filter((p) => p.trial_days > 0);
    $('#trial-select').replaceChildren(...trials.map((p) => el('option', { value: p.name }, `${p.name} · ${p.trial_days} days free`)));
    $('#trial-form').hidden = !writer() || !!b.trial || !!live || !trials.length;
  }

  function cardLabel(c) {
    const exp = c.exp_month && c.exp_year ? `, expires ${String(c.exp_month).padStart(2, '0')}/${c.exp_year}` : '';
    return `${c.brand || 'Card'} •••• ${c.last4 || '????'}${exp}`;
  }

  function renderCards(failed) {
    const list = $('#cards');
    if (failed) {
      list.replaceChildren(el('li', { class: 'muted' }, 'The cards could not be loaded.'));
    } else if (!billing.cards.length) {
      list.replaceChildren(el('li', { class: 'muted' }, 'No card yet.'));
    } else {
      list.replaceChildren(...billing.cards.map((c) => {
        const isDefault = c.id === billing.defaultId;
        return el('li', { dataset: { card: c.id, last4: c.last4 || '' } },
          el('span', { class: 'grow' }, cardLabel(c)),
          isDefault ? badge('Default', 'ok') : null,
          writer() && !isDefault ? el('button', { type: 'button', class: 'secondary', 'aria-label': `Make the card ending ${c.last4} the default`, onclick: (ev) => cardAction(ev.currentTarget, 'POST', `/payment/card/${encodeURIComponent(c.id)}/default`, `Card •••• ${c.last4} is now the default.`) }, 'Make default') : null,
          writer() ? el('button', { type: 'button', class: 'danger', 'aria-label': `Remove the card ending ${c.last4}`, onclick: (ev) => cardAction(ev.currentTarget, 'DELETE', `/payment/card/${encodeURIComponent(c.id)}`, `Card •••• ${c.last4} removed.`) }, 'Remove') : null);
      }));
    }
    $('#card-form').hidden = !writer() || !gateway || !!gateway.error || document.body.dataset.cards === 'off';
    $('#cards-off').hidden = !(writer() && document.body.dataset.cards === 'off');
    if (gateway && gateway.error && writer()) {
      $('#cards-off').textContent = gateway.error;
      $('#cards-off').hidden = false;
    }
  }

  async function cardAction(button, method, rest, done) {
    clearError();
    try {
      await busy(button, () => api(method, bucketPath(rest)));
      notice(done);
    } catch (err) {
      showError(err);
      return refreshBilling(true);
    }
    return refreshBilling();
  }

  function renderBank(failed) {
    const bank = billing.bank;
    const box = $('#bank');
    if (failed) {
      box.replaceChildren(el('p', { class: 'muted' }, 'The bank account could not be loaded.'));
    } else if (!bank) {
      box.replaceChildren(el('p', { class: 'muted', id: 'no-bank' }, 'No SEPA bank account.'));
    } else {
      const sepa = bank.sepa_debit || {};
      const owner = (bank.owner && bank.owner.name) || '';
      box.replaceChildren(el('ul', { class: 'items' }, el('li', { id: 'bank-account', dataset: { last4: sepa.last4 || '' } },
        el('span', { class: 'grow' }, `${sepa.country || ''} IBAN •••• ${sepa.last4 || '????'}${owner ? ` · ${owner}` : ''}`),
        writer() ? el('button', { type: 'button', class: 'danger', onclick: (ev) => cardAction(ev.currentTarget, 'DELETE', '/payment/banks', 'SEPA bank account removed.') }, 'Remove') : null)));
    }
    $('#bank-form').hidden = !writer();
    $('#bank-form-h').textContent = bank ? 'Replace the SEPA bank account' : 'Add a SEPA bank account';
  }

  function renderMetadata(meta) {
    for (const [id, key] of [['#company-input', 'company_name'], ['#vat-input', 'vat_number'], ['#email-input', 'receipt_email']]) {
      if (document.activeElement !== $(id)) $(id).value = (meta && meta[key]) || '';
    }
  }

  function link(href, text, label) {
    return href ? el('a', { href, target: '_blank', rel: 'noopener', 'aria-label': label }, text) : null;
  }

  function emptyRow(table, text) {
    table.querySelector('tbody').replaceChildren(el('tr', {}, el('td', { colspan: 5, class: 'muted' }, text)));
  }

  function renderInvoices(invoices, failed) {
    const table = $('#invoices');
    if (failed) return emptyRow(table, 'The invoices could not be loaded.');
    if (!invoices || !invoices.length) return emptyRow(table, 'No invoice yet.');
    table.querySelector('tbody').replaceChildren(...invoices.map((inv) => {
      const name = inv.number || inv.id;
      const links = [link(inv.hosted_invoice_url, 'View', `View invoice ${name}`), link(inv.invoice_pdf, 'PDF', `Invoice ${name} as PDF`)].filter(Boolean);
      const tone = { paid: 'ok', open: 'warn', uncollectible: 'bad', void: 'bad' }[inv.status];
      return el('tr', { dataset: { invoice: inv.id } },
        el('td', {}, date(inv.created)),
        el('td', {}, name),
        el('td', {}, money(inv.amount_due !== undefined ? inv.amount_due : inv.total, inv.currency)),
        el('td', {}, badge(inv.status || '—', tone)),
        el('td', {}, links.length ? links.flatMap((l, i) => (i ? [' · ', l] : [l])) : el('span', { class: 'muted', title: 'Stripe has no hosted page or PDF for this invoice' }, '—')));
    }));
  }

  function renderReceipts(receipts, failed) {
    const table = $('#receipts');
    if (failed) return emptyRow(table, 'The receipts could not be loaded.');
    if (!receipts || !receipts.length) return emptyRow(table, 'No payment yet.');
    table.querySelector('tbody').replaceChildren(...receipts.map((ch) => {
      const card = ch.payment_method_details && ch.payment_method_details.card;
      const source = ch.source && ch.source.last4 ? ch.source : card;
      return el('tr', { dataset: { receipt: ch.id } },
        el('td', {}, date(ch.created)),
        el('td', {}, source && source.last4 ? `•••• ${source.last4}` : ch.id),
        el('td', {}, money(ch.amount, ch.currency)),
        el('td', {}, ch.invoice || '—'),
        el('td', {}, link(ch.receipt_url, 'Receipt', `Receipt of ${ch.id}`) || el('span', { class: 'muted', title: 'Stripe has no receipt page for this payment' }, '—')));
    }));
  }

  async function subscribe(form) {
    const plan = $('#plan-select').value;
    const coupon = $('#coupon-input').value.trim();
    const answer = await api('POST', bucketPath('/payment/subscribe'), coupon ? { plan, coupon_id: coupon } : { plan });
    const intent = answer.payment_intent;
    if (intent && intent.client_secret) {
      notice('Your bank asks you to confirm the payment (3-D Secure)…');
      await gateway.authenticate(intent.client_secret);
      await api('POST', bucketPath(`/payment/subscribe/${encodeURIComponent(intent.id)}`), { plan });
    }
    $('#coupon-input').value = '';
    notice(`Subscribed: the bucket is on ${plan}.`);
    form.reset();
  }

  function wireBilling() {
    gateway = stripeGateway();
    const on = (selector, handler) => $(selector).addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearError();
      notice('');
      try {
        await busy(ev.currentTarget, () => handler(ev.currentTarget));
        await refreshBilling();
      } catch (err) {
        showError(err);
        await refreshBilling(true);
      }
    });
    on('#subscribe-form', subscribe);
    on('#trial-form', async () => {
      const answer = await api('PUT', bucketPath('/payment/trial'), { plan: $('#trial-select').value });
      notice(`Trial of ${answer.plan} started.`);
    });
    on('#card-form', async () => {
      if (!gateway || !gateway.token) throw new Error('cards cannot be added here (no Stripe publishable key)');
      const tokenId = await gateway.token();
      const answer = await api('POST', bucketPath('/payment/cards'), { token: tokenId });
      notice(`Card •••• ${answer.data.last4} added.`);
    });
    on('#bank-form', async () => {
      const iban = $('#iban-input');
      const problem = $('#iban-error');
      problem.hidden = true;
      iban.removeAttribute('aria-invalid');
      try {
        await api('POST', bucketPath('/payment/banks'), { type: 'sepa', iban: iban.value, name: $('#holder-input').value });
      } catch (err) {
        if (err instanceof ApiFailure && ['invalid_iban', 'missing_iban'].includes(err.code)) {
          problem.textContent = sentence(err.error.message);
          problem.hidden = false;
          iban.setAttribute('aria-invalid', 'true');
          iban.focus();
          throw new Error(`the IBAN was not accepted: ${err.error.message}`);
        }
        throw err;
      }
      iban.value = '';
      $('#holder-input').value = '';
      notice('SEPA bank account saved.');
    });
    on('#metadata-form', async () => {
      const metadata = {
        company_name: $('#company-input').value.trim(),
        vat_number: $('#vat-input').value.trim(),
        receipt_email: $('#email-input').value.trim(),
      };
      await api('PUT', bucketPath('/payment'), { metadata });
      notice('Company details saved.');
    });
    const action = (selector, method, rest, done, ask) => $(selector).addEventListener('click', async (ev) => {
      if (ask && !window.confirm(ask)) return;
      await cardAction(ev.currentTarget, method, rest, done);
    });
    action('#cancel-end', 'DELETE', '/payment/subscription', 'Subscription canceled: it ends at the end of the paid period. You can resume it until then.');
    action('#cancel-now', 'DELETE', '/payment/subscription?at=now', 'Subscription ended.', 'End the subscription now? The bucket loses its plan at once.');
    action('#resume', 'POST', '/payment/subscription/resume', 'Subscription resumed: it renews as before.');
    $('#bucket-select').addEventListener('change', async (ev) => {
      billing.bucketId = ev.currentTarget.value;
      sessionStorage.setItem(`${KEY}.bucket`, billing.bucketId);
      clearError();
      notice('');
      await refreshBilling();
    });
  }

  // ---- /ops ------------------------------------------------------------------

  const REFRESH_MS = 5000;
  let opsTimer = null;
  let lastGood = null;

  function bars(list, minutes, count, bad, label) {
    const most = Math.max(1, ...minutes.map(count));
    list.replaceChildren(...minutes.map((m) => {
      const at = new Date(m.start * 1000).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
      const n = count(m);
      const worst = bad ? bad(m) : 0;
      return el('li', { title: `${at}: ${label(m)}` },
        el('span', {}, String(n)),
        el('span', { class: `bar${worst ? ' bad' : ''}`, style: { height: `${Math.round((n / most) * 70)}%` } }),
        el('span', { class: 'sr-only' }, `${at}: ${label(m)}`));
    }));
  }

  function renderOps(h) {
    facts($('#inbox'), [
      ['Inbox depth', el('span', { id: 'inbox-depth' }, `${h.inbox.depth} waiting to be applied`)],
      ['Oldest unapplied', h.inbox.oldest_unapplied_at ? `${age(h.inbox.oldest_unapplied_seconds)} old (received ${time(h.inbox.oldest_unapplied_at)})` : 'none'],
      ['Apply lag', h.apply_lag.applied ? `${h.apply_lag.average_seconds.toFixed(1)} s on average, ${h.apply_lag.max_seconds} s at most (${h.apply_lag.applied} events in the last ${Math.round(h.apply_lag.window_seconds / 60)} min)` : `no event applied in the last ${Math.round(h.apply_lag.window_seconds / 60)} min`],
      ['Failed (retrying)', el('span', { id: 'failed-count' }, String(h.inbox.failed))],
      ['Dead', el('span', { id: 'dead-count' }, badge(String(h.inbox.dead), h.inbox.dead ? 'bad' : 'ok'))],
    ]);
    bars($('#deliveries'), h.webhooks_per_minute, (m) => m.count, null, (m) => `${m.count} deliveries`);

    const rows = h.problems.map((p) => el('tr', { dataset: { event: p.id, state: p.state } },
      el('td', {}, el('code', {}, p.id)),
      el('td', {}, p.type),
      el('td', {}, badge(p.state, p.state === 'dead' ? 'bad' : 'warn'), p.state === 'failed' ? ` next try ${time(p.next_attempt_at)}` : ''),
      el('td', {}, String(p.attempts)),
      el('td', { class: 'error' }, p.last_error || '—'),
      el('td', {}, time(p.received_at)),
      el('td', {}, el('button', { type: 'button', 'aria-label': `Replay ${p.id}`, onclick: (ev) => replay(ev.currentTarget, p.id) }, 'Replay'))));
    $('#problems tbody').replaceChildren(...rows);
    $('#problems').hidden = !rows.length;
    $('#no-problems').hidden = !!rows.length;

    const c = h.catchup;
    const r = h.reconcile;
    facts($('#jobs'), [
      ['Last catch-up', c.last_run_at ? `${time(c.last_run_at)} (${age(h.now - c.last_run_at)} ago)` : 'never'],
      ['Catch-up cursor age', el('span', { id: 'cursor-age' }, c.cursor_age_seconds !== null && c.cursor_age_seconds !== undefined ? age(c.cursor_age_seconds) : '—')],
      ['Last full reconcile', r.last_success_at ? `${time(r.last_success_at)} (${age(h.now - r.last_success_at)} ago)` : 'never'],
      r.in_progress_after && ['Full reconcile', `under way or interrupted (after bucket ${r.in_progress_after})`],
    ]);
    const drift = Object.entries(r.drift || {});
    $('#drift').replaceChildren(...drift.map(([kind, n]) => el('li', {}, el('span', { class: 'grow' }, kind), badge(String(n), n ? 'warn' : 'ok'))));
    $('#no-drift').hidden = !!drift.length;

    const s = h.stripe;
    facts($('#stripe'), [
      ['Pinned API version', el('code', { id: 'api-version' }, s.api_version)],
      ['Calls since start', `${s.calls} (since ${time(s.since)})`],
      ['Rate-limited (429)', el('span', { id: 'rate-limited' }, badge(String(s.rate_limited), s.rate_limited ? 'bad' : 'ok'))],
    ]);
    bars($('#calls'), s.minutes, (m) => m.calls, (m) => m.rate_limited, (m) => `${m.calls} calls, ${m.rate_limited} rate-limited`);
  }

  async function refreshOps() {
    clearTimeout(opsTimer);
    if (!token) return;
    try {
      const health = await api('GET', '/admin/ops');
      lastGood = health;
      $('#app').hidden = false;
      renderOps(health);
      clearError();
      $('#updated').textContent = `Updated ${new Date().toLocaleTimeString()} · refreshes every ${REFRESH_MS / 1000} s`;
      document.body.dataset.loaded = String(Date.now());
    } catch (err) {
      showError(err, 'Could not read the sync health');
      $('#updated').textContent = lastGood ? `Refresh failed at ${new Date().toLocaleTimeString()}; showing the data of ${time(lastGood.now)}` : '';
      if (err instanceof ApiFailure && (err.status === 401 || err.code === 'admin_disabled')) return;
    }
    opsTimer = setTimeout(refreshOps, REFRESH_MS);
  }

  async function replay(button, id) {
    clearError();
    try {
      const answer = await busy(button, () => api('POST', `/admin/events/${encodeURIComponent(id)}/replay`));
      notice(answer.requeued ? `${id} put back in line: the apply worker takes it now.` : `${id} is ${answer.state}: nothing to replay.`);
    } catch (err) {
      showError(err, `Could not replay ${id}`);
    }
    await refreshOps();
  }

  if (page === 'billing') {
    wireBilling();
    start(loadBilling);
  } else if (page === 'ops') {
    start(() => refreshOps());
  }
})();
