//! The pages upgate serves itself, embedded in the binary (no Node at build or run time, no
//! CDN): the drop page for upload tokens, the files page for signed-in users, their scripts and
//! style, and Uppy's Companion-compatible S3 routes (`uppy.rs`).
//!
//! ```text
//! GET {prefix}drop                 the drop page; the token rides in the URL fragment
//! GET {prefix}files                the files page (sign in with an upgate account)
//! GET {prefix}static/{asset}       scripts and style (no inline script anywhere)
//! *   {prefix}uppy/{token}/s3/...  Companion's S3 routes, scoped by the token in the path
//! ```
//!
//! The pages hold no secret and keep no cookie: the drop page sends the token from the
//! fragment as a bearer credential, the files page keeps its access token in the tab's
//! session storage and sends it as a bearer credential — so a forged cross-site request
//! carries no credential at all. Every page answer carries a strict Content-Security-Policy
//! (`default-src 'self'`, no inline script or style, no framing), `Referrer-Policy:
//! no-referrer` and `nosniff`.

mod uppy;

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;

use crate::config::web::WebConfig;
use crate::error::{Error, Result};
use crate::http::{Body, ConnInfo, Outcome, full};
use crate::state::AppState;

/// The Content-Security-Policy of every page and asset.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// An embedded file: its name under `static/` and its content type.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("assets/app.css"),
    },
    Asset {
        name: "common.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/common.js"),
    },
    Asset {
        name: "tus.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/tus.js"),
    },
    Asset {
        name: "drop.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/drop.js"),
    },
    Asset {
        name: "files.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/files.js"),
    },
];

const DROP_PAGE: &str = include_str!("assets/drop.html");
const FILES_PAGE: &str = include_str!("assets/files.html");

/// What a path under the prefix names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    DropPage,
    FilesPage,
    Asset(usize),
    Uppy(uppy::Route),
    /// A CORS preflight of the Uppy routes (an app on another origin embeds Uppy).
    UppyPreflight,
}

impl Route {
    fn name(&self) -> &'static str {
        match self {
            Route::DropPage => "web.DropPage",
            Route::FilesPage => "web.FilesPage",
            Route::Asset(_) => "web.Asset",
            Route::Uppy(r) => r.name(),
            Route::UppyPreflight => "Preflight",
        }
    }
}

/// Whether the pages own `path` (they are on, and its first segment under the prefix is one
/// of theirs).
pub fn owns(cfg: &WebConfig, path: &str) -> bool {
    cfg.enabled
        && path.strip_prefix(cfg.prefix.as_str()).is_some_and(|rest| {
            let first = rest.split('/').next().unwrap_or("");
            crate::config::web::PAGE_SEGMENTS.contains(&first)
        })
}

/// Routes a path the pages own (the prefix already checked by [`owns`]).
fn route(cfg: &WebConfig, method: &Method, path: &str) -> Result<Route> {
    let rest = path
        .strip_prefix(cfg.prefix.as_str())
        .ok_or(Error::NotFound)?;
    let segs: Vec<&str> = rest.split('/').collect();
    let page = matches!(*method, Method::GET | Method::HEAD);
    match segs.as_slice() {
        // Exact paths only: the pages load `static/…` relative to themselves.
        ["drop"] if page => Ok(Route::DropPage),
        ["files"] if page => Ok(Route::FilesPage),
        ["drop" | "files"] => Err(Error::MethodNotAllowed),
        ["static", name] => match ASSETS.iter().position(|a| a.name == *name) {
            Some(i) if page => Ok(Route::Asset(i)),
            Some(_) => Err(Error::MethodNotAllowed),
            None => Err(Error::NotFound),
        },
        ["uppy", _, "s3", ..] if *method == Method::OPTIONS => Ok(Route::UppyPreflight),
        ["uppy", token, "s3", rest @ ..] => uppy::route(method, token, rest).map(Route::Uppy),
        _ => Err(Error::NotFound),
    }
}

/// Entry point for the paths [`owns`] claims.
pub async fn handle(
    state: Arc<AppState>,
    req: Request<Incoming>,
    conn: ConnInfo,
    _request_id: &str,
) -> Outcome {
    let started = std::time::Instant::now();
    let (parts, body) = req.into_parts();
    let route = route(&state.config.web, &parts.method, parts.uri.path());
    let op = route.as_ref().map(Route::name).unwrap_or("web.Unknown");
    // The Uppy routes answer other origins under the API bucket's CORS rules.
    let bucket = matches!(route, Ok(Route::Uppy(_) | Route::UppyPreflight))
        .then(|| state.config.api.bucket.clone());
    let result = match route {
        Err(e) => Err(e),
        Ok(Route::DropPage) => Ok(page(DROP_PAGE, &parts.method)),
        Ok(Route::FilesPage) => Ok(page(FILES_PAGE, &parts.method)),
        Ok(Route::Asset(i)) => Ok(asset(&ASSETS[i], &parts.headers, &parts.method)),
        Ok(Route::UppyPreflight) => preflight(&state, &parts.headers, conn).await,
        Ok(Route::Uppy(r)) => uppy::handle(&state, r, &parts, body, conn, started)
            .await
            .map(|mut resp| {
                secure(resp.headers_mut());
                resp
            }),
    };
    Outcome {
        result,
        op,
        bucket,
        render: None,
    }
}

