//! The console's inbox and conversation pages: `/console` (the list, by filter and page), a
//! conversation (messages, consent and quiet-hours status, assignment, closing, notes, canned
//! replies, the reply box, the secure link), the audited reveal, the message fragment the live
//! updates fetch, the reply box's DLP pre-check, and the supervisors' canned-reply pages.
//!
//! Every route takes the [`Staff`] extractor; every operation goes through [`crate::inbox`], which
//! checks the principal itself, so the forms shown here for a role are a convenience, not the
//! control. Every POST checks the CSRF token first and answers with a 303 back to the page
//! (Post/Redirect/Get), carrying a notice as a fixed code in the query string (never user text);
//! refusals are rendered as the page with the refusal's status.

use super::{csrf_field, html_response, page, see_other, ConsoleError, Staff};
use crate::compliance::outbound::{self, GateError, Refusal};
use crate::compliance::{consent, dlp};
use crate::escalation::links::{self, LinkError};
use crate::inbox::{self, canned, Access, Filter, Summary, Thread, ThreadMessage};
use crate::store::tokens::Role;
use crate::store::users;
use crate::web::AppState;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;
use std::collections::HashMap;

/// Longest reply, in characters (as the API).
const MAX_REPLY_CHARS: usize = 1600;
/// Largest body `/console/dlp-check` reads.
const MAX_CHECK_BYTES: usize = 16 * 1024;

/// Registers the inbox, conversation and canned-reply routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/console", web::get().to(index))
        .route("/console/dlp-check", web::post().to(dlp_check))
        .route("/console/canned", web::get().to(canned_page))
        .route("/console/canned", web::post().to(canned_create))
        .route("/console/canned/{id}", web::post().to(canned_update))
        .route("/console/canned/{id}/delete", web::post().to(canned_delete))
        .route("/console/messages/{id}/reveal", web::post().to(reveal))
        .route("/console/conversations/{id}", web::get().to(conversation))
        .route(
            "/console/conversations/{id}/messages/{message_id}",
            web::get().to(message_fragment),
        )
        .route("/console/conversations/{id}/assign", web::post().to(assign))
        .route("/console/conversations/{id}/close", web::post().to(close))
        .route("/console/conversations/{id}/reopen", web::post().to(reopen))
        .route(
            "/console/conversations/{id}/notes",
            web::post().to(add_note),
        )
        .route("/console/conversations/{id}/reply", web::post().to(reply))
        .route(
            "/console/conversations/{id}/secure-link",
            web::post().to(secure_link),
        )
        .route(
            "/console/conversations/{id}/secure-link/revoke",
            web::post().to(revoke_secure_link),
        )
        .route(
            "/console/conversations/{id}/secure-messages",
            web::post().to(secure_message),
        );
}

/// An HTML page with `status`, never cached.
fn respond(status: StatusCode, markup: &Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(markup.clone().into_string())
}

/// A stored timestamp as people read it (`2026-11-28 14:03 UTC`); unparseable text as is.
fn when(stored: &str) -> String {
    crate::store::parse_timestamp(stored).map_or_else(
        || stored.to_owned(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

fn time(stored: &str) -> Markup {
    html! { time datetime=(stored) { (when(stored)) } }
}

fn channel_label(channel: &str) -> &'static str {
    match channel {
        "mms" => "MMS",
        "rcs" => "RCS",
        "secure" => "Secure",
        _ => "SMS",
    }
}

/// "card number removed", "SSN removed" …: a finding type as a badge.
fn finding_label(kind: &str) -> String {
    let what = match kind {
        "CARD_NUMBER" => "card number".to_owned(),
        "CARD_CVV" => "card security code".to_owned(),
        "US_SSN" => "SSN".to_owned(),
        "US_ITIN" => "ITIN".to_owned(),
        "IBAN" => "IBAN".to_owned(),
        "EMAIL" => "e-mail address".to_owned(),
        "PHONE" => "phone number".to_owned(),
        other => other.to_lowercase().replace('_', " "),
    };
    format!("{what} removed")
}

/// The badges for a message's findings (`{"CARD_NUMBER": 1}`), in name order.
fn findings(value: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = match value {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(kind, count)| {
                let label = finding_label(kind);
                match count.as_u64() {
                    Some(n) if n > 1 => format!("{label} ×{n}"),
                    _ => label,
                }
            })
            .collect(),
        serde_json::Value::Array(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(finding_label))
            .collect(),
        _ => Vec::new(),
    };
    out.sort();
    out
}

/// Who is who: user ids to e-mail addresses, for assignees and note authors.
async fn names(state: &AppState) -> Result<HashMap<String, String>, ConsoleError> {
    let mut conn = state.db.pool().acquire().await?;
    Ok(users::list(&mut conn, &state.vault)
        .await?
        .into_iter()
        .map(|u| (u.id, u.email))
        .collect())
}

fn person(staff: &Staff, names: &HashMap<String, String>, id: Option<&str>) -> String {
    match id {
        None => "Unassigned".to_owned(),
        Some(id) if id == staff.user.id => "You".to_owned(),
        Some(id) => names
            .get(id)
            .cloned()
            .unwrap_or_else(|| "a former user".to_owned()),
    }
}

// ---------------------------------------------------------------------------------------------
// The inbox
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct InboxQuery {
    filter: Option<String>,
    page: Option<String>,
}

fn filter_label(filter: Filter) -> &'static str {
    match filter {
        Filter::Open => "Open",
        Filter::Escalated => "Escalated",
        Filter::Mine => "Mine",
        Filter::Unassigned => "Unassigned",
        Filter::Closed => "Closed",
    }
}

