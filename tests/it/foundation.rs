//! Foundation: authentication, bucket access, admin API, health, config, spec.

use std::time::Duration;

use paysync::auth::JwtKeys;
use paysync::store::buckets::Role;
use reqwest::Method;
use serde_json::json;

use crate::both;
use crate::common::*;

async fn auth_matrix(b: Backend) {
    let app = TestApp::start(b).await;
    let bucket = app.bucket("alice").await;
    app.add_member(&bucket, "bob", Role::Member).await;
    app.add_member(&bucket, "carol", Role::Admin).await;
    let path = format!("/api/bucket/{bucket}");

    // No token, garbage, wrong signature, expired, wrong algorithm: 401 with WWW-Authenticate.
    let resp = app.anon(Method::GET, &path).send().await.unwrap();
    assert_eq!(
        resp.headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap()),
        Some("Bearer")
    );
    assert_error(&status_json(resp).await, 401, "unauthorized");
    let bad_tokens = [
        "not-a-jwt".to_string(),
        JwtKeys::hs256("another-secret-0123456789")
            .unwrap()
            .mint("alice", Duration::from_secs(60))
            .unwrap(),
        expired_token("alice"),
    ];
    for token in bad_tokens {
        let resp = app
            .anon(Method::GET, &path)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap()),
            Some("Bearer")
        );
        assert_error(&status_json(resp).await, 401, "unauthorized");
    }
    let basic = app.anon(Method::GET, &path).basic_auth("alice", Some("pw"));
    assert_error(&call(basic).await, 401, "unauthorized");

    // Members read; a stranger gets the same 404 as for a bucket that does not exist.
    for user in ["alice", "bob", "carol"] {
        let (status, body) = call(app.get(&path, user)).await;
        assert_eq!(status, 200, "{user}: {body}");
        assert_eq!(body["id"], bucket);
    }
    let stranger = call(app.get(&path, "mallory")).await;
    assert_error(&stranger, 404, "bucket_not_found");
    let missing = call(app.get("/api/bucket/0123456789abcdef01234567", "alice")).await;
    assert_eq!(
        stranger, missing,
        "a non-member must not tell a bucket exists"
    );
    assert_error(
        &call(app.get("/api/bucket/not-an-id", "alice")).await,
        404,
        "bucket_not_found",
    );
}

