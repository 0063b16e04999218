//! What wraps every request before it reaches a handler: the bearer-token check, request body
//! limits (refused with 413 before the body is read into memory), and the rewrite of any error
//! poem raised on its own into the JSON error body.

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Body, Endpoint, IntoResponse, Request, Response};
use poem_openapi::payload::Json;

use crate::api::error::{ErrorBody, json_error_body};
use crate::document::AllowTable;

/// The limits the body check applies, by route.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    pub json: u64,
    pub upload: u64,
    pub import: u64,
}

impl BodyLimits {
    fn for_path(&self, path: &str) -> u64 {
        if path == "/api/v1/projects/import" {
            self.import
        } else if path.ends_with("/frames/upload") {
            self.upload
        } else {
            self.json
        }
    }
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    Json(ErrorBody::new(code, message))
        .with_status(status)
        .into_response()
}

/// Compares in time independent of where the strings differ, so the token cannot be guessed
/// byte by byte from response times.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Requires `Authorization: Bearer <token>` on every route but `/health` (and the CORS
/// preflight, which browsers send without credentials).
pub async fn check_token<E: Endpoint>(ep: &E, req: Request, token: &str) -> poem::Result<Response> {
    let exempt = req.uri().path() == "/health" || req.method() == poem::http::Method::OPTIONS;
    if !exempt {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !presented.is_some_and(|p| same_secret(p.as_bytes(), token.as_bytes())) {
            let mut resp = error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this server requires Authorization: Bearer <API_TOKEN>".into(),
            );
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return Ok(resp);
        }
    }
    ep.call(req).await.map(IntoResponse::into_response)
}

/// Refuses bodies over the route's limit: by `Content-Length` before reading anything, and for
/// bodies without one by reading at most limit + 1 bytes.
pub async fn limit_body<E: Endpoint>(
    ep: &E,
    mut req: Request,
    limits: BodyLimits,
) -> poem::Result<Response> {
    let limit = limits.for_path(req.uri().path());
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than the {limit} bytes this route accepts"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .map(|v| v.to_str().ok().and_then(|s| s.parse::<u64>().ok()));
    match declared {
        Some(Some(len)) if len > limit => return Ok(too_large()),
        Some(Some(_)) => {}
        Some(None) => {
            return Ok(error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "invalid Content-Length".into(),
            ));
        }
        None => {
            let body = req.take_body();
            let mut reader = body.into_async_read();
            let mut buf = Vec::new();
            let read = tokio::io::AsyncReadExt::read_to_end(
                &mut tokio::io::AsyncReadExt::take(&mut reader, limit + 1),
                &mut buf,
            )
            .await;
            if read.is_err() {
                return Ok(error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "the request body could not be read".into(),
                ));
            }
            if buf.len() as u64 > limit {
                return Ok(too_large());
            }
            req.set_body(Body::from(buf));
        }
    }
    ep.call(req).await.map(IntoResponse::into_response)
}

/// Turns every error that escaped the handlers into the JSON error body, and says which methods
/// a path allows when it answers 405.
pub async fn json_errors<E: Endpoint>(
    ep: &E,
    req: Request,
    allow: &AllowTable,
) -> poem::Result<Response> {
    let path = req.uri().path().to_owned();
    let mut resp = match ep.call(req).await {
        Ok(resp) => resp.into_response(),
        Err(err) => json_error_body(err),
    };
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED
        && let Some(methods) = allow.allow(&path)
        && let Ok(value) = HeaderValue::from_str(&methods)
    {
        resp.headers_mut().insert(header::ALLOW, value);
    }
    Ok(resp)
}

/// Whether a browser request comes from a page of this very server: its `Origin` names the host
/// and port it was sent to. Only for hosts written as IP addresses or `localhost`: a DNS name
/// could be rebound by a hostile page to this machine's address, so such origins must be listed
/// in `CORS_ORIGINS` explicitly.
pub fn same_origin(req: &Request) -> bool {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(host) = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(origin_host) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    if !origin_host.eq_ignore_ascii_case(host) {
        return false;
    }
    // The host without its port; IPv6 literals keep their brackets.
    let name = if host.starts_with('[') {
        host.split_inclusive(']').next().unwrap_or(host)
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost") || bare.parse::<std::net::IpAddr>().is_ok()
}

/// The API behind CORS, except for requests from the server's own pages ([`same_origin`]), which
/// a browser sends with an `Origin` that `CORS_ORIGINS` need not list: the UI then works on any
/// `PORT`. A refused origin gets the JSON error body like every other error.
pub struct OwnOriginOrCors {
    pub api: std::sync::Arc<poem::endpoint::BoxEndpoint<'static>>,
    pub cors: poem::endpoint::BoxEndpoint<'static>,
}

impl Endpoint for OwnOriginOrCors {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if same_origin(&req) {
            return self.api.call(req).await;
        }
        match self.cors.call(req).await {
            Ok(resp) => Ok(resp),
            Err(err) if err.status() == StatusCode::FORBIDDEN => Ok(Json(ErrorBody::new(
                "forbidden_origin",
                format!("{err}: add the page's origin to CORS_ORIGINS"),
            ))
            .with_status(StatusCode::FORBIDDEN)
            .into_response()),
            Err(err) => Ok(json_error_body(err)),
        }
    }
}

#[cfg(test)]
mod same_origin_tests {
    use super::*;

    fn request(origin: &str, host: &str) -> Request {
        Request::builder()
            .header(header::ORIGIN, origin)
            .header(header::HOST, host)
            .finish()
    }

    #[test]
    fn pages_of_this_server_by_address_are_its_own() {
        assert!(same_origin(&request(
            "http://127.0.0.1:9300",
            "127.0.0.1:9300"
        )));
        assert!(same_origin(&request(
            "http://localhost:9300",
            "localhost:9300"
        )));
        assert!(same_origin(&request("http://[::1]:9300", "[::1]:9300")));
        assert!(same_origin(&request("https://10.0.0.5", "10.0.0.5")));
    }

    #[test]
    fn other_origins_and_dns_names_are_not() {
        assert!(!same_origin(&request(
            "http://127.0.0.1:9301",
            "127.0.0.1:9300"
        )));
        assert!(!same_origin(&request(
            "http://evil.example:9300",
            "127.0.0.1:9300"
        )));
        // A rebound name: same string both sides, but a name, not an address.
        assert!(!same_origin(&request(
            "http://evil.example:9300",
            "evil.example:9300"
        )));
        assert!(!same_origin(&request("null", "127.0.0.1:9300")));
        assert!(!same_origin(
            &Request::builder()
                .header(header::HOST, "127.0.0.1")
                .finish()
        ));
    }
}