fn inbox_href(filter: Filter, page: u32) -> String {
    if page <= 1 {
        format!("/console?filter={}", filter.as_str())
    } else {
        format!("/console?filter={}&page={page}", filter.as_str())
    }
}

fn summary_item(staff: &Staff, names: &HashMap<String, String>, s: &Summary) -> Markup {
    html! {
        li.conversation data-id=(s.id) {
            div.line {
                a.open-conversation href={ "/console/conversations/" (s.id) } {
                    span.contact { (s.contact_masked) }
                }
                @if s.unread > 0 {
                    span.unread title="Unread messages" { (s.unread) span.visually-hidden { " unread" } }
                }
            }
            div.badges {
                span class={ "badge channel channel-" (s.channel) } { (channel_label(&s.channel)) }
                @if s.opted_out { span.badge.opted-out { "Opted out" } }
                @if s.escalated { span.badge.escalated { "Escalated" } }
                @if s.status == "closed" { span.badge.closed { "Closed" } }
            }
            div.meta {
                span.activity { "Last activity " (time(&s.last_activity)) }
                span.assignee { "Assigned: " (person(staff, names, s.assigned_user_id.as_deref())) }
            }
        }
    }
}

/// `GET /console`: the inbox.
async fn index(
    staff: Staff,
    state: web::Data<AppState>,
    query: web::Query<InboxQuery>,
) -> Result<HttpResponse, ConsoleError> {
    if staff.user.role == Role::Admin {
        return Ok(see_other("/console/admin/users"));
    }
    let filter = query
        .filter
        .as_deref()
        .and_then(Filter::parse)
        .unwrap_or_default();
    let page_number = query
        .page
        .as_deref()
        .and_then(|p| p.parse::<u32>().ok())
        .unwrap_or(1)
        .clamp(1, 100_000);
    let principal = staff.principal();
    let listed = inbox::list(
        &state,
        &principal,
        filter,
        page_number - 1,
        state.console.page_size,
    )
    .await?;
    let names = names(&state).await?;
    let body = html! {
        h1 { "Inbox" }
        nav.tabs aria-label="Filter conversations" {
            ul {
                @for f in Filter::ALL {
                    li {
                        a href=(inbox_href(f, 1)) aria-current=[(f == filter).then_some("page")] { (filter_label(f)) }
                    }
                }
            }
        }
        ul #conversations data-filter=(filter.as_str()) data-page=(page_number) {
            @for s in &listed.conversations { (summary_item(&staff, &names, s)) }
            @if listed.conversations.is_empty() {
                li.empty { "No conversations here." }
            }
        }
        @if page_number > 1 || listed.has_more {
            nav.pager aria-label="Pages" {
                @if page_number > 1 {
                    a rel="prev" href=(inbox_href(filter, page_number - 1)) { "← Newer" }
                }
                span.page-number { "Page " (page_number) }
                @if listed.has_more {
                    a rel="next" href=(inbox_href(filter, page_number + 1)) { "Older →" }
                }
            }
        }
    };
    Ok(html_response(&page(&staff, "Inbox", &body)))
}

// ---------------------------------------------------------------------------------------------
// A conversation
// ---------------------------------------------------------------------------------------------

/// What a page shows above the conversation: a notice, an error, and a draft for the reply box.
#[derive(Debug, Default)]
struct Flash {
    notice: Option<String>,
    error: Option<String>,
    draft: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ConversationQuery {
    notice: Option<String>,
    until: Option<String>,
    canned: Option<String>,
}

/// The notice for a code a POST redirected with (fixed texts; `until` is only shown as a time).
fn notice_text(code: &str, until: Option<&str>) -> Option<String> {
    let until = until
        .and_then(crate::store::parse_timestamp)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string());
    let text = match (code, until) {
        ("queued", _) => "Reply queued.".to_owned(),
        ("held", Some(t)) => format!("Reply queued, held by quiet hours until {t}."),
        ("held", None) => "Reply queued, held by quiet hours.".to_owned(),
        ("assigned", _) => "Assignment saved.".to_owned(),
        ("closed", _) => "Conversation closed.".to_owned(),
        ("reopened", _) => "Conversation reopened.".to_owned(),
        ("note", _) => "Note added.".to_owned(),
        ("link", Some(t)) => format!("Secure link sent; it works until {t}."),
        ("link", None) => "Secure link sent.".to_owned(),
        ("link_held", Some(t)) => {
            format!("Secure link queued, held by quiet hours until {t}.")
        }
        ("link_held", None) => "Secure link queued, held by quiet hours.".to_owned(),
        ("link_revoked", _) => {
            "Secure link revoked; it no longer opens and the customer's session ended.".to_owned()
        }
        ("secure_sent", _) => "Secure message sent.".to_owned(),
        ("secure_notified", _) => {
            "Secure message sent; the customer was texted that a message waits.".to_owned()
        }
        ("saved", _) => "Canned reply saved.".to_owned(),
        ("deleted", _) => "Canned reply deleted.".to_owned(),
        _ => return None,
    };
    Some(text)
}

