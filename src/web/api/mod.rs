//! The JSON API under `/api/v1`, for agents' tools and the console.
//!
//! Every request carries `Authorization: Bearer <token>` (`drawbridge tokens create`); the token's
//! role decides what it may do, and each token has its own rate limit (429 with `Retry-After`).
//! Errors are JSON `{"error": "...", "message": "..."}`, as everywhere in the service: a stable,
//! machine-readable `error` code, and a message that names what was wrong and never echoes
//! message content.
//!
//! | route | role | what |
//! |---|---|---|
//! | `POST /api/v1/conversations/{id}/messages` | agent, supervisor, admin | `{"body"}` → 202 `{"id", "status": "queued" \| "held"}`; 409 `opted_out`; 422 `sensitive_content` |
//! | `POST /api/v1/conversations/{id}/consent` | `opt_out`: any; `opt_in`: compliance, admin | `{"kind": "opt_out" \| "opt_in"}` → `{"changed", "confirmation_id"}` (audited) |
//! | `GET /api/v1/contacts/{id}/consent` | any | consent state per business number, history, quiet-hours status, flood flag |
//! | `POST /api/v1/messages/{id}/override-quiet-hours` | supervisor, admin | `{"reason", "ticket"}`: send one held message now (audited; reasons from a fixed set) |
//! | `PUT /api/v1/contacts/{id}/time-zone` | agent, supervisor, admin | `{"time_zone"}`: the contact's IANA zone, or `null` (audited) |

pub mod routes;

use super::AppState;
use crate::store::tokens::{self, Role, TokenInfo};
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use std::future::Future;
use std::pin::Pin;

pub fn configure(cfg: &mut web::ServiceConfig) {
    routes::configure(cfg);
}

/// The API's errors are the service's one error type, with the API's wording where it differs.
pub use crate::web::error::ApiError;

/// The API's wording of the common errors.
pub mod problem {
    use super::ApiError;
    use actix_web::http::StatusCode;

    /// 403: the token's role may not `what`.
    #[must_use]
    pub fn forbidden(what: &str) -> ApiError {
        ApiError::forbidden(format!("this token's role may not {what}"))
    }

    /// 404: no such `what`.
    #[must_use]
    pub fn not_found(what: &str) -> ApiError {
        ApiError::not_found(format!("no such {what}"))
    }

    /// A database error, logged here: 503 when it means "try again later", else 500. Neither
    /// says whether the request took effect, since a commit can fail after the fact.
    #[must_use]
    pub fn from_database(error: &sqlx::Error) -> ApiError {
        tracing::error!(error = %error, "API request failed on the database");
        if crate::store::is_unavailable(error) {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "storage is temporarily unavailable; retry later",
            )
            .retry_after(30)
        } else {
            internal()
        }
    }

    /// 500, its cause logged by the caller.
    #[must_use]
    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the X-Request-Id header names this request in the server log",
        )
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
    pub fn require(&self, roles: &[Role], what: &str) -> Result<(), ApiError> {
        if roles.contains(&self.0.role) {
            Ok(())
        } else {
            Err(problem::forbidden(what))
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
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
                return Err(ApiError::unauthorized());
            };
            let found = async {
                let mut conn = state.db.pool().acquire().await?;
                tokens::find(&mut conn, &token).await
            }
            .await
            .map_err(|e| problem::from_database(&e))?;
            let info = found.ok_or_else(ApiError::unauthorized)?;
            state
                .limits
                .api(&info.id)
                .map_err(|retry| ApiError::too_many("for this token", retry.seconds()))?;
            Ok(Caller(info))
        })
    }
}
