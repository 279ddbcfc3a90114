//! The JSON API under `/api/v1`, for agents' tools and integrations.
//!
//! Every request but the OpenAPI document carries `Authorization: Bearer <token>`
//! (`drawbridge tokens create`); the token is a [`Principal`] with the token's role, and the
//! routes call [`crate::inbox`] and [`crate::escalation::links`], which check authorization
//! themselves: the API has the console's rules. An agent token sees unassigned conversations
//! only (a token is never an assignee); a conversation the caller may not see is 404 `not_found`;
//! a role that may never do a thing is 403 `forbidden`. Each token has its own rate limit (429
//! with `Retry-After`). Errors are JSON `{"code": "...", "message": "..."}`, as everywhere in
//! the service: a stable machine-readable `code`, and a message that names what was wrong and
//! never echoes message content. The document at `/api/v1/openapi.json` ([`openapi`]) describes
//! every route; a test keeps it and [`routes::ROUTES`] equal.
//!
//! | route | roles | what |
//! |---|---|---|
//! | `GET /api/v1/openapi.json` | none needed | the OpenAPI 3.1 document |
//! | `GET /api/v1/conversations` | agent, supervisor, compliance | `?status=open\|escalated\|closed&assigned=me\|none&page=N&per_page=N` → `{"conversations": […], "next_page"}` |
//! | `GET /api/v1/conversations/{id}/messages` | agent, supervisor, compliance (bodies withheld) | `{"conversation_id", "messages": […]}`; secure-channel bodies withheld; audited `conversation.view` |
//! | `POST /api/v1/conversations/{id}/messages` | agent, supervisor | `{"body"}` → 202 `{"id", "status": "queued" \| "held", "held_until"}`; 409 `opted_out`; 422 `sensitive_content` |
//! | `POST /api/v1/conversations/{id}/secure-link` | agent, supervisor | 201 `{"id", "message_id", "expires_at", "status"}`; 409 `secure_link_active` |
//! | `DELETE /api/v1/conversations/{id}/secure-link` | agent, supervisor | revokes the active link → `{"id", "status": "revoked"}` (audited); 409 `no_secure_link` |
//! | `POST /api/v1/conversations/{id}/secure-messages` | agent, supervisor | `{"body"}` → 201 `{"id", "notified"}`: a message in the secure channel (sealed, audited); 409 `no_secure_link` |
//! | `POST /api/v1/conversations/{id}/assign` | supervisor (agents' tokens cannot be assignees) | `{"user_id": "…" \| null}` → `{"id", "assigned_user_id"}` (audited) |
//! | `POST /api/v1/conversations/{id}/close`, `…/reopen` | agent, supervisor | → `{"id", "status"}` (audited); 409 `conversation_open` |
//! | `POST /api/v1/conversations/{id}/consent` | `opt_out`: agent, supervisor, compliance; `opt_in`: compliance | `{"kind": "opt_out" \| "opt_in"}` → `{"changed", "confirmation_id"}` (audited) |
//! | `GET /api/v1/contacts/{id}/consent` | agent, supervisor, compliance | consent state per business number, history, quiet-hours status, flood flag |
//! | `PUT /api/v1/contacts/{id}/time-zone` | agent, supervisor | `{"time_zone"}`: the contact's IANA zone, or `null` (audited) |
//! | `POST /api/v1/messages/{id}/reveal` | agent, supervisor, compliance | `{"reason"}` → `{"id", "body"}` (audited with the reason); 422 `reason_required`, `reason_refused` |
//! | `POST /api/v1/messages/{id}/override-quiet-hours` | supervisor | `{"reason", "ticket"}`: send one held message now (audited; reasons from a fixed set) |
//! | `/api/v1/rules…` | compliance | the rule editor: see [`rules`] for its routes |
//!
//! | `GET /api/v1/audit/events` | compliance | `?actor_kind&actor_id&action&subject_kind&subject_id&from&until&before&limit` → `{"events": […], "next_cursor"}`, newest first |
//! | `GET /api/v1/audit/verify` | compliance, admin | `{"intact", "events", "first_bad", "message"}` (audited) |
//! | `GET /api/v1/audit/anchor` | compliance | the signed head and checkpoint, to keep outside the database (audited) |
//! | `GET /api/v1/reports/{name}` | compliance, supervisor | `?from&to` (dates) → one report: `redactions`, `escalations`, `opt_outs`, `quiet_holds`, `dlp_refusals` |
//!
//! | `GET /api/v1/legal-holds` | compliance | `{"legal_holds": […]}`: the active holds |
//! | `POST /api/v1/legal-holds` | compliance | `{"phone" \| "conversation_id", "reason", "note"}` → 201 the hold (audited); 404 unknown number/conversation; 422 `invalid_hold` |
//! | `POST /api/v1/legal-holds/{id}/release` | compliance | → the hold, released (audited); 409 `already_released` |
//!
//! Admin tokens manage nothing here: admins manage users, tokens and settings, not messages.

pub mod compliance;
pub mod openapi;
pub mod routes;
pub mod rules;

use super::AppState;
use crate::accounts::Principal;
use crate::store::tokens;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use std::future::Future;
use std::pin::Pin;

/// Registers the API's routes.
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

    /// The API's answer to an inbox refusal or failure: `NotFound(what)` → 404 `not_found`,
    /// `Forbidden(what)` → 403 `forbidden`, `Refused` → its own status and code; database
    /// errors as [`from_database`]; a seal that did not open or an audit refusal → 500, logged.
    #[must_use]
    pub fn from_inbox(error: crate::inbox::InboxError) -> ApiError {
        use crate::inbox::InboxError as E;
        match error {
            E::NotFound(what) => not_found(what),
            E::Forbidden(what) => forbidden(what),
            E::Refused {
                status,
                code,
                message,
            } => ApiError::new(
                StatusCode::from_u16(status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
                code,
                message,
            ),
            E::Database(error) => from_database(&error),
            E::Vault => {
                tracing::error!("API: a sealed value did not open");
                internal()
            }
            E::Audit(why) => {
                tracing::error!(%why, "API: the audit trail refused an event");
                internal()
            }
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

/// The authenticated caller of an API request: the bearer token as a [`Principal`].
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl Caller {
    /// The principal the inbox checks.
    #[must_use]
    pub fn principal(&self) -> &Principal {
        &self.0
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
            Ok(Caller(Principal::token(&info.id, info.role)))
        })
    }
}
