//! The API's compliance routes: the audit trail (events with filters and a cursor, the integrity
//! check, the signed anchor) and the reports. Roles as in the console
//! ([`crate::web::console::compliance`]): events and the anchor compliance only, the check
//! compliance and admin, reports compliance and supervisor. Reading pages of events is not
//! audited; the check (`audit.verify`) and the anchor (`audit.export`) are.

use super::{problem, ApiError, Caller};
use crate::audit::{self, query};
use crate::compliance::reports::{self, Range};
use crate::store::tokens::Role;
use crate::web::console::compliance::{
    anchor_and_record, verify_and_record, AUDIT_ROLES, REPORT_ROLES, VERIFY_ROLES,
};
use crate::web::AppState;
use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

fn require(caller: &Caller, roles: &[Role], what: &str) -> Result<(), ApiError> {
    if roles.contains(&caller.principal().role) {
        Ok(())
    } else {
        Err(problem::forbidden(what))
    }
}

fn private_json(value: &serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(value)
}

fn from_audit(error: &audit::AuditError) -> ApiError {
    match error {
        audit::AuditError::Database(e) => problem::from_database(e),
        other => {
            tracing::error!(error = %other, "API: audit trail operation failed");
            problem::internal()
        }
    }
}

/// `GET /api/v1/audit/events`: `{"events": […], "next_cursor"}`, newest first.
pub async fn audit_events(
    caller: Caller,
    state: web::Data<AppState>,
    text: web::Query<query::FilterText>,
) -> Result<HttpResponse, ApiError> {
    require(&caller, &AUDIT_ROLES, "read the audit trail")?;
    let (filter, limit) = text.parse().map_err(|e| ApiError::bad_request(e.0))?;
    let page = async {
        let mut conn = state.db.pool().acquire().await?;
        query::list(&mut conn, &filter, limit).await
    }
    .await
    .map_err(|e| problem::from_database(&e))?;
    Ok(private_json(&serde_json::json!({
        "events": page.events.iter().map(query::EventRow::to_json).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
    })))
}

/// `GET /api/v1/audit/verify`: `{"intact", "events", "first_bad": {"seq", "problem"} | null,
/// "message"}`; audited `audit.verify`.
pub async fn audit_verify(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require(&caller, &VERIFY_ROLES, "verify the audit trail")?;
    let report = verify_and_record(&state, caller.principal().actor())
        .await
        .map_err(|e| from_audit(&e))?;
    Ok(private_json(&serde_json::json!({
        "intact": report.is_intact(),
        "events": report.events,
        "first_bad": report.first_bad.as_ref().map(|bad| serde_json::json!({
            "seq": bad.seq,
            "problem": bad.problem.to_string(),
        })),
        "message": report.to_string(),
    })))
}

/// `GET /api/v1/audit/anchor`: the signed head and checkpoint (`audit::prune::anchor`); audited
/// `audit.export`.
pub async fn audit_anchor(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require(&caller, &AUDIT_ROLES, "export the audit trail")?;
    let doc = anchor_and_record(&state, caller.principal().actor())
        .await
        .map_err(|e| from_audit(&e))?;
    Ok(private_json(&doc))
}

/// `from` and `to` (dates).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
}

/// `GET /api/v1/reports/{name}?from=&to=`: one report as JSON.
pub async fn report(
    caller: Caller,
    state: web::Data<AppState>,
    name: web::Path<String>,
    range: web::Query<RangeQuery>,
) -> Result<HttpResponse, ApiError> {
    require(&caller, &REPORT_ROLES, "see the compliance reports")?;
    let range = Range::parse(
        range.from.as_deref(),
        range.to.as_deref(),
        state.clock.now().date_naive(),
    )
    .map_err(ApiError::bad_request)?;
    let report = async {
        let mut conn = state.db.pool().acquire().await?;
        reports::run(&mut conn, &name, range).await
    }
    .await
    .map_err(|e| problem::from_database(&e))?
    .ok_or_else(|| problem::not_found("report"))?;
    Ok(private_json(&report.to_json()))
}
