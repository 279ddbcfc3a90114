//! Conversations as staff see them: the inbox, a thread, assignment, closing and reopening,
//! internal notes, canned replies and the audited reveal. The console and the JSON API both call
//! these functions, and every one checks its [`Principal`] itself, so that no route can forget.
//!
//! # Who may do what
//!
//! | role | conversations | message content | acts on conversations |
//! |---|---|---|---|
//! | agent | assigned to them or unassigned | carrier messages as stored (redacted); secure-channel messages only by reveal | reply, assign to self or release, close, reopen, notes, secure link |
//! | supervisor | all | as agents | as agents, assign to anyone; manages canned replies |
//! | compliance | all, as metadata | none, except by reveal with a reason | consent changes only |
//! | admin | none | none | manages users, tokens and settings |
//!
//! Every read of a thread's content writes a `conversation.view` event and every reveal a
//! `message.reveal` event with its reason; assignments, closing, reopening, notes and canned-reply
//! changes are audited too.

pub mod canned;
pub mod live;

use crate::accounts::Principal;
use crate::audit::{self, AuditError, Event};
use crate::compliance::consent;
use crate::redact::Direction;
use crate::store;
use crate::store::tokens::Role;
use crate::vault::{self, Aad, SecretKey};
use crate::web::AppState;
use sqlx::{AnyConnection, Row};

/// What went wrong. Messages name the problem, never content.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    #[error("not found")]
    NotFound(&'static str),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// The request is understood but refused: a stable code and a message.
    #[error("{code}: {message}")]
    Refused {
        status: u16,
        code: &'static str,
        message: String,
    },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("a sealed value did not open")]
    Vault,
    #[error("the audit trail refused an event: {0}")]
    Audit(String),
}

impl From<AuditError> for InboxError {
    fn from(error: AuditError) -> Self {
        match error {
            AuditError::Database(e) => Self::Database(e),
            other => Self::Audit(other.to_string()),
        }
    }
}

impl From<vault::VaultError> for InboxError {
    fn from(_: vault::VaultError) -> Self {
        Self::Vault
    }
}

impl InboxError {
    fn refused(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self::Refused {
            status,
            code,
            message: message.into(),
        }
    }
}

/// How much of a conversation a principal may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Metadata and carrier messages as stored; secure-channel messages by reveal.
    Full,
    /// Metadata only; any content by reveal (compliance).
    Metadata,
}

/// What `principal` may see of a conversation assigned to `assigned` (`None`: nothing at all).
#[must_use]
pub fn access(principal: &Principal, assigned: Option<&str>) -> Option<Access> {
    match principal.role {
        Role::Supervisor => Some(Access::Full),
        Role::Agent => match assigned {
            None => Some(Access::Full),
            Some(user) if user == principal.id => Some(Access::Full),
            Some(_) => None,
        },
        Role::Compliance => Some(Access::Metadata),
        Role::Admin => None,
    }
}

/// Whether the principal's role may act on conversations (reply, assign, close, notes, links).
#[must_use]
pub fn acts_on_conversations(principal: &Principal) -> bool {
    matches!(principal.role, Role::Agent | Role::Supervisor)
}

/// Which conversations an inbox shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    /// Open conversations.
    #[default]
    Open,
    /// Open conversations moved (or to be moved) to the secure link.
    Escalated,
    /// Open conversations assigned to the principal.
    Mine,
    /// Open conversations assigned to nobody.
    Unassigned,
    /// Closed conversations.
    Closed,
}

impl Filter {
    pub const ALL: [Self; 5] = [
        Self::Open,
        Self::Escalated,
        Self::Mine,
        Self::Unassigned,
        Self::Closed,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Escalated => "escalated",
            Self::Mine => "mine",
            Self::Unassigned => "unassigned",
            Self::Closed => "closed",
        }
    }

    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == text)
    }

    fn sql(self) -> &'static str {
        match self {
            Self::Open => "v.status = 'open'",
            Self::Escalated => "v.status = 'open' AND v.escalated_at IS NOT NULL",
            Self::Mine => "v.status = 'open' AND v.assigned_user_id = $1",
            Self::Unassigned => "v.status = 'open' AND v.assigned_user_id IS NULL",
            Self::Closed => "v.status = 'closed'",
        }
    }
}

