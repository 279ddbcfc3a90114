//! Compliance pages for legal holds and data subject requests (issue #8, items 3 and 4).
//!
//! | route | what |
//! |---|---|
//! | `GET /compliance/holds` | the active holds, and a form to place one (phone or conversation, reason, note) |
//! | `POST /compliance/holds` | places a hold (audited) |
//! | `POST /compliance/holds/{id}/release` | releases it (audited) |
//! | `GET /compliance/subjects` | the access and erasure forms |
//! | `POST /compliance/subjects/export` | `phone`, `format=json\|html` → the bundle as a download (audited) |
//! | `POST /compliance/subjects/erase` | `phone` → the confirmation page (what would go; whether a hold blocks it) |
//! | `POST /compliance/subjects/erase/confirm` | `contact_id`, `confirm=ERASE` → erases (audited); 409 under a hold |
//!
//! Compliance role only. Supervisors and admins are refused: an export hands over a person's whole
//! history and an erasure cannot be undone, so both stay with the role whose job they are (and
//! whose every step is audited). Phone numbers travel only in POST bodies, never in URLs, so
//! they reach no access log; the confirmation step carries the contact id, not the number.

use super::{csrf_field, html_response, page, see_other, ConsoleError, Staff};
use crate::retention::{self, HoldError, HoldTarget, REASONS};
use crate::store::tokens::Role;
use crate::subject::{self, SubjectError};
use crate::web::AppState;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use maud::{html, Markup};

/// Registers the pages.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/compliance/holds", web::get().to(holds_page))
        .route("/compliance/holds", web::post().to(place_hold))
        .route(
            "/compliance/holds/{id}/release",
            web::post().to(release_hold),
        )
        .route("/compliance/subjects", web::get().to(subjects_page))
        .route("/compliance/subjects/export", web::post().to(export))
        .route(
            "/compliance/subjects/erase",
            web::post().to(erase_confirmation),
        )
        .route("/compliance/subjects/erase/confirm", web::post().to(erase));
}

fn compliance(staff: &Staff, what: &str) -> Result<(), ConsoleError> {
    staff.require(&[Role::Compliance], what)
}

impl From<HoldError> for ConsoleError {
    fn from(error: HoldError) -> Self {
        match error {
            HoldError::NoSuchContact => Self::NotFound("contact with that number"),
            HoldError::NoSuchConversation => Self::NotFound("conversation"),
            HoldError::NotFound => Self::NotFound("legal hold"),
            HoldError::AlreadyReleased => Self::Refused(
                StatusCode::CONFLICT,
                "That hold is already released.".to_owned(),
            ),
            HoldError::BadReason | HoldError::NoteTooLong => {
                Self::Refused(StatusCode::UNPROCESSABLE_ENTITY, error.to_string())
            }
            HoldError::Database(e) => Self::database(&e),
            HoldError::Vault | HoldError::Audit(_) => {
                tracing::error!(error = %error, "console: legal hold failed");
                Self::Internal
            }
        }
    }
}

impl From<SubjectError> for ConsoleError {
    fn from(error: SubjectError) -> Self {
        match error {
            SubjectError::NotFound => Self::NotFound("contact with that number"),
            SubjectError::Held => Self::Refused(
                StatusCode::CONFLICT,
                "A legal hold covers this contact: release it before erasing.".to_owned(),
            ),
            SubjectError::Database(e) => Self::database(&e),
            SubjectError::Vault | SubjectError::Audit(_) => {
                tracing::error!(error = %error, "console: data subject request failed");
                Self::Internal
            }
        }
    }
}

fn parse_phone(text: &str) -> Result<crate::phone::E164, ConsoleError> {
    crate::phone::E164::parse(text.trim()).map_err(|_| {
        ConsoleError::Refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Enter the number in international form, such as +14155550123.".to_owned(),
        )
    })
}

