//! Canned replies: texts supervisors prepare for agents. Each is checked by the outbound DLP when
//! saved (a canned reply holding a card number could otherwise be sent a thousand times) and
//! again when sent, like any reply. Titles and bodies are sealed under the vault's staff key.

use super::InboxError;
use crate::accounts::Principal;
use crate::audit::{self, Event};
use crate::compliance::dlp;
use crate::store::{self, tokens::Role};
use crate::vault::Aad;
use crate::web::AppState;
use sqlx::Row;

/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 80;
/// Longest body, in characters (ten SMS segments).
pub const MAX_BODY_CHARS: usize = 1600;

/// A canned reply.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Canned {
    pub id: String,
    pub title: String,
    pub body: String,
}

/// Every canned reply, by title, for agents and supervisors.
///
/// # Errors
/// Forbidden for other roles; database and sealing errors.
pub async fn list(state: &AppState, principal: &Principal) -> Result<Vec<Canned>, InboxError> {
    if !super::acts_on_conversations(principal) {
        return Err(InboxError::Forbidden("read canned replies"));
    }
    let mut conn = state.db.pool().acquire().await?;
    let rows = sqlx::query(
        "SELECT canned_reply_id, title_sealed, body_sealed FROM canned_reply WHERE deleted_at IS NULL",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: String = row.try_get(0)?;
        let title: Vec<u8> = row.try_get(1)?;
        let body: Vec<u8> = row.try_get(2)?;
        let title = state
            .vault
            .open_staff(&title, Aad::new("canned_reply", "title_sealed", &id))?;
        let body = state
            .vault
            .open_staff(&body, Aad::new("canned_reply", "body_sealed", &id))?;
        out.push(Canned {
            title: String::from_utf8_lossy(&title).into_owned(),
            body: String::from_utf8_lossy(&body).into_owned(),
            id,
        });
    }
    out.sort_by_key(|c| c.title.to_lowercase());
    Ok(out)
}

fn check(state: &AppState, title: &str, body: &str) -> Result<(), InboxError> {
    let refused = |code, message: String| InboxError::Refused {
        status: 422,
        code,
        message,
    };
    if title.trim().is_empty() || title.chars().count() > MAX_TITLE_CHARS {
        return Err(refused(
            "title_length",
            format!("a title holds 1 to {MAX_TITLE_CHARS} characters"),
        ));
    }
    if body.trim().is_empty() || body.chars().count() > MAX_BODY_CHARS {
        return Err(refused(
            "body_length",
            format!("a canned reply holds 1 to {MAX_BODY_CHARS} characters"),
        ));
    }
    let engine = state.redactor.current();
    for text in [title, body] {
        dlp::check(&engine, text)
            .map_err(|refusal| refused("sensitive_content", refusal.message()))?;
    }
    Ok(())
}

/// Saves a canned reply: a new one (`id` `None`) or a change to one. Supervisors only; refused
/// when the outbound DLP would refuse it. Audited (`canned_reply.create` / `.update`, without its
/// text). Returns the id.
///
/// # Errors
/// Forbidden, not found, refused.
pub async fn save(
    state: &AppState,
    principal: &Principal,
    id: Option<&str>,
    title: &str,
    body: &str,
) -> Result<String, InboxError> {
    if principal.role != Role::Supervisor {
        return Err(InboxError::Forbidden("manage canned replies"));
    }
    let (title, body) = (title.trim(), body.trim());
    check(state, title, body)?;
    let existing = id.is_some();
    let id = id.map_or_else(store::new_id, str::to_owned);
    let title_sealed = state.vault.seal_staff(
        title.as_bytes(),
        Aad::new("canned_reply", "title_sealed", &id),
    )?;
    let body_sealed = state.vault.seal_staff(
        body.as_bytes(),
        Aad::new("canned_reply", "body_sealed", &id),
    )?;
    let now = state.clock.timestamp();
    let mut tx = state.db.pool().begin().await?;
    let updated = sqlx::query(
        "UPDATE canned_reply SET title_sealed = $2, body_sealed = $3, updated_at = $4 \
         WHERE canned_reply_id = $1 AND deleted_at IS NULL",
    )
    .bind(&id)
    .bind(&title_sealed)
    .bind(&body_sealed)
    .bind(&now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let action = if existing {
        if updated != 1 {
            return Err(InboxError::NotFound("canned reply"));
        }
        "canned_reply.update"
    } else {
        sqlx::query(
            "INSERT INTO canned_reply (canned_reply_id, title_sealed, body_sealed, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(&id)
        .bind(&title_sealed)
        .bind(&body_sealed)
        .bind(principal.actor_string())
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        "canned_reply.create"
    };
    let event = Event::new(principal.actor(), action).subject("canned_reply", &id);
    audit::append(&mut tx, state.vault.audit_key(), &event, &now).await?;
    tx.commit().await?;
    Ok(id)
}

/// Deletes a canned reply (supervisors); audited.
///
/// # Errors
/// Forbidden, not found.
pub async fn delete(state: &AppState, principal: &Principal, id: &str) -> Result<(), InboxError> {
    if principal.role != Role::Supervisor {
        return Err(InboxError::Forbidden("manage canned replies"));
    }
    let now = state.clock.timestamp();
    let mut tx = state.db.pool().begin().await?;
    let deleted = sqlx::query(
        "UPDATE canned_reply SET deleted_at = $2, title_sealed = $3, body_sealed = $3 \
         WHERE canned_reply_id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(&now)
    .bind(Vec::<u8>::new())
    .execute(&mut *tx)
    .await?;
    if deleted.rows_affected() != 1 {
        return Err(InboxError::NotFound("canned reply"));
    }
    let event = Event::new(principal.actor(), "canned_reply.delete").subject("canned_reply", id);
    audit::append(&mut tx, state.vault.audit_key(), &event, &now).await?;
    tx.commit().await?;
    Ok(())
}