/// A conversation in a list.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub id: String,
    pub contact_id: String,
    /// `open` or `closed`.
    pub status: String,
    pub escalated: bool,
    /// The channel of the latest message: `sms`, `mms`, `rcs` or `secure`.
    pub channel: String,
    pub business_number: String,
    pub last_activity: String,
    pub assigned_user_id: Option<String>,
    /// Inbound messages newer than the principal's last read (0 for API tokens).
    pub unread: i64,
    /// The contact's number masked: `+1 ••• ••• 4567`.
    pub contact_masked: String,
    pub opted_out: bool,
}

/// A page of conversations.
#[derive(Debug, Clone)]
pub struct Page {
    pub conversations: Vec<Summary>,
    pub has_more: bool,
}

/// Lists the conversations `principal` may see through `filter`, newest activity first.
///
/// # Errors
/// [`InboxError::Forbidden`] for admins; database and sealing errors.
pub async fn list(
    state: &AppState,
    principal: &Principal,
    filter: Filter,
    page: u32,
    page_size: u32,
) -> Result<Page, InboxError> {
    if access(principal, None).is_none() {
        return Err(InboxError::Forbidden("read conversations"));
    }
    let visibility = if principal.role == Role::Agent {
        " AND (v.assigned_user_id IS NULL OR v.assigned_user_id = $1)"
    } else {
        " AND ($1 = $1)"
    };
    let sql = format!(
        "SELECT v.conversation_id, v.contact_id, v.status, v.escalated_at, v.business_number, \
         v.last_message_at, v.assigned_user_id, \
         (SELECT m.channel FROM message m WHERE m.conversation_id = v.conversation_id ORDER BY m.created_at DESC LIMIT 1), \
         (SELECT MAX(s.created_at) FROM secure_message s WHERE s.conversation_id = v.conversation_id), \
         (SELECT COUNT(*) FROM message m WHERE m.conversation_id = v.conversation_id AND m.direction = 'inbound' \
            AND m.created_at > COALESCE((SELECT r.read_at FROM conversation_read r WHERE r.conversation_id = v.conversation_id AND r.user_id = $1), '')), \
         c.phone_sealed, c.data_key_wrapped \
         FROM conversation v JOIN contact c ON c.contact_id = v.contact_id \
         WHERE {}{visibility} \
         ORDER BY v.last_message_at DESC, v.conversation_id DESC LIMIT $2 OFFSET $3",
        filter.sql()
    );
    let limit = i64::from(page_size.clamp(1, 200));
    let offset = i64::from(page) * limit;
    let mut conn = state.db.pool().acquire().await?;
    let rows = sqlx::query(&sql)
        .bind(&principal.id)
        .bind(limit + 1)
        .bind(offset)
        .fetch_all(&mut *conn)
        .await?;
    let has_more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    let mut conversations = Vec::with_capacity(rows.len());
    for row in rows
        .iter()
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
    {
        let id: String = row.try_get(0)?;
        let contact_id: String = row.try_get(1)?;
        let escalated: Option<String> = row.try_get(3)?;
        let business_number: String = row.try_get(4)?;
        let last_message: String = row.try_get(5)?;
        let channel: Option<String> = row.try_get(7)?;
        let last_secure: Option<String> = row.try_get(8)?;
        let unread: i64 = if principal.user_id().is_some() {
            row.try_get(9)?
        } else {
            0
        };
        let phone_sealed: Vec<u8> = row.try_get(10)?;
        let wrapped: Vec<u8> = row.try_get(11)?;
        let contact_masked = masked_phone(state, &contact_id, &wrapped, &phone_sealed)?;
        let current = consent::current(
            &mut conn,
            &contact_id,
            &business_number,
            state.compliance.opt_out_scope,
        )
        .await?;
        let secure_newer = last_secure
            .as_deref()
            .is_some_and(|s| s >= last_message.as_str());
        conversations.push(Summary {
            status: row.try_get(2)?,
            escalated: escalated.is_some(),
            channel: if secure_newer {
                "secure".to_owned()
            } else {
                channel.unwrap_or_else(|| "sms".to_owned())
            },
            last_activity: std::cmp::max(last_message, last_secure.unwrap_or_default()),
            assigned_user_id: row.try_get(6)?,
            unread,
            contact_masked,
            opted_out: current.state == consent::State::OptedOut,
            business_number,
            contact_id,
            id,
        });
    }
    Ok(Page {
        conversations,
        has_more,
    })
}