async fn holds_page(
    state: web::Data<AppState>,
    staff: Staff,
) -> Result<HttpResponse, ConsoleError> {
    compliance(&staff, "manage legal holds")?;
    let mut conn = state.db.pool().acquire().await?;
    let holds = retention::active(&mut conn, &state.vault, None).await?;
    drop(conn);
    let body = html! {
        h1 { "Legal holds" }
        p { "A hold keeps a contact's data (or one conversation's) from retention deletion and from erasure until it is released." }
        h2 { "Active" }
        @if holds.is_empty() { p { "No active holds." } } @else {
            table {
                tr { th { "Placed" } th { "Contact" } th { "Conversation" } th { "Reason" } th { "Note" } th { "By" } th {} }
                @for h in &holds {
                    tr {
                        td { (h.placed_at) } td { code { (h.contact_id) } }
                        td { @if let Some(c) = &h.conversation_id { code { (c) } } @else { "all" } }
                        td { (h.reason) } td { (h.note.as_deref().unwrap_or("")) } td { (h.placed_by) }
                        td {
                            form method="post" action={ "/compliance/holds/" (h.id) "/release" } {
                                (csrf_field(&staff.csrf))
                                button type="submit" { "Release" }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Place a hold" }
        form method="post" action="/compliance/holds" {
            (csrf_field(&staff.csrf))
            p { label { "Phone number (the whole contact) " input type="tel" name="phone" autocomplete="off"; } }
            p { label { "or conversation id " input type="text" name="conversation_id" autocomplete="off"; } }
            p { label { "Reason " select name="reason" { @for r in REASONS { option value=(r) { (r) } } } } }
            p { label { "Note (sealed; case reference) " textarea name="note" maxlength="500" {} } }
            button type="submit" { "Place hold" }
        }
    };
    Ok(html_response(&page(&staff, "Legal holds", &body)))
}

/// `POST /compliance/holds`.
#[derive(Debug, serde::Deserialize)]
pub struct HoldForm {
    #[serde(default)]
    phone: String,
    #[serde(default)]
    conversation_id: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    csrf_token: String,
}

async fn place_hold(
    state: web::Data<AppState>,
    staff: Staff,
    form: web::Form<HoldForm>,
) -> Result<HttpResponse, ConsoleError> {
    compliance(&staff, "manage legal holds")?;
    staff.check_csrf(&state, &form.csrf_token)?;
    let phone_text = form.phone.trim();
    let conversation = form.conversation_id.trim();
    let phone;
    let target = match (phone_text.is_empty(), conversation.is_empty()) {
        (false, true) => {
            phone = parse_phone(phone_text)?;
            HoldTarget::Phone(&phone)
        }
        (true, false) => HoldTarget::Conversation(conversation),
        _ => {
            return Err(ConsoleError::Refused(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Give a phone number or a conversation id (one of them).".to_owned(),
            ))
        }
    };
    let principal = staff.principal();
    retention::place(
        &state.db,
        &state.vault,
        principal.actor(),
        target,
        &form.reason,
        Some(form.note.as_str()),
        &state.clock.timestamp(),
    )
    .await?;
    Ok(see_other("/compliance/holds"))
}

/// A form with only its CSRF token.
#[derive(Debug, serde::Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf_token: String,
}

async fn release_hold(
    state: web::Data<AppState>,
    staff: Staff,
    path: web::Path<String>,
    form: web::Form<CsrfOnly>,
) -> Result<HttpResponse, ConsoleError> {
    compliance(&staff, "manage legal holds")?;
    staff.check_csrf(&state, &form.csrf_token)?;
    let principal = staff.principal();
    retention::release(
        &state.db,
        &state.vault,
        principal.actor(),
        &path,
        &state.clock.timestamp(),
    )
    .await?;
    Ok(see_other("/compliance/holds"))
}

fn subjects_markup(staff: &Staff) -> Markup {
    html! {
        h1 { "Data subject requests" }
        h2 { "Access: everything held about a number" }
        form method="post" action="/compliance/subjects/export" {
            (csrf_field(&staff.csrf))
            p { label { "Phone number " input type="tel" name="phone" required autocomplete="off"; } }
            p { label { input type="radio" name="format" value="html" checked; " Readable page (HTML)" }
                " " label { input type="radio" name="format" value="json"; " Data (JSON)" } }
            button type="submit" { "Download export" }
        }
        h2 { "Erasure" }
        p { "Destroys the contact's data key and deletes its conversations and messages. Consent records stay, so an opt-out is still honoured. Refused under a legal hold. You will be asked to confirm." }
        form method="post" action="/compliance/subjects/erase" {
            (csrf_field(&staff.csrf))
            p { label { "Phone number " input type="tel" name="phone" required autocomplete="off"; } }
            button type="submit" { "Continue" }
        }
    }
}

async fn subjects_page(staff: Staff) -> Result<HttpResponse, ConsoleError> {
    compliance(&staff, "handle data subject requests")?;
    Ok(html_response(&page(
        &staff,
        "Data subject requests",
        &subjects_markup(&staff),
    )))
}

/// `POST /compliance/subjects/export` and `/erase`.
#[derive(Debug, serde::Deserialize)]
pub struct PhoneForm {
    #[serde(default)]
    phone: String,
    #[serde(default)]
    format: String,
    #[serde(default)]
    csrf_token: String,
}

async fn export(
    state: web::Data<AppState>,
    staff: Staff,
    form: web::Form<PhoneForm>,
) -> Result<HttpResponse, ConsoleError> {
    compliance(&staff, "handle data subject requests")?;
    staff.check_csrf(&state, &form.csrf_token)?;
    let phone = parse_phone(&form.phone)?;
    let html = match form.format.as_str() {
        "" | "html" => true,
        "json" => false,
        _ => {
            return Err(ConsoleError::Refused(
                StatusCode::UNPROCESSABLE_ENTITY,
                "The format is html or json.".to_owned(),
            ))
        }
    };
    let principal = staff.principal();
    let bundle = subject::export(
        &state.db,
        &state.vault,
        &phone,
        principal.actor(),
        &state.clock.timestamp(),
        &|_, _| {},
    )
    .await?;
    let (body, content_type, extension) = if html {
        (bundle.to_html(), "text/html; charset=utf-8", "html")
    } else {
        (bundle.to_json(), "application/json", "json")
    };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"export-{}.{extension}\"",
                bundle.contact.contact_id
            ),
        ))
        .body(body))
}

async fn erase_confirmation(
    state: web::Data<AppState>,
    staff: Staff,
    form: web::Form<PhoneForm>,
) -> Result<HttpResponse, ConsoleError> {
    compliance(&staff, "handle data subject requests")?;
    staff.check_csrf(&state, &form.csrf_token)?;
    let phone = parse_phone(&form.phone)?;
    let contact = subject::contact_id(&state.db, &state.vault, &phone).await?;
    let (conversations, messages, consent, held) = subject::summary(&state.db, &contact).await?;
    let body = html! {
        h1 { "Confirm erasure" }
        p { "Contact " code { (contact) } " (" (phone.masked()) "): "
            (conversations) " conversations and " (messages) " messages will be deleted and its data key destroyed. "
            (consent) " consent records are kept." }
        @if held {
            p.notice { "A legal hold covers this contact. It cannot be erased until the hold is released." }
            p { a href="/compliance/holds" { "Legal holds" } }
        } @else {
            form method="post" action="/compliance/subjects/erase/confirm" {
                (csrf_field(&staff.csrf))
                input type="hidden" name="contact_id" value=(contact);
                p { label { "Type ERASE to confirm " input type="text" name="confirm" required autocomplete="off"; } }
                button type="submit" { "Erase for good" }
            }
        }
    };
    Ok(html_response(&page(&staff, "Confirm erasure", &body)))
}

/// `POST /compliance/subjects/erase/confirm`.
#[derive(Debug, serde::Deserialize)]
pub struct EraseForm {
    #[serde(default)]
    contact_id: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    csrf_token: String,
}

async fn erase(
    state: web::Data<AppState>,
    staff: Staff,
    form: web::Form<EraseForm>,
) -> Result<HttpResponse, ConsoleError> {
    compliance(&staff, "handle data subject requests")?;
    staff.check_csrf(&state, &form.csrf_token)?;
    if form.confirm.trim() != "ERASE" {
        return Err(ConsoleError::Refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not erased: type ERASE to confirm.".to_owned(),
        ));
    }
    let principal = staff.principal();
    let erasure = subject::erase_contact(
        &state.db,
        &state.vault,
        form.contact_id.trim(),
        principal.actor(),
        &state.clock.timestamp(),
    )
    .await?;
    let body = html! {
        h1 { "Erased" }
        p { "Contact " code { (erasure.contact_id) } " was erased." }
        ul { @for (name, n) in &erasure.counts { li { (name) ": " (n) } } }
        p { a href="/compliance/subjects" { "Back" } }
    };
    Ok(html_response(&page(&staff, "Erased", &body)))
}
