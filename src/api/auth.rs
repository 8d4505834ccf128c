//! Accounts on the control API: `/v1/auth/{register,login,refresh,logout,me}`, `/v1/users`,
//! and the JWKS of upgate's signing keys (`/.well-known/jwks.json`). The rules live in
//! `crate::accounts`; this module reads the bodies and writes the answers.
//!
//! Browser sessions use tokens held in memory, not cookies: upgate never reads a `Cookie`
//! header, so a cross-site form post carries no credential and there is no CSRF to defend
//! (README, "Browser sessions").

use std::sync::Arc;

use http::{HeaderValue, Response, StatusCode, header};
use serde::Deserialize;

use super::json;
use crate::accounts::{self, UserView};
use crate::auth::password::Password;
use crate::auth::principal::Principal;
use crate::error::{Error, Result};
use crate::http::{Body, typed_response};
use crate::state::AppState;

/// `POST /v1/auth/register` and `POST /v1/users` bodies.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub email: String,
    pub password: String,
    pub name: Option<String>,
    /// `POST /v1/users` only: `admin` or `member` (default).
    pub role: Option<String>,
    /// `POST /v1/auth/register` only: an invitation (`POST /v1/invites`).
    pub invite: Option<String>,
}

/// `POST /v1/invites` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewInvite {
    pub email: String,
    /// `admin` or `member` (default).
    pub role: Option<String>,
    /// Lifetime in seconds (default and most: `accounts.invite_ttl_secs`).
    pub ttl_secs: Option<u64>,
}

/// `POST /v1/auth/login` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub email: String,
    pub password: String,
    /// Tenant id or name; default `accounts.tenant`.
    pub tenant: Option<String>,
}

/// `POST /v1/auth/refresh` and `POST /v1/auth/logout` bodies.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    pub refresh_token: Option<String>,
}

/// `PATCH /v1/auth/me` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateMe {
    pub name: Option<String>,
}

/// `POST /v1/auth/register`.
pub async fn register(state: &Arc<AppState>, req: NewUser) -> Result<Response<Body>> {
    if req.role.is_some() {
        return Err(Error::InvalidJson("Registration cannot choose a role."));
    }
    let u = accounts::register(
        state,
        &req.email,
        Password::new(req.password),
        req.name.as_deref(),
        req.invite.as_deref(),
    )
    .await?;
    Ok(json(StatusCode::CREATED, &UserView::from(&u)))
}

/// `POST /v1/auth/login`.
pub async fn login(
    state: &Arc<AppState>,
    ip: std::net::IpAddr,
    req: Login,
) -> Result<Response<Body>> {
    let t = accounts::login(
        state,
        ip,
        req.tenant.as_deref(),
        &req.email,
        Password::new(req.password),
    )
    .await?;
    Ok(json(StatusCode::OK, &t))
}

/// `POST /v1/auth/refresh`.
pub async fn refresh(state: &Arc<AppState>, req: RefreshBody) -> Result<Response<Body>> {
    let token = req
        .refresh_token
        .ok_or(Error::InvalidJson("refresh_token is required."))?;
    let t = accounts::refresh(state, &token).await?;
    Ok(json(StatusCode::OK, &t))
}

/// `POST /v1/auth/logout`: with the access token, or with `{refresh_token}`.
pub async fn logout(
    state: &Arc<AppState>,
    who: Option<&Principal>,
    req: RefreshBody,
) -> Result<Response<Body>> {
    accounts::logout(state, who, req.refresh_token.as_deref()).await?;
    Ok(typed_response(
        StatusCode::NO_CONTENT,
        "application/json",
        Vec::new(),
    ))
}

/// `GET /v1/auth/me`; says `x-upgate-cache: hit|miss`.
pub async fn me(state: &Arc<AppState>, who: &Principal) -> Result<Response<Body>> {
    let (body, hit) = accounts::me(state, who).await?;
    let mut r = typed_response(StatusCode::OK, "application/json", body.into_bytes());
    r.headers_mut().insert(
        "x-upgate-cache",
        HeaderValue::from_static(if hit { "hit" } else { "miss" }),
    );
    Ok(r)
}

/// `PATCH /v1/auth/me`: 204; the cached `/me` answer is gone.
pub async fn update_me(
    state: &Arc<AppState>,
    who: &Principal,
    req: UpdateMe,
) -> Result<Response<Body>> {
    accounts::rename(state, who, req.name.as_deref()).await?;
    Ok(typed_response(
        StatusCode::NO_CONTENT,
        "application/json",
        Vec::new(),
    ))
}

/// `POST /v1/invites`.
pub async fn create_invite(
    state: &Arc<AppState>,
    who: &Principal,
    req: NewInvite,
) -> Result<Response<Body>> {
    let i = accounts::invite(state, who, &req.email, req.role.as_deref(), req.ttl_secs).await?;
    Ok(json(StatusCode::CREATED, &i))
}

/// `POST /v1/users`.
pub async fn create_user(
    state: &Arc<AppState>,
    who: &Principal,
    req: NewUser,
) -> Result<Response<Body>> {
    let u = accounts::admin_create_user(
        state,
        who,
        &req.email,
        Password::new(req.password),
        req.name.as_deref(),
        req.role.as_deref(),
    )
    .await?;
    Ok(json(StatusCode::CREATED, &UserView::from(&u)))
}

/// `GET /.well-known/jwks.json`: the public keys that verify upgate's tokens and receipts
/// now (404 when accounts are off). Cacheable briefly: a rotation shows within a minute, and
/// a retired key stays listed for its grace period anyway.
pub async fn jwks(state: &AppState) -> Result<Response<Body>> {
    let a = accounts::enabled(state)?;
    // Another replica or the CLI may have rotated.
    a.signing
        .refresh_if_stale(a.store.as_ref())
        .await
        .map_err(|e| Error::internal(format!("signing keys: {e}")))?;
    let body = a.signing.jwks().to_string();
    let mut r = typed_response(
        StatusCode::OK,
        "application/jwk-set+json",
        body.into_bytes(),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    Ok(r)
}