/// The quiet-hours status of a conversation's contact ([`outbound::quiet_status`]).
async fn quiet_status(
    state: &AppState,
    conversation_id: &str,
) -> Result<Option<outbound::QuietStatus>, ConsoleError> {
    let mut conn = state.db.pool().acquire().await?;
    let recipient = match outbound::recipient(&mut conn, &state.vault, conversation_id).await {
        Ok(r) => r,
        Err(GateError::Database(e)) => return Err(ConsoleError::database(&e)),
        Err(_) => {
            tracing::error!("console: a contact's sealed number did not open");
            return Err(ConsoleError::Internal);
        }
    };
    drop(conn);
    let now = state.clock.now();
    Ok(recipient.map(|r| outbound::quiet_status(&state.compliance, &r, now)))
}

/// One message as a list item (the page's and the live fragment's).
fn message_item(staff: &Staff, conversation_id: &str, m: &ThreadMessage) -> Markup {
    let who = if m.direction == "inbound" {
        "Customer"
    } else {
        "Business"
    };
    let badges = findings(&m.findings);
    html! {
        li class={ "message " (m.direction) } data-id=(m.id) data-status=(m.status) {
            div.meta {
                span.who { (who) }
                span class={ "badge channel channel-" (m.channel) } { (channel_label(&m.channel)) }
                (time(&m.created_at))
            }
            @if m.withheld {
                div.withheld {
                    p.hidden-body {
                        @if m.channel == "secure" { "Secure message — hidden" }
                        @else { "Message content hidden" }
                    }
                    form.reveal method="post" action={ "/console/messages/" (m.id) "/reveal" } {
                        (csrf_field(&staff.csrf))
                        input type="hidden" name="conversation_id" value=(conversation_id);
                        div.field {
                            label for={ "reason-" (m.id) } { "Reason for viewing" }
                            input id={ "reason-" (m.id) } type="text" name="reason" required minlength="3" maxlength="200" autocomplete="off";
                        }
                        button type="submit" { "Reveal" }
                    }
                }
            } @else if let Some(body) = &m.body {
                p.body { (body) }
            }
            @if m.media_count > 0 {
                p.media { (m.media_count) " attachment(s)" }
            }
            @if !badges.is_empty() {
                p.findings {
                    @for b in &badges { span.badge.finding { (b) } " " }
                }
            }
            p.delivery {
                span.status data-status=(m.status) {
                    @if let Some(until) = &m.held_until { "held until " (when(until)) }
                    @else { (m.status) }
                }
                @if let Some(code) = &m.status_error_code {
                    " " span.error-code { "(error " (code) ")" }
                }
            }
        }
    }
}

fn consent_text(current: &consent::Current) -> Markup {
    html! {
        @match current.state {
            consent::State::OptedOut => {
                span.badge.opted-out { "Opted out" }
                @if let Some(since) = &current.since { " since " (time(since)) }
                @if let Some(source) = &current.source { " (" (source) ")" }
            }
            consent::State::OptedIn => {
                "Opted in"
                @if let Some(since) = &current.since { " since " (time(since)) }
            }
        }
    }
}

