//! The JSON control plane under `/v1`.
//!
//! An app (API key or JWT) or an anonymous client holding an upload token asks for an upload
//! link; the client uploads straight to it (the S3 data plane verifies the link, claims it
//! atomically and commits); upgate records completion itself — there is no "confirm upload"
//! call that would trust the client. Owners then list, read, version and delete their files.
//!
//! Flow of one request: [`route`] (pure) → `upload::admit::bearer` (authenticate, rate limit)
//! → handler → JSON. Errors are JSON `{"error": {"code", "message", "request_id"}}` with HTTP
//! conventions (401, 404, 409, 413, 415, 429). "Not found" and "not yours" are the same answer.

pub mod admin;
pub mod auth;
pub mod files;
pub mod uploads;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::error::{Error, Result};
pub use crate::http::json;
use crate::http::{Body, ConnInfo, Outcome, full};
use crate::ratelimit::RouteClass;
use crate::state::AppState;
use crate::upload::admit::bearer;

/// The OpenAPI 3 description of this API (served at `/v1/openapi.json`).
pub const OPENAPI: &str = include_str!("openapi.json");

/// A control-plane operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiRoute {
    OpenApi,
    CreateUpload,
    GetUpload(String),
    CompleteUpload(String),
    CreateToken,
    ListTokens,
    TokenSelf,
    RevokeToken(String),
    ListFiles,
    GetFile(String),
    DeleteFile(String),
    UpdateFile(String),
    DownloadUrl(String),
    CreateVersion(String),
    ListVersions(String),
    AdminCreateTenant,
    AdminCreateApiKey(String),
    AdminCreateAccessKey(String),
    AuthRegister,
    AuthLogin,
    AuthRefresh,
    AuthLogout,
    AuthMe,
    AuthUpdateMe,
    CreateUser,
    CreateInvite,
}

impl ApiRoute {
    /// Operation name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            ApiRoute::OpenApi => "api.OpenApi",
            ApiRoute::CreateUpload => "api.CreateUpload",
            ApiRoute::GetUpload(_) => "api.GetUpload",
            ApiRoute::CompleteUpload(_) => "api.CompleteUpload",
            ApiRoute::CreateToken => "api.CreateToken",
            ApiRoute::ListTokens => "api.ListTokens",
            ApiRoute::TokenSelf => "api.TokenSelf",
            ApiRoute::RevokeToken(_) => "api.RevokeToken",
            ApiRoute::ListFiles => "api.ListFiles",
            ApiRoute::GetFile(_) => "api.GetFile",
            ApiRoute::DeleteFile(_) => "api.DeleteFile",
            ApiRoute::UpdateFile(_) => "api.UpdateFile",
            ApiRoute::DownloadUrl(_) => "api.DownloadUrl",
            ApiRoute::CreateVersion(_) => "api.CreateVersion",
            ApiRoute::ListVersions(_) => "api.ListVersions",
            ApiRoute::AdminCreateTenant => "api.AdminCreateTenant",
            ApiRoute::AdminCreateApiKey(_) => "api.AdminCreateApiKey",
            ApiRoute::AdminCreateAccessKey(_) => "api.AdminCreateAccessKey",
            ApiRoute::AuthRegister => "api.AuthRegister",
            ApiRoute::AuthLogin => "api.AuthLogin",
            ApiRoute::AuthRefresh => "api.AuthRefresh",
            ApiRoute::AuthLogout => "api.AuthLogout",
            ApiRoute::AuthMe => "api.AuthMe",
            ApiRoute::AuthUpdateMe => "api.AuthUpdateMe",
            ApiRoute::CreateUser => "api.CreateUser",
            ApiRoute::CreateInvite => "api.CreateInvite",
        }
    }
}

/// Ids in paths are our own random hex ids; anything else cannot name a resource.
fn id(s: &str) -> Result<String> {
    if !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(s.to_string())
    } else {
        Err(Error::NotFound)
    }
}

