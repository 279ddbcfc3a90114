//! The API's routes (see [`super`] for the table).

use super::{problem, ApiError, Caller};
use crate::compliance::outbound::{self, GateError, OverrideError, Refusal};
use crate::compliance::{consent, quiet};
use crate::store::tokens::Role;
use crate::web::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use sqlx::Row;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .app_data(
                web::JsonConfig::default()
                    .limit(16 * 1024)
                    .error_handler(|e, _| json_problem(&e).into()),
            )
            .route("/conversations/{id}/messages", web::post().to(send_message))
            .route(
                "/conversations/{id}/consent",
                web::post().to(change_consent),
            )
            .route("/contacts/{id}/consent", web::get().to(contact_consent))
            .route("/contacts/{id}/time-zone", web::put().to(set_time_zone))
            .route(
                "/messages/{id}/override-quiet-hours",
                web::post().to(override_quiet_hours),
            ),
    );
}

/// A body that is not the JSON a route takes. The parser's own message is not passed on: it
/// quotes what it could not read (`invalid type: integer 4539…`), which may be a card number.
fn json_problem(error: &actix_web::error::JsonPayloadError) -> ApiError {
    use actix_web::error::JsonPayloadError;
    match error {
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => ApiError::too_large(*limit),
        JsonPayloadError::ContentType => {
            ApiError::unsupported_media_type("the body must be `Content-Type: application/json`")
        }
        JsonPayloadError::Deserialize(e) if e.is_data() => ApiError::bad_request(
            "the body's fields are not the ones this route takes (see the API table in the README)",
        ),
        JsonPayloadError::Deserialize(e) if e.is_eof() => {
            ApiError::bad_request("the body ends before its JSON does")
        }
        _ => ApiError::bad_request("the body is not valid JSON"),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMessage {
    body: String,
}

/// `POST /api/v1/conversations/{id}/messages`.
async fn send_message(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<NewMessage>,
) -> Result<HttpResponse, ApiError> {
    caller.require(
        &[Role::Agent, Role::Supervisor, Role::Admin],
        "send messages",
    )?;
    if body.body.chars().count() > 1600 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_long",
            "a message holds at most 1,600 characters",
        ));
    }
    match outbound::send_reply(&state, &path, &body.body).await {
        Ok(sent) => {
            tracing::info!(message_id = %sent.message_id, held = sent.held_until.is_some(), "API reply queued");
            Ok(HttpResponse::Accepted().json(serde_json::json!({
                "id": sent.message_id,
                "status": if sent.held_until.is_some() { "held" } else { "queued" },
                "held_until": sent.held_until.map(crate::store::timestamp),
            })))
        }
        Err(error) => Err(gate_problem(error)),
    }
}

/// The API's answer to a refused or failed gate call.
fn gate_problem(error: GateError) -> ApiError {
    match error {
        GateError::Refused(refusal) => match refusal {
            Refusal::OptedOut { since, source } => ApiError::new(
                StatusCode::CONFLICT,
                "opted_out",
                format!(
                    "the contact opted out{}{}; nothing was queued",
                    source.map(|s| format!(" ({s})")).unwrap_or_default(),
                    since.map(|s| format!(" at {s}")).unwrap_or_default()
                ),
            ),
            Refusal::Sensitive(refusal) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "sensitive_content",
                refusal.message(),
            ),
            Refusal::Empty => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "empty",
                "the message has no text",
            ),
            Refusal::NotFound => problem::not_found("conversation"),
            Refusal::SenderNotConfigured => ApiError::new(
                StatusCode::CONFLICT,
                "sender_not_configured",
                "the conversation's business number is no longer configured",
            ),
        },
        GateError::Database(error) => problem::from_database(&error),
        GateError::Vault => {
            tracing::error!("API: a sealed value did not open");
            problem::internal()
        }
        GateError::Audit(why) => {
            tracing::error!(%why, "API: the audit trail refused an event");
            problem::internal()
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentChange {
    /// `opt_out` or `opt_in`.
    kind: String,
}

/// `POST /api/v1/conversations/{id}/consent`: staff record an opt-out (an agent confirming the
/// customer's request; any role that may read consent) or an opt-in the customer gave outside
/// the thread (compliance and admin only: the one way past a customer's STOP other than their
/// own START). See [`outbound::staff_consent`] for the confirmation rule.
async fn change_consent(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<ConsentChange>,
) -> Result<HttpResponse, ApiError> {
    let kind = match body.kind.as_str() {
        "opt_out" => {
            caller.require(
                &[Role::Agent, Role::Supervisor, Role::Compliance, Role::Admin],
                "record opt-outs",
            )?;
            consent::Kind::OptOut
        }
        "opt_in" => {
            caller.require(&[Role::Compliance, Role::Admin], "record opt-ins")?;
            consent::Kind::OptIn
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_kind",
                "`kind` is `opt_out` or `opt_in`",
            ))
        }
    };
    let done = outbound::staff_consent(&state, &path, kind, consent::Source::Api, &caller.actor())
        .await
        .map_err(gate_problem)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "conversation_id": path.into_inner(),
        "kind": kind.as_str(),
        "changed": done.changed,
        "confirmation_id": done.confirmation,
    })))
}