async fn render_conversation(
    state: &AppState,
    staff: &Staff,
    conversation_id: &str,
    flash: Flash,
) -> Result<Markup, ConsoleError> {
    let principal = staff.principal();
    let thread: Thread = inbox::thread(state, &principal, conversation_id).await?;
    let quiet = quiet_status(state, conversation_id).await?;
    let names = names(state).await?;
    let acts = inbox::acts_on_conversations(&principal) && thread.access == Access::Full;
    let (canned_replies, assignable) = if acts {
        let canned_replies = canned::list(state, &principal).await?;
        let assignable = if staff.user.role == Role::Supervisor {
            let mut conn = state.db.pool().acquire().await?;
            users::assignable(&mut conn, &state.vault).await?
        } else {
            Vec::new()
        };
        (canned_replies, assignable)
    } else {
        (Vec::new(), Vec::new())
    };
    let link = {
        let mut conn = state.db.pool().acquire().await?;
        links::active(&mut conn, conversation_id, &state.clock.timestamp()).await?
    };
    let c = &thread.conversation;
    let id = c.id.as_str();
    let open = c.status == "open";
    let assigned = c.assigned_user_id.as_deref();
    let base = format!("/console/conversations/{id}");
    let body = html! {
        header #conversation-head .conversation-head data-status=(c.status) data-assigned=(assigned.unwrap_or("")) {
            p { a href="/console" { "← Inbox" } }
            h1 { "Conversation with " span.contact { (thread.contact_masked) } }
            p.badges {
                span class={ "badge status-" (c.status) } { @if open { "Open" } @else { "Closed" } }
                @if c.escalated_at.is_some() { " " span.badge.escalated { "Escalated" } }
                @if thread.consent.state == consent::State::OptedOut { " " span.badge.opted-out { "Opted out" } }
            }
            dl.facts {
                dt { "Status" } dd #conversation-status { @if open { "Open" } @else { "Closed" } }
                dt { "Assigned to" } dd #conversation-assignee { (person(staff, &names, assigned)) }
                dt { "Consent" } dd #consent { (consent_text(&thread.consent)) }
                dt { "Quiet hours" }
                dd #quiet-hours {
                    @match &quiet {
                        None => { "Unknown" }
                        Some(q) if q.reply_window_open => { "Replies go now: the customer wrote within the reply window." }
                        Some(q) => {
                            @if let Some(next) = &q.next_allowed {
                                "Quiet hours now: messages are held until " (time(&crate::store::timestamp(*next))) "."
                            } @else {
                                "Outside quiet hours: messages go now."
                            }
                            @if !q.time_zones.is_empty() { " (" (q.time_zones.join(", ")) ")" }
                        }
                    }
                }
            }
        }
        @if let Some(error) = &flash.error {
            div.error role="alert" { p { (error) } }
        }
        @if let Some(notice) = &flash.notice {
            div.notice role="status" { p { (notice) } }
        }
        section aria-labelledby="messages-heading" {
            h2 #messages-heading { "Messages" }
            @if thread.access == Access::Metadata {
                p.hint { "Message content is hidden from your role. Reveal a message with a reason; every reveal is recorded." }
            }
            ol #messages aria-live="polite" data-conversation=(id) {
                @for m in &thread.messages { (message_item(staff, id, m)) }
            }
            @if thread.messages.is_empty() { p.empty { "No messages yet." } }
        }
        @if acts {
            section #reply aria-labelledby="reply-heading" {
                h2 #reply-heading { "Reply" }
                @if !canned_replies.is_empty() {
                    form.canned method="get" action=(base) {
                        div.field {
                            label for="canned-select" { "Canned reply" }
                            select #canned-select name="canned" {
                                option value="" { "Choose…" }
                                @for r in &canned_replies {
                                    option value=(r.id) data-body=(r.body) { (r.title) }
                                }
                            }
                        }
                        button type="submit" #use-canned { "Use" }
                    }
                }
                form #reply-form method="post" action={ (base) "/reply" } {
                    (csrf_field(&staff.csrf))
                    div.field {
                        label for="reply-body" { "Reply" }
                        textarea #reply-body name="body" rows="4" maxlength="1600" required aria-describedby="dlp-warning" {
                            (flash.draft.as_deref().unwrap_or(""))
                        }
                    }
                    div #dlp-warning .error role="alert" hidden {}
                    button #send-reply type="submit" { "Send" }
                }
            }
            section #actions aria-labelledby="actions-heading" {
                h2 #actions-heading { "Actions" }
                div.actions {
                    @if staff.user.role == Role::Supervisor {
                        form.assign method="post" action={ (base) "/assign" } {
                            (csrf_field(&staff.csrf))
                            div.field {
                                label for="assignee" { "Assign to" }
                                select #assignee name="user_id" {
                                    option value="" selected[assigned.is_none()] { "Nobody" }
                                    @for u in &assignable {
                                        option value=(u.id) selected[assigned == Some(u.id.as_str())] {
                                            (u.email) " (" (u.role.as_str()) ")"
                                        }
                                    }
                                }
                            }
                            button type="submit" { "Assign" }
                        }
                    } @else if assigned.is_none() {
                        form.assign method="post" action={ (base) "/assign" } {
                            (csrf_field(&staff.csrf))
                            input type="hidden" name="user_id" value=(staff.user.id);
                            button type="submit" #take { "Take" }
                        }
                    } @else if assigned == Some(staff.user.id.as_str()) {
                        form.assign method="post" action={ (base) "/assign" } {
                            (csrf_field(&staff.csrf))
                            input type="hidden" name="user_id" value="";
                            button type="submit" #release { "Release" }
                        }
                    }
                    @if open {
                        form method="post" action={ (base) "/close" } {
                            (csrf_field(&staff.csrf))
                            button type="submit" #close { "Close conversation" }
                        }
                    } @else {
                        form method="post" action={ (base) "/reopen" } {
                            (csrf_field(&staff.csrf))
                            button type="submit" #reopen { "Reopen conversation" }
                        }
                    }
                    @if link.is_some() {
                        form method="post" action={ (base) "/secure-link/revoke" } {
                            (csrf_field(&staff.csrf))
                            button type="submit" #revoke-secure-link { "Revoke secure link" }
                        }
                    } @else {
                        form method="post" action={ (base) "/secure-link" } {
                            (csrf_field(&staff.csrf))
                            button type="submit" #send-secure-link { "Send secure link" }
                        }
                    }
                }
                @if let Some(link) = &link {
                    p #secure-link-status .hint {
                        "Secure link active until " (when(&link.expires_at)) ". "
                        @if link.verified_at.is_some() { "The customer has verified." }
                        @else { "The customer has not verified yet." }
                    }
                    form #secure-form method="post" action={ (base) "/secure-messages" } {
                        (csrf_field(&staff.csrf))
                        div.field {
                            label for="secure-body" { "Secure message (not sent by text; the customer reads it on the secure page)" }
                            textarea #secure-body name="body" rows="3" maxlength="4000" required {}
                        }
                        button type="submit" { "Send in secure chat" }
                    }
                }
            }
            section #notes aria-labelledby="notes-heading" {
                h2 #notes-heading { "Internal notes" }
                @if thread.notes.is_empty() {
                    p.empty { "No notes." }
                } @else {
                    ul.notes {
                        @for n in &thread.notes {
                            li.note data-id=(n.id) {
                                p.body { (n.body) }
                                p.meta { (person(staff, &names, Some(&n.author_user_id))) " · " (time(&n.created_at)) }
                            }
                        }
                    }
                }
                form #note-form method="post" action={ (base) "/notes" } {
                    (csrf_field(&staff.csrf))
                    div.field {
                        label for="note-body" { "Internal note" }
                        textarea #note-body name="body" rows="3" maxlength="4000" required {}
                    }
                    button type="submit" { "Add note" }
                }
            }
        }
    };
    Ok(page(staff, "Conversation", &body))
}

