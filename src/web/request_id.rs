//! Per-request tracing span with a request id, echoed in the `X-Request-Id` response header.
//!
//! The span records the method and, once routing is done, the route *pattern*
//! (`/webhooks/{carrier}`), never the concrete path or query string, and never the client
//! address: paths and queries can carry tokens, and addresses are personal data.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use std::time::Instant;
use tracing::Instrument;

/// The response header carrying the request id.
pub const HEADER: &str = "x-request-id";

/// Middleware: wraps the request in a span and logs its completion.
///
/// # Errors
/// Passes on the inner service's error.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = uuid::Uuid::now_v7().simple().to_string();
    let span = tracing::info_span!("request", request_id = %request_id, method = %req.method(), route = tracing::field::Empty);
    let started = Instant::now();
    let result = next.call(req).instrument(span.clone()).await;
    let _entered = span.enter();
    match result {
        Ok(mut response) => {
            let route = response
                .request()
                .match_pattern()
                .unwrap_or_else(|| "(unmatched)".to_owned());
            span.record("route", route.as_str());
            let status = response.status().as_u16();
            let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            if status >= 500 {
                tracing::warn!(status, latency_ms, "request finished");
            } else {
                tracing::info!(status, latency_ms, "request finished");
            }
            if let Ok(value) = HeaderValue::from_str(&request_id) {
                response
                    .headers_mut()
                    .insert(HeaderName::from_static(HEADER), value);
            }
            Ok(response)
        }
        Err(error) => {
            tracing::warn!(
                status = error.as_response_error().status_code().as_u16(),
                "request failed"
            );
            Err(error)
        }
    }
}