fn expired_token(user: &str) -> String {
    use jsonwebtoken::{EncodingKey, Header, encode};
    let now = paysync::auth::now_secs();
    let claims = json!({"sub": user, "exp": now - 120, "iat": now - 3600});
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

async fn admin_api(b: Backend) {
    let app = TestApp::start(b).await;
    let admin = |m: Method, p: &str| app.anon(m, p).bearer_auth(ADMIN_TOKEN);
    let id = "00112233445566778899aabb";

    // Wrong or missing admin token: 401. A user token is not an admin token.
    let wrong = app
        .anon(Method::PUT, &format!("/admin/buckets/{id}"))
        .bearer_auth("wrong-token-0123456789");
    assert_error(
        &call(wrong.json(&json!({"name": "x"}))).await,
        401,
        "unauthorized",
    );
    let user = app
        .put(&format!("/admin/buckets/{id}"), "alice")
        .json(&json!({"name": "x"}));
    assert_error(&call(user).await, 401, "unauthorized");
    assert!(
        app.ctx.db.bucket(id).await.unwrap().is_none(),
        "nothing written on refusal"
    );

    // Create with PUT, then replace: members are replaced, not merged.
    let body = json!({"name": "Acme", "members": [{"user_id": "alice", "role": "owner"}, {"user_id": "bob", "role": "member"}]});
    let (status, created) =
        call(admin(Method::PUT, &format!("/admin/buckets/{id}")).json(&body)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["members"].as_array().unwrap().len(), 2);
    let body = json!({"name": "Acme Inc", "members": [{"user_id": "carol", "role": "owner"}]});
    let (status, replaced) =
        call(admin(Method::PUT, &format!("/admin/buckets/{id}")).json(&body)).await;
    assert_eq!(status, 200);
    assert_eq!(replaced["name"], "Acme Inc");
    assert_eq!(
        replaced["members"],
        json!([{"user_id": "carol", "role": "owner"}])
    );
    assert_error(
        &call(app.get(&format!("/api/bucket/{id}"), "alice")).await,
        404,
        "bucket_not_found",
    );
    assert_eq!(
        call(app.get(&format!("/api/bucket/{id}"), "carol")).await.0,
        200
    );

    // Bad input: 400 and nothing written.
    let bad = [
        (format!("/admin/buckets/{}", "ABC"), json!({"name": "x"})),
        (format!("/admin/buckets/{id}"), json!({"members": []})),
        (
            format!("/admin/buckets/{id}"),
            json!({"name": "x", "members": [{"user_id": "a", "role": "king"}]}),
        ),
        (
            format!("/admin/buckets/{id}"),
            json!({"name": "x", "members": [{"user_id": "a", "role": "owner"}, {"user_id": "a", "role": "member"}]}),
        ),
    ];
    for (path, body) in bad {
        let (status, err) = call(admin(Method::PUT, &path).json(&body)).await;
        assert_eq!(status, 400, "{path} {body} -> {err}");
        assert!(err["error"]["message"].is_string());
    }
    assert_eq!(
        app.ctx.db.bucket(id).await.unwrap().unwrap().name,
        "Acme Inc"
    );

    // POST makes a fresh id.
    let (status, fresh) = call(
        admin(Method::POST, "/admin/buckets")
            .json(&json!({"name": "New", "members": [{"user_id": "dan", "role": "owner"}]})),
    )
    .await;
    assert_eq!(status, 201);
    let fresh_id = fresh["id"].as_str().unwrap();
    assert!(paysync::store::buckets::valid_id(fresh_id));
    assert_eq!(
        call(app.get(&format!("/api/bucket/{fresh_id}"), "dan"))
            .await
            .0,
        200
    );

    // Delete, then it is gone.
    assert_eq!(
        call(admin(Method::DELETE, &format!("/admin/buckets/{id}")))
            .await
            .0,
        200
    );
    assert_error(
        &call(admin(Method::DELETE, &format!("/admin/buckets/{id}"))).await,
        404,
        "bucket_not_found",
    );
    assert_error(
        &call(app.get(&format!("/api/bucket/{id}"), "carol")).await,
        404,
        "bucket_not_found",
    );
}

async fn admin_off_without_token(b: Backend) {
    let app = TestApp::start_with(
        b,
        Options {
            admin_token: None,
            ..Default::default()
        },
    )
    .await;
    let req = app
        .anon(Method::POST, "/admin/buckets")
        .bearer_auth("anything-at-all-123")
        .json(&json!({"name": "x"}));
    assert_error(&call(req).await, 404, "admin_disabled");
}

async fn lists_only_callers_buckets(b: Backend) {
    let app = TestApp::start(b).await;
    let a1 = app.bucket("alice").await;
    let a2 = app.bucket("bob").await;
    app.add_member(&a2, "alice", Role::Member).await;
    let _not_alices = app.bucket("bob").await;
    let (status, list) = call(app.get("/api/bucket", "alice")).await;
    assert_eq!(status, 200);
    let mut ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut want = vec![a1.as_str(), a2.as_str()];
    want.sort();
    assert_eq!(ids, want);
    let roles: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["role"].as_str().unwrap())
        .collect();
    assert!(roles.contains(&"owner") && roles.contains(&"member"));
    assert_eq!(
        call(app.get("/api/bucket", "nobody")).await,
        (200, json!([]))
    );
}

async fn bucket_has_node_endpoint_and_free_plan(b: Backend) {
    let app = TestApp::start(b).await;
    let id = app.bucket("alice").await;
    let (status, body) = call(app.get(&format!("/api/bucket/{id}"), "alice")).await;
    assert_eq!(status, 200);
    assert_eq!(body["_id"], id);
    assert_eq!(body["node"]["endpoints"]["web"], app.url);
    assert_eq!(body["plan"], "free");
    assert_eq!(body["subscription"], serde_json::Value::Null);
}