fn contact_key(
    state: &AppState,
    contact_id: &str,
    wrapped: &[u8],
) -> Result<SecretKey, InboxError> {
    Ok(state.vault.unwrap_data_key(wrapped, contact_id)?)
}

fn masked_phone(
    state: &AppState,
    contact_id: &str,
    wrapped: &[u8],
    sealed: &[u8],
) -> Result<String, InboxError> {
    let dek = contact_key(state, contact_id, wrapped)?;
    let phone = vault::open(
        &dek,
        sealed,
        Aad::new("contact", "phone_sealed", contact_id),
    )?;
    let phone = std::str::from_utf8(&phone)
        .ok()
        .and_then(|p| crate::phone::E164::parse(p).ok())
        .ok_or(InboxError::Vault)?;
    Ok(phone.masked())
}

/// A conversation's own row, as the checks need it.
#[derive(Debug, Clone)]
pub struct Conversation {
    pub id: String,
    pub contact_id: String,
    pub business_number: String,
    pub status: String,
    pub escalated_at: Option<String>,
    pub assigned_user_id: Option<String>,
    pub last_activity: String,
    pub flooded_at: Option<String>,
    data_key_wrapped: Vec<u8>,
    phone_sealed: Vec<u8>,
}

async fn load(
    conn: &mut AnyConnection,
    conversation_id: &str,
) -> Result<Option<Conversation>, sqlx::Error> {
    let Some(row) = sqlx::query(
        "SELECT v.conversation_id, v.contact_id, v.business_number, v.status, v.escalated_at, \
         v.assigned_user_id, v.last_message_at, v.flooded_at, c.data_key_wrapped, c.phone_sealed \
         FROM conversation v JOIN contact c ON c.contact_id = v.contact_id WHERE v.conversation_id = $1",
    )
    .bind(conversation_id)
    .fetch_optional(conn)
    .await?
    else {
        return Ok(None);
    };
    Ok(Some(Conversation {
        id: row.try_get(0)?,
        contact_id: row.try_get(1)?,
        business_number: row.try_get(2)?,
        status: row.try_get(3)?,
        escalated_at: row.try_get(4)?,
        assigned_user_id: row.try_get(5)?,
        last_activity: row.try_get(6)?,
        flooded_at: row.try_get(7)?,
        data_key_wrapped: row.try_get(8)?,
        phone_sealed: row.try_get(9)?,
    }))
}

/// The conversation, if `principal` may see it, with how much. A conversation the principal may
/// not see is reported as not found: its existence is not disclosed.
///
/// # Errors
/// [`InboxError::NotFound`]; database errors.
pub async fn conversation(
    conn: &mut AnyConnection,
    principal: &Principal,
    conversation_id: &str,
) -> Result<(Conversation, Access), InboxError> {
    let conversation = load(conn, conversation_id)
        .await?
        .ok_or(InboxError::NotFound("conversation"))?;
    let access = access(principal, conversation.assigned_user_id.as_deref())
        .ok_or(InboxError::NotFound("conversation"))?;
    Ok((conversation, access))
}

/// Like [`conversation`], and the principal must be able to act on it (agents and supervisors
/// with full access).
///
/// # Errors
/// [`InboxError::Forbidden`] for roles that do not act on conversations.
pub async fn actionable(
    conn: &mut AnyConnection,
    principal: &Principal,
    conversation_id: &str,
    what: &'static str,
) -> Result<Conversation, InboxError> {
    if !acts_on_conversations(principal) {
        return Err(InboxError::Forbidden(what));
    }
    let (conversation, access) = self::conversation(conn, principal, conversation_id).await?;
    if access != Access::Full {
        return Err(InboxError::Forbidden(what));
    }
    Ok(conversation)
}

/// One message of a thread.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ThreadMessage {
    pub id: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// `sms`, `mms`, `rcs` or `secure`.
    pub channel: String,
    /// As stored (redacted); `None` when withheld (secure-channel messages, and everything for
    /// compliance) until revealed.
    pub body: Option<String>,
    /// Whether the body is withheld pending a reveal.
    pub withheld: bool,
    /// Types and counts of what was removed: `{"CARD_NUMBER": 1}`.
    pub findings: serde_json::Value,
    pub status: String,
    pub status_error_code: Option<String>,
    /// Held by quiet hours until then.
    pub held_until: Option<String>,
    pub media_count: i64,
    pub created_at: String,
}

