//! The request edge: the one place every request on the main listener passes through, whatever
//! front end serves it. It assigns the request id, answers the probes, sends the pages' paths
//! to `web`, `/v1/tus/` to tus, `/v1/...` to the control API and everything else to the S3 plane, then finishes the response the same way
//! for both: the error rendered in the front end's own format (logged and counted once, here),
//! HSTS on TLS connections, CORS headers for allowed origins (errors included), the request id
//! and server headers, request metrics, and exactly one access-log line (no key, no filename,
//! no signature in it).
//!
//! An HTTP/1 error answer to a request that carries a body says `Connection: close`: the body
//! may be partly unread (refused from the head, or cut short by a limit), and hyper then closes
//! the connection after the answer anyway. Said in the answer, the client knows not to send its
//! next request on that connection. Left unsaid, the answer looked reusable: a client that
//! waited for `100 Continue`, got the error instead and sent its next request on the same
//! connection found it closed, which boto3 (without retries) reports as a bodiless copy of the
//! previous error.

use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::{Body as _, Incoming};

use crate::http::{Body, ConnInfo, Outcome, RenderError, text_response};
use crate::state::AppState;

/// Entry point for every request on the main listener.
pub async fn handle(
    state: Arc<AppState>,
    req: Request<Incoming>,
    conn: ConnInfo,
) -> Response<Body> {
    let started = Instant::now();
    let req = crate::http::detach_head(req);
    let request_id = crate::id::request_id();
    let method = req.method().clone();
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // HTTP/1 with a body (a length that is not zero, or chunks).
    let carries_body = req.version() <= http::Version::HTTP_11 && !req.body().is_end_stream();
    let path = req.uri().path();
    let probe = matches!(method, Method::GET | Method::HEAD);
    let (outcome, render): (Outcome, RenderError) = if probe && path == "/healthz" {
        (
            probe_outcome("Health", text_response(StatusCode::OK, "ok")),
            crate::s3::error_response,
        )
    } else if probe && path == "/readyz" {
        let resp = crate::health::readiness(&state).await;
        (probe_outcome("Ready", resp), crate::s3::error_response)
    } else if probe && path == "/.well-known/jwks.json" {
        (
            crate::api::handle_jwks(&state).await,
            crate::api::error_response,
        )
    } else if crate::web::owns(&state.config.web, path) {
        let out = crate::web::handle(Arc::clone(&state), req, conn, &request_id).await;
        (out, crate::web::error_response)
    } else if crate::tus::owns(path) {
        let out = crate::tus::handle(Arc::clone(&state), req, conn, &request_id).await;
        (out, crate::tus::error_response)
    } else if path.starts_with("/v1/") {
        let out = crate::api::handle(Arc::clone(&state), req, conn, &request_id).await;
        (out, crate::api::error_response)
    } else {
        let out = crate::s3::handle(Arc::clone(&state), req, conn, &request_id).await;
        (out, crate::s3::error_response)
    };
    let Outcome {
        result,
        op,
        bucket,
        render: own,
    } = outcome;

    let mut resp = match result {
        Ok(resp) => resp,
        Err(e) => {
            e.log_cause(&request_id);
            state.metrics.rejection(&e);
            match &own {
                Some(r) => r(&e, &method, &request_id),
                None => render(&e, &method, &request_id),
            }
        }
    };
    let hsts = state.config.tls.hsts_max_age_secs;
    if conn.tls
        && hsts > 0
        && let Ok(v) = HeaderValue::from_str(&format!("max-age={hsts}"))
    {
        resp.headers_mut()
            .insert(header::STRICT_TRANSPORT_SECURITY, v);
    }
    // CORS headers on every response to an allowed origin, errors included (a preflight
    // already carries its own).
    if let (Some(origin), Some(b)) = (&origin, &bucket)
        && op != "Preflight"
        && let Ok(bcfg) = state.bucket(b)
        && let Some(h) = crate::cors::actual(&bcfg.cors, origin, &method)
    {
        // A front end may expose protocol headers of its own: the rule's are added to them.
        let own = resp
            .headers()
            .get(header::ACCESS_CONTROL_EXPOSE_HEADERS)
            .cloned();
        resp.headers_mut().extend(h);
        if let Some(own) = own {
            let merged = match resp.headers().get(header::ACCESS_CONTROL_EXPOSE_HEADERS) {
                Some(rule) if rule != own => {
                    HeaderValue::from_bytes(&[own.as_bytes(), b", ", rule.as_bytes()].concat())
                        .unwrap_or(own)
                }
                _ => own,
            };
            resp.headers_mut()
                .insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, merged);
        }
    }
    state
        .metrics
        .request(op, resp.status().as_u16(), started.elapsed().as_secs_f64());
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-amz-request-id", v);
    }
    resp.headers_mut()
        .insert(header::SERVER, HeaderValue::from_static("upgate"));
    if carries_body && (resp.status().is_client_error() || resp.status().is_server_error()) {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    tracing::info!(
        request_id = %request_id,
        peer = %conn.peer.ip(),
        method = %method,
        op,
        bucket = bucket.as_deref().unwrap_or("-"),
        status = resp.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    resp
}

fn probe_outcome(op: &'static str, resp: Response<Body>) -> Outcome {
    Outcome {
        result: Ok(resp),
        op,
        bucket: None,
        render: None,
    }
}
