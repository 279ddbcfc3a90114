//! The API's routes (see [`super`] for the table). [`ROUTES`] lists them; the router is built
//! from the same list, and a test checks the OpenAPI document against it.

use super::{problem, ApiError, Caller};
use crate::accounts::Principal;
use crate::compliance::consent;
use crate::compliance::outbound::{self, GateError, OverrideError, Refusal};
use crate::escalation::links::{self, LinkError};
use crate::inbox::{self, Filter};
use crate::store::tokens::Role;
use crate::web::AppState;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Deserializer};
use sqlx::Row;

/// Declares the routes once: [`ROUTES`] (for the OpenAPI test and the authorization matrix) and
/// the registration of each handler.
macro_rules! api_routes {
    ($($method:ident $path:literal => $handler:path),* $(,)?) => {
        /// Every route under `/api/v1`, as (lower-case method, full path with `{id}` parameters).
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), concat!("/api/v1", $path))),*];

        fn register(scope: actix_web::Scope) -> actix_web::Scope {
            scope$(.route($path, web::$method().to($handler)))*
        }
    };
}

api_routes! {
    get "/openapi.json" => super::openapi::document,
    get "/conversations" => list_conversations,
    get "/conversations/{id}/messages" => list_messages,
    post "/conversations/{id}/messages" => send_message,
    post "/conversations/{id}/secure-link" => send_secure_link,
    delete "/conversations/{id}/secure-link" => revoke_secure_link,
    post "/conversations/{id}/secure-messages" => send_secure_message,
    post "/conversations/{id}/assign" => assign,
    post "/conversations/{id}/close" => close,
    post "/conversations/{id}/reopen" => reopen,
    post "/conversations/{id}/consent" => change_consent,
    get "/contacts/{id}/consent" => contact_consent,
    put "/contacts/{id}/time-zone" => set_time_zone,
    post "/messages/{id}/reveal" => reveal,
    post "/messages/{id}/override-quiet-hours" => override_quiet_hours,
    get "/rules" => super::rules::overview,
    get "/rules/versions" => super::rules::list_versions,
    get "/rules/versions/{version}" => super::rules::get_version,
    post "/rules/versions/{version}/rollback" => super::rules::rollback,
    post "/rules/test" => super::rules::test_in_force,
    post "/rules/drafts" => super::rules::create_draft,
    get "/rules/drafts/{id}" => super::rules::get_draft,
    put "/rules/drafts/{id}/rules/{rule}" => super::rules::save_rule,
    delete "/rules/drafts/{id}/rules/{rule}" => super::rules::delete_rule,
    post "/rules/drafts/{id}/test" => super::rules::test_draft,
    post "/rules/drafts/{id}/dry-run" => super::rules::dry_run_draft,
    post "/rules/drafts/{id}/approve" => super::rules::approve,
    post "/rules/drafts/{id}/publish" => super::rules::publish,
    post "/rules/drafts/{id}/discard" => super::rules::discard,
    get "/audit/events" => super::compliance::audit_events,
    get "/audit/verify" => super::compliance::audit_verify,
    get "/audit/anchor" => super::compliance::audit_anchor,
    get "/reports/{id}" => super::compliance::report,
    get "/legal-holds" => list_holds,
    post "/legal-holds" => place_hold,
    post "/legal-holds/{id}/release" => release_hold,
}

/// Registers [`ROUTES`] under `/api/v1`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(register(
        web::scope("/api/v1")
            // Only the rule editor's dry run reads a raw body: a corpus of up to 4 MiB.
            .app_data(web::PayloadConfig::default().limit(super::rules::DRY_RUN_LIMIT))
            .app_data(
                web::JsonConfig::default()
                    .limit(16 * 1024)
                    .error_handler(|e, _| json_problem(&e).into()),
            )
            .app_data(web::QueryConfig::default().error_handler(|_, _| {
                ApiError::bad_request(
                    "unknown or repeated query parameter (see the OpenAPI document at /api/v1/openapi.json)",
                )
                .into()
            })),
    ));
}