/// An internal note.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Note {
    pub id: String,
    pub author_user_id: String,
    pub body: String,
    pub created_at: String,
}

/// A conversation with its messages, as a principal may see it.
#[derive(Debug, Clone)]
pub struct Thread {
    pub conversation: Conversation,
    pub access: Access,
    pub contact_masked: String,
    pub messages: Vec<ThreadMessage>,
    /// Internal notes (empty for principals without full access).
    pub notes: Vec<Note>,
    pub consent: consent::Current,
}

/// Reads a thread; audited as `conversation.view` (the console's live updates read a single new
/// message the same way, see [`message`]). Marks it read for a console user.
///
/// # Errors
/// [`InboxError::NotFound`] when missing or not visible; database, sealing and audit errors.
pub async fn thread(
    state: &AppState,
    principal: &Principal,
    conversation_id: &str,
) -> Result<Thread, InboxError> {
    let mut conn = state.db.pool().acquire().await?;
    let (conversation, access) = conversation(&mut conn, principal, conversation_id).await?;
    let dek = contact_key(
        state,
        &conversation.contact_id,
        &conversation.data_key_wrapped,
    )?;
    let contact_masked = masked_phone(
        state,
        &conversation.contact_id,
        &conversation.data_key_wrapped,
        &conversation.phone_sealed,
    )?;
    let messages = read_messages(&mut conn, &dek, access, conversation_id, None).await?;
    let notes = if access == Access::Full {
        read_notes(&mut conn, &dek, conversation_id).await?
    } else {
        Vec::new()
    };
    let consent = consent::current(
        &mut conn,
        &conversation.contact_id,
        &conversation.business_number,
        state.compliance.opt_out_scope,
    )
    .await?;
    drop(conn);
    record_view(state, principal, conversation_id, messages.len(), "thread").await?;
    Ok(Thread {
        conversation,
        access,
        contact_masked,
        messages,
        notes,
        consent,
    })
}

/// One message of a conversation (the console's live update of a new or changed message);
/// audited as a `conversation.view` of one message.
///
/// # Errors
/// As [`thread`]; [`InboxError::NotFound`] for a message not in the conversation.
pub async fn message(
    state: &AppState,
    principal: &Principal,
    conversation_id: &str,
    message_id: &str,
) -> Result<ThreadMessage, InboxError> {
    let mut conn = state.db.pool().acquire().await?;
    let (conversation, access) = conversation(&mut conn, principal, conversation_id).await?;
    let dek = contact_key(
        state,
        &conversation.contact_id,
        &conversation.data_key_wrapped,
    )?;
    let mut messages =
        read_messages(&mut conn, &dek, access, conversation_id, Some(message_id)).await?;
    drop(conn);
    let message = messages.pop().ok_or(InboxError::NotFound("message"))?;
    record_view(state, principal, conversation_id, 1, "live").await?;
    Ok(message)
}

async fn record_view(
    state: &AppState,
    principal: &Principal,
    conversation_id: &str,
    count: usize,
    how: &'static str,
) -> Result<(), InboxError> {
    let now = state.clock.timestamp();
    let mut tx = state.db.pool().begin().await?;
    if let Some(user) = principal.user_id() {
        sqlx::query(
            "INSERT INTO conversation_read (conversation_id, user_id, read_at) VALUES ($1, $2, $3) \
             ON CONFLICT (conversation_id, user_id) DO UPDATE SET read_at = excluded.read_at",
        )
        .bind(conversation_id)
        .bind(user)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
    }
    let event = Event::new(principal.actor(), "conversation.view")
        .subject("conversation", conversation_id)
        .detail("messages", count)
        .detail("via", how);
    audit::append(&mut tx, state.vault.audit_key(), &event, &now).await?;
    tx.commit().await?;
    Ok(())
}

