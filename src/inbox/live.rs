//! Live updates: what changed in which conversation, for the console's event streams.
//!
//! One feed per instance reads the database for messages and conversations changed since its
//! last look, so a message that arrived through another instance (several instances share one
//! PostgreSQL) shows up as surely as one that arrived here. It looks every `console.live_poll`
//! (1 s by default), and at once when this instance changes something ([`Live::changed`]).
//! Changes go to every subscribed stream over a broadcast channel; each stream forwards only what
//! its principal may see (`crate::inbox::access`). Events carry ids and statuses, never content:
//! the page fetches what it shows through the same audited reads as everything else.
//!
//! Rows are read with an overlap of a few seconds behind the newest change seen, because a
//! transaction can commit a timestamp older than one already read; an event already sent is not
//! sent again (each is remembered with its version until it leaves the overlap).

use crate::store::{self, Db};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use sqlx::Row;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, Notify};

/// How far behind the newest change the feed reads again.
const OVERLAP: TimeDelta = TimeDelta::seconds(5);
/// Events buffered per subscriber before a slow one starts missing them (it then reloads).
const CAPACITY: usize = 1024;

/// One change, as streamed to the console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Change {
    /// A message was stored or its delivery status changed.
    Message {
        conversation_id: String,
        message_id: String,
        direction: String,
        status: String,
        #[serde(skip)]
        assigned_user_id: Option<String>,
    },
    /// A conversation was opened, assigned, closed or reopened, or has new activity.
    Conversation {
        conversation_id: String,
        status: String,
        assigned_user_id: Option<String>,
    },
}

impl Change {
    /// The conversation it concerns.
    #[must_use]
    pub fn conversation_id(&self) -> &str {
        match self {
            Self::Message {
                conversation_id, ..
            }
            | Self::Conversation {
                conversation_id, ..
            } => conversation_id,
        }
    }

    /// Who the conversation is assigned to (for filtering by access).
    #[must_use]
    pub fn assigned_user_id(&self) -> Option<&str> {
        match self {
            Self::Message {
                assigned_user_id, ..
            }
            | Self::Conversation {
                assigned_user_id, ..
            } => assigned_user_id.as_deref(),
        }
    }

    /// The SSE event name.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Message { .. } => "message",
            Self::Conversation { .. } => "conversation",
        }
    }
}

/// The feed's handle, shared by the state.
#[derive(Debug, Clone)]
pub struct Live {
    sender: broadcast::Sender<Change>,
    wake: Arc<Notify>,
}

impl Default for Live {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(CAPACITY).0,
            wake: Arc::new(Notify::new()),
        }
    }
}

impl Live {
    /// Something changed here: look now rather than at the next tick.
    pub fn changed(&self) {
        self.wake.notify_one();
    }

    /// A receiver of every change from now on.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.sender.subscribe()
    }

    /// Runs the feed until the task is dropped: reads changes every `interval` (or when woken)
    /// and broadcasts them. Database errors are logged and retried at the next tick.
    pub async fn run(self, db: Db, clock: crate::clock::Clock, interval: Duration) {
        let mut watermark = clock.now() - OVERLAP;
        let mut seen: HashMap<String, DateTime<Utc>> = HashMap::new();
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = self.wake.notified() => {}
            }
            if self.sender.receiver_count() == 0 {
                // Nobody is watching: skip the reads, but keep the watermark current.
                watermark = clock.now() - OVERLAP;
                seen.clear();
                continue;
            }
            match poll(&db, watermark - OVERLAP).await {
                Ok(changes) => {
                    for (at, key, change) in changes {
                        if seen.insert(key, at).is_none() {
                            let _ = self.sender.send(change);
                        }
                        watermark = watermark.max(at);
                    }
                    let horizon = watermark - OVERLAP - OVERLAP;
                    seen.retain(|_, at| *at >= horizon);
                }
                Err(error) => tracing::warn!(%error, "live updates: reading changes failed"),
            }
        }
    }
}

async fn poll(
    db: &Db,
    since: DateTime<Utc>,
) -> Result<Vec<(DateTime<Utc>, String, Change)>, sqlx::Error> {
    let since = store::timestamp(since);
    let mut conn = db.pool().acquire().await?;
    let messages = sqlx::query(
        "SELECT m.message_id, m.conversation_id, m.direction, m.status, m.status_updated_at, v.assigned_user_id \
         FROM message m JOIN conversation v ON v.conversation_id = m.conversation_id \
         WHERE m.status_updated_at >= $1 ORDER BY m.status_updated_at LIMIT 1000",
    )
    .bind(&since)
    .fetch_all(&mut *conn)
    .await?;
    // Secure-channel messages are stored once and never change status.
    let secure = sqlx::query(
        "SELECT s.secure_message_id, s.conversation_id, s.direction, 'stored', s.created_at, v.assigned_user_id \
         FROM secure_message s JOIN conversation v ON v.conversation_id = s.conversation_id \
         WHERE s.created_at >= $1 ORDER BY s.created_at LIMIT 1000",
    )
    .bind(&since)
    .fetch_all(&mut *conn)
    .await?;
    let conversations = sqlx::query(
        "SELECT conversation_id, status, assigned_user_id, updated_at FROM conversation \
         WHERE updated_at >= $1 ORDER BY updated_at LIMIT 1000",
    )
    .bind(&since)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(messages.len() + secure.len() + conversations.len());
    for row in &conversations {
        let at: String = row.try_get(3)?;
        let id: String = row.try_get(0)?;
        let status: String = row.try_get(1)?;
        let assigned: Option<String> = row.try_get(2)?;
        let key = format!("c/{id}/{at}/{status}/{}", assigned.as_deref().unwrap_or(""));
        out.push((
            store::parse_timestamp(&at).unwrap_or_default(),
            key,
            Change::Conversation {
                conversation_id: id,
                status,
                assigned_user_id: assigned,
            },
        ));
    }
    for row in messages.iter().chain(&secure) {
        let id: String = row.try_get(0)?;
        let status: String = row.try_get(3)?;
        let at: String = row.try_get(4)?;
        let key = format!("m/{id}/{status}/{at}");
        out.push((
            store::parse_timestamp(&at).unwrap_or_default(),
            key,
            Change::Message {
                message_id: id,
                conversation_id: row.try_get(1)?,
                direction: row.try_get(2)?,
                status,
                assigned_user_id: row.try_get(5)?,
            },
        ));
    }
    out.sort_by_key(|c| c.0);
    Ok(out)
}