/// Renders the conversation with a refusal or notice and `status` (the refused POST's answer).
async fn conversation_with(
    state: &AppState,
    staff: &Staff,
    conversation_id: &str,
    status: StatusCode,
    flash: Flash,
) -> Result<HttpResponse, ConsoleError> {
    let markup = render_conversation(state, staff, conversation_id, flash).await?;
    Ok(respond(status, &markup))
}

/// `GET /console/conversations/{id}`.
async fn conversation(
    staff: Staff,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<ConversationQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let id = path.into_inner();
    let mut flash = Flash {
        notice: query
            .notice
            .as_deref()
            .and_then(|code| notice_text(code, query.until.as_deref())),
        ..Flash::default()
    };
    if let Some(chosen) = query.canned.as_deref().filter(|c| !c.is_empty()) {
        // "Use" without JavaScript: the chosen canned reply in the reply box.
        let replies = canned::list(&state, &staff.principal()).await?;
        flash.draft = replies.into_iter().find(|r| r.id == chosen).map(|r| r.body);
    }
    let markup = render_conversation(&state, &staff, &id, flash).await?;
    Ok(html_response(&markup))
}

/// `GET /console/conversations/{id}/messages/{message_id}`: one message as an `<li>` (no
/// layout), for the live updates.
async fn message_fragment(
    staff: Staff,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ConsoleError> {
    let (conversation_id, message_id) = path.into_inner();
    let message = inbox::message(&state, &staff.principal(), &conversation_id, &message_id).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(message_item(&staff, &conversation_id, &message).into_string()))
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf_token: String,
}

#[derive(Debug, Deserialize)]
struct BodyForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    body: String,
}

#[derive(Debug, Deserialize)]
struct AssignForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    user_id: String,
}

fn back(conversation_id: &str, notice: &str) -> HttpResponse {
    see_other(&format!(
        "/console/conversations/{conversation_id}?notice={notice}"
    ))
}

/// `POST /console/conversations/{id}/assign` (`user_id`; empty releases).
async fn assign(
    staff: Staff,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<AssignForm>,
) -> Result<HttpResponse, ConsoleError> {
    staff.check_csrf(&state, &form.csrf_token)?;
    let id = path.into_inner();
    let assignee = Some(form.user_id.trim()).filter(|u| !u.is_empty());
    inbox::assign(&state, &staff.principal(), &id, assignee).await?;
    Ok(back(&id, "assigned"))
}

/// `POST /console/conversations/{id}/close`.
async fn close(
    staff: Staff,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    staff.check_csrf(&state, &form.csrf_token)?;
    let id = path.into_inner();
    inbox::set_open(&state, &staff.principal(), &id, false).await?;
    Ok(back(&id, "closed"))
}

/// `POST /console/conversations/{id}/reopen`.
async fn reopen(
    staff: Staff,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    staff.check_csrf(&state, &form.csrf_token)?;
    let id = path.into_inner();
    match inbox::set_open(&state, &staff.principal(), &id, true).await {
        Ok(()) => Ok(back(&id, "reopened")),
        Err(inbox::InboxError::Refused {
            status, message, ..
        }) => {
            conversation_with(
                &state,
                &staff,
                &id,
                StatusCode::from_u16(status).unwrap_or(StatusCode::CONFLICT),
                Flash {
                    error: Some(message),
                    ..Flash::default()
                },
            )
            .await
        }
        Err(other) => Err(other.into()),
    }
}

