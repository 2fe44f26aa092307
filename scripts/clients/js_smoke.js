// Smoke test of the existing PM2.io JS client (npm @pm2/js-api, unchanged)
// against a running paysync + localstripe: its services.API points at
// paysync, it resolves the bucket's node through GET /api/bucket/:id
// (node.endpoints.web), then calls bucket.billing.* as the PM2.io web app does.
//
// usage: node js_smoke.js PAYSYNC_URL STRIPE_URL BUCKET TOKEN
'use strict'
const PM2IO = require('@pm2/js-api')
const [url, stripeUrl, bucket, token] = process.argv.slice(2)

function fail (msg) {
  console.error(`FAIL ${msg}`)
  process.exit(1)
}

async function cardToken () {
  const res = await fetch(`${stripeUrl}/v1/tokens`, {
    method: 'POST',
    headers: { Authorization: 'Bearer sk_test_js', 'Content-Type': 'application/x-www-form-urlencoded' },
    body: 'card[number]=4242424242424242&card[exp_month]=12&card[exp_year]=2030&card[cvc]=123'
  })
  return (await res.json()).id
}

async function main () {
  const km = new PM2IO({ services: { API: url, OAUTH: url } })
  km.use('standalone', { access_token: token, refresh_token: 'unused-by-paysync' })
  const billing = km.bucket.billing
  const step = async (name, fn, check) => {
    let res
    try {
      res = await fn()
    } catch (err) {
      const r = err.response || {}
      fail(`${name}: ${err.message} ${r.status || ''} ${JSON.stringify(r.data || '')}`)
    }
    if (check && !check(res.data)) fail(`${name}: unexpected answer ${JSON.stringify(res.data)}`)
    console.log(`ok   bucket.billing.${name} -> ${res.status}`)
    return res.data
  }
  await step('attachCreditCard', async () => billing.attachCreditCard(bucket, { token: await cardToken() }),
    d => d.data && d.data.last4 === '4242')
  const cards = await step('fetchCreditCards', () => billing.fetchCreditCards(bucket), d => Array.isArray(d.data) && d.data.length >= 1)
  await step('fetchCreditCard', () => billing.fetchCreditCard(bucket, cards.data[0].id), d => d.data.id === cards.data[0].id)
  await step('fetchDefaultCreditCard', () => billing.fetchDefaultCreditCard(bucket), d => d.data && d.data.id)
  await step('updateMetadata', () => billing.updateMetadata(bucket, { metadata: { company_name: 'JS client Ltd' } }))
  await step('fetchMetadata', () => billing.fetchMetadata(bucket), d => JSON.stringify(d).includes('JS client Ltd'))
  await step('subscribe', () => billing.subscribe(bucket, { plan: 'starter' }), d => d.bucket && d.subscription)
  await step('getSubcriptionState', () => billing.getSubcriptionState(bucket), d => d.status === 'active' && d.plan === 'starter')
  await step('getSubcription', () => billing.getSubcription(bucket), d => d.id && d.id.startsWith('sub_'))
  await step('getInvoices', () => billing.getInvoices(bucket), d => Array.isArray(d) && d.length >= 1)
  console.log('js client smoke OK')
}

main().catch(err => fail(err.stack || err))
