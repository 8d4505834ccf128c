//! upgate's own accounts end to end over HTTP (SECURITY-TESTS section K): registration on and
//! off, login, the same answer for a wrong password and an unknown user, refresh rotation and
//! reuse detection, logout, lockout, `/me` through the Redis cache and without it, a user's
//! uploads with the access token, signing-key rotation with the JWKS, refused tokens (`none`,
//! algorithm confusion, tampering, another tenant), tokens not cookies (no CSRF), and signed
//! receipts checked by the CLI. The journey runs on SQLite and on PostgreSQL.

use std::process::Command;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::api::{new_upload, tenant, upload};
use crate::common::*;

const BIN: &str = env!("CARGO_BIN_EXE_upgate");
/// A master key (base64 of 32 bytes) for the tests; sealed signing keys need one.
const MASTER: &str = "mk1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const PASSWORD: &str = "correct horse battery staple";

fn accounts_config(extra: &str) -> String {
    format!(
        "[storage.encryption]\nkeys = {MASTER:?}\n\
         [ratelimit.token_exchange]\nip = {{ rate = 1000.0, burst = 1000 }}\n\
         [accounts]\nenabled = true\ntenant = \"acme\"\n{extra}"
    )
}

/// Sends a JSON request; returns status, headers and the parsed body.
async fn req(
    app: &TestApp,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut headers = Vec::new();
    if let Some(b) = bearer {
        headers.push(("authorization".to_string(), format!("Bearer {b}")));
    }
    let bytes = match body {
        Some(v) => {
            headers.push(("content-type".to_string(), "application/json".to_string()));
            serde_json::to_vec(&v).expect("json")
        }
        None => Vec::new(),
    };
    let (status, h, resp) = send(
        method,
        &format!("{}{path}", app.endpoint()),
        &headers,
        bytes,
    )
    .await;
    let v = if resp.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&resp)
            .unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&resp)}))
    };
    (status, h, v)
}

async fn login(app: &TestApp, email: &str, password: &str) -> (u16, Value) {
    let (s, _, v) = req(
        app,
        "POST",
        "/v1/auth/login",
        None,
        Some(json!({"email": email, "password": password})),
    )
    .await;
    (s, v)
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} in {v}"))
        .to_string()
}

/// The error document without its request id (which differs per request).
fn without_request_id(mut v: Value) -> Value {
    if let Some(e) = v["error"].as_object_mut() {
        e.remove("request_id");
    }
    v
}

fn header_of(token: &str) -> Value {
    let h = token.split('.').next().expect("header");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).expect("b64")).expect("json")
}

