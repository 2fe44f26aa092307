//! Raw Stripe requests with a form body or a query string, for calls whose
//! parameters async-stripe's builders cannot express the way localstripe and
//! older API versions expect (nested `items[0][plan]`, `expand[]`, custom ids).

use stripe_client_core::{RequestBuilder, StripeMethod};

fn encode(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// `GET path?pairs`.
pub fn get(path: impl Into<String>, pairs: &[(&str, &str)]) -> RequestBuilder {
    let mut req = RequestBuilder::new(StripeMethod::Get, path);
    if !pairs.is_empty() {
        req.query = Some(encode(pairs));
    }
    req
}

/// `POST path` with a form-encoded body.
pub fn post(path: impl Into<String>, pairs: &[(&str, &str)]) -> RequestBuilder {
    let mut req = RequestBuilder::new(StripeMethod::Post, path);
    req.body = Some(encode(pairs));
    req
}

/// `DELETE path`.
pub fn delete(path: impl Into<String>) -> RequestBuilder {
    RequestBuilder::new(StripeMethod::Delete, path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn brackets_are_encoded() {
        let req = super::post(
            "/subscriptions",
            &[("items[0][plan]", "p 1"), ("expand[]", "latest_invoice")],
        );
        assert_eq!(
            req.body.as_deref(),
            Some("items%5B0%5D%5Bplan%5D=p+1&expand%5B%5D=latest_invoice")
        );
    }
}
