//! CORS for browser uploads: per-bucket rules from the config, preflight answered without
//! authentication, and CORS headers on every response to an allowed origin — errors included,
//! so a browser can read why an upload failed.
//!
//! Matching follows S3: a rule applies when the origin matches one of its origins (exact, `*`,
//! or one `*` wildcard such as `https://*.example.com`), the method is one of its methods, and
//! (for preflight) every requested header matches one of its headers (exact, case-insensitive,
//! `*`, or a `prefix*` wildcard). The first matching rule wins.

pub use crate::config::CorsRule;
use http::{HeaderMap, HeaderValue, Method, header};

/// Matches `value` against a pattern with at most one `*` (case-insensitive when `ci`).
fn wildcard(pattern: &str, value: &str, ci: bool) -> bool {
    let (p, v) = if ci {
        (pattern.to_ascii_lowercase(), value.to_ascii_lowercase())
    } else {
        (pattern.to_string(), value.to_string())
    };
    match p.split_once('*') {
        None => p == v,
        Some((head, tail)) => {
            v.len() >= head.len() + tail.len() && v.starts_with(head) && v.ends_with(tail)
        }
    }
}

impl CorsRule {
    fn origin_ok(&self, origin: &str) -> bool {
        self.allowed_origins
            .iter()
            .any(|o| wildcard(o, origin, false))
    }

    fn method_ok(&self, method: &str) -> bool {
        self.allowed_methods
            .iter()
            .any(|m| m.eq_ignore_ascii_case(method))
    }

    fn header_ok(&self, h: &str) -> bool {
        self.allowed_headers.iter().any(|p| wildcard(p, h, true))
    }
}

fn hv(s: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(s).ok()
}

/// Headers common to preflight and actual responses of a matching rule.
fn allow_origin(rule: &CorsRule, origin: &str, out: &mut HeaderMap) {
    let any = rule.allowed_origins.iter().any(|o| o == "*");
    let value = if any { "*" } else { origin };
    if let Some(v) = hv(value) {
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    out.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// The answer to a CORS preflight against `rules`: 200 with the allowed origin, methods and
/// headers, or the refusal S3 gives (400 without `Origin` or the requested method, 403 when no
/// rule allows it). Preflights carry no credentials, by design of CORS.
pub fn preflight_response(
    rules: &[CorsRule],
    headers: &HeaderMap,
) -> crate::error::Result<http::Response<crate::http::Body>> {
    use crate::error::Error;
    if !headers.contains_key(header::ORIGIN) {
        return Err(Error::BadRequest(
            "Insufficient information. Origin request header needed.",
        ));
    }
    if !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
        return Err(Error::BadRequest("Invalid Access-Control-Request-Method."));
    }
    let allowed = preflight(rules, headers).ok_or(Error::AccessDenied(
        "CORSResponse: This CORS request is not allowed.",
    ))?;
    let mut resp = crate::http::status_response(http::StatusCode::OK);
    resp.headers_mut().extend(allowed);
    Ok(resp)
}

/// Whether a request is a CORS preflight (`OPTIONS` with `Origin` and the method it asks for).
pub fn is_preflight(method: &http::Method, headers: &HeaderMap) -> bool {
    method == http::Method::OPTIONS
        && headers.contains_key(header::ORIGIN)
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// Answers a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`). `None`
/// means no rule allows it (the caller answers 403).
pub fn preflight(rules: &[CorsRule], req: &HeaderMap) -> Option<HeaderMap> {
    let origin = req.get(header::ORIGIN)?.to_str().ok()?;
    let method = req
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)?
        .to_str()
        .ok()?;
    let asked: Vec<String> = req
        .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    let rule = rules.iter().find(|r| {
        r.origin_ok(origin) && r.method_ok(method) && asked.iter().all(|h| r.header_ok(h))
    })?;
    let mut out = HeaderMap::new();
    allow_origin(rule, origin, &mut out);
    if let Some(v) = hv(&rule.allowed_methods.join(", ").to_ascii_uppercase()) {
        out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
    }
    if !asked.is_empty()
        && let Some(v) = hv(&asked.join(", "))
    {
        out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
    }
    if !rule.expose_headers.is_empty()
        && let Some(v) = hv(&rule.expose_headers.join(", "))
    {
        out.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
    }
    if let Some(age) = rule.max_age_secs {
        out.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age));
    }
    Some(out)
}

/// Headers for an actual (non-preflight) cross-origin response, if a rule allows the origin and
/// method.
pub fn actual(rules: &[CorsRule], origin: &str, method: &Method) -> Option<HeaderMap> {
    let rule = rules
        .iter()
        .find(|r| r.origin_ok(origin) && r.method_ok(method.as_str()))?;
    let mut out = HeaderMap::new();
    allow_origin(rule, origin, &mut out);
    if !rule.expose_headers.is_empty()
        && let Some(v) = hv(&rule.expose_headers.join(", "))
    {
        out.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> CorsRule {
        CorsRule {
            allowed_origins: vec![
                "https://app.example.com".into(),
                "https://*.example.org".into(),
            ],
            allowed_methods: vec!["PUT".into(), "POST".into()],
            allowed_headers: vec!["content-type".into(), "x-amz-*".into()],
            expose_headers: crate::config::default_expose(),
            max_age_secs: Some(600),
        }
    }

    fn req(origin: &str, method: &str, headers: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, hv(origin).expect("o"));
        h.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            hv(method).expect("m"),
        );
        if !headers.is_empty() {
            h.insert(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                hv(headers).expect("h"),
            );
        }
        h
    }

    #[test]
    fn preflight_allows_matching_origin_method_and_headers() {
        let out = preflight(
            &[rule()],
            &req("https://app.example.com", "PUT", "Content-Type, X-Amz-Date"),
        )
        .expect("allowed");
        assert_eq!(
            out[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example.com"
        );
        assert_eq!(
            out[header::ACCESS_CONTROL_ALLOW_HEADERS],
            "content-type, x-amz-date"
        );
        assert_eq!(out[header::ACCESS_CONTROL_EXPOSE_HEADERS], "ETag");
        assert_eq!(out[header::ACCESS_CONTROL_MAX_AGE], "600");
        assert!(preflight(&[rule()], &req("https://cdn.example.org", "POST", "")).is_some());
    }

    #[test]
    fn preflight_refuses_what_no_rule_allows() {
        assert!(preflight(&[rule()], &req("https://evil.com", "PUT", "")).is_none());
        assert!(preflight(&[rule()], &req("https://app.example.com", "DELETE", "")).is_none());
        assert!(
            preflight(
                &[rule()],
                &req("https://app.example.com", "PUT", "authorization")
            )
            .is_none()
        );
        assert!(preflight(&[rule()], &req("https://example.org", "PUT", "")).is_none());
        assert!(preflight(&[], &req("https://app.example.com", "PUT", "")).is_none());
    }

    #[test]
    fn wildcard_origin_answers_star() {
        let mut r = rule();
        r.allowed_origins = vec!["*".into()];
        let out = actual(&[r], "https://anything.test", &Method::PUT).expect("allowed");
        assert_eq!(out[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    }

    #[test]
    fn rule_validation_lists_problems() {
        let mut r = rule();
        r.allowed_methods = vec!["TRACE".into()];
        r.allowed_origins = vec!["https://*.*.x".into()];
        assert_eq!(r.problems().len(), 2);
    }
}