/// `POST /console/conversations/{id}/notes` (`body`).
async fn add_note(
    staff: Staff,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<BodyForm>,
) -> Result<HttpResponse, ConsoleError> {
    staff.check_csrf(&state, &form.csrf_token)?;
    let id = path.into_inner();
    inbox::add_note(&state, &staff.principal(), &id, &form.body).await?;
    Ok(back(&id, "note"))
}

/// The console's words for a gate refusal: status and message (never content).
fn gate_refusal(error: GateError) -> Result<(StatusCode, String), ConsoleError> {
    match error {
        GateError::Refused(refusal) => Ok(match refusal {
            Refusal::OptedOut { since, .. } => (
                StatusCode::CONFLICT,
                format!(
                    "The contact opted out{}; nothing was sent.",
                    since
                        .map(|s| format!(" at {}", when(&s)))
                        .unwrap_or_default()
                ),
            ),
            Refusal::Sensitive(refusal) => {
                let message = refusal.message();
                let mut chars = message.chars();
                let first = chars.next().map(|c| c.to_uppercase().collect::<String>());
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "{}{}. Nothing was sent.",
                        first.unwrap_or_default(),
                        chars.as_str()
                    ),
                )
            }
            Refusal::Empty => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "The reply has no text.".to_owned(),
            ),
            Refusal::NotFound => return Err(ConsoleError::NotFound("conversation")),
            Refusal::SenderNotConfigured => (
                StatusCode::CONFLICT,
                "The conversation's business number is no longer configured; nothing was sent."
                    .to_owned(),
            ),
        }),
        GateError::Database(e) => Err(ConsoleError::database(&e)),
        GateError::Vault => {
            tracing::error!("console: a sealed value did not open");
            Err(ConsoleError::Internal)
        }
        GateError::Audit(why) => {
            tracing::error!(%why, "console: the audit trail refused an event");
            Err(ConsoleError::Internal)
        }
    }
}

/// `POST /console/conversations/{id}/reply` (`body`).
async fn reply(
    staff: Staff,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<BodyForm>,
) -> Result<HttpResponse, ConsoleError> {
    staff.check_csrf(&state, &form.csrf_token)?;
    let id = path.into_inner();
    if form.body.chars().count() > MAX_REPLY_CHARS {
        return Err(ConsoleError::Refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("A reply holds at most {MAX_REPLY_CHARS} characters."),
        ));
    }
    match inbox::reply(&state, &staff.principal(), &id, &form.body).await? {
        Ok(sent) => Ok(match sent.held_until {
            Some(until) => see_other(&format!(
                "/console/conversations/{id}?notice=held&until={}",
                url::form_urlencoded::byte_serialize(crate::store::timestamp(until).as_bytes())
                    .collect::<String>()
            )),
            None => back(&id, "queued"),
        }),
        Err(error) => {
            let (status, message) = gate_refusal(error)?;
            conversation_with(
                &state,
                &staff,
                &id,
                status,
                Flash {
                    error: Some(message),
                    ..Flash::default()
                },
            )
            .await
        }
    }
}

/// `POST /console/conversations/{id}/secure-link`.
async fn secure_link(
    staff: Staff,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    staff.check_csrf(&state, &form.csrf_token)?;
    let id = path.into_inner();
    let encode = |t: &str| url::form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>();
    match links::send(&state, &staff.principal(), &id).await {
        Ok(issued) => Ok(match &issued.held_until {
            Some(until) => see_other(&format!(
                "/console/conversations/{id}?notice=link_held&until={}",
                encode(until)
            )),
            None => see_other(&format!(
                "/console/conversations/{id}?notice=link&until={}",
                encode(&issued.expires_at)
            )),
        }),
        Err(LinkError::Active { expires_at }) => {
            conversation_with(
                &state,
                &staff,
                &id,
                StatusCode::CONFLICT,
                Flash {
                    notice: Some(format!(
                        "A secure link is already active until {}; the customer can still use it, so none was sent.",
                        when(&expires_at)
                    )),
                    ..Flash::default()
                },
            )
            .await
        }
        Err(LinkError::Gate(error)) => {
            let (status, message) = gate_refusal(error)?;
            conversation_with(
                &state,
                &staff,
                &id,
                status,
                Flash {
                    error: Some(message),
                    ..Flash::default()
                },
            )
            .await
        }
        Err(LinkError::Inbox(error)) => Err(error.into()),
        Err(LinkError::NoneActive) => {
            tracing::error!("console: sending a secure link gave a revoking error");
            Err(ConsoleError::Internal)
        }
    }
}

/// `POST /console/conversations/{id}/secure-link/revoke`.
async fn revoke_secure_link(
    staff: Staff,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    staff.check_csrf(&state, &form.csrf_token)?;
    let id = path.into_inner();
    match links::revoke(&state, &staff.principal(), &id).await {
        Ok(_) => Ok(back(&id, "link_revoked")),
        Err(LinkError::NoneActive) => {
            conversation_with(
                &state,
                &staff,
                &id,
                StatusCode::CONFLICT,
                Flash {
                    error: Some("No secure link is active.".to_owned()),
                    ..Flash::default()
                },
            )
            .await
        }
        Err(LinkError::Inbox(error)) => Err(error.into()),
        Err(LinkError::Gate(_) | LinkError::Active { .. }) => {
            tracing::error!("console: revoking a secure link gave a sending error");
            Err(ConsoleError::Internal)
        }
    }
}