/// Routes a `/v1/...` request (the path without query): 404 for unknown paths, 405 for known
/// paths with another method.
pub fn route(method: &Method, path: &str) -> Result<ApiRoute> {
    match route_exact(method, path) {
        Err(Error::MethodNotAllowed) => {}
        other => return other,
    }
    let known = [Method::GET, Method::POST, Method::DELETE, Method::PATCH]
        .iter()
        .any(|m| m != method && route_exact(m, path).is_ok());
    Err(if known {
        Error::MethodNotAllowed
    } else {
        Error::NotFound
    })
}

fn route_exact(method: &Method, path: &str) -> Result<ApiRoute> {
    let rest = path.strip_prefix("/v1/").ok_or(Error::NotFound)?;
    let segs: Vec<&str> = rest.split('/').collect();
    let m = method.clone();
    Ok(match (m, segs.as_slice()) {
        (Method::GET, ["openapi.json"]) => ApiRoute::OpenApi,
        (Method::POST, ["uploads"]) => ApiRoute::CreateUpload,
        (Method::GET, ["uploads", u]) => ApiRoute::GetUpload(id(u)?),
        (Method::POST, ["uploads", u, "complete"]) => ApiRoute::CompleteUpload(id(u)?),
        (Method::POST, ["upload-tokens"]) => ApiRoute::CreateToken,
        (Method::GET, ["upload-tokens"]) => ApiRoute::ListTokens,
        (Method::GET, ["upload-tokens", "self"]) => ApiRoute::TokenSelf,
        (Method::DELETE, ["upload-tokens", t]) => ApiRoute::RevokeToken(id(t)?),
        (Method::GET, ["files"]) => ApiRoute::ListFiles,
        (Method::GET, ["files", f]) => ApiRoute::GetFile(id(f)?),
        (Method::DELETE, ["files", f]) => ApiRoute::DeleteFile(id(f)?),
        (Method::PATCH, ["files", f]) => ApiRoute::UpdateFile(id(f)?),
        (Method::POST, ["files", f, "download-url"]) => ApiRoute::DownloadUrl(id(f)?),
        (Method::POST, ["files", f, "versions"]) => ApiRoute::CreateVersion(id(f)?),
        (Method::GET, ["files", f, "versions"]) => ApiRoute::ListVersions(id(f)?),
        (Method::POST, ["admin", "tenants"]) => ApiRoute::AdminCreateTenant,
        (Method::POST, ["admin", "tenants", t, "api-keys"]) => ApiRoute::AdminCreateApiKey(id(t)?),
        (Method::POST, ["admin", "tenants", t, "access-keys"]) => {
            ApiRoute::AdminCreateAccessKey(id(t)?)
        }
        (Method::POST, ["auth", "register"]) => ApiRoute::AuthRegister,
        (Method::POST, ["auth", "login"]) => ApiRoute::AuthLogin,
        (Method::POST, ["auth", "refresh"]) => ApiRoute::AuthRefresh,
        (Method::POST, ["auth", "logout"]) => ApiRoute::AuthLogout,
        (Method::GET, ["auth", "me"]) => ApiRoute::AuthMe,
        (Method::PATCH, ["auth", "me"]) => ApiRoute::AuthUpdateMe,
        (Method::POST, ["users"]) => ApiRoute::CreateUser,
        (Method::POST, ["invites"]) => ApiRoute::CreateInvite,
        (
            _,
            [
                "openapi.json" | "uploads" | "upload-tokens" | "files" | "admin" | "auth" | "users"
                | "invites",
                ..,
            ],
        ) => {
            return Err(Error::MethodNotAllowed);
        }
        _ => return Err(Error::NotFound),
    })
}