/// Roles that read conversations (admins never do): 403 for the others.
fn require_reader(principal: &Principal, what: &str) -> Result<(), ApiError> {
    if inbox::access(principal, None).is_some() {
        Ok(())
    } else {
        Err(problem::forbidden(what))
    }
}

/// Refuses unless the principal has one of `roles`.
fn require(principal: &Principal, roles: &[Role], what: &str) -> Result<(), ApiError> {
    if roles.contains(&principal.role) {
        Ok(())
    } else {
        Err(problem::forbidden(what))
    }
}

/// A JSON response that no cache keeps (it carries message content).
fn private_json(status: StatusCode, value: &serde_json::Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(value)
}

/// Conversations per page unless `per_page` says otherwise.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// The most conversations a page holds.
pub const MAX_PAGE_SIZE: u32 = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    assigned: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
}

impl ListQuery {
    /// The inbox filter, first page (0-based) and page size the query asks for.
    fn parse(&self) -> Result<(Filter, u32, u32), ApiError> {
        let status = match self.status.as_deref() {
            None | Some("open") => Filter::Open,
            Some("escalated") => Filter::Escalated,
            Some("closed") => Filter::Closed,
            Some(_) => {
                return Err(ApiError::bad_request(
                    "`status` is `open`, `escalated` or `closed`",
                ))
            }
        };
        let filter = match self.assigned.as_deref() {
            None => status,
            Some(assigned) => {
                if status != Filter::Open {
                    return Err(ApiError::bad_request(
                        "`assigned` filters open conversations only: leave out `status` or use `status=open`",
                    ));
                }
                match assigned {
                    "me" => Filter::Mine,
                    "none" => Filter::Unassigned,
                    _ => return Err(ApiError::bad_request("`assigned` is `me` or `none`")),
                }
            }
        };
        let page = match self.page.as_deref() {
            None => 1,
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|p| *p >= 1)
                .ok_or_else(|| ApiError::bad_request("`page` is a whole number from 1"))?,
        };
        let per_page = match self.per_page.as_deref() {
            None => DEFAULT_PAGE_SIZE,
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|p| (1..=MAX_PAGE_SIZE).contains(p))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "`per_page` is a whole number from 1 to {MAX_PAGE_SIZE}"
                    ))
                })?,
        };
        Ok((filter, page - 1, per_page))
    }
}

/// `GET /api/v1/conversations`: the conversations the caller may see, newest activity first.
async fn list_conversations(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let (filter, page, per_page) = query.parse()?;
    let found = inbox::list(&state, caller.principal(), filter, page, per_page)
        .await
        .map_err(problem::from_inbox)?;
    let conversations: Vec<serde_json::Value> = found
        .conversations
        .into_iter()
        .map(|c| {
            serde_json::json!({
                "id": c.id,
                "contact_id": c.contact_id,
                "status": c.status,
                "channel": c.channel,
                "business_number": c.business_number,
                "last_activity": c.last_activity,
                "assigned_user_id": c.assigned_user_id,
                "escalated": c.escalated,
                "opted_out": c.opted_out,
                "unread": c.unread,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "conversations": conversations,
        "next_page": found.has_more.then_some(page + 2),
    })))
}

