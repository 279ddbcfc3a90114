//! Data subject requests (issue #8, item 4): access ([`export`]) and erasure ([`erase`]).
//!
//! Both find the contact by the phone number's blind index; the number itself is never stored
//! or logged, and the audit trail names the contact by id only.
//!
//! # Export
//!
//! [`export`] gathers everything held about a number: the contact row's metadata, every
//! conversation with its messages as stored (the redacted bodies, opened with the contact's data
//! key, with findings, status and times, and media metadata), secure-channel messages, internal
//! notes (sealed under the contact's key, so they are its data), the secure links issued
//! (metadata only: tokens are never stored, only their hashes, which are not exported either),
//! and the consent history. [`Export::to_json`] and [`Export::to_html`] render it; the CLI writes
//! both into a directory, the console offers each as a download. The number appears in the bundle
//! masked (`+1 ••• ••• 4567`): the requester already knows it, and a bundle that leaks stays less
//! useful. Audited as `subject.export` (contact id, counts).
//!
//! # Erasure
//!
//! [`erase`] refuses ([`SubjectError::Held`]) while any legal hold covers the contact or one of its
//! conversations. Otherwise, in one transaction that first takes the retention lock (so no hold
//! can be placed half-way):
//!
//! - every conversation of the contact is deleted with everything in it: messages (sealed bodies
//!   and media rows), delivery-status events, outbox rows, secure-channel messages, notes, read
//!   markers, secure links and their token, code and session rows;
//! - the contact's data key is destroyed: `data_key_wrapped` is replaced by the wrap of a fresh
//!   random key that has never sealed anything, so every ciphertext made under the old key —
//!   including copies in backups — can no longer be opened; `phone_sealed` is emptied (zero
//!   bytes), the time zone cleared, and `erased_at` set;
//! - afterwards [`Db::purge_deleted`] pushes the deleted bytes out of the engine's old page
//!   versions (SQLite: `secure_delete` zeroes freed space and the WAL is checkpointed and
//!   truncated; PostgreSQL: the touched tables are vacuumed);
//! - kept: the contact row and its phone blind index, the consent ledger and carrier consent
//!   events (so an opted-out number stays opted out), and content-free audit events;
//! - audited as `subject.erase` with the counts removed.
//!
//! When an erased number texts again, the pipeline revives the contact (see
//! `crate::pipeline::contact_for`): its number is sealed again under a fresh data key and
//! `erased_at` is cleared. Its consent state is unchanged: a STOP given before erasure still
//! holds, and a new conversation starts empty.

use crate::audit::{self, Actor, Event};
use crate::phone::E164;
use crate::retention;
use crate::store::Db;
use crate::vault::{self, Aad, SecretKey, Vault};
use serde::Serialize;
use sqlx::{AnyConnection, Row};
use std::collections::BTreeMap;

/// Why a request failed. Never carries the number or any content.
#[derive(Debug, thiserror::Error)]
pub enum SubjectError {
    #[error("no contact has that number")]
    NotFound,
    #[error("a legal hold covers this contact; release it before erasing")]
    Held,
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("a sealed value did not open or could not be made")]
    Vault,
    #[error("the audit trail refused the event: {0}")]
    Audit(String),
}

impl From<vault::VaultError> for SubjectError {
    fn from(_: vault::VaultError) -> Self {
        Self::Vault
    }
}

impl From<crate::keys::index::RefreshError> for SubjectError {
    fn from(error: crate::keys::index::RefreshError) -> Self {
        match error {
            crate::keys::index::RefreshError::Database(e) => Self::Database(e),
            _ => Self::Vault,
        }
    }
}

impl From<audit::AuditError> for SubjectError {
    fn from(error: audit::AuditError) -> Self {
        match error {
            audit::AuditError::Database(e) => Self::Database(e),
            other => Self::Audit(other.to_string()),
        }
    }
}

/// The bundle's format name and version.
pub const FORMAT: &str = "drawbridge-subject-export/1";