/// The whole journey; `app` runs with accounts enabled, open registration, tenant "acme".
async fn journey(app: &TestApp) {
    let acme = tenant(app, "acme").await;
    let other = tenant(app, "other").await;

    // Registration: normalised e-mail, unique per tenant, password length enforced.
    let (st, _, alice) = req(
        app,
        "POST",
        "/v1/auth/register",
        None,
        Some(json!({"email": "  Alice@Example.COM ", "password": PASSWORD, "name": "Alice"})),
    )
    .await;
    assert_eq!(st, 201, "{alice}");
    assert_eq!(alice["email"], "alice@example.com");
    assert_eq!(alice["tenant_id"], acme.tenant_id.as_str());
    assert_eq!(alice["role"], "member");
    assert!(alice.get("password_hash").is_none() && !alice.to_string().contains("argon2"));
    let (st, _, _) = req(
        app,
        "POST",
        "/v1/auth/register",
        None,
        Some(json!({"email": "alice@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(st, 409);
    let (st, _, _) = req(
        app,
        "POST",
        "/v1/auth/register",
        None,
        Some(json!({"email": "short@example.com", "password": "elevenchars"})),
    )
    .await;
    assert_eq!(st, 400);

    // Wrong password and unknown user: same status, same body.
    let (s1, wrong) = login(app, "alice@example.com", "wrong password 123").await;
    let (s2, unknown) = login(app, "nobody@example.com", "wrong password 123").await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(without_request_id(wrong), without_request_id(unknown));

    // Login (case and spaces do not matter).
    let (st, t) = login(app, "ALICE@example.com ", PASSWORD).await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 900);
    let access = s(&t, "access_token");
    let refresh1 = s(&t, "refresh_token");
    assert_eq!(header_of(&access)["alg"], "EdDSA");

    // /me.
    let (st, _, me) = req(app, "GET", "/v1/auth/me", Some(&access), None).await;
    assert_eq!(st, 200, "{me}");
    assert_eq!(me["user"]["email"], "alice@example.com");
    assert_eq!(me["tenant"]["name"], "acme");

    // The access token works like any bearer: an upload, the listing, the receipt.
    let data = pdf(3000);
    let (st, _, link) = req(
        app,
        "POST",
        "/v1/uploads",
        Some(&access),
        Some(new_upload("alice.pdf", &data)),
    )
    .await;
    assert_eq!(st, 201, "{link}");
    assert_eq!(upload(&link, data.clone()).await.0, 200);
    let (st, _, files) = req(app, "GET", "/v1/files", Some(&access), None).await;
    assert_eq!(st, 200);
    assert_eq!(files["files"].as_array().map(Vec::len), Some(1), "{files}");
    let file_id = s(&link, "file_id");
    let (_, _, up) = req(
        app,
        "GET",
        &format!("/v1/uploads/{}", s(&link, "upload_id")),
        Some(&access),
        None,
    )
    .await;
    let receipt = &up["receipt"];
    assert_eq!(
        receipt["uploader"],
        format!("user:{}", s(&alice, "user_id"))
    );
    assert_eq!(receipt["file_id"], file_id.as_str());
    assert_eq!(receipt["size"], 3000);
    assert_eq!(receipt["sha256"], sha256_hex(&data));
    assert_eq!(receipt["scan"], "clean");
    // The tenant's app does not own Alice's file; another tenant's user sees nothing either.
    let (st, _, _) = req(
        app,
        "GET",
        &format!("/v1/files/{file_id}"),
        Some(&acme.api_key),
        None,
    )
    .await;
    assert_eq!(st, 404);
    let (st, _, bob) = req(
        app,
        "POST",
        "/v1/users",
        Some(&other.api_key),
        Some(json!({"email": "bob@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(st, 201, "{bob}");
    let (st, _, bt) = req(
        app,
        "POST",
        "/v1/auth/login",
        None,
        Some(json!({"email": "bob@example.com", "password": PASSWORD, "tenant": "other"})),
    )
    .await;
    assert_eq!(st, 200, "{bt}");
    let bob_access = s(&bt, "access_token");
    let (st, _, _) = req(
        app,
        "GET",
        &format!("/v1/files/{file_id}"),
        Some(&bob_access),
        None,
    )
    .await;
    assert_eq!(st, 404);
    // Bob's e-mail is unknown in acme (unique per tenant, not global).
    assert_eq!(login(app, "bob@example.com", PASSWORD).await.0, 401);

    // Tenant roles: a member may not add users; the app may add an admin, who may add users.
    let (st, _, _) = req(
        app,
        "POST",
        "/v1/users",
        Some(&access),
        Some(json!({"email": "carol@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(st, 403);
    let (st, _, dave) = req(
        app,
        "POST",
        "/v1/users",
        Some(&acme.api_key),
        Some(json!({"email": "dave@example.com", "password": PASSWORD, "role": "admin"})),
    )
    .await;
    assert_eq!((st, dave["role"].as_str()), (201, Some("admin")));
    let (_, dt) = login(app, "dave@example.com", PASSWORD).await;
    let (st, _, carol) = req(
        app,
        "POST",
        "/v1/users",
        Some(&s(&dt, "access_token")),
        Some(json!({"email": "carol@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(
        (st, carol["tenant_id"].as_str()),
        (201, Some(acme.tenant_id.as_str()))
    );

    // Refresh rotates: the new pair works, the old refresh token is spent.
    let (st, _, t2) = req(
        app,
        "POST",
        "/v1/auth/refresh",
        None,
        Some(json!({"refresh_token": refresh1})),
    )
    .await;
    assert_eq!(st, 200, "{t2}");
    let refresh2 = s(&t2, "refresh_token");
    let access2 = s(&t2, "access_token");
    assert_ne!(refresh2, refresh1);
    assert_eq!(
        req(app, "GET", "/v1/auth/me", Some(&access2), None).await.0,
        200
    );
    // Presenting the spent token again revokes the whole family: the newest refresh token and
    // every access token of the session stop working.
    let (st, _, _) = req(
        app,
        "POST",
        "/v1/auth/refresh",
        None,
        Some(json!({"refresh_token": refresh1})),
    )
    .await;
    assert_eq!(st, 401);
    let (st, _, _) = req(
        app,
        "POST",
        "/v1/auth/refresh",
        None,
        Some(json!({"refresh_token": refresh2})),
    )
    .await;
    assert_eq!(st, 401);
    assert_eq!(
        req(app, "GET", "/v1/auth/me", Some(&access2), None).await.0,
        401
    );
    assert_eq!(
        req(app, "GET", "/v1/files", Some(&access), None).await.0,
        401
    );

    // Logout ends the session: its access and refresh tokens are refused.
    let (_, t3) = login(app, "alice@example.com", PASSWORD).await;
    let access3 = s(&t3, "access_token");
    assert_eq!(
        req(app, "GET", "/v1/auth/me", Some(&access3), None).await.0,
        200
    );
    assert_eq!(
        req(app, "POST", "/v1/auth/logout", Some(&access3), None)
            .await
            .0,
        204
    );
    assert_eq!(
        req(app, "GET", "/v1/auth/me", Some(&access3), None).await.0,
        401
    );
    let (st, _, _) = req(
        app,
        "POST",
        "/v1/auth/refresh",
        None,
        Some(json!({"refresh_token": s(&t3, "refresh_token")})),
    )
    .await;
    assert_eq!(st, 401);
    // Logout with the refresh token alone works too.
    let (_, t4) = login(app, "alice@example.com", PASSWORD).await;
    let (st, _, _) = req(
        app,
        "POST",
        "/v1/auth/logout",
        None,
        Some(json!({"refresh_token": s(&t4, "refresh_token")})),
    )
    .await;
    assert_eq!(st, 204);
    assert_eq!(
        req(
            app,
            "GET",
            "/v1/auth/me",
            Some(&s(&t4, "access_token")),
            None
        )
        .await
        .0,
        401
    );

    // The JWKS publishes the key that signed the tokens.
    let (st, h, jwks) = req(app, "GET", "/.well-known/jwks.json", None, None).await;
    assert_eq!(st, 200);
    assert_eq!(h["content-type"], "application/jwk-set+json");
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], header_of(&access)["kid"]);
    assert_eq!(
        (keys[0]["kty"].as_str(), keys[0]["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    assert!(keys[0].get("d").is_none(), "no private part");
}

#[tokio::test]
async fn accounts_journey_on_sqlite() {
    let app = spawn_app_with(&accounts_config("open_registration = true\n")).await;
    journey(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn accounts_journey_on_postgresql() {
    let pg = PgSchema::new();
    let app = spawn_app_with(&accounts_config(&format!(
        "open_registration = true\n{}",
        pg.config()
    )))
    .await;
    journey(&app).await;
    app.stop().await;
    pg.drop().await;
}

#[tokio::test]
async fn accounts_journey_on_mysql() {
    let db = MySqlDatabase::new().await;
    let app = spawn_app_with(&accounts_config(&format!(
        "open_registration = true\n{}",
        db.config()
    )))
    .await;
    journey(&app).await;
    app.stop().await;
    db.drop().await;
}

#[tokio::test]
async fn registration_is_closed_by_default_and_routes_are_absent_without_accounts() {
    let app = spawn_app_with(&accounts_config("")).await;
    tenant(&app, "acme").await;
    let (st, _, v) = req(
        &app,
        "POST",
        "/v1/auth/register",
        None,
        Some(json!({"email": "eve@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(st, 403, "{v}");
    assert_eq!(login(&app, "eve@example.com", PASSWORD).await.0, 401);
    app.stop().await;
    let plain = spawn_app().await;
    let (st, _, _) = req(
        &plain,
        "POST",
        "/v1/auth/login",
        None,
        Some(json!({"email": "eve@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(st, 404);
    assert_eq!(
        req(&plain, "GET", "/.well-known/jwks.json", None, None)
            .await
            .0,
        404
    );
    plain.stop().await;
}

#[tokio::test]
async fn repeated_failures_lock_the_account_and_the_address() {
    let app = spawn_app_with(&accounts_config(
        "open_registration = true\nmax_failures_per_account = 3\nmax_failures_per_address = 6\n",
    ))
    .await;
    tenant(&app, "acme").await;
    for e in ["lock@example.com", "free@example.com"] {
        let (st, _, _) = req(
            &app,
            "POST",
            "/v1/auth/register",
            None,
            Some(json!({"email": e, "password": PASSWORD})),
        )
        .await;
        assert_eq!(st, 201);
    }
    for _ in 0..3 {
        assert_eq!(
            login(&app, "lock@example.com", "not the password!").await.0,
            401
        );
    }
    // Locked: even the right password is refused, before hashing, with Retry-After.
    let (st, h, v) = req(
        &app,
        "POST",
        "/v1/auth/login",
        None,
        Some(json!({"email": "lock@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(st, 429, "{v}");
    let retry: u64 = h["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("secs");
    assert!((1..=900).contains(&retry), "{retry}");
    // Another account from the same address still works (3 failures so far < 6) ...
    assert_eq!(login(&app, "free@example.com", PASSWORD).await.0, 200);
    // ... until the address has failed 6 times (on accounts that may not even exist).
    for i in 0..3 {
        assert_eq!(
            login(&app, &format!("ghost{i}@example.com"), "guess guess guess")
                .await
                .0,
            401
        );
    }
    assert_eq!(login(&app, "free@example.com", PASSWORD).await.0, 429);
    app.stop().await;
}

#[tokio::test]
async fn me_is_cached_in_redis_invalidated_on_change_and_works_without_redis() {
    let redis = RedisProc::start();
    let app = spawn_app_with(&accounts_config(&format!(
        "open_registration = true\n[redis]\nurl = {:?}\nkey_prefix = \"ugt:\"\n",
        redis.url()
    )))
    .await;
    tenant(&app, "acme").await;
    let (_, _, u) = req(
        &app,
        "POST",
        "/v1/auth/register",
        None,
        Some(json!({"email": "cache@example.com", "password": PASSWORD, "name": "Before"})),
    )
    .await;
    let uid = s(&u, "user_id");
    let (_, t) = login(&app, "cache@example.com", PASSWORD).await;
    let access = s(&t, "access_token");
    let client = redis::Client::open(redis.url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let key = format!("ugt:me:{uid}");
    let cached = |conn: &mut redis::aio::MultiplexedConnection| {
        let mut c = conn.clone();
        let key = key.clone();
        async move {
            redis::cmd("GET")
                .arg(&key)
                .query_async::<Option<String>>(&mut c)
                .await
                .expect("get")
        }
    };
    assert_eq!(cached(&mut conn).await, None);
    let (st, h, me) = req(&app, "GET", "/v1/auth/me", Some(&access), None).await;
    assert_eq!((st, h["x-upgate-cache"].to_str().ok()), (200, Some("miss")));
    let stored = cached(&mut conn).await.expect("cached after a miss");
    assert_eq!(serde_json::from_str::<Value>(&stored).expect("json"), me);
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("ttl");
    assert!((1..=60).contains(&ttl), "{ttl}");
    // A hit is served from Redis: what Redis holds is what the client gets.
    let mut marked = me.clone();
    marked["user"]["name"] = "served-from-cache".into();
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(marked.to_string())
        .arg("EX")
        .arg(60)
        .query_async(&mut conn)
        .await
        .expect("set");
    let (_, h, me2) = req(&app, "GET", "/v1/auth/me", Some(&access), None).await;
    assert_eq!(h["x-upgate-cache"], "hit");
    assert_eq!(me2["user"]["name"], "served-from-cache");
    // A change drops the entry; the next read comes from the database and fills it again.
    let (st, _, _) = req(
        &app,
        "PATCH",
        "/v1/auth/me",
        Some(&access),
        Some(json!({"name": "After"})),
    )
    .await;
    assert_eq!(st, 204);
    assert_eq!(cached(&mut conn).await, None, "invalidated");
    let (_, h, me3) = req(&app, "GET", "/v1/auth/me", Some(&access), None).await;
    assert_eq!(h["x-upgate-cache"], "miss");
    assert_eq!(me3["user"]["name"], "After");
    let refilled: Value =
        serde_json::from_str(&cached(&mut conn).await.expect("refilled")).expect("json");
    assert_eq!(refilled["user"]["name"], "After");
    // Redis gone: /me still answers, from the database.
    drop(conn);
    let mut redis = redis;
    redis.kill();
    let (st, h, me4) = req(&app, "GET", "/v1/auth/me", Some(&access), None).await;
    assert_eq!((st, h["x-upgate-cache"].to_str().ok()), (200, Some("miss")));
    assert_eq!(me4["user"]["name"], "After");
    app.stop().await;
    // And with no Redis configured at all.
    let plain = spawn_app_with(&accounts_config("open_registration = true\n")).await;
    tenant(&plain, "acme").await;
    let (_, _, _) = req(
        &plain,
        "POST",
        "/v1/auth/register",
        None,
        Some(json!({"email": "nocache@example.com", "password": PASSWORD})),
    )
    .await;
    let (_, t) = login(&plain, "nocache@example.com", PASSWORD).await;
    for _ in 0..2 {
        let (st, h, _) = req(
            &plain,
            "GET",
            "/v1/auth/me",
            Some(&s(&t, "access_token")),
            None,
        )
        .await;
        assert_eq!((st, h["x-upgate-cache"].to_str().ok()), (200, Some("miss")));
    }
    plain.stop().await;
}

fn forge(header: Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

#[tokio::test]
async fn forged_tokens_are_refused_and_cookies_are_never_credentials() {
    let app = spawn_app_with(&accounts_config("open_registration = true\n")).await;
    tenant(&app, "acme").await;
    let _ = req(
        &app,
        "POST",
        "/v1/auth/register",
        None,
        Some(json!({"email": "mallory@example.com", "password": PASSWORD})),
    )
    .await;
    let (_, t) = login(&app, "mallory@example.com", PASSWORD).await;
    let access = s(&t, "access_token");
    assert_eq!(
        req(&app, "GET", "/v1/auth/me", Some(&access), None).await.0,
        200
    );
    let header = header_of(&access);
    let kid = header["kid"].as_str().expect("kid").to_string();
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(access.split('.').nth(1).expect("claims"))
            .expect("b64"),
    )
    .expect("json");
    let (_, _, jwks) = req(&app, "GET", "/.well-known/jwks.json", None, None).await;
    let x = URL_SAFE_NO_PAD
        .decode(jwks["keys"][0]["x"].as_str().expect("x"))
        .expect("x");
    // alg none, with and without a signature.
    let none = forge(json!({"alg": "none", "kid": kid}), &claims, b"");
    assert_eq!(
        req(&app, "GET", "/v1/auth/me", Some(&none), None).await.0,
        401
    );
    // HS256 "signed" with the public key (algorithm confusion).
    let hs = {
        use hmac::{Hmac, Mac};
        let h =
            URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "kid": kid, "typ": "JWT"}).to_string());
        let c = URL_SAFE_NO_PAD.encode(claims.to_string());
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&x).expect("hmac");
        mac.update(format!("{h}.{c}").as_bytes());
        format!(
            "{h}.{c}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    };
    assert_eq!(
        req(&app, "GET", "/v1/auth/me", Some(&hs), None).await.0,
        401
    );
    // Claims changed (another tenant, another user): the signature no longer holds.
    let sig = URL_SAFE_NO_PAD
        .decode(access.split('.').nth(2).expect("sig"))
        .expect("b64");
    let mut other = claims.clone();
    other["tenant"] = "someone-else".into();
    let tampered = forge(header.clone(), &other, &sig);
    assert_eq!(
        req(&app, "GET", "/v1/auth/me", Some(&tampered), None)
            .await
            .0,
        401
    );
    // A key id that is not ours and not configured anywhere.
    let mut h2 = header.clone();
    h2["kid"] = "ugs_0000000000000000".into();
    assert_eq!(
        req(
            &app,
            "GET",
            "/v1/auth/me",
            Some(&forge(h2, &claims, &sig)),
            None
        )
        .await
        .0,
        401
    );

    // Tokens are sent as Authorization headers only. A cross-site form post that carries a
    // cookie (even one holding a valid access token) has no credential: refused, nothing minted.
    for cookie in [
        format!("access_token={access}"),
        format!("session={access}"),
    ] {
        let (st, _, _) = send(
            "POST",
            &format!("{}/v1/uploads", app.endpoint()),
            &[
                ("cookie".to_string(), cookie),
                ("origin".to_string(), "https://evil.example".to_string()),
                (
                    "content-type".to_string(),
                    "application/x-www-form-urlencoded".to_string(),
                ),
            ],
            b"filename=x.pdf&size=10".to_vec(),
        )
        .await;
        assert_eq!(st, 401);
    }
    // No response sets a cookie.
    let (_, h, _) = req(
        &app,
        "POST",
        "/v1/auth/login",
        None,
        Some(json!({"email": "mallory@example.com", "password": PASSWORD})),
    )
    .await;
    assert!(h.get("set-cookie").is_none());
    app.stop().await;
}

fn cli(dir: &std::path::Path) -> Command {
    let mut c = Command::new(BIN);
    c.env("UPGATE__STORAGE__DATA_DIR", dir)
        .env("UPGATE__ACCOUNTS__ENABLED", "true")
        .env("UPGATE__ACCOUNTS__ACCESS_TOKEN_TTL_SECS", "2")
        .env("UPGATE__ACCOUNTS__SIGNING_KEY_GRACE_SECS", "2")
        .env("UPGATE__STORAGE__ENCRYPTION__KEYS", MASTER);
    c
}

#[tokio::test]
async fn the_cli_creates_users_rotates_keys_and_old_keys_stop_after_their_grace() {
    let app = spawn_app_with(&accounts_config(
        "access_token_ttl_secs = 2\nsigning_key_grace_secs = 2\n",
    ))
    .await;
    let acme = tenant(&app, "acme").await;
    let dir = app.dir.path().to_path_buf();
    // create-user: password on stdin, one JSON object out.
    let mut child = cli(&dir)
        .args([
            "admin",
            "create-user",
            &acme.tenant_id,
            "Ops@Example.com",
            "--role",
            "admin",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        writeln!(stdin, "{PASSWORD}").expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let user: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert!(user["user_id"].is_string());
    assert_eq!(
        (user["email"].as_str(), user["role"].as_str()),
        (Some("ops@example.com"), Some("admin"))
    );

    let (st, t) = login(&app, "ops@example.com", PASSWORD).await;
    assert_eq!(st, 200, "{t}");
    let old = s(&t, "access_token");
    let old_kid = header_of(&old)["kid"].clone();

    let out = cli(&dir)
        .args(["admin", "rotate-signing-key"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rotated: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(rotated["retired"], 1);
    let new_kid = rotated["signing_key_id"].clone();
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the re-read interval
    // Both keys are published and verify; new tokens use the new key.
    let (_, _, jwks) = req(&app, "GET", "/.well-known/jwks.json", None, None).await;
    let kids: Vec<&Value> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| &k["kid"])
        .collect();
    assert_eq!(kids.len(), 2, "{jwks}");
    assert!(kids.contains(&&old_kid) && kids.contains(&&new_kid));
    let (_, t2) = login(&app, "ops@example.com", PASSWORD).await;
    let fresh = s(&t2, "access_token");
    assert_eq!(header_of(&fresh)["kid"], new_kid);
    assert_eq!(
        req(&app, "GET", "/v1/auth/me", Some(&old), None).await.0,
        200
    );
    // After the grace the old key verifies nothing (the token would still be inside the
    // 30 s expiry leeway) and leaves the JWKS.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(
        req(&app, "GET", "/v1/auth/me", Some(&old), None).await.0,
        401
    );
    let (_, _, jwks) = req(&app, "GET", "/.well-known/jwks.json", None, None).await;
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1), "{jwks}");
    assert_eq!(jwks["keys"][0]["kid"], new_kid);
    app.stop().await;
}

#[tokio::test]
async fn receipts_verify_with_the_cli_and_the_webhook_and_fail_when_tampered() {
    const SECRET: &str = "webhook-secret-0123456789abcdefghijklmnop";
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let (seen, hook) = crate::api::receiver(port, SECRET).await;
    let app = spawn_app_with(&accounts_config(&format!(
        "[webhooks]\npoll_interval_ms = 50\nbackoff_base_ms = 50\nbackoff_max_ms = 200\ntimeout_ms = 1000\n\
         [[webhooks.endpoints]]\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret = {SECRET:?}\n"
    )))
    .await;
    let t = tenant(&app, "acme").await;
    let data = pdf(4096);
    let (_, _, link) = req(
        &app,
        "POST",
        "/v1/uploads",
        Some(&t.api_key),
        Some(new_upload("r.pdf", &data)),
    )
    .await;
    assert_eq!(upload(&link, data.clone()).await.0, 200);
    let (_, _, up) = req(
        &app,
        "GET",
        &format!("/v1/uploads/{}", s(&link, "upload_id")),
        Some(&t.api_key),
        None,
    )
    .await;
    let receipt = up["receipt"].clone();
    assert_eq!(receipt["uploader"], "app");
    assert_eq!(receipt["content_type"], "application/pdf");
    assert!(s(&receipt, "jws").contains(".."), "detached JWS");

    let dir = tempfile::tempdir().expect("dir");
    let jwks_url = format!("{}/.well-known/jwks.json", app.endpoint());
    let verify = |doc: &Value, jwks: &str| {
        let path = dir
            .path()
            .join(format!("r{}.json", upgate::id::random_hex(4)));
        std::fs::write(&path, doc.to_string()).expect("write");
        Command::new(BIN)
            .args(["receipt", "verify"])
            .arg(&path)
            .args(["--jwks", jwks])
            .output()
            .expect("run")
    };
    // The whole GET answer, or the receipt alone; the JWKS by URL or from a file.
    // By URL the CLI calls this gateway, which must keep serving meanwhile.
    let out = {
        let (up, url, path) = (up.clone(), jwks_url.clone(), dir.path().join("whole.json"));
        tokio::task::spawn_blocking(move || {
            std::fs::write(&path, up.to_string()).expect("write");
            Command::new(BIN)
                .args(["receipt", "verify"])
                .arg(&path)
                .args(["--jwks", &url])
                .output()
                .expect("run")
        })
        .await
        .expect("join")
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, _, jwks) = req(&app, "GET", "/.well-known/jwks.json", None, None).await;
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(&jwks_file, jwks.to_string()).expect("write");
    let jwks_path = jwks_file.display().to_string();
    let out = verify(&receipt, &jwks_path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Any field changed: refused.
    for (field, value) in [
        ("size", json!(4097)),
        ("sha256", json!(sha256_hex(b"other"))),
        ("uploader", json!("user:someone")),
        ("key", json!("acme/other/key")),
        ("scan", json!("infected")),
        ("committed_at", json!("2020-01-01T00:00:00.000Z")),
    ] {
        let mut bad = receipt.clone();
        bad[field] = value;
        let out = verify(&bad, &jwks_path);
        assert_eq!(out.status.code(), Some(1), "tampered {field} verified");
        assert!(String::from_utf8_lossy(&out.stderr).contains("does NOT verify"));
    }
    let mut extra = receipt.clone();
    extra["note"] = "added".into();
    assert_eq!(verify(&extra, &jwks_path).status.code(), Some(1));

    // The upload.completed webhook carries the same receipt, signed.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let event = loop {
        let found = seen
            .lock()
            .expect("lock")
            .iter()
            .find(|(e, ok, _)| e == "upload.completed" && *ok)
            .map(|(_, _, v)| v.clone());
        if let Some(v) = found {
            break v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no upload.completed event"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(event["receipt"], receipt, "{event}");
    let signed =
        upgate::auth::signing::SignedReceipt::from_json(&event["receipt"]).expect("receipt");
    upgate::auth::signing::verify_receipt(&signed, &jwks).expect("webhook receipt verifies");
    hook.abort();
    app.stop().await;
}

#[tokio::test]
async fn completing_a_link_in_parts_returns_the_signed_receipt() {
    let app = spawn_app_with(&accounts_config("[s3]\nmin_part_bytes = 1000\n")).await;
    let t = tenant(&app, "acme").await;
    let data = pdf(6000);
    let mut body = new_upload("parts.pdf", &data);
    body["parts"] = json!(2);
    let (st, _, link) = req(&app, "POST", "/v1/uploads", Some(&t.api_key), Some(body)).await;
    assert_eq!(st, 201, "{link}");
    let mut done = Vec::new();
    let mut offset = 0;
    for p in link["parts"].as_array().expect("parts") {
        let len: usize = p["headers"]["Content-Length"]
            .as_str()
            .expect("len")
            .parse()
            .expect("n");
        let h = vec![("content-length".to_string(), len.to_string())];
        let (st, headers, _) = send(
            "PUT",
            p["url"].as_str().expect("url"),
            &h,
            data[offset..offset + len].to_vec(),
        )
        .await;
        assert_eq!(st, 200);
        offset += len;
        done.push(
            json!({"part_number": p["part_number"], "etag": headers["etag"].to_str().expect("e")}),
        );
    }
    let id = s(&link, "upload_id");
    let (st, _, r) = req(
        &app,
        "POST",
        &format!("/v1/uploads/{id}/complete"),
        Some(&t.api_key),
        Some(json!({"parts": done})),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    let (_, _, up) = req(
        &app,
        "GET",
        &format!("/v1/uploads/{id}"),
        Some(&t.api_key),
        None,
    )
    .await;
    assert_eq!(r["receipt"], up["receipt"]);
    assert_eq!(r["receipt"]["size"], 6000);
    let (_, _, jwks) = req(&app, "GET", "/.well-known/jwks.json", None, None).await;
    let receipt = upgate::auth::signing::SignedReceipt::from_json(&r["receipt"]).expect("receipt");
    upgate::auth::signing::verify_receipt(&receipt, &jwks).expect("verifies");
    let mut forged = receipt.clone();
    forged.claims.sha256 = sha256_hex(b"something else");
    assert!(upgate::auth::signing::verify_receipt(&forged, &jwks).is_err());
    app.stop().await;
}

#[tokio::test]
async fn an_invitation_registers_its_address_once_while_registration_is_closed() {
    let app = spawn_app_with(&accounts_config("")).await;
    let acme = tenant(&app, "acme").await;
    let other = tenant(&app, "other").await;
    let invite = |bearer: String, body: Value| {
        let app = &app;
        async move { req(app, "POST", "/v1/invites", Some(&bearer), Some(body)).await }
    };
    // The tenant's app invites an admin; members may not invite.
    let (st, _, inv) = invite(
        acme.api_key.clone(),
        json!({"email": " Bob@Example.com", "role": "admin"}),
    )
    .await;
    assert_eq!(st, 201, "{inv}");
    assert_eq!(inv["email"], "bob@example.com");
    let token = s(&inv, "invite");
    assert_eq!(header_of(&token)["typ"], "upgate-invite+jwt");
    let register = |email: &str, invite: Option<&str>| {
        let mut body = json!({"email": email, "password": PASSWORD});
        if let Some(i) = invite {
            body["invite"] = json!(i);
        }
        let app = &app;
        async move { req(app, "POST", "/v1/auth/register", None, Some(body)).await }
    };
    // Another address cannot use it; a changed token is refused; an invitation is not a
    // bearer credential.
    assert_eq!(register("eve@example.com", Some(&token)).await.0, 403);
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(register("bob@example.com", Some(&forged)).await.0, 403);
    assert_eq!(
        req(&app, "GET", "/v1/files", Some(&token), None).await.0,
        401
    );
    // The invited address registers (registration is closed), in the tenant, with the role.
    let (st, _, user) = register("bob@example.com", Some(&token)).await;
    assert_eq!(st, 201, "{user}");
    assert_eq!(user["role"], "admin", "{user}");
    assert_eq!(user["tenant_id"], acme.tenant_id.as_str(), "{user}");
    // Once: the address has its account.
    assert_eq!(register("bob@example.com", Some(&token)).await.0, 409);
    let (st, tokens) = login(&app, "bob@example.com", PASSWORD).await;
    assert_eq!(st, 200, "{tokens}");
    let bob = s(&tokens, "access_token");
    // The invited admin invites a member, who may not invite in turn.
    let (st, _, inv) = invite(bob.clone(), json!({"email": "carol@example.com"})).await;
    assert_eq!(st, 201, "{inv}");
    let (st, _, _) = register("carol@example.com", Some(&s(&inv, "invite"))).await;
    assert_eq!(st, 201);
    let (_, carol) = login(&app, "carol@example.com", PASSWORD).await;
    let (st, _, _) = invite(
        s(&carol, "access_token"),
        json!({"email": "dan@example.com"}),
    )
    .await;
    assert_eq!(st, 403);
    // Lifetimes are bounded, and an expired invitation is refused.
    let (st, _, _) = invite(
        other.api_key.clone(),
        json!({"email": "x@example.com", "ttl_secs": 31 * 24 * 3600}),
    )
    .await;
    assert_eq!(st, 400);
    let (st, _, short) = invite(
        other.api_key.clone(),
        json!({"email": "late@example.com", "ttl_secs": 1}),
    )
    .await;
    assert_eq!(st, 201);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (st, _, v) = register("late@example.com", Some(&s(&short, "invite"))).await;
    assert_eq!(st, 403, "{v}");
    app.stop().await;
}