async fn readyz_follows_the_database(b: Backend) {
    let app = TestApp::start(b).await;
    assert_eq!(
        call(app.anon(Method::GET, "/readyz")).await,
        (200, json!({"status": "ready"}))
    );
    app.db.destroy().await;
    let got = call(app.anon(Method::GET, "/readyz")).await;
    assert_error(&got, 503, "unavailable");
    // The process itself is still alive.
    assert_eq!(call(app.anon(Method::GET, "/healthz")).await.0, 200);
}

async fn errors_are_json(b: Backend) {
    let app = TestApp::start(b).await;
    assert_error(
        &call(app.anon(Method::GET, "/no/such/route")).await,
        404,
        "not_found",
    );
    let admin = |m: Method, p: &str| app.anon(m, p).bearer_auth(ADMIN_TOKEN);
    let not_json = admin(Method::POST, "/admin/buckets")
        .header("content-type", "application/json")
        .body("{nope");
    assert_error(&call(not_json).await, 400, "bad_request");
    let wrong_type = admin(Method::POST, "/admin/buckets").json(&json!({"name": ["x"]}));
    assert_error(&call(wrong_type).await, 400, "bad_request");
    let huge = "x".repeat(70 * 1024);
    let too_big = admin(Method::POST, "/admin/buckets").json(&json!({"name": huge}));
    assert_error(&call(too_big).await, 413, "payload_too_large");
    // Chunked (no Content-Length) is limited too.
    let stream = futures::stream::iter(vec![
        Ok::<_, std::io::Error>(vec![b'x'; 40 * 1024]),
        Ok(vec![b'x'; 40 * 1024]),
    ]);
    let chunked = admin(Method::POST, "/admin/buckets")
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream));
    assert_error(&call(chunked).await, 413, "payload_too_large");
    assert!(app.ctx.db.buckets_with_customer().await.unwrap().is_empty());
}

both!(
    auth_matrix,
    admin_api,
    admin_off_without_token,
    lists_only_callers_buckets,
    bucket_has_node_endpoint_and_free_plan,
    readyz_follows_the_database,
    errors_are_json,
);

#[test]
fn startup_refuses_bad_config_with_one_clear_line() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("STRIPE_SECRET_KEY", "")], "STRIPE_SECRET_KEY"),
        (
            &[("STRIPE_SECRET_KEY", "pk_live_nope")],
            "STRIPE_SECRET_KEY",
        ),
        (&[("PAYSYNC_JWT_SECRET", "")], "PAYSYNC_JWT_SECRET"),
        (&[("PAYSYNC_JWT_SECRET", "short")], "PAYSYNC_JWT_SECRET"),
        (&[("PAYSYNC_BIND", "nowhere")], "PAYSYNC_BIND"),
        (&[("DATABASE_URL", "mysql://x")], "DATABASE_URL"),
        (&[("PAYSYNC_PLANS", "/no/such/plans.toml")], "PAYSYNC_PLANS"),
        (&[("STRIPE_API_BASE", "not a url")], "STRIPE_API_BASE"),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (env, name) in cases {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_paysync"));
        cmd.arg("serve")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "error")
            .env("PAYSYNC_BIND", "127.0.0.1:0")
            .env(
                "DATABASE_URL",
                format!("sqlite://{}/x.db", dir.path().display()),
            )
            .env("STRIPE_SECRET_KEY", "sk_test_x")
            .env("PAYSYNC_JWT_SECRET", JWT_SECRET);
        for (k, v) in *env {
            if v.is_empty() {
                cmd.env_remove(k);
            } else {
                cmd.env(k, v);
            }
        }
        let out = cmd.output().expect("run paysync");
        assert!(!out.status.success(), "{name}: should refuse to start");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{name}: one line expected, got {stderr:?}");
        assert!(
            lines[0].contains(name),
            "{name}: line should name the setting: {stderr:?}"
        );
    }
}

#[test]
fn committed_openapi_spec_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let generated = paysync::api::spec_json();
    assert!(
        committed.trim_end() == generated.trim_end(),
        "openapi/openapi.json is out of date: refresh it with `cargo run -q -- openapi > openapi/openapi.json`"
    );
}