async fn preflight(
    state: &AppState,
    headers: &HeaderMap,
    conn: ConnInfo,
) -> Result<Response<Body>> {
    let ip = crate::upload::admit::client_ip(state, headers, conn);
    crate::upload::admit::rate_limit(state, crate::ratelimit::RouteClass::S3Read, None, ip).await?;
    crate::cors::preflight_response(&state.bucket(&state.config.api.bucket)?.cors, headers)
}

/// The headers every answer of the pages carries.
fn secure(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
    );
}

fn page(html: &'static str, method: &Method) -> Response<Body> {
    let mut resp = Response::new(if *method == Method::HEAD {
        full("")
    } else {
        full(html)
    });
    let h = resp.headers_mut();
    secure(h);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// An asset, revalidated by its ETag (the first bytes of its SHA-256).
fn asset(a: &Asset, req: &HeaderMap, method: &Method) -> Response<Body> {
    use sha2::{Digest, Sha256};
    let etag = format!(
        "\"{}\"",
        hex::encode(&Sha256::digest(a.body.as_bytes())[..12])
    );
    let fresh = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut resp = Response::new(if fresh || *method == Method::HEAD {
        full("")
    } else {
        full(a.body)
    });
    if fresh {
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
    }
    let h = resp.headers_mut();
    secure(h);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    resp
}

/// Renders an error of the pages' routes: a JSON document (`error.code`, `error.message`),
/// with the pages' headers; a page that is not there is a plain 404.
pub fn error_response(e: &Error, _method: &Method, request_id: &str) -> Response<Body> {
    let mut resp = crate::http::json_error(e, request_id);
    let h = resp.headers_mut();
    secure(h);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(prefix: &str) -> WebConfig {
        WebConfig {
            enabled: true,
            prefix: prefix.to_string(),
        }
    }

    #[test]
    fn owns_only_its_segments_under_the_prefix() {
        let c = cfg("/");
        assert!(owns(&c, "/drop"));
        assert!(owns(&c, "/files"));
        assert!(owns(&c, "/static/app.css"));
        assert!(owns(&c, "/uppy/ugt_a_b/s3/params"));
        assert!(!owns(&c, "/uploads/drop"));
        assert!(!owns(&c, "/dropbox"));
        assert!(!owns(&c, "/v1/files"));
        let c = cfg("/ui/");
        assert!(owns(&c, "/ui/drop"));
        assert!(!owns(&c, "/drop"));
        let mut off = cfg("/");
        off.enabled = false;
        assert!(!owns(&off, "/drop"));
    }

    #[test]
    fn routes() {
        let c = cfg("/");
        assert!(matches!(
            route(&c, &Method::GET, "/drop"),
            Ok(Route::DropPage)
        ));
        assert!(matches!(
            route(&c, &Method::HEAD, "/files"),
            Ok(Route::FilesPage)
        ));
        assert!(matches!(
            route(&c, &Method::POST, "/drop"),
            Err(Error::MethodNotAllowed)
        ));
        assert!(matches!(
            route(&c, &Method::GET, "/static/nope.js"),
            Err(Error::NotFound)
        ));
        assert!(matches!(
            route(&c, &Method::GET, "/static/drop.js"),
            Ok(Route::Asset(_))
        ));
        assert!(matches!(
            route(&c, &Method::GET, "/drop/x"),
            Err(Error::NotFound)
        ));
    }

    #[test]
    fn pages_load_no_inline_script_and_only_their_own_assets() {
        for html in [DROP_PAGE, FILES_PAGE] {
            assert!(!html.contains("<script>"), "inline script");
            assert!(!html.contains(" style="), "inline style");
            let handler = html.split(" on").skip(1).any(|rest| {
                let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
                !name.is_empty() && rest[name.len()..].starts_with('=')
            });
            assert!(!handler, "inline handler");
            for src in html
                .split("src=\"")
                .skip(1)
                .chain(html.split("href=\"").skip(1))
            {
                let url = src.split('"').next().unwrap_or("");
                let name = url.strip_prefix("static/").unwrap_or(url);
                assert!(
                    ASSETS.iter().any(|a| a.name == name) || url.starts_with('#'),
                    "{url} is not an embedded asset"
                );
            }
        }
    }
}