async fn read_messages(
    conn: &mut AnyConnection,
    dek: &SecretKey,
    access: Access,
    conversation_id: &str,
    only: Option<&str>,
) -> Result<Vec<ThreadMessage>, InboxError> {
    let rows = sqlx::query(
        "SELECT m.message_id, m.direction, m.channel, m.body_sealed, m.findings, m.status, \
         m.status_error_code, m.media_count, m.created_at, \
         (SELECT o.next_attempt_at FROM outbox o WHERE o.message_id = m.message_id AND o.state = 'pending' AND o.error_class = 'quiet_hours') \
         FROM message m WHERE m.conversation_id = $1 AND ($2 = '' OR m.message_id = $2) ORDER BY m.created_at, m.message_id",
    )
    .bind(conversation_id)
    .bind(only.unwrap_or(""))
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: String = row.try_get(0)?;
        let body = if access == Access::Full {
            let sealed: Vec<u8> = row.try_get(3)?;
            let plain = vault::open(dek, &sealed, Aad::new("message", "body_sealed", &id))?;
            Some(String::from_utf8_lossy(&plain).into_owned())
        } else {
            None
        };
        let findings: String = row.try_get(4)?;
        out.push(ThreadMessage {
            withheld: body.is_none(),
            body,
            direction: row.try_get(1)?,
            channel: row.try_get(2)?,
            findings: serde_json::from_str(&findings).unwrap_or_default(),
            status: row.try_get(5)?,
            status_error_code: row.try_get(6)?,
            media_count: row.try_get(7)?,
            created_at: row.try_get(8)?,
            held_until: row.try_get(9)?,
            id,
        });
    }
    let secure = sqlx::query(
        "SELECT secure_message_id, direction, findings, created_at FROM secure_message \
         WHERE conversation_id = $1 AND ($2 = '' OR secure_message_id = $2) ORDER BY created_at, secure_message_id",
    )
    .bind(conversation_id)
    .bind(only.unwrap_or(""))
    .fetch_all(&mut *conn)
    .await?;
    for row in &secure {
        let findings: String = row.try_get(2)?;
        out.push(ThreadMessage {
            id: row.try_get(0)?,
            direction: row.try_get(1)?,
            channel: "secure".to_owned(),
            body: None,
            withheld: true,
            findings: serde_json::from_str(&findings).unwrap_or_default(),
            status: "stored".to_owned(),
            status_error_code: None,
            held_until: None,
            media_count: 0,
            created_at: row.try_get(3)?,
        });
    }
    out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    Ok(out)
}

async fn read_notes(
    conn: &mut AnyConnection,
    dek: &SecretKey,
    conversation_id: &str,
) -> Result<Vec<Note>, InboxError> {
    let rows = sqlx::query(
        "SELECT note_id, author_user_id, body_sealed, created_at FROM note WHERE conversation_id = $1 ORDER BY created_at, note_id",
    )
    .bind(conversation_id)
    .fetch_all(conn)
    .await?;
    let mut notes = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: String = row.try_get(0)?;
        let sealed: Vec<u8> = row.try_get(2)?;
        let plain = vault::open(dek, &sealed, Aad::new("note", "body_sealed", &id))?;
        notes.push(Note {
            author_user_id: row.try_get(1)?,
            body: String::from_utf8_lossy(&plain).into_owned(),
            created_at: row.try_get(3)?,
            id,
        });
    }
    Ok(notes)
}

/// Longest reveal reason, in characters.
pub const MAX_REASON_CHARS: usize = 200;