/// `GET /api/v1/conversations/{id}/messages`: the thread as the caller may see it (bodies as
/// stored, redacted; secure-channel bodies, and every body for compliance, withheld). Audited
/// as `conversation.view`.
async fn list_messages(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_reader(caller.principal(), "read conversations")?;
    let thread = inbox::thread(&state, caller.principal(), &path)
        .await
        .map_err(problem::from_inbox)?;
    let messages: Vec<serde_json::Value> = thread
        .messages
        .into_iter()
        .map(|m| {
            serde_json::json!({
                "id": m.id,
                "direction": m.direction,
                "channel": m.channel,
                "body": m.body,
                "withheld": m.withheld,
                "findings": m.findings,
                "status": m.status,
                "status_error_code": m.status_error_code,
                "held_until": m.held_until,
                "media_count": m.media_count,
                "created_at": m.created_at,
            })
        })
        .collect();
    Ok(private_json(
        StatusCode::OK,
        &serde_json::json!({
            "conversation_id": thread.conversation.id,
            "messages": messages,
        }),
    ))
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

/// `POST /api/v1/conversations/{id}/messages`: a reply, after the authorization check and the
/// outbound gate (consent, quiet hours, DLP).
async fn send_message(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<NewMessage>,
) -> Result<HttpResponse, ApiError> {
    if !inbox::acts_on_conversations(caller.principal()) {
        return Err(problem::forbidden("send messages"));
    }
    if body.body.chars().count() > 1600 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_long",
            "a message holds at most 1,600 characters",
        ));
    }
    match inbox::reply(&state, caller.principal(), &path, &body.body)
        .await
        .map_err(problem::from_inbox)?
    {
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

/// `POST /api/v1/conversations/{id}/secure-link`: mints a secure link and sends it to the
/// customer through the outbound gate. 409 `secure_link_active` while one still works.
async fn send_secure_link(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    match links::send(&state, caller.principal(), &path).await {
        Ok(issued) => {
            tracing::info!(secure_link_id = %issued.link_id, message_id = %issued.message_id, "API secure link queued");
            Ok(HttpResponse::Created().json(serde_json::json!({
                "id": issued.link_id,
                "message_id": issued.message_id,
                "expires_at": issued.expires_at,
                "status": if issued.held_until.is_some() { "held" } else { "queued" },
                "held_until": issued.held_until,
            })))
        }
        Err(error) => Err(link_problem(error)),
    }
}

fn link_problem(error: LinkError) -> ApiError {
    match error {
        LinkError::Inbox(error) => problem::from_inbox(error),
        LinkError::Gate(error) => gate_problem(error),
        LinkError::Active { expires_at } => ApiError::new(
            StatusCode::CONFLICT,
            "secure_link_active",
            format!(
                "the conversation has a working secure link until {expires_at}; nothing was sent"
            ),
        ),
        LinkError::NoneActive => no_secure_link(),
    }
}

fn no_secure_link() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "no_secure_link",
        "the conversation has no active secure link",
    )
}

/// `DELETE /api/v1/conversations/{id}/secure-link`: revokes the active link; its URL shows the
/// neutral page from now on and the customer's session ends. 409 `no_secure_link` when none is
/// active. Audited.
async fn revoke_secure_link(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let link_id = links::revoke(&state, caller.principal(), &path)
        .await
        .map_err(link_problem)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "id": link_id, "status": "revoked" })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecureBody {
    body: String,
}

/// `POST /api/v1/conversations/{id}/secure-messages` with `{"body"}`: writes to the customer in
/// the secure channel (sealed; not sent by text). 201 `{"id", "notified"}`; `notified` says
/// whether the customer was texted that a message waits. 409 `no_secure_link`.
async fn send_secure_message(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<SecureBody>,
) -> Result<HttpResponse, ApiError> {
    use crate::escalation::chat::{self, ChatError};
    match chat::agent_post(&state, caller.principal(), &path, &body.body).await {
        Ok(replied) => Ok(HttpResponse::Created().json(serde_json::json!({
            "id": replied.id,
            "notified": replied.notified,
        }))),
        Err(ChatError::Inbox(error)) => Err(problem::from_inbox(error)),
        Err(ChatError::NoLink) => Err(no_secure_link()),
        Err(ChatError::Length) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!("`body` has 1 to {} characters", chat::MAX_CHARS),
        )),
        Err(ChatError::Gate(GateError::Database(e))) => Err(problem::from_database(&e)),
        Err(ChatError::Gate(error)) => {
            tracing::error!(%error, "secure message: the notification could not be queued");
            Err(problem::internal())
        }
    }
}

/// `user_id` as sent: absent (`None`), `null` (`Some(None)`) or an id.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Assignment {
    #[serde(default, deserialize_with = "present")]
    user_id: Option<Option<String>>,
}

