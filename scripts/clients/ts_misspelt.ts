// Must NOT compile: scripts/check-clients compiles this with the same flags
// as ts_smoke.ts and fails when tsc accepts it. A card schema that allows
// unknown fields (Stripe adds some) must still refuse a misspelt one.
import type { components } from "./schema.js";

type Card = components["schemas"]["Card"];

export function last4(card: Card): string {
  return card.last5;
}