/// Shows one message's full body to a principal who gives a reason: a secure-channel message
/// (agents and supervisors who can see the conversation, and compliance), or any message
/// (compliance, who see no content otherwise). Audited as `message.reveal` with the reason.
///
/// The reason goes into the audit trail, which can never be edited, so it must hold no customer
/// data: a reason in which the redaction engine finds anything, or that holds an e-mail address
/// or a long digit run, is refused.
///
/// # Errors
/// [`InboxError::Refused`] for a missing or unusable reason; not found; forbidden for admins.
pub async fn reveal(
    state: &AppState,
    principal: &Principal,
    message_id: &str,
    reason: &str,
) -> Result<String, InboxError> {
    if !matches!(
        principal.role,
        Role::Agent | Role::Supervisor | Role::Compliance
    ) {
        return Err(InboxError::Forbidden("reveal messages"));
    }
    let reason = reason.trim();
    if reason.chars().count() < 3 || reason.chars().count() > MAX_REASON_CHARS {
        return Err(InboxError::refused(
            422,
            "reason_required",
            format!("a reveal needs a reason of 3 to {MAX_REASON_CHARS} characters"),
        ));
    }
    if !state
        .redactor
        .current()
        .redact(reason, Direction::Inbound)
        .findings
        .is_empty()
    {
        return Err(InboxError::refused(
            422,
            "reason_refused",
            "the reason is kept in the audit trail forever and must hold no customer data",
        ));
    }
    let mut conn = state.db.pool().acquire().await?;
    let (conversation_id, table) = match sqlx::query(
        "SELECT conversation_id, 'message' FROM message WHERE message_id = $1 \
         UNION ALL SELECT conversation_id, 'secure_message' FROM secure_message WHERE secure_message_id = $1",
    )
    .bind(message_id)
    .fetch_optional(&mut *conn)
    .await?
    {
        Some(row) => (row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?),
        None => return Err(InboxError::NotFound("message")),
    };
    let (conversation, access) = match conversation(&mut conn, principal, &conversation_id).await {
        Ok(found) => found,
        Err(InboxError::NotFound(_)) => return Err(InboxError::NotFound("message")),
        Err(other) => return Err(other),
    };
    let _ = access;
    let column_sql = if table == "message" {
        "SELECT body_sealed FROM message WHERE message_id = $1"
    } else {
        "SELECT body_sealed FROM secure_message WHERE secure_message_id = $1"
    };
    let sealed: Vec<u8> = sqlx::query(column_sql)
        .bind(message_id)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    drop(conn);
    let dek = contact_key(
        state,
        &conversation.contact_id,
        &conversation.data_key_wrapped,
    )?;
    let plain = vault::open(&dek, &sealed, Aad::new(&table, "body_sealed", message_id))?;
    let body = String::from_utf8_lossy(&plain).into_owned();
    let event = Event::new(principal.actor(), "message.reveal")
        .subject("message", message_id)
        .subject("conversation", &conversation_id)
        .detail(
            "channel",
            if table == "message" {
                "carrier"
            } else {
                "secure"
            },
        )
        .detail("reason", reason);
    if event.validate().is_err() {
        return Err(InboxError::refused(
            422,
            "reason_refused",
            "the reason is kept in the audit trail forever: no e-mail addresses or long numbers",
        ));
    }
    let now = state.clock.timestamp();
    let mut tx = state.db.pool().begin().await?;
    audit::append(&mut tx, state.vault.audit_key(), &event, &now).await?;
    tx.commit().await?;
    Ok(body)
}

/// Assigns a conversation to a user (`None`: releases it). Supervisors assign to any enabled
/// agent or supervisor; agents may take an unassigned conversation or release their own.
/// Audited as `conversation.assign`.
///
/// # Errors
/// Forbidden, not found, or [`InboxError::Refused`] for an assignee who cannot take it.
pub async fn assign(
    state: &AppState,
    principal: &Principal,
    conversation_id: &str,
    assignee: Option<&str>,
) -> Result<(), InboxError> {
    let mut tx = state.db.pool().begin().await?;
    store::conversations::lock(&mut tx, conversation_id).await?;
    let conversation =
        actionable(&mut tx, principal, conversation_id, "assign conversations").await?;
    if principal.role == Role::Agent {
        let own = principal.user_id();
        let allowed = match assignee {
            Some(user) => Some(user) == own,
            None => conversation.assigned_user_id.as_deref() == own,
        };
        if !allowed || own.is_none() {
            return Err(InboxError::Forbidden(
                "assign conversations to others (agents take or release their own)",
            ));
        }
    }
    if let Some(user) = assignee {
        let row = sqlx::query("SELECT role, disabled_at FROM app_user WHERE user_id = $1")
            .bind(user)
            .fetch_optional(&mut *tx)
            .await?;
        let assignable = row.is_some_and(|r| {
            let role: String = r.try_get(0).unwrap_or_default();
            let disabled: Option<String> = r.try_get(1).unwrap_or_default();
            disabled.is_none() && (role == "agent" || role == "supervisor")
        });
        if !assignable {
            return Err(InboxError::refused(
                422,
                "unknown_assignee",
                "`user_id` must name an enabled agent or supervisor",
            ));
        }
    }
    let now = state.clock.timestamp();
    sqlx::query(
        "UPDATE conversation SET assigned_user_id = $1, updated_at = $2 WHERE conversation_id = $3",
    )
    .bind(assignee)
    .bind(&now)
    .bind(conversation_id)
    .execute(&mut *tx)
    .await?;
    // The assignee is a subject (an id), not a detail: details refuse digit runs, which ids have.
    let event = Event::new(principal.actor(), "conversation.assign")
        .subject("conversation", conversation_id);
    let event = match assignee {
        Some(user) => event.subject("user", user),
        None => event.detail("assignee", "none"),
    };
    audit::append(&mut tx, state.vault.audit_key(), &event, &now).await?;
    tx.commit().await?;
    state.live.changed();
    Ok(())
}