/// `POST /api/v1/conversations/{id}/assign`: `{"user_id": "…"}` assigns the conversation to an
/// enabled agent or supervisor, `{"user_id": null}` releases it. Audited.
async fn assign(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<Assignment>,
) -> Result<HttpResponse, ApiError> {
    let Some(assignee) = body.into_inner().user_id else {
        return Err(ApiError::bad_request(
            "`user_id` is required: a user's id, or null to release the conversation",
        ));
    };
    inbox::assign(&state, caller.principal(), &path, assignee.as_deref())
        .await
        .map_err(problem::from_inbox)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "id": path.into_inner(),
        "assigned_user_id": assignee,
    })))
}

/// `POST /api/v1/conversations/{id}/close`. Audited.
async fn close(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_open(&caller, &state, path.into_inner(), false).await
}

/// `POST /api/v1/conversations/{id}/reopen`. Audited; 409 `conversation_open` when the contact
/// has a newer open conversation with the number.
async fn reopen(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_open(&caller, &state, path.into_inner(), true).await
}

async fn set_open(
    caller: &Caller,
    state: &AppState,
    id: String,
    open: bool,
) -> Result<HttpResponse, ApiError> {
    inbox::set_open(state, caller.principal(), &id, open)
        .await
        .map_err(problem::from_inbox)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "id": id,
        "status": if open { "open" } else { "closed" },
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reveal {
    /// Why the caller needs the full body; kept in the audit trail.
    #[serde(default)]
    reason: String,
}

/// `POST /api/v1/messages/{id}/reveal`: one message's full body, for a reason that is audited.
async fn reveal(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<Reveal>,
) -> Result<HttpResponse, ApiError> {
    let revealed = inbox::reveal(&state, caller.principal(), &path, &body.reason)
        .await
        .map_err(problem::from_inbox)?;
    Ok(private_json(
        StatusCode::OK,
        &serde_json::json!({ "id": path.into_inner(), "body": revealed }),
    ))
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
/// own START). The caller must be able to see the conversation. See [`outbound::staff_consent`]
/// for the confirmation rule.
async fn change_consent(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<ConsentChange>,
) -> Result<HttpResponse, ApiError> {
    let principal = caller.principal();
    let kind = match body.kind.as_str() {
        "opt_out" => {
            require(
                principal,
                &[Role::Agent, Role::Supervisor, Role::Compliance],
                "record opt-outs",
            )?;
            consent::Kind::OptOut
        }
        "opt_in" => {
            require(principal, &[Role::Compliance], "record opt-ins")?;
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
    inbox::contact_of(&state, principal, &path)
        .await
        .map_err(problem::from_inbox)?;
    let done = outbound::staff_consent(
        &state,
        &path,
        kind,
        consent::Source::Api,
        &principal.actor_string(),
    )
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
/// contact has a conversation with, the history, the quiet-hours status and the flood flag. A
/// contact none of whose conversations the caller may see is not found.
async fn contact_consent(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_reader(caller.principal(), "read consent")?;
    let contact_id = path.into_inner();
    if !inbox::may_see_contact(&state, caller.principal(), &contact_id)
        .await
        .map_err(problem::from_inbox)?
    {
        return Err(problem::not_found("contact"));
    }
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
        let status = outbound::quiet_status(settings, &r, now);
        serde_json::json!({
            "window": settings.quiet_window.to_string(),
            "time_zones": status.time_zones,
            "time_zone_source": status.time_zone_source,
            "allowed_now": status.next_allowed.is_none(),
            "reply_window_open": status.reply_window_open,
            "next_allowed": status.next_allowed.map(crate::store::timestamp),
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
    require(
        caller.principal(),
        &[Role::Supervisor],
        "override quiet hours",
    )?;
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
        &caller.principal().actor_string(),
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
    require(
        caller.principal(),
        &[Role::Agent, Role::Supervisor],
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
    if !inbox::may_see_contact(&state, caller.principal(), &contact_id)
        .await
        .map_err(problem::from_inbox)?
    {
        return Err(problem::not_found("contact"));
    }
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
        let event = crate::audit::Event::new(caller.principal().actor(), "contact.time_zone")
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

/// A legal hold as the API shows it (the note opened: compliance placed it).
fn hold_json(hold: &crate::retention::Hold) -> serde_json::Value {
    serde_json::json!({
        "id": hold.id,
        "contact_id": hold.contact_id,
        "conversation_id": hold.conversation_id,
        "reason": hold.reason,
        "note": hold.note,
        "placed_by": hold.placed_by,
        "placed_at": hold.placed_at,
        "released_by": hold.released_by,
        "released_at": hold.released_at,
    })
}

/// A hold error in the API's words. Never names the number or the note.
fn hold_problem(error: crate::retention::HoldError) -> ApiError {
    use crate::retention::HoldError as E;
    match error {
        E::NoSuchContact => ApiError::not_found("no contact has that number"),
        E::NoSuchConversation => problem::not_found("conversation"),
        E::NotFound => problem::not_found("legal hold"),
        E::AlreadyReleased => ApiError::new(
            StatusCode::CONFLICT,
            "already_released",
            "the legal hold is already released",
        ),
        E::BadReason | E::NoteTooLong => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_hold",
            error.to_string(),
        ),
        E::Database(e) => problem::from_database(&e),
        E::Vault | E::Audit(_) => {
            tracing::error!(error = %error, "legal hold failed");
            problem::internal()
        }
    }
}

const COMPLIANCE: &[Role] = &[Role::Compliance];

/// `GET /api/v1/legal-holds`: the active holds, newest first. Compliance only.
async fn list_holds(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    require(caller.principal(), COMPLIANCE, "read legal holds")?;
    let mut conn = state
        .db
        .pool()
        .acquire()
        .await
        .map_err(|e| problem::from_database(&e))?;
    let holds = crate::retention::active(&mut conn, &state.vault, None)
        .await
        .map_err(hold_problem)?;
    Ok(private_json(
        StatusCode::OK,
        &serde_json::json!({ "legal_holds": holds.iter().map(hold_json).collect::<Vec<_>>() }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewHold {
    phone: Option<String>,
    conversation_id: Option<String>,
    reason: String,
    note: Option<String>,
}

/// `POST /api/v1/legal-holds`: `{"phone"}` (the contact, found by blind index) or
/// `{"conversation_id"}`, with `reason` and an optional `note` (sealed). 201 with the hold.
/// Compliance only; audited.
async fn place_hold(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<NewHold>,
) -> Result<HttpResponse, ApiError> {
    require(caller.principal(), COMPLIANCE, "place legal holds")?;
    let body = body.into_inner();
    let phone;
    let target = match (body.phone.as_deref(), body.conversation_id.as_deref()) {
        (Some(text), None) => {
            phone = crate::phone::E164::parse(text.trim()).map_err(|_| {
                ApiError::bad_request("`phone` is an E.164 number such as +14155550123")
            })?;
            crate::retention::HoldTarget::Phone(&phone)
        }
        (None, Some(id)) => crate::retention::HoldTarget::Conversation(id),
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of `phone` and `conversation_id`",
            ))
        }
    };
    let hold = crate::retention::place(
        &state.db,
        &state.vault,
        caller.principal().actor(),
        target,
        &body.reason,
        body.note.as_deref(),
        &state.clock.timestamp(),
    )
    .await
    .map_err(hold_problem)?;
    Ok(private_json(StatusCode::CREATED, &hold_json(&hold)))
}

/// `POST /api/v1/legal-holds/{id}/release`: releases an active hold. Compliance only; audited;
/// 409 `already_released`.
async fn release_hold(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require(caller.principal(), COMPLIANCE, "release legal holds")?;
    let hold = crate::retention::release(
        &state.db,
        &state.vault,
        caller.principal().actor(),
        &path,
        &state.clock.timestamp(),
    )
    .await
    .map_err(hold_problem)?;
    Ok(private_json(StatusCode::OK, &hold_json(&hold)))
}
