//! The two pages paysync serves itself: `/billing` (a bucket's billing page,
//! for its members, built on the public API only) and `/ops` (sync health,
//! for the admin token). Plain HTML, one stylesheet and one script, all
//! embedded in the binary: no build step, no CDN, nothing to deploy beside it.
//!
//! The pages hold no data: they are the same for everyone and never touch
//! the database, so they load even when the API cannot answer, and then say
//! why. Their script signs in with a bearer token (pasted, or handed over by
//! the host app in the `#token=` fragment, which never reaches a server) and
//! calls the JSON API like any other client.
//!
//! Card numbers never reach paysync: with Stripe (`STRIPE_API_BASE` is
//! Stripe's own) the billing page loads Stripe.js, whose card Element turns
//! them into a token; with a stand-in (localstripe in the demo, which Stripe.js
//! cannot talk to) the page posts the card form to the stand-in's
//! `/v1/tokens` itself, with the publishable key, as Stripe.js does.

use std::sync::LazyLock;

use poem::http::{HeaderValue, StatusCode, header};
use poem::web::Data;
use poem::{Request, Response, handler};
use sha2::{Digest, Sha256};

use crate::app::ApiContext;

const BILLING_HTML: &str = include_str!("billing.html");
const OPS_HTML: &str = include_str!("ops.html");
const CSS: &str = include_str!("paysync.css");
const JS: &str = include_str!("paysync.js");

/// Where Stripe.js is loaded from in production.
const STRIPE_JS: &str = "https://js.stripe.com/v3/";
/// Stripe's own API base: the page uses Stripe.js only against it.
const STRIPE_API: &str = "https://api.stripe.com";

/// A short hash of the stylesheet and script, in their URLs: they can be
/// cached for good, and a new binary's pages fetch the new ones.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let digest = Sha256::new().chain_update(CSS).chain_update(JS).finalize();
    hex::encode(&digest[..6])
});

/// How the billing page makes card tokens and handles 3-D Secure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardMode {
    /// Stripe.js: a card Element, `createToken`, `handleNextAction`.
    StripeJs { key: String },
    /// A Stripe stand-in: the page posts to its `/v1/tokens` and completes
    /// 3-D Secure with its `_authenticate` route.
    StandIn { key: String, api: String },
    /// No publishable key: cards cannot be added from the page.
    Off,
}

impl CardMode {
    pub fn of(api_base: &str, publishable_key: Option<&str>) -> CardMode {
        match publishable_key {
            None => CardMode::Off,
            Some(key) if api_base == STRIPE_API => CardMode::StripeJs { key: key.into() },
            Some(key) => CardMode::StandIn {
                key: key.into(),
                api: api_base.into(),
            },
        }
    }

    fn attributes(&self) -> String {
        match self {
            CardMode::StripeJs { key } => format!(
                r#"data-cards="stripe-js" data-stripe-key="{}""#,
                escape(key)
            ),
            CardMode::StandIn { key, api } => format!(
                r#"data-cards="stand-in" data-stripe-key="{}" data-stripe-api="{}""#,
                escape(key),
                escape(api)
            ),
            CardMode::Off => r#"data-cards="off""#.into(),
        }
    }

    /// What the page may load and talk to besides paysync itself.
    fn content_security_policy(&self) -> String {
        let (script, connect, frame) = match self {
            CardMode::StripeJs { .. } => (
                " https://js.stripe.com https://*.js.stripe.com",
                format!(" {STRIPE_API}"),
                "https://js.stripe.com https://*.js.stripe.com https://hooks.stripe.com",
            ),
            CardMode::StandIn { api, .. } => ("", format!(" {}", origin(api)), "'none'"),
            CardMode::Off => ("", String::new(), "'none'"),
        };
        format!(
            "default-src 'none'; script-src 'self'{script}; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'{connect}; frame-src {frame}; form-action 'self'; base-uri 'none'"
        )
    }
}

/// `scheme://host:port` of a URL (what CSP's connect-src names).
fn origin(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default()
}

/// Escape text for an HTML attribute value in double quotes.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn page(html: String, csp: &str, operation: &'static str) -> Response {
    let mut resp = Response::builder()
        .content_type("text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .body(html);
    if let Ok(v) = HeaderValue::from_str(csp) {
        resp.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp.set_data(poem_openapi::OperationId(operation));
    resp
}

fn fill(html: &str, attributes: &str, head: &str) -> String {
    html.replace("{{version}}", &VERSION)
        .replace("{{attributes}}", attributes)
        .replace("{{head}}", head)
}

/// `GET /billing`: the billing page of a bucket.
#[handler]
pub fn billing(ctx: Data<&ApiContext>) -> Response {
    let mode = CardMode::of(&ctx.cfg.stripe.api_base, ctx.cfg.publishable_key.as_deref());
    let head = match mode {
        CardMode::StripeJs { .. } => format!(r#"<script src="{STRIPE_JS}"></script>"#),
        _ => String::new(),
    };
    page(
        fill(BILLING_HTML, &mode.attributes(), &head),
        &mode.content_security_policy(),
        "billingPage",
    )
}

/// `GET /ops`: the sync-health page.
#[handler]
pub fn ops() -> Response {
    page(
        fill(OPS_HTML, "", ""),
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; base-uri 'none'",
        "opsPage",
    )
}

/// `GET /assets/:name`: the stylesheet and the script.
#[handler]
pub fn asset(req: &Request) -> Response {
    let (body, content_type) = match req.uri().path().rsplit('/').next() {
        Some("paysync.css") => (CSS, "text/css; charset=utf-8"),
        Some("paysync.js") => (JS, "text/javascript; charset=utf-8"),
        _ => {
            return crate::error::error_response(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such asset",
            );
        }
    };
    let mut resp = Response::builder()
        .content_type(content_type)
        .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable")
        .header("x-content-type-options", "nosniff")
        .body(body);
    resp.set_data(poem_openapi::OperationId("pageAsset"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_js_only_against_stripe() {
        let real = CardMode::of(STRIPE_API, Some("pk_live_x"));
        assert_eq!(
            real,
            CardMode::StripeJs {
                key: "pk_live_x".into()
            }
        );
        let csp = real.content_security_policy();
        assert!(csp.contains("script-src 'self' https://js.stripe.com"));
        assert!(csp.contains("connect-src 'self' https://api.stripe.com"));

        let demo = CardMode::of("http://127.0.0.1:8420", Some("pk_test_demo"));
        let csp = demo.content_security_policy();
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(
            csp.contains("connect-src 'self' http://127.0.0.1:8420;"),
            "{csp}"
        );
        assert!(
            demo.attributes()
                .contains(r#"data-stripe-api="http://127.0.0.1:8420""#)
        );

        assert_eq!(CardMode::of(STRIPE_API, None), CardMode::Off);
    }

    #[test]
    fn attributes_are_escaped() {
        assert_eq!(escape(r#"a"<b>&"#), "a&quot;&lt;b&gt;&amp;");
    }

    #[test]
    fn pages_name_their_assets() {
        for html in [BILLING_HTML, OPS_HTML] {
            let page = fill(html, "", "");
            assert!(page.contains(&format!("/assets/paysync.css?v={}", *VERSION)));
            assert!(page.contains(&format!("/assets/paysync.js?v={}", *VERSION)));
            assert!(!page.contains("{{"));
        }
    }
}