/// `POST /console/conversations/{id}/secure-messages` (`body`): a message in the secure channel.
async fn secure_message(
    staff: Staff,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<BodyForm>,
) -> Result<HttpResponse, ConsoleError> {
    use crate::escalation::chat::{self, ChatError};
    staff.check_csrf(&state, &form.csrf_token)?;
    let id = path.into_inner();
    let refused = |message: String| Flash {
        error: Some(message),
        draft: Some(form.body.clone()),
        ..Flash::default()
    };
    match chat::agent_post(&state, &staff.principal(), &id, &form.body).await {
        Ok(replied) if replied.notified => Ok(back(&id, "secure_notified")),
        Ok(_) => Ok(back(&id, "secure_sent")),
        Err(ChatError::Inbox(error)) => Err(error.into()),
        Err(ChatError::NoLink) => {
            let flash = refused("No secure link is active: send one first.".to_owned());
            conversation_with(&state, &staff, &id, StatusCode::CONFLICT, flash).await
        }
        Err(ChatError::Length) => {
            let flash = refused(format!(
                "A secure message has 1 to {} characters.",
                chat::MAX_CHARS
            ));
            conversation_with(&state, &staff, &id, StatusCode::UNPROCESSABLE_ENTITY, flash).await
        }
        Err(ChatError::Gate(GateError::Database(e))) => Err(ConsoleError::database(&e)),
        Err(ChatError::Gate(error)) => {
            tracing::error!(%error, "secure message: the notification could not be queued");
            Err(ConsoleError::Internal)
        }
    }
}

#[derive(Debug, Deserialize)]
struct RevealForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    conversation_id: String,
}

/// `POST /console/messages/{id}/reveal` (`reason`): the full body, on a page of its own.
async fn reveal(
    staff: Staff,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<RevealForm>,
) -> Result<HttpResponse, ConsoleError> {
    staff.check_csrf(&state, &form.csrf_token)?;
    let message_id = path.into_inner();
    let body = inbox::reveal(&state, &staff.principal(), &message_id, &form.reason).await?;
    // Only used for the way back: a conversation id is a UUID.
    let back = form
        .conversation_id
        .chars()
        .all(|c| c.is_ascii_hexdigit() || c == '-')
        .then(|| format!("/console/conversations/{}", form.conversation_id))
        .filter(|_| !form.conversation_id.is_empty());
    let markup = html! {
        h1 { "Revealed message" }
        div.notice role="status" { p { "This view was recorded in the audit trail with your reason." } }
        div #revealed .revealed { p.body { (body) } }
        @if let Some(back) = back {
            p { a href=(back) { "Back to the conversation" } }
        } @else {
            p { a href="/console" { "Back to the inbox" } }
        }
    };
    Ok(html_response(&page(&staff, "Revealed message", &markup)))
}

/// `POST /console/dlp-check` (JSON `{"body"}`, CSRF in `X-CSRF-Token`): whether the outbound DLP
/// would refuse the text. The text is neither stored nor logged.
async fn dlp_check(
    staff: Staff,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    let token = req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    staff.check_csrf(&state, token)?;
    if payload.len() > MAX_CHECK_BYTES {
        return Err(ConsoleError::Refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The text is too long to check.".to_owned(),
        ));
    }
    #[derive(Deserialize)]
    struct Check {
        body: String,
    }
    // The parser's own error message could quote the text: not passed on.
    let Ok(check) = serde_json::from_slice::<Check>(&payload) else {
        return Ok(HttpResponse::BadRequest()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(serde_json::json!({"ok": false, "message": "the body must be JSON {\"body\": \"…\"}", "types": []})));
    };
    let engine = state.redactor.current();
    let answer = match dlp::check(&engine, &check.body) {
        Ok(()) => serde_json::json!({"ok": true, "message": "", "types": []}),
        Err(refusal) => serde_json::json!({
            "ok": false,
            "message": refusal.message(),
            "types": refusal.types.iter().copied().collect::<Vec<_>>(),
        }),
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(answer))
}

// ---------------------------------------------------------------------------------------------
// Canned replies (supervisors)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct CannedQuery {
    notice: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CannedForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    body: String,
}