/// Everything held about one number.
#[derive(Debug, Clone, Serialize)]
pub struct Export {
    pub format: &'static str,
    pub generated_at: String,
    pub contact: ContactInfo,
    pub conversations: Vec<ConversationExport>,
    pub consent: Vec<ConsentExport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContactInfo {
    pub contact_id: String,
    /// The number, masked.
    pub phone: String,
    pub created_at: String,
    pub time_zone: Option<String>,
    /// Set when the contact's data was erased.
    pub erased_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConversationExport {
    pub id: String,
    pub business_number: String,
    pub status: String,
    pub created_at: String,
    pub last_message_at: String,
    pub closed_at: Option<String>,
    pub escalated_at: Option<String>,
    pub messages: Vec<MessageExport>,
    pub secure_messages: Vec<SecureMessageExport>,
    pub notes: Vec<NoteExport>,
    pub secure_links: Vec<LinkExport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MessageExport {
    pub id: String,
    pub direction: String,
    pub channel: String,
    /// The body as stored: already redacted on arrival.
    pub body: String,
    /// Types and counts of what redaction found, never the values.
    pub findings: serde_json::Value,
    pub status: String,
    pub status_error_code: Option<String>,
    pub created_at: String,
    pub media: Vec<MediaExport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MediaExport {
    pub content_type: Option<String>,
    pub size_bytes: Option<i64>,
    pub url: String,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SecureMessageExport {
    pub id: String,
    pub direction: String,
    pub body: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NoteExport {
    pub id: String,
    pub author_user_id: String,
    pub body: String,
    pub created_at: String,
}

/// A secure link's metadata (never a token).
#[derive(Debug, Clone, Serialize)]
pub struct LinkExport {
    pub id: String,
    pub created_by: String,
    pub created_at: String,
    pub expires_at: String,
    pub revoked_at: Option<String>,
    pub verified_at: Option<String>,
    pub locked_at: Option<String>,
    pub codes_sent: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsentExport {
    pub kind: String,
    pub source: String,
    pub keyword: Option<String>,
    pub business_number: String,
    pub at: String,
}

impl Export {
    /// Messages and secure-channel messages in the bundle.
    #[must_use]
    pub fn message_count(&self) -> usize {
        self.conversations
            .iter()
            .map(|c| c.messages.len() + c.secure_messages.len())
            .sum()
    }

    /// The bundle as pretty JSON.
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// The bundle as a self-contained, readable HTML page (no scripts; every value escaped).
    #[must_use]
    pub fn to_html(&self) -> String {
        use maud::{html, DOCTYPE};
        let style = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}\
                     table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}\
                     td,th{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}\
                     th{background:#f3f3f3}";
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    title { "Data held about " (self.contact.phone) }
                    style { (style) }
                }
                body {
                    h1 { "Data held about " (self.contact.phone) }
                    p { "Generated " (self.generated_at) ". Contact " code { (self.contact.contact_id) }
                        ", first seen " (self.contact.created_at) "." }
                    @if let Some(erased) = &self.contact.erased_at {
                        p { strong { "Message content was erased on " (erased) "." }
                            " The consent history below is kept so that an opt-out stays honoured." }
                    }
                    @if let Some(zone) = &self.contact.time_zone { p { "Time zone: " (zone) } }
                    h2 { "Consent history" }
                    @if self.consent.is_empty() { p { "None." } } @else {
                        table {
                            tr { th { "When" } th { "What" } th { "How" } th { "Keyword" } th { "Business number" } }
                            @for c in &self.consent {
                                tr { td { (c.at) } td { (c.kind) } td { (c.source) }
                                     td { (c.keyword.as_deref().unwrap_or("")) } td { (c.business_number) } }
                            }
                        }
                    }
                    h2 { "Conversations" }
                    @if self.conversations.is_empty() { p { "None." } }
                    @for v in &self.conversations {
                        h3 { "With " (v.business_number) " — " (v.status) }
                        p { "Started " (v.created_at) ", last message " (v.last_message_at)
                            @if let Some(closed) = &v.closed_at { ", closed " (closed) } "." }
                        h4 { "Messages" }
                        @if v.messages.is_empty() { p { "None." } } @else {
                            table {
                                tr { th { "When" } th { "Direction" } th { "Channel" } th { "Text (as stored, redacted)" } th { "Found" } th { "Status" } th { "Media" } }
                                @for m in &v.messages {
                                    tr {
                                        td { (m.created_at) } td { (m.direction) } td { (m.channel) }
                                        td { (m.body) } td { (m.findings.to_string()) }
                                        td { (m.status) @if let Some(code) = &m.status_error_code { " (" (code) ")" } }
                                        td { @for d in &m.media { div { (d.content_type.as_deref().unwrap_or("file")) ": " (d.url) } } }
                                    }
                                }
                            }
                        }
                        @if !v.secure_messages.is_empty() {
                            h4 { "Secure messages" }
                            table {
                                tr { th { "When" } th { "Direction" } th { "Text" } }
                                @for s in &v.secure_messages { tr { td { (s.created_at) } td { (s.direction) } td { (s.body) } } }
                            }
                        }
                        @if !v.notes.is_empty() {
                            h4 { "Staff notes" }
                            table {
                                tr { th { "When" } th { "Staff member" } th { "Note" } }
                                @for n in &v.notes { tr { td { (n.created_at) } td { (n.author_user_id) } td { (n.body) } } }
                            }
                        }
                        @if !v.secure_links.is_empty() {
                            h4 { "Secure links sent" }
                            table {
                                tr { th { "Sent" } th { "Expires" } th { "Verified" } th { "Revoked" } th { "Codes sent" } }
                                @for l in &v.secure_links {
                                    tr { td { (l.created_at) } td { (l.expires_at) }
                                         td { (l.verified_at.as_deref().unwrap_or("—")) }
                                         td { (l.revoked_at.as_deref().unwrap_or("—")) } td { (l.codes_sent) } }
                                }
                            }
                        }
                    }
                }
            }
        }
        .into_string()
    }
}

/// The contact row behind a number.
struct ContactRow {
    id: String,
    created_at: String,
    time_zone: Option<String>,
    erased_at: Option<String>,
    data_key_wrapped: Vec<u8>,
}

/// The contact of a number, by blind index. A miss is checked against the database's newest
/// blind-index generation first: a request made in the second after a re-index began must not
/// answer "no such contact".
async fn contact_by_phone(
    conn: &mut AnyConnection,
    vault: &Vault,
    phone: &E164,
) -> Result<Option<ContactRow>, SubjectError> {
    let index = vault.phone_index(phone);
    let found = contact_by_index(conn, &index).await?;
    if found.is_some() || !crate::keys::index::moved_on(conn, vault, index.generation()).await? {
        return Ok(found);
    }
    Ok(contact_by_index(conn, &vault.phone_index(phone)).await?)
}

async fn contact_by_index(
    conn: &mut AnyConnection,
    phone_index: &vault::BlindIndex,
) -> Result<Option<ContactRow>, sqlx::Error> {
    let [current, previous] = phone_index.lookup();
    sqlx::query(
        "SELECT contact_id, created_at, time_zone, erased_at, data_key_wrapped FROM contact WHERE phone_index IN ($1, $2)",
    )
    .bind(current)
    .bind(previous)
    .fetch_optional(conn)
    .await?
    .map(|row| {
        Ok(ContactRow {
            id: row.try_get(0)?,
            created_at: row.try_get(1)?,
            time_zone: row.try_get(2)?,
            erased_at: row.try_get(3)?,
            data_key_wrapped: row.try_get(4)?,
        })
    })
    .transpose()
}

/// Finds the contact id of a number (by blind index).
///
/// # Errors
/// [`SubjectError::NotFound`]; the database.
pub async fn contact_id(db: &Db, vault: &Vault, phone: &E164) -> Result<String, SubjectError> {
    let mut conn = db.pool().acquire().await?;
    contact_by_phone(&mut conn, vault, phone)
        .await?
        .map(|c| c.id)
        .ok_or(SubjectError::NotFound)
}

fn open_text(dek: &SecretKey, sealed: &[u8], aad: Aad<'_>) -> Result<String, SubjectError> {
    let plain = vault::open(dek, sealed, aad)?;
    Ok(String::from_utf8_lossy(&plain).into_owned())
}

/// Builds the export of everything held about `phone` and records `subject.export`. `progress`
/// is called with (messages done, messages in all) as messages are opened.
///
/// # Errors
/// [`SubjectError::NotFound`] for a number no contact has; the database; a ciphertext that does
/// not open (nothing is exported then, rather than an incomplete bundle).
pub async fn export(
    db: &Db,
    vault: &Vault,
    phone: &E164,
    actor: Actor<'_>,
    at: &str,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Export, SubjectError> {
    let mut conn = db.pool().acquire().await?;
    let contact = contact_by_phone(&mut conn, vault, phone)
        .await?
        .ok_or(SubjectError::NotFound)?;
    let dek = vault.unwrap_data_key(&contact.data_key_wrapped, &contact.id)?;
    let total: i64 = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM message m JOIN conversation v ON v.conversation_id = m.conversation_id WHERE v.contact_id = $1) \
              + (SELECT COUNT(*) FROM secure_message s JOIN conversation v ON v.conversation_id = s.conversation_id WHERE v.contact_id = $1)",
    )
    .bind(&contact.id)
    .fetch_one(&mut *conn)
    .await?
    .try_get(0)?;
    let total = u64::try_from(total).unwrap_or(0);
    let mut done = 0_u64;
    progress(0, total);
    let conversation_rows = sqlx::query(
        "SELECT conversation_id, business_number, status, created_at, last_message_at, closed_at, escalated_at \
         FROM conversation WHERE contact_id = $1 ORDER BY created_at, conversation_id",
    )
    .bind(&contact.id)
    .fetch_all(&mut *conn)
    .await?;
    let mut conversations = Vec::with_capacity(conversation_rows.len());
    for row in &conversation_rows {
        let id: String = row.try_get(0)?;
        let mut messages = Vec::new();
        for m in sqlx::query(
            "SELECT message_id, direction, channel, body_sealed, findings, status, status_error_code, created_at \
             FROM message WHERE conversation_id = $1 ORDER BY created_at, message_id",
        )
        .bind(&id)
        .fetch_all(&mut *conn)
        .await?
        {
            let message_id: String = m.try_get(0)?;
            let sealed: Vec<u8> = m.try_get(3)?;
            let body = open_text(&dek, &sealed, Aad::new("message", "body_sealed", &message_id))?;
            let mut media = Vec::new();
            for d in sqlx::query(
                "SELECT position, content_type, size_bytes, url_sealed, name_sealed FROM message_media \
                 WHERE message_id = $1 ORDER BY position",
            )
            .bind(&message_id)
            .fetch_all(&mut *conn)
            .await?
            {
                let position: i64 = d.try_get(0)?;
                let row_id = format!("{message_id}/{position}");
                let url_sealed: Vec<u8> = d.try_get(3)?;
                let name_sealed: Option<Vec<u8>> = d.try_get(4)?;
                media.push(MediaExport {
                    content_type: d.try_get(1)?,
                    size_bytes: d.try_get(2)?,
                    url: open_text(
                        &dek,
                        &url_sealed,
                        Aad::new("message_media", "url_sealed", &row_id),
                    )?,
                    name: name_sealed
                        .map(|n| {
                            open_text(&dek, &n, Aad::new("message_media", "name_sealed", &row_id))
                        })
                        .transpose()?,
                });
            }
            let findings: String = m.try_get(4)?;
            messages.push(MessageExport {
                direction: m.try_get(1)?,
                channel: m.try_get(2)?,
                body,
                findings: serde_json::from_str(&findings).unwrap_or_default(),
                status: m.try_get(5)?,
                status_error_code: m.try_get(6)?,
                created_at: m.try_get(7)?,
                media,
                id: message_id,
            });
            done += 1;
            progress(done, total);
        }
        let mut secure_messages = Vec::new();
        for s in sqlx::query(
            "SELECT secure_message_id, direction, body_sealed, created_at FROM secure_message \
             WHERE conversation_id = $1 ORDER BY created_at, secure_message_id",
        )
        .bind(&id)
        .fetch_all(&mut *conn)
        .await?
        {
            let sid: String = s.try_get(0)?;
            let sealed: Vec<u8> = s.try_get(2)?;
            secure_messages.push(SecureMessageExport {
                body: open_text(
                    &dek,
                    &sealed,
                    Aad::new("secure_message", "body_sealed", &sid),
                )?,
                direction: s.try_get(1)?,
                created_at: s.try_get(3)?,
                id: sid,
            });
            done += 1;
            progress(done, total);
        }
        let mut notes = Vec::new();
        for n in sqlx::query(
            "SELECT note_id, author_user_id, body_sealed, created_at FROM note \
             WHERE conversation_id = $1 ORDER BY created_at, note_id",
        )
        .bind(&id)
        .fetch_all(&mut *conn)
        .await?
        {
            let nid: String = n.try_get(0)?;
            let sealed: Vec<u8> = n.try_get(2)?;
            notes.push(NoteExport {
                body: open_text(&dek, &sealed, Aad::new("note", "body_sealed", &nid))?,
                author_user_id: n.try_get(1)?,
                created_at: n.try_get(3)?,
                id: nid,
            });
        }
        let mut secure_links = Vec::new();
        for l in sqlx::query(
            "SELECT l.secure_link_id, l.created_by, l.created_at, l.expires_at, l.revoked_at, l.verified_at, l.locked_at, \
             (SELECT COUNT(*) FROM secure_code c WHERE c.secure_link_id = l.secure_link_id) \
             FROM secure_link l WHERE l.conversation_id = $1 ORDER BY l.created_at, l.secure_link_id",
        )
        .bind(&id)
        .fetch_all(&mut *conn)
        .await?
        {
            secure_links.push(LinkExport {
                id: l.try_get(0)?,
                created_by: l.try_get(1)?,
                created_at: l.try_get(2)?,
                expires_at: l.try_get(3)?,
                revoked_at: l.try_get(4)?,
                verified_at: l.try_get(5)?,
                locked_at: l.try_get(6)?,
                codes_sent: l.try_get(7)?,
            });
        }
        conversations.push(ConversationExport {
            business_number: row.try_get(1)?,
            status: row.try_get(2)?,
            created_at: row.try_get(3)?,
            last_message_at: row.try_get(4)?,
            closed_at: row.try_get(5)?,
            escalated_at: row.try_get(6)?,
            messages,
            secure_messages,
            notes,
            secure_links,
            id,
        });
    }
    let consent = sqlx::query(
        "SELECT kind, source, keyword, business_number, at FROM consent_event WHERE contact_id = $1 \
         ORDER BY at, consent_event_id",
    )
    .bind(&contact.id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|c| {
        Ok(ConsentExport {
            kind: c.try_get(0)?,
            source: c.try_get(1)?,
            keyword: c.try_get(2)?,
            business_number: c.try_get(3)?,
            at: c.try_get(4)?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    drop(conn);
    let bundle = Export {
        format: FORMAT,
        generated_at: at.to_owned(),
        contact: ContactInfo {
            contact_id: contact.id.clone(),
            phone: phone.masked(),
            created_at: contact.created_at,
            time_zone: contact.time_zone,
            erased_at: contact.erased_at,
        },
        conversations,
        consent,
    };
    let mut tx = db.pool().begin().await?;
    audit::append(
        &mut tx,
        vault.audit_key(),
        &Event::new(actor, "subject.export")
            .subject("contact", &contact.id)
            .detail(
                "conversations",
                u64::try_from(bundle.conversations.len())
                    .unwrap_or(u64::MAX)
                    .min(99_999),
            )
            .detail(
                "messages",
                u64::try_from(bundle.message_count())
                    .unwrap_or(u64::MAX)
                    .min(99_999),
            )
            .detail(
                "consent_events",
                u64::try_from(bundle.consent.len())
                    .unwrap_or(u64::MAX)
                    .min(99_999),
            ),
        at,
    )
    .await?;
    tx.commit().await?;
    Ok(bundle)
}

/// What an erasure removed, by kind of row.
#[derive(Debug, Clone)]
pub struct Erasure {
    pub contact_id: String,
    pub counts: BTreeMap<&'static str, u64>,
}

/// Erases the contact with this number. See the module documentation.
///
/// # Errors
/// [`SubjectError::NotFound`], [`SubjectError::Held`], the database.
pub async fn erase(
    db: &Db,
    vault: &Vault,
    phone: &E164,
    actor: Actor<'_>,
    at: &str,
) -> Result<Erasure, SubjectError> {
    let id = contact_id(db, vault, phone).await?;
    erase_contact(db, vault, &id, actor, at).await
}

/// Erases a contact by id (the console's confirmation step carries the id, not the number).
///
/// # Errors
/// [`SubjectError::NotFound`], [`SubjectError::Held`], the database.
pub async fn erase_contact(
    db: &Db,
    vault: &Vault,
    contact_id: &str,
    actor: Actor<'_>,
    at: &str,
) -> Result<Erasure, SubjectError> {
    let mut tx = db.pool().begin().await?;
    retention::lock(&mut tx, at).await?;
    // Locked before anything is deleted: a message arriving meanwhile waits for the erasure and
    // is then stored under a fresh key (see `contacts::lock`).
    let exists = crate::store::contacts::lock(&mut tx, contact_id)
        .await?
        .is_some();
    if !exists {
        tx.rollback().await.ok();
        return Err(SubjectError::NotFound);
    }
    if retention::contact_is_held(&mut tx, contact_id).await? {
        tx.rollback().await.ok();
        return Err(SubjectError::Held);
    }
    const CONVERSATIONS: &str = "(SELECT conversation_id FROM conversation WHERE contact_id = $1)";
    const MESSAGES: &str = "(SELECT m.message_id FROM message m JOIN conversation v ON v.conversation_id = m.conversation_id WHERE v.contact_id = $1)";
    const LINKS: &str = "(SELECT secure_link_id FROM secure_link WHERE contact_id = $1)";
    let steps: Vec<(Option<&'static str>, String)> = vec![
        (None, format!("DELETE FROM conversation_read WHERE conversation_id IN {CONVERSATIONS}")),
        (Some("notes"), format!("DELETE FROM note WHERE conversation_id IN {CONVERSATIONS}")),
        (Some("secure_messages"), format!("DELETE FROM secure_message WHERE conversation_id IN {CONVERSATIONS}")),
        (None, format!("DELETE FROM customer_session WHERE secure_link_id IN {LINKS}")),
        (None, format!("DELETE FROM secure_code WHERE secure_link_id IN {LINKS}")),
        (None, format!("DELETE FROM secure_link_token WHERE secure_link_id IN {LINKS}")),
        (Some("secure_links"), "DELETE FROM secure_link WHERE contact_id = $1".to_owned()),
        (None, "DELETE FROM message_status_event WHERE EXISTS (SELECT 1 FROM message m JOIN conversation v \
             ON v.conversation_id = m.conversation_id WHERE v.contact_id = $1 AND m.carrier = message_status_event.carrier \
             AND m.carrier_message_id = message_status_event.carrier_message_id)".to_owned()),
        (Some("media"), format!("DELETE FROM message_media WHERE message_id IN {MESSAGES}")),
        (None, "DELETE FROM outbox WHERE contact_id = $1".to_owned()),
        (Some("messages"), format!("DELETE FROM message WHERE conversation_id IN {CONVERSATIONS}")),
        (Some("conversations"), "DELETE FROM conversation WHERE contact_id = $1".to_owned()),
    ];
    let mut counts = BTreeMap::new();
    for (name, sql) in &steps {
        let n = sqlx::query(sql)
            .bind(contact_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if let Some(name) = name {
            counts.insert(*name, n);
        }
    }
    // Crypto-shredding: the old data key is replaced, not kept anywhere. The new one is wrapped
    // like any other (key rotation re-wraps it as usual) and has sealed nothing.
    let fresh = vault.new_data_key();
    let wrapped = vault.wrap_data_key(&fresh, contact_id)?;
    drop(fresh);
    sqlx::query(
        "UPDATE contact SET data_key_wrapped = $1, phone_sealed = $2, time_zone = NULL, erased_at = $3 WHERE contact_id = $4",
    )
    .bind(wrapped)
    .bind(Vec::<u8>::new())
    .bind(at)
    .bind(contact_id)
    .execute(&mut *tx)
    .await?;
    let mut event = Event::new(actor, "subject.erase").subject("contact", contact_id);
    for (name, n) in &counts {
        event = event.detail(name, (*n).min(99_999));
    }
    audit::append(&mut tx, vault.audit_key(), &event, at).await?;
    tx.commit().await?;
    db.purge_deleted().await;
    Ok(Erasure {
        contact_id: contact_id.to_owned(),
        counts,
    })
}

/// What an erasure would remove, for the console's confirmation step: (conversations, messages
/// and secure messages, consent events), and whether a hold blocks it.
///
/// # Errors
/// The database.
pub async fn summary(db: &Db, contact_id: &str) -> Result<(i64, i64, i64, bool), SubjectError> {
    let mut conn = db.pool().acquire().await?;
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM conversation WHERE contact_id = $1), \
         (SELECT COUNT(*) FROM message m JOIN conversation v ON v.conversation_id = m.conversation_id WHERE v.contact_id = $1) \
         + (SELECT COUNT(*) FROM secure_message s JOIN conversation v ON v.conversation_id = s.conversation_id WHERE v.contact_id = $1), \
         (SELECT COUNT(*) FROM consent_event WHERE contact_id = $1)",
    )
    .bind(contact_id)
    .fetch_one(&mut *conn)
    .await?;
    let held = retention::contact_is_held(&mut conn, contact_id).await?;
    Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, held))
}

/// Seals a revived contact's number under a fresh data key: used by the pipeline when an erased
/// number texts again. Returns the new key and its wrap and the sealed number.
///
/// # Errors
/// [`vault::VaultError`] when sealing fails.
pub fn fresh_identity(
    vault: &Vault,
    contact_id: &str,
    phone: &E164,
) -> Result<(SecretKey, Vec<u8>, Vec<u8>), vault::VaultError> {
    let dek = vault.new_data_key();
    let phone_sealed = vault::seal(
        &dek,
        phone.as_str().as_bytes(),
        Aad::new("contact", "phone_sealed", contact_id),
    )?;
    let wrapped = vault.wrap_data_key(&dek, contact_id)?;
    Ok((dek, wrapped, phone_sealed))
}