/// `GET /api/v1/contacts/{id}/consent`: the consent state towards each business number the
/// contact has a conversation with, the history, the quiet-hours status and the flood flag.
async fn contact_consent(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(
        &[Role::Agent, Role::Supervisor, Role::Compliance, Role::Admin],
        "read consent",
    )?;
    let contact_id = path.into_inner();
    let settings = &state.compliance;
    let now = state.clock.now();
    let result = async {
        let mut conn = state.db.pool().acquire().await?;
        let conversations = sqlx::query(
            "SELECT conversation_id, business_number, flooded_at FROM conversation \
             WHERE contact_id = $1 ORDER BY last_message_at DESC",
        )
        .bind(&contact_id)
        .fetch_all(&mut *conn)
        .await?;
        if conversations.is_empty() {
            return Ok(None);
        }
        let mut numbers = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        let mut first_conversation = None;
        let mut flooded = None::<String>;
        for row in &conversations {
            let conversation_id: String = row.try_get(0)?;
            let number: String = row.try_get(1)?;
            let flood: Option<String> = row.try_get(2)?;
            if flood > flooded {
                flooded = flood;
            }
            first_conversation.get_or_insert(conversation_id);
            if seen.insert(number.clone()) {
                let current =
                    consent::current(&mut conn, &contact_id, &number, settings.opt_out_scope)
                        .await?;
                numbers.push(serde_json::json!({
                    "business_number": number,
                    "state": current.state.as_str(),
                    "since": current.since,
                    "source": current.source,
                    "keyword": current.keyword,
                }));
            }
        }
        let history = consent::history(&mut conn, &contact_id).await?;
        let recipient = match &first_conversation {
            Some(id) => outbound::recipient(&mut conn, &state.vault, id)
                .await
                .map_err(|e| match e {
                    GateError::Database(e) => e,
                    _ => sqlx::Error::RowNotFound,
                })?,
            None => None,
        };
        Ok::<_, sqlx::Error>(Some((numbers, history, recipient, flooded)))
    }
    .await
    .map_err(|e| problem::from_database(&e))?;
    let Some((numbers, history, recipient, flooded)) = result else {
        return Err(problem::not_found("contact"));
    };
    let quiet_hours = recipient.map(|r| {
        let stored = r
            .time_zone
            .as_deref()
            .and_then(|z| z.parse::<chrono_tz::Tz>().ok());
        let zones = quiet::zones_for(&r.phone, stored, settings.default_time_zone);
        let hold = outbound::quiet_hold(
            settings,
            &r.phone,
            r.time_zone.as_deref(),
            r.last_inbound,
            now,
        );
        serde_json::json!({
            "window": settings.quiet_window.to_string(),
            "time_zones": zones.zones().iter().map(|z| z.name()).collect::<Vec<_>>(),
            "time_zone_source": zones.source().as_str(),
            "allowed_now": hold.is_none(),
            "reply_window_open": quiet::exempt(r.last_inbound, settings.reply_window, now),
            "next_allowed": hold.map(crate::store::timestamp),
        })
    });
    let flooding = flooded
        .as_deref()
        .and_then(crate::store::parse_timestamp)
        .is_some_and(|at| now - at < chrono::TimeDelta::minutes(5));
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "contact_id": contact_id,
        "consent": numbers,
        "history": history,
        "quiet_hours": quiet_hours,
        "flooding": flooding,
        "flooded_at": flooded,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Override {
    reason: outbound::OverrideReason,
    ticket: Option<String>,
}

/// `POST /api/v1/messages/{id}/override-quiet-hours`: a supervisor sends one held message now,
/// for a reason from a fixed set and an optional ticket reference, both audited.
async fn override_quiet_hours(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<Override>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Supervisor, Role::Admin], "override quiet hours")?;
    if body.reason == outbound::OverrideReason::Other && body.ticket.is_none() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "ticket_required",
            "reason `other` needs a `ticket` reference",
        ));
    }
    match outbound::override_quiet_hours(
        &state,
        &path,
        &caller.actor(),
        body.reason,
        body.ticket.as_deref(),
    )
    .await
    {
        Ok(()) => Ok(HttpResponse::Ok().json(serde_json::json!({
            "id": path.into_inner(),
            "status": "queued",
        }))),
        Err(OverrideError::NotHeld) => Err(problem::not_found("message held by quiet hours")),
        Err(OverrideError::Ticket(why)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "ticket_refused",
            format!("the ticket reference is kept in the audit trail and must hold no customer data: {why}"),
        )),
        Err(OverrideError::Database(error)) => Err(problem::from_database(&error)),
        Err(OverrideError::Audit(why)) => {
            tracing::error!(%why, "API: the audit trail refused an override");
            Err(problem::internal())
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TimeZone {
    /// An IANA name (`America/Chicago`), or `null` to forget it.
    time_zone: Option<String>,
}

/// `PUT /api/v1/contacts/{id}/time-zone`: records the contact's time zone (the customer said
/// where they are), which quiet hours then use before the area code; audited.
async fn set_time_zone(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<TimeZone>,
) -> Result<HttpResponse, ApiError> {
    caller.require(
        &[Role::Agent, Role::Supervisor, Role::Admin],
        "set time zones",
    )?;
    let zone = match body.time_zone.as_deref().map(str::trim) {
        None => None,
        Some(name) => Some(name.parse::<chrono_tz::Tz>().map_err(|_| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_time_zone",
                "`time_zone` is an IANA time zone such as America/Chicago, or null",
            )
        })?),
    };
    let contact_id = path.into_inner();
    let now = state.clock.timestamp();
    let result = async {
        let mut tx = state.db.pool().begin().await?;
        let updated = sqlx::query("UPDATE contact SET time_zone = $1 WHERE contact_id = $2")
            .bind(zone.map(|z| z.name()))
            .bind(&contact_id)
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() != 1 {
            return Ok(false);
        }
        let actor = caller.actor();
        let event = crate::audit::Event::new(consent::actor_of(&actor), "contact.time_zone")
            .subject("contact", &contact_id)
            .detail("time_zone", zone.map_or("none", |z| z.name()));
        crate::audit::append(&mut tx, state.vault.audit_key(), &event, &now).await?;
        tx.commit().await?;
        Ok::<_, crate::audit::AuditError>(true)
    }
    .await;
    match result {
        Ok(true) => Ok(HttpResponse::Ok().json(serde_json::json!({
            "contact_id": contact_id,
            "time_zone": zone.map(|z| z.name()),
        }))),
        Ok(false) => Err(problem::not_found("contact")),
        Err(crate::audit::AuditError::Database(error)) => Err(problem::from_database(&error)),
        Err(other) => {
            tracing::error!(error = %other, "API: the audit trail refused a time zone change");
            Err(problem::internal())
        }
    }
}