async fn render_canned(
    state: &AppState,
    staff: &Staff,
    flash: Flash,
) -> Result<Markup, ConsoleError> {
    staff.require(&[Role::Supervisor], "manage canned replies")?;
    let replies = canned::list(state, &staff.principal()).await?;
    let body = html! {
        h1 { "Canned replies" }
        @if let Some(error) = &flash.error { div.error role="alert" { p { (error) } } }
        @if let Some(notice) = &flash.notice { div.notice role="status" { p { (notice) } } }
        p.hint { "Agents pick these in the reply box. Each is checked by the outbound DLP when saved and again when sent." }
        section aria-labelledby="new-canned" {
            h2 #new-canned { "New canned reply" }
            form #canned-new method="post" action="/console/canned" {
                (csrf_field(&staff.csrf))
                div.field {
                    label for="canned-title" { "Title" }
                    input #canned-title type="text" name="title" required maxlength=(canned::MAX_TITLE_CHARS);
                }
                div.field {
                    label for="canned-body" { "Text" }
                    textarea #canned-body name="body" rows="3" required maxlength=(canned::MAX_BODY_CHARS) {}
                }
                button type="submit" { "Save" }
            }
        }
        section aria-labelledby="existing-canned" {
            h2 #existing-canned { "Saved replies" }
            @if replies.is_empty() { p.empty { "None yet." } }
            ul #canned-replies {
                @for r in &replies {
                    li.canned-reply data-id=(r.id) {
                        form method="post" action={ "/console/canned/" (r.id) } {
                            (csrf_field(&staff.csrf))
                            div.field {
                                label for={ "title-" (r.id) } { "Title" }
                                input id={ "title-" (r.id) } type="text" name="title" value=(r.title) required maxlength=(canned::MAX_TITLE_CHARS);
                            }
                            div.field {
                                label for={ "body-" (r.id) } { "Text" }
                                textarea id={ "body-" (r.id) } name="body" rows="3" required maxlength=(canned::MAX_BODY_CHARS) { (r.body) }
                            }
                            button type="submit" { "Save changes" }
                        }
                        form method="post" action={ "/console/canned/" (r.id) "/delete" } {
                            (csrf_field(&staff.csrf))
                            button.danger type="submit" { "Delete " span.visually-hidden { (r.title) } }
                        }
                    }
                }
            }
        }
    };
    Ok(page(staff, "Canned replies", &body))
}

/// `GET /console/canned`.
async fn canned_page(
    staff: Staff,
    state: web::Data<AppState>,
    query: web::Query<CannedQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let flash = Flash {
        notice: query.notice.as_deref().and_then(|c| notice_text(c, None)),
        ..Flash::default()
    };
    Ok(html_response(&render_canned(&state, &staff, flash).await?))
}

async fn canned_save(
    staff: &Staff,
    state: &AppState,
    id: Option<&str>,
    form: &CannedForm,
) -> Result<HttpResponse, ConsoleError> {
    staff.check_csrf(state, &form.csrf_token)?;
    staff.require(&[Role::Supervisor], "manage canned replies")?;
    match canned::save(state, &staff.principal(), id, &form.title, &form.body).await {
        Ok(_) => Ok(see_other("/console/canned?notice=saved")),
        Err(inbox::InboxError::Refused {
            status, message, ..
        }) => {
            let mut chars = message.chars();
            let first = chars.next().map(|c| c.to_uppercase().collect::<String>());
            let message = format!(
                "{}{}. Nothing was saved.",
                first.unwrap_or_default(),
                chars.as_str()
            );
            let markup = render_canned(
                state,
                staff,
                Flash {
                    error: Some(message),
                    ..Flash::default()
                },
            )
            .await?;
            Ok(respond(
                StatusCode::from_u16(status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
                &markup,
            ))
        }
        Err(other) => Err(other.into()),
    }
}

/// `POST /console/canned` (`title`, `body`).
async fn canned_create(
    staff: Staff,
    state: web::Data<AppState>,
    form: web::Form<CannedForm>,
) -> Result<HttpResponse, ConsoleError> {
    canned_save(&staff, &state, None, &form).await
}

/// `POST /console/canned/{id}` (`title`, `body`).
async fn canned_update(
    staff: Staff,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<CannedForm>,
) -> Result<HttpResponse, ConsoleError> {
    canned_save(&staff, &state, Some(&path), &form).await
}

/// `POST /console/canned/{id}/delete`.
async fn canned_delete(
    staff: Staff,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    staff.check_csrf(&state, &form.csrf_token)?;
    canned::delete(&state, &staff.principal(), &path).await?;
    Ok(see_other("/console/canned?notice=deleted"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finding_badges_read_as_words() {
        assert_eq!(finding_label("CARD_NUMBER"), "card number removed");
        assert_eq!(finding_label("US_SSN"), "SSN removed");
        assert_eq!(finding_label("DATE_OF_BIRTH"), "date of birth removed");
        let found = findings(&serde_json::json!({"US_SSN": 1, "CARD_NUMBER": 2}));
        assert_eq!(found, vec!["SSN removed", "card number removed ×2"]);
    }

    #[test]
    fn notices_are_fixed_texts() {
        assert_eq!(
            notice_text("queued", None).as_deref(),
            Some("Reply queued.")
        );
        assert_eq!(notice_text("<script>", None), None);
        assert_eq!(
            notice_text("held", Some("not a time")).as_deref(),
            Some("Reply queued, held by quiet hours.")
        );
        assert_eq!(
            notice_text("held", Some("2026-11-28T14:03:00.000000Z")).as_deref(),
            Some("Reply queued, held by quiet hours until 2026-11-28 14:03 UTC.")
        );
    }
}
