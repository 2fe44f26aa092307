// Smoke test of a TypeScript client generated from openapi/openapi.json by
// openapi-typescript (types) with openapi-fetch (the calls), against a
// running paysync + localstripe.
//
// Compiled by scripts/check-clients with `tsc --strict
// --noPropertyAccessFromIndexSignature` before it runs: every field it reads
// (card.last4, invoice.status, state.status...) must be a field the spec
// types, or the compile fails (ts_misspelt.ts proves a wrong name does).
//
// usage: node ts_smoke.js PAYSYNC_URL STRIPE_URL BUCKET TOKEN
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type Card = components["schemas"]["Card"];
type Invoice = components["schemas"]["Invoice"];
type Receipt = components["schemas"]["Receipt"];

function fail(msg: string): never {
  console.error(`FAIL ${msg}`);
  process.exit(1);
}

function arg(i: number): string {
  return process.argv[2 + i] ?? fail("usage: node ts_smoke.js PAYSYNC_URL STRIPE_URL BUCKET TOKEN");
}

const [url, stripeUrl, bucket, token] = [arg(0), arg(1), arg(2), arg(3)];

function ok(what: string, status: number): void {
  console.log(`ok   ${what} -> ${status}`);
}

async function cardToken(number: string): Promise<string> {
  const res = await fetch(`${stripeUrl}/v1/tokens`, {
    method: "POST",
    headers: { Authorization: "Bearer sk_test_ts", "Content-Type": "application/x-www-form-urlencoded" },
    body: `card[number]=${number}&card[exp_month]=12&card[exp_year]=2030&card[cvc]=123`,
  });
  const body: unknown = await res.json();
  const id = (body as { id?: unknown }).id;
  if (typeof id !== "string") fail(`localstripe made no token: ${JSON.stringify(body)}`);
  return id;
}

const client = createClient<paths>({ baseUrl: url, headers: { Authorization: `Bearer ${token}` } });
const path = { id: bucket };

async function main(): Promise<void> {
  const attached = await client.POST("/api/bucket/{id}/payment/cards", {
    params: { path },
    body: { token: await cardToken("4242424242424242") },
  });
  if (!attached.data) fail(`attachCreditCard: ${attached.response.status} ${JSON.stringify(attached.error)}`);
  const card: Card = attached.data.data;
  const last4: string = card.last4;
  const expires: number = card.exp_year * 100 + card.exp_month;
  const country: string | null = card.country;
  if (last4 !== "4242" || expires < 203001) fail(`attachCreditCard: ${JSON.stringify(card)}`);
  ok(`attachCreditCard (last4 ${last4}, country ${country ?? "none"})`, attached.response.status);

  const cards = await client.GET("/api/bucket/{id}/payment/cards", { params: { path } });
  if (!cards.data) fail(`fetchCreditCards: ${cards.response.status}`);
  const listed: string[] = cards.data.data.map((c) => `${c.brand} ${c.last4}`);
  if (!listed.includes("Visa 4242")) fail(`fetchCreditCards: ${JSON.stringify(listed)}`);
  ok(`fetchCreditCards (${listed.join(", ")})`, cards.response.status);

  const subscribed = await client.POST("/api/bucket/{id}/payment/subscribe", {
    params: { path },
    body: { plan: "starter" },
  });
  if (!subscribed.data) fail(`subscribe: ${subscribed.response.status} ${JSON.stringify(subscribed.error)}`);
  const subscriptionStatus: string = subscribed.data.subscription.status;
  const plan: string = subscribed.data.bucket.plan;
  ok(`subscribe (${subscriptionStatus}, bucket on ${plan})`, subscribed.response.status);

  const state = await client.GET("/api/bucket/{id}/payment/subscription/state", { params: { path } });
  if (!state.data) fail(`getSubcriptionState: ${state.response.status}`);
  const status: string = state.data.status;
  if (status !== "active") fail(`getSubcriptionState: ${JSON.stringify(state.data)}`);
  ok(`getSubcriptionState (${status})`, state.response.status);

  const invoices = await client.GET("/api/bucket/{id}/payment/invoices", { params: { path, query: { limit: 10 } } });
  if (!invoices.data) fail(`getInvoices: ${invoices.response.status}`);
  const invoice: Invoice | undefined = invoices.data[0];
  if (!invoice) fail("getInvoices: none");
  const invoiceStatus: string | null = invoice.status;
  const total: number = invoice.total;
  const lines: number = invoice.lines.data.length;
  if (invoiceStatus !== "paid" || total <= 0 || lines < 1) fail(`getInvoices: ${JSON.stringify(invoice)}`);
  ok(`getInvoices (${invoice.id} ${invoiceStatus}, total ${total} ${invoice.currency})`, invoices.response.status);

  const receipts = await client.GET("/api/bucket/{id}/payment/receipts", { params: { path } });
  if (!receipts.data) fail(`getReceipts: ${receipts.response.status}`);
  const receipt: Receipt | undefined = receipts.data[0];
  if (!receipt) fail("getReceipts: none");
  const paidInvoice: string | null = receipt.invoice;
  if (paidInvoice !== invoice.id) fail(`getReceipts: ${JSON.stringify(receipt)}`);
  ok(`getReceipts (${receipt.amount} ${receipt.currency} for ${paidInvoice})`, receipts.response.status);

  // A documented error comes back typed as the error body.
  const missing = await client.GET("/api/bucket/{id}/payment/cards", { params: { path: { id: "0".repeat(24) } } });
  const code: string | undefined = missing.error?.error.code;
  if (missing.response.status !== 404 || code !== "bucket_not_found") {
    fail(`fetchCreditCards of an unknown bucket: ${missing.response.status} ${code}`);
  }
  ok(`fetchCreditCards of an unknown bucket (${code})`, missing.response.status);
  console.log("ts client smoke OK");
}

main().catch((err: unknown) => fail(err instanceof Error ? (err.stack ?? err.message) : String(err)));
