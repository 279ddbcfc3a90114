//! Rule hit counts: how many stored messages each rule matched, per UTC day.
//!
//! The pipeline counts in memory after each commit ([`HitCounter::record`]), and the rules watcher
//! adds the counts to `rule_hit` every few seconds ([`HitCounter::flush`]; the rule page flushes
//! before it reads). Counts are statistics for the rule editor, not records: an instance that
//! dies loses at most its last few seconds of counts. Keys are rule ids (configuration), never
//! message content.

use crate::store::Db;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

/// Counts not yet written, by (day, rule id).
#[derive(Debug, Default)]
pub struct HitCounter {
    pending: Mutex<HashMap<(String, String), i64>>,
}

impl HitCounter {
    /// Counts one message's matched rules on `at`'s UTC day.
    pub fn record(&self, at: chrono::DateTime<chrono::Utc>, rules: &BTreeSet<&str>) {
        if rules.is_empty() {
            return;
        }
        let day = at.format("%Y-%m-%d").to_string();
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for rule in rules {
            *pending
                .entry((day.clone(), (*rule).to_owned()))
                .or_insert(0) += 1;
        }
    }

    /// Adds the pending counts to the database. On an error the counts not written are kept for
    /// the next flush.
    ///
    /// # Errors
    /// Database errors.
    pub async fn flush(&self, db: &Db) -> Result<(), sqlx::Error> {
        let taken: Vec<((String, String), i64)> = std::mem::take(
            &mut *self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
        .into_iter()
        .collect();
        let mut rest = taken.into_iter();
        while let Some(((day, rule), hits)) = rest.next() {
            let written = sqlx::query(
                "INSERT INTO rule_hit (day, rule_id, hits) VALUES ($1, $2, $3) \
                 ON CONFLICT (day, rule_id) DO UPDATE SET hits = rule_hit.hits + excluded.hits",
            )
            .bind(&day)
            .bind(&rule)
            .bind(hits)
            .execute(db.pool())
            .await;
            if let Err(error) = written {
                let mut pending = self
                    .pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                for ((day, rule), hits) in std::iter::once(((day, rule), hits)).chain(rest) {
                    *pending.entry((day, rule)).or_insert(0) += hits;
                }
                return Err(error);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
impl HitCounter {
    pub(crate) fn pending_for_tests(&self) -> HashMap<(String, String), i64> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}