/// Every route the API implements, as `(method, OpenAPI path template)`; checked against the
/// OpenAPI document by a test, so the two cannot drift apart.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/openapi.json"),
    ("post", "/v1/uploads"),
    ("get", "/v1/uploads/{id}"),
    ("post", "/v1/uploads/{id}/complete"),
    ("post", "/v1/upload-tokens"),
    ("get", "/v1/upload-tokens"),
    ("get", "/v1/upload-tokens/self"),
    ("delete", "/v1/upload-tokens/{id}"),
    ("get", "/v1/files"),
    ("get", "/v1/files/{id}"),
    ("delete", "/v1/files/{id}"),
    ("patch", "/v1/files/{id}"),
    ("post", "/v1/files/{id}/download-url"),
    ("post", "/v1/files/{id}/versions"),
    ("get", "/v1/files/{id}/versions"),
    ("post", "/v1/admin/tenants"),
    ("post", "/v1/admin/tenants/{id}/api-keys"),
    ("post", "/v1/admin/tenants/{id}/access-keys"),
    ("post", "/v1/auth/register"),
    ("post", "/v1/auth/login"),
    ("post", "/v1/auth/refresh"),
    ("post", "/v1/auth/logout"),
    ("get", "/v1/auth/me"),
    ("patch", "/v1/auth/me"),
    ("post", "/v1/users"),
    ("post", "/v1/invites"),
    // Served by the edge (outside `/v1`), documented here.
    ("get", "/.well-known/jwks.json"),
];

/// Entry point for `GET /.well-known/jwks.json` (outside `/v1`, where JWKS are looked for).
pub async fn handle_jwks(state: &AppState) -> Outcome {
    Outcome {
        result: auth::jwks(state).await,
        op: "api.Jwks",
        bucket: None,
        render: None,
    }
}

/// The control API's error document, `{"error": {"code", "message", "request_id"}}`, with
/// HTTP conventions for the status (see [`Error::api_status`]).
pub fn error_response(e: &Error, _method: &Method, request_id: &str) -> Response<Body> {
    let mut r = crate::http::json_error(e, request_id);
    if matches!(e, Error::Unauthorized) {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    private(&mut r);
    r
}

/// Responses carry links and file data: never cache them, never leak the URL onward.
fn private(resp: &mut Response<Body>) {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
}

/// Most bytes of a JSON request body.
pub const MAX_JSON_BYTES: usize = 64 * 1024;

/// Reads and parses a bounded JSON body.
pub async fn read_json<T: serde::de::DeserializeOwned>(body: Incoming) -> Result<T> {
    let limited = http_body_util::Limited::new(body, MAX_JSON_BYTES);
    let bytes: Bytes = match limited.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(Error::EntityTooLarge),
        Err(_) => return Err(Error::IncompleteBody),
    };
    if bytes.is_empty() {
        return serde_json::from_slice(b"{}")
            .map_err(|_| Error::InvalidJson("A JSON body is required."));
    }
    serde_json::from_slice(&bytes)
        .map_err(|_| Error::InvalidJson("The body is not valid JSON for this operation."))
}

/// The base URL minted links point at: the configured public URL, or what this request came to.
pub fn base_url(state: &AppState, headers: &http::HeaderMap, conn: ConnInfo) -> Result<String> {
    crate::http::base_url(&state.config.api.public_url, headers, conn)
}

/// Entry point for `/v1/...` requests.
pub async fn handle(
    state: Arc<AppState>,
    req: Request<Incoming>,
    conn: ConnInfo,
    _request_id: &str,
) -> Outcome {
    let (parts, body) = req.into_parts();
    let mut op = "Unknown";
    let mut result = dispatch(&state, &parts, body, conn, &mut op).await;
    if let Ok(resp) = &mut result {
        private(resp);
    }
    Outcome {
        result,
        op,
        bucket: None,
        render: None,
    }
}

