//! The JSON API under `/api/v1`, for agents' tools and the console.
//!
//! Every request carries `Authorization: Bearer <token>` (`drawbridge tokens create`); the token's
//! role decides what it may do, and each token has its own rate limit (429 with `Retry-After`).
//! Errors are JSON `{"code": "...", "message": "..."}` with a stable, machine-readable `code`; the
//! message names what was wrong and never echoes message content.
//!
//! | route | role | what |
//! |---|---|---|
//! | `POST /api/v1/conversations/{id}/messages` | agent, supervisor, admin | `{"body"}` → 202 `{"id", "status": "queued" \| "held"}`; 409 `opted_out`; 422 `sensitive_content` |
//! | `POST /api/v1/conversations/{id}/consent` | `opt_out`: any; `opt_in`: compliance, admin | `{"kind": "opt_out" \| "opt_in"}` → `{"changed", "confirmation_id"}` (audited) |
//! | `GET /api/v1/contacts/{id}/consent` | any | consent state per business number, history, quiet-hours status, flood flag |
//! | `POST /api/v1/messages/{id}/override-quiet-hours` | supervisor, admin | `{"reason"}`: send one held message now (audited) |

pub mod routes;

use super::AppState;
use crate::store::tokens::{self, Role, TokenInfo};
use actix_web::http::{header, StatusCode};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use std::fmt;
use std::future::Future;
use std::pin::Pin;

pub fn configure(cfg: &mut web::ServiceConfig) {
    routes::configure(cfg);
}

/// An API error: an HTTP status, a stable `code`, a message.
#[derive(Debug)]
pub struct ApiProblem {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiProblem {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid `Authorization: Bearer <token>` is required",
        )
    }

    pub fn forbidden(what: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this token's role may not {what}"),
        )
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such {what}"),
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn too_many(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests for this token; retry later",
            )
        }
    }

    /// A database or sealing failure: logged by the caller, answered without detail.
    pub fn unavailable() -> Self {
        Self {
            retry_after: Some(30),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "storage is temporarily unavailable; please retry",
            )
        }
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log for this request id",
        )
    }

    /// A database error: 503 when it means "try again later", else 500. Logged here.
    pub fn from_database(error: &sqlx::Error) -> Self {
        tracing::error!(error = %error, "API request failed on the database");
        if crate::store::is_unavailable(error) {
            Self::unavailable()
        } else {
            Self::internal()
        }
    }

    #[must_use]
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl fmt::Display for ApiProblem {
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

impl ResponseError for ApiProblem {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        response.json(serde_json::json!({ "code": self.code, "message": self.message }))
    }
}

/// The authenticated caller of an API request.
#[derive(Debug, Clone)]
pub struct Caller(pub TokenInfo);

impl Caller {
    /// The audit actor for this caller.
    #[must_use]
    pub fn actor(&self) -> String {
        format!("api_token:{}", self.0.id)
    }

    /// Refuses unless the caller has one of `roles`.
    ///
    /// # Errors
    /// 403 naming the action.
    pub fn require(&self, roles: &[Role], what: &str) -> Result<(), ApiProblem> {
        if roles.contains(&self.0.role) {
            Ok(())
        } else {
            Err(ApiProblem::forbidden(what))
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiProblem;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut actix_web::dev::Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| zeroize::Zeroizing::new(t.trim().to_owned()));
        Box::pin(async move {
            let (Some(state), Some(token)) = (state, token) else {
                return Err(ApiProblem::unauthorized());
            };
            let found = async {
                let mut conn = state.db.pool().acquire().await?;
                tokens::find(&mut conn, &token).await
            }
            .await
            .map_err(|e| ApiProblem::from_database(&e))?;
            let info = found.ok_or_else(ApiProblem::unauthorized)?;
            state
                .limits
                .api(&info.id)
                .map_err(|retry| ApiProblem::too_many(retry.seconds()))?;
            Ok(Caller(info))
        })
    }
}
