//! The one error type at the HTTP boundary.
//!
//! A response carries a stable machine-readable `error` code and a human `message` that names
//! what was wrong (a field, a limit) but never echoes request content. Server-side causes are
//! logged once where the error is made, and the client sees only a fixed message; the
//! `X-Request-Id` header ties the two together.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use std::fmt;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    /// 400: the request is malformed; `message` says how.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
            retry_after: None,
        }
    }
    /// 403: authentication failed. Deliberately says nothing more specific.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            code: "forbidden",
            message: message.into(),
            retry_after: None,
        }
    }
    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
            retry_after: None,
        }
    }
    /// 405.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "method_not_allowed",
            message: message.into(),
            retry_after: None,
        }
    }
    /// 413.
    #[must_use]
    pub fn too_large(limit: usize) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "payload_too_large",
            message: format!("the request body exceeds {limit} bytes"),
            retry_after: None,
        }
    }
    /// 415.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_media_type",
            message: message.into(),
            retry_after: None,
        }
    }
    /// 429: over a rate limit; retry after `seconds`.
    #[must_use]
    pub fn too_many(seconds: u64) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "rate_limited",
            message: "too many requests from this address; retry later".to_owned(),
            retry_after: Some(seconds),
        }
    }
    /// 503: try again later. Whatever the request carried is stored once however often it comes.
    #[must_use]
    pub fn unavailable() -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            message:
                "storage is temporarily unavailable; please retry (a retry is never stored twice)"
                    .to_owned(),
            retry_after: Some(30),
        }
    }
    /// 500: a fault on our side.
    #[must_use]
    pub fn internal() -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "internal error; please retry (a retry is never stored twice)".to_owned(),
            retry_after: None,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        response.json(serde_json::json!({ "error": self.code, "message": self.message }))
    }
}