async fn dispatch(
    state: &Arc<AppState>,
    parts: &http::request::Parts,
    body: Incoming,
    conn: ConnInfo,
    op: &mut &'static str,
) -> Result<Response<Body>> {
    let route = route(&parts.method, parts.uri.path())?;
    *op = route.name();
    if route == ApiRoute::OpenApi {
        let mut r = Response::new(full(OPENAPI));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return Ok(r);
    }
    // Signing in needs no credential: these are charged to the address (and the global budget).
    let ip = crate::upload::admit::client_ip(state, &parts.headers, conn);
    let unauthenticated = matches!(
        route,
        ApiRoute::AuthRegister | ApiRoute::AuthLogin | ApiRoute::AuthRefresh
    ) || (route == ApiRoute::AuthLogout
        && !parts.headers.contains_key(header::AUTHORIZATION));
    if route == ApiRoute::TokenSelf {
        // The holder of an expired, revoked or used-up token may still learn which it is.
        crate::upload::admit::rate_limit(state, RouteClass::TokenExchange, None, ip).await?;
        let credential = crate::auth::principal::bearer_credential(&parts.headers)?;
        let token = crate::auth::principal::token_holder(&state.credentials, credential).await?;
        return uploads::token_self(state, &token).await;
    }
    if unauthenticated {
        crate::accounts::enabled(state)?;
        crate::upload::admit::rate_limit(state, RouteClass::TokenExchange, None, ip).await?;
        return match route {
            ApiRoute::AuthRegister => auth::register(state, read_json(body).await?).await,
            ApiRoute::AuthLogin => auth::login(state, ip, read_json(body).await?).await,
            ApiRoute::AuthRefresh => auth::refresh(state, read_json(body).await?).await,
            _ => auth::logout(state, None, read_json(body).await?).await,
        };
    }
    let class = match &route {
        ApiRoute::CreateUpload | ApiRoute::CreateVersion(_) => RouteClass::Mint,
        ApiRoute::DownloadUrl(_) => RouteClass::Download,
        _ => RouteClass::S3Read,
    };
    // Token holders exchange tokens for links: their own (tighter) class, keyed by the token.
    let who = bearer(
        state,
        &parts.headers,
        conn,
        class,
        Some(RouteClass::TokenExchange),
    )
    .await?;
    let query = parts.uri.query();
    match route {
        ApiRoute::OpenApi => Err(Error::NotFound),
        ApiRoute::CreateUpload => {
            let base = base_url(state, &parts.headers, conn)?;
            uploads::create_upload(state, &who, read_json(body).await?, &base, None).await
        }
        ApiRoute::GetUpload(id) => uploads::get_upload(state, &who, &id).await,
        ApiRoute::CompleteUpload(id) => {
            uploads::complete_upload(state, &who, &id, read_json(body).await?).await
        }
        ApiRoute::CreateToken => {
            let base = base_url(state, &parts.headers, conn)?;
            uploads::create_token(state, &who, read_json(body).await?, &base).await
        }
        ApiRoute::ListTokens => {
            let base = base_url(state, &parts.headers, conn)?;
            uploads::list_tokens(state, &who, &base).await
        }
        ApiRoute::TokenSelf => Err(Error::NotFound),
        ApiRoute::RevokeToken(id) => uploads::revoke_token(state, &who, &id).await,
        ApiRoute::ListFiles => files::list(state, &who, query).await,
        ApiRoute::GetFile(id) => files::get(state, &who, &id).await,
        ApiRoute::DeleteFile(id) => files::delete(state, &who, &id).await,
        ApiRoute::UpdateFile(id) => files::update(state, &who, &id, read_json(body).await?).await,
        ApiRoute::DownloadUrl(id) => {
            let base = base_url(state, &parts.headers, conn)?;
            files::download_url(state, &who, &id, read_json(body).await?, &base).await
        }
        ApiRoute::CreateVersion(id) => {
            let base = base_url(state, &parts.headers, conn)?;
            uploads::create_upload(state, &who, read_json(body).await?, &base, Some(&id)).await
        }
        ApiRoute::ListVersions(id) => files::versions(state, &who, &id).await,
        ApiRoute::AdminCreateTenant => {
            admin::http_create_tenant(state, &who, read_json(body).await?).await
        }
        ApiRoute::AdminCreateApiKey(t) => admin::http_create_api_key(state, &who, &t).await,
        ApiRoute::AdminCreateAccessKey(t) => admin::http_create_access_key(state, &who, &t).await,
        ApiRoute::AuthRegister | ApiRoute::AuthLogin | ApiRoute::AuthRefresh => {
            Err(Error::NotFound)
        }
        ApiRoute::AuthLogout => auth::logout(state, Some(&who), read_json(body).await?).await,
        ApiRoute::AuthMe => auth::me(state, &who).await,
        ApiRoute::AuthUpdateMe => auth::update_me(state, &who, read_json(body).await?).await,
        ApiRoute::CreateUser => auth::create_user(state, &who, read_json(body).await?).await,
        ApiRoute::CreateInvite => auth::create_invite(state, &who, read_json(body).await?).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_table() {
        let s = |x: &str| x.to_string();
        let cases = [
            (Method::GET, "/v1/openapi.json", ApiRoute::OpenApi),
            (Method::POST, "/v1/uploads", ApiRoute::CreateUpload),
            (
                Method::GET,
                "/v1/uploads/ab12",
                ApiRoute::GetUpload(s("ab12")),
            ),
            (Method::POST, "/v1/upload-tokens", ApiRoute::CreateToken),
            (
                Method::DELETE,
                "/v1/upload-tokens/t1",
                ApiRoute::RevokeToken(s("t1")),
            ),
            (Method::GET, "/v1/files", ApiRoute::ListFiles),
            (Method::GET, "/v1/files/f1", ApiRoute::GetFile(s("f1"))),
            (
                Method::DELETE,
                "/v1/files/f1",
                ApiRoute::DeleteFile(s("f1")),
            ),
            (
                Method::POST,
                "/v1/files/f1/download-url",
                ApiRoute::DownloadUrl(s("f1")),
            ),
            (
                Method::POST,
                "/v1/files/f1/versions",
                ApiRoute::CreateVersion(s("f1")),
            ),
            (
                Method::GET,
                "/v1/files/f1/versions",
                ApiRoute::ListVersions(s("f1")),
            ),
            (
                Method::POST,
                "/v1/admin/tenants",
                ApiRoute::AdminCreateTenant,
            ),
            (
                Method::POST,
                "/v1/admin/tenants/t1/api-keys",
                ApiRoute::AdminCreateApiKey(s("t1")),
            ),
            (
                Method::POST,
                "/v1/admin/tenants/t1/access-keys",
                ApiRoute::AdminCreateAccessKey(s("t1")),
            ),
        ];
        for (m, p, want) in cases {
            assert_eq!(route(&m, p).expect(p), want, "{m} {p}");
        }
        assert_eq!(ROUTES.len(), 27);
        assert_eq!(
            route(&Method::PATCH, "/v1/auth/me").expect("me"),
            ApiRoute::AuthUpdateMe
        );
        assert_eq!(
            route(&Method::POST, "/v1/auth/login").expect("login"),
            ApiRoute::AuthLogin
        );
        assert!(matches!(
            route(&Method::GET, "/v1/auth/login"),
            Err(Error::MethodNotAllowed)
        ));
        assert_eq!(
            route(&Method::POST, "/v1/uploads/u1/complete").expect("complete"),
            ApiRoute::CompleteUpload(s("u1"))
        );
        assert!(matches!(
            route(&Method::PUT, "/v1/files"),
            Err(Error::MethodNotAllowed)
        ));
        assert!(matches!(
            route(&Method::GET, "/v1/nope"),
            Err(Error::NotFound)
        ));
        assert!(matches!(
            route(&Method::GET, "/v1/files/../x"),
            Err(Error::NotFound)
        ));
        assert!(matches!(
            route(&Method::GET, "/v1/files/a%2Fb"),
            Err(Error::NotFound)
        ));
    }
}