/// Closes (`open = false`) or reopens a conversation; audited. Reopening fails with 409
/// `conversation_open` when the contact already has another open conversation with the number.
///
/// # Errors
/// Forbidden, not found, refused.
pub async fn set_open(
    state: &AppState,
    principal: &Principal,
    conversation_id: &str,
    open: bool,
) -> Result<(), InboxError> {
    let mut tx = state.db.pool().begin().await?;
    store::conversations::lock(&mut tx, conversation_id).await?;
    let conversation = actionable(
        &mut tx,
        principal,
        conversation_id,
        if open {
            "reopen conversations"
        } else {
            "close conversations"
        },
    )
    .await?;
    let now = state.clock.timestamp();
    let (status, action) = if open {
        ("open", "conversation.reopen")
    } else {
        ("closed", "conversation.close")
    };
    if conversation.status == status {
        return Ok(());
    }
    if open {
        let other = sqlx::query(
            "SELECT 1 FROM conversation WHERE contact_id = $1 AND business_number = $2 AND status = 'open'",
        )
        .bind(&conversation.contact_id)
        .bind(&conversation.business_number)
        .fetch_optional(&mut *tx)
        .await?;
        if other.is_some() {
            return Err(InboxError::refused(
                409,
                "conversation_open",
                "the contact has a newer open conversation with this number; continue there",
            ));
        }
    }
    sqlx::query(
        "UPDATE conversation SET status = $1, closed_at = $2, updated_at = $3 WHERE conversation_id = $4",
    )
    .bind(status)
    .bind((!open).then_some(now.as_str()))
    .bind(&now)
    .bind(conversation_id)
    .execute(&mut *tx)
    .await?;
    let event = Event::new(principal.actor(), action).subject("conversation", conversation_id);
    audit::append(&mut tx, state.vault.audit_key(), &event, &now).await?;
    if !open {
        // A closed conversation's secure link ends with it.
        let ended = crate::escalation::links::end_active(
            &mut tx,
            conversation_id,
            &principal.actor_string(),
            &now,
        )
        .await?;
        for link in &ended {
            let event = Event::new(principal.actor(), "secure_link.revoke")
                .subject("conversation", conversation_id)
                .subject("secure_link", link)
                .detail("reason", "closed");
            audit::append(&mut tx, state.vault.audit_key(), &event, &now).await?;
        }
    }
    tx.commit().await?;
    state.live.changed();
    Ok(())
}

/// Longest note, in characters.
pub const MAX_NOTE_CHARS: usize = 4000;

/// Adds an internal note, redacted as an inbound message would be (a card number typed into a
/// note is not kept either) and sealed under the contact's data key. Audited as `note.add`
/// (without its text). Returns the note's id.
///
/// # Errors
/// Forbidden, not found, refused (empty or too long).
pub async fn add_note(
    state: &AppState,
    principal: &Principal,
    conversation_id: &str,
    text: &str,
) -> Result<String, InboxError> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > MAX_NOTE_CHARS {
        return Err(InboxError::refused(
            422,
            "note_length",
            format!("a note holds 1 to {MAX_NOTE_CHARS} characters"),
        ));
    }
    let Some(author) = principal.user_id() else {
        return Err(InboxError::Forbidden("write notes (console users only)"));
    };
    let redacted = state.redactor.current().redact(text, Direction::Inbound);
    let mut tx = state.db.pool().begin().await?;
    let conversation = actionable(&mut tx, principal, conversation_id, "write notes").await?;
    let dek = contact_key(
        state,
        &conversation.contact_id,
        &conversation.data_key_wrapped,
    )?;
    let id = store::new_id();
    let sealed = vault::seal(
        &dek,
        redacted.text.as_bytes(),
        Aad::new("note", "body_sealed", &id),
    )?;
    let now = state.clock.timestamp();
    sqlx::query(
        "INSERT INTO note (note_id, conversation_id, author_user_id, body_sealed, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(conversation_id)
    .bind(author)
    .bind(sealed)
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    let event = Event::new(principal.actor(), "note.add")
        .subject("conversation", conversation_id)
        .subject("note", &id)
        .detail("redacted", redacted.summary().to_json());
    audit::append(&mut tx, state.vault.audit_key(), &event, &now).await?;
    tx.commit().await?;
    Ok(id)
}

/// Queues a reply after the authorization check and the outbound gate (consent, quiet hours,
/// DLP): see [`crate::compliance::outbound::send_reply`].
///
/// # Errors
/// Forbidden or not found; the gate's refusals as [`GateError`](crate::compliance::outbound::GateError).
pub async fn reply(
    state: &AppState,
    principal: &Principal,
    conversation_id: &str,
    body: &str,
) -> Result<
    Result<crate::compliance::outbound::Sent, crate::compliance::outbound::GateError>,
    InboxError,
> {
    {
        let mut conn = state.db.pool().acquire().await?;
        actionable(&mut conn, principal, conversation_id, "send messages").await?;
    }
    let sent = crate::compliance::outbound::send_reply(state, conversation_id, body).await;
    if sent.is_ok() {
        state.live.changed();
    }
    if let Err(crate::compliance::outbound::GateError::Refused(
        crate::compliance::outbound::Refusal::Sensitive(refusal),
    )) = &sent
    {
        record_dlp_refusal(state, principal, conversation_id, refusal).await;
    }
    Ok(sent)
}

/// Records an outbound DLP refusal as the audit event `outbound.dlp_refused` (by the staff
/// member, on the conversation, with the types found — never the text): the durable, content-free
/// record the compliance reports count. The refusal stands whether or not it could be recorded;
/// a failure to record is logged.
async fn record_dlp_refusal(
    state: &AppState,
    principal: &Principal,
    conversation_id: &str,
    refusal: &crate::compliance::dlp::Refusal,
) {
    let types: Vec<&str> = refusal.types.iter().copied().collect();
    let event = Event::new(principal.actor(), "outbound.dlp_refused")
        .subject("conversation", conversation_id)
        .detail("types", types);
    let recorded = async {
        let mut tx = state.db.pool().begin().await?;
        audit::append(
            &mut tx,
            state.vault.audit_key(),
            &event,
            &state.clock.timestamp(),
        )
        .await?;
        tx.commit().await?;
        Ok::<(), audit::AuditError>(())
    }
    .await;
    if let Err(error) = recorded {
        tracing::error!(%error, "outbound DLP refusal could not be recorded in the audit trail");
    }
}

/// The contact's id behind a conversation the principal may see (for the contact routes).
///
/// # Errors
/// Not found.
pub async fn contact_of(
    state: &AppState,
    principal: &Principal,
    conversation_id: &str,
) -> Result<String, InboxError> {
    let mut conn = state.db.pool().acquire().await?;
    let (conversation, _) = conversation(&mut conn, principal, conversation_id).await?;
    Ok(conversation.contact_id)
}

/// Whether `principal` may see anything of the contact: some conversation of theirs is visible.
///
/// # Errors
/// Database errors.
pub async fn may_see_contact(
    state: &AppState,
    principal: &Principal,
    contact_id: &str,
) -> Result<bool, InboxError> {
    let mut conn = state.db.pool().acquire().await?;
    let rows = sqlx::query("SELECT assigned_user_id FROM conversation WHERE contact_id = $1")
        .bind(contact_id)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.iter().any(|r| {
        let assigned: Option<String> = r.try_get(0).unwrap_or_default();
        access(principal, assigned.as_deref()).is_some()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_by_role() {
        let agent = Principal::user("a1", Role::Agent);
        assert_eq!(access(&agent, None), Some(Access::Full));
        assert_eq!(access(&agent, Some("a1")), Some(Access::Full));
        assert_eq!(access(&agent, Some("a2")), None);
        let supervisor = Principal::user("s1", Role::Supervisor);
        assert_eq!(access(&supervisor, Some("a2")), Some(Access::Full));
        let compliance = Principal::user("c1", Role::Compliance);
        assert_eq!(access(&compliance, Some("a2")), Some(Access::Metadata));
        let admin = Principal::user("ad", Role::Admin);
        assert_eq!(access(&admin, None), None);
        assert!(!acts_on_conversations(&compliance));
        assert!(acts_on_conversations(&agent));
    }

    #[test]
    fn filters_round_trip() {
        for filter in Filter::ALL {
            assert_eq!(Filter::parse(filter.as_str()), Some(filter));
        }
        assert_eq!(Filter::parse("everything"), None);
    }
}
