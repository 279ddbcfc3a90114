//! Reading the audit trail for people: [`Filter`] (actor, action or action prefix, subject, time
//! range), [`list`] newest first by `seq` with a cursor, and the CSV and JSON renderings the
//! browser and the API export.
//!
//! Filters are validated with the same rules as the events themselves (a subject id is an id, an
//! action a dotted word), so a filter never carries free text into SQL or into a log; values are
//! always bound parameters, and `LIKE` patterns escape `%`, `_` and `\`.

use super::{is_id, is_word};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Value};
use sqlx::{AnyConnection, Row};

/// Events per page unless asked otherwise.
pub const DEFAULT_LIMIT: i64 = 50;
/// The most events one page holds.
pub const MAX_LIMIT: i64 = 500;
/// The most events one export holds; past it the export says where to continue (`before`).
pub const MAX_EXPORT: i64 = 10_000;

/// Which events: every field optional; all given ones must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// `system`, `user`, `api_token` or `cli`.
    pub actor_kind: Option<String>,
    pub actor_id: Option<String>,
    /// An exact action (`consent.opt_out`), or a prefix ending in `.` (`secure_link.`).
    pub action: Option<String>,
    pub subject_kind: Option<String>,
    pub subject_id: Option<String>,
    /// From this time (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// Until this time (exclusive).
    pub until: Option<DateTime<Utc>>,
    /// Only events with a smaller `seq` (the cursor).
    pub before: Option<i64>,
}

/// A filter field that is not acceptable; the message names the field, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadFilter(pub &'static str);

/// The raw text of a filter, as a form or query string gives it (empty = not given).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct FilterText {
    #[serde(default)]
    pub actor_kind: Option<String>,
    #[serde(default)]
    pub actor_id: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub subject_kind: Option<String>,
    #[serde(default)]
    pub subject_id: Option<String>,
    /// RFC 3339 time or `YYYY-MM-DD` (the start of that day, UTC).
    #[serde(default)]
    pub from: Option<String>,
    /// RFC 3339 time (exclusive) or `YYYY-MM-DD` (that whole day included).
    #[serde(default)]
    pub until: Option<String>,
    /// The cursor: `next_cursor` of the previous page.
    #[serde(default)]
    pub before: Option<String>,
    /// Page size, 1 to 500.
    #[serde(default)]
    pub limit: Option<String>,
}

fn given(text: Option<&String>) -> Option<&str> {
    text.map(|t| t.trim()).filter(|t| !t.is_empty())
}

/// A time bound: RFC 3339, or a date (its start; with `end_of_day`, the next day's start).
fn parse_time(text: &str, end_of_day: bool) -> Option<DateTime<Utc>> {
    if let Some(at) = crate::store::parse_timestamp(text) {
        return Some(at);
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    let date = if end_of_day { date.succ_opt()? } else { date };
    Some(date.and_hms_opt(0, 0, 0)?.and_utc())
}

impl FilterText {
    /// The filter and page size.
    ///
    /// # Errors
    /// [`BadFilter`] naming the field.
    pub fn parse(&self) -> Result<(Filter, i64), BadFilter> {
        let actor_kind = given(self.actor_kind.as_ref())
            .map(|k| {
                ["system", "user", "api_token", "cli"]
                    .contains(&k)
                    .then(|| k.to_owned())
                    .ok_or(BadFilter("actor_kind is system, user, api_token or cli"))
            })
            .transpose()?;
        let actor_id = given(self.actor_id.as_ref())
            .map(|id| {
                is_id(id).then(|| id.to_owned()).ok_or(BadFilter(
                    "actor_id is an id: 1 to 128 characters of A-Z a-z 0-9 . _ : -",
                ))
            })
            .transpose()?;
        let action = given(self.action.as_ref())
            .map(|a| {
                let words = a.strip_suffix('.').unwrap_or(a);
                (a.len() <= 64 && !words.is_empty() && words.split('.').all(is_word))
                    .then(|| a.to_owned())
                    .ok_or(BadFilter(
                        "action is dotted lower-case words (consent.opt_out), or a prefix ending in a dot (secure_link.)",
                    ))
            })
            .transpose()?;
        let subject_kind = given(self.subject_kind.as_ref())
            .map(|k| {
                is_word(k).then(|| k.to_owned()).ok_or(BadFilter(
                    "subject_kind is a lower-case word (contact, conversation …)",
                ))
            })
            .transpose()?;
        let subject_id = given(self.subject_id.as_ref())
            .map(|id| {
                is_id(id).then(|| id.to_owned()).ok_or(BadFilter(
                    "subject_id is an id: 1 to 128 characters of A-Z a-z 0-9 . _ : -",
                ))
            })
            .transpose()?;
        let from = given(self.from.as_ref())
            .map(|t| {
                parse_time(t, false)
                    .ok_or(BadFilter("from is an RFC 3339 time or a date (YYYY-MM-DD)"))
            })
            .transpose()?;
        let until = given(self.until.as_ref())
            .map(|t| {
                parse_time(t, true).ok_or(BadFilter(
                    "until is an RFC 3339 time or a date (YYYY-MM-DD)",
                ))
            })
            .transpose()?;
        if let (Some(from), Some(until)) = (from, until) {
            if from >= until {
                return Err(BadFilter("from must be before until"));
            }
        }
        let before = given(self.before.as_ref())
            .map(|b| {
                b.parse::<i64>().ok().filter(|b| *b >= 1).ok_or(BadFilter(
                    "before is an event number from 1 (a page's next_cursor)",
                ))
            })
            .transpose()?;
        let limit = given(self.limit.as_ref())
            .map(|l| {
                l.parse::<i64>()
                    .ok()
                    .filter(|l| (1..=MAX_LIMIT).contains(l))
                    .ok_or(BadFilter("limit is a whole number from 1 to 500"))
            })
            .transpose()?
            .unwrap_or(DEFAULT_LIMIT);
        Ok((
            Filter {
                actor_kind,
                actor_id,
                action,
                subject_kind,
                subject_id,
                from,
                until,
                before,
            },
            limit,
        ))
    }
}

impl Filter {
    /// The names of the fields in use (for the `audit.export` event: names, not values).
    #[must_use]
    pub fn used(&self) -> Vec<&'static str> {
        let mut used = Vec::new();
        for (name, set) in [
            ("actor_kind", self.actor_kind.is_some()),
            ("actor_id", self.actor_id.is_some()),
            ("action", self.action.is_some()),
            ("subject_kind", self.subject_kind.is_some()),
            ("subject_id", self.subject_id.is_some()),
            ("from", self.from.is_some()),
            ("until", self.until.is_some()),
            ("before", self.before.is_some()),
        ] {
            if set {
                used.push(name);
            }
        }
        used
    }
}

/// `text` with `LIKE`'s special characters escaped (escape character `\`).
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

enum Bind {
    Text(String),
    Int(i64),
}

/// One event as read for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub seq: i64,
    pub at: String,
    pub actor_kind: String,
    pub actor_id: String,
    pub action: String,
    /// The stored JSON text.
    pub subjects: String,
    /// The stored JSON text.
    pub details: String,
    pub key_version: i64,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

impl EventRow {
    /// The event as JSON (subjects and details parsed, hashes in hex).
    #[must_use]
    pub fn to_json(&self) -> Value {
        json!({
            "seq": self.seq,
            "at": self.at,
            "actor": {"kind": self.actor_kind, "id": self.actor_id},
            "action": self.action,
            "subjects": serde_json::from_str::<Value>(&self.subjects).unwrap_or(Value::Null),
            "details": serde_json::from_str::<Value>(&self.details).unwrap_or(Value::Null),
            "key_version": self.key_version,
            "prev_hash": hex::encode(&self.prev_hash),
            "hash": hex::encode(&self.hash),
        })
    }

    /// Subjects as `kind:id` pairs, for display.
    #[must_use]
    pub fn subject_pairs(&self) -> Vec<(String, String)> {
        serde_json::from_str::<Vec<(String, String)>>(&self.subjects).unwrap_or_default()
    }
}

/// A page of events, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub events: Vec<EventRow>,
    /// Pass as `before` for the next (older) page; `None` on the last page.
    pub next_cursor: Option<i64>,
}

/// Up to `limit` events matching `filter`, newest first.
///
/// # Errors
/// Database errors.
pub async fn list(
    conn: &mut AnyConnection,
    filter: &Filter,
    limit: i64,
) -> Result<Page, sqlx::Error> {
    let mut sql = String::from(
        "SELECT seq, at, actor_kind, actor_id, action, subjects, details, key_version, prev_hash, hash \
         FROM audit_event WHERE 1 = 1",
    );
    let mut binds = Vec::new();
    let mut add = |sql: &mut String, clause: &str, bind: Bind| {
        binds.push(bind);
        sql.push_str(&clause.replace('?', &format!("${}", binds.len())));
    };
    if let Some(kind) = &filter.actor_kind {
        add(&mut sql, " AND actor_kind = ?", Bind::Text(kind.clone()));
    }
    if let Some(id) = &filter.actor_id {
        add(&mut sql, " AND actor_id = ?", Bind::Text(id.clone()));
    }
    if let Some(action) = &filter.action {
        if action.ends_with('.') {
            add(
                &mut sql,
                " AND action LIKE ? ESCAPE '\\'",
                Bind::Text(format!("{}%", like_escape(action))),
            );
        } else {
            add(&mut sql, " AND action = ?", Bind::Text(action.clone()));
        }
    }
    // Subjects are stored as compact JSON: [["kind","id"],…]; kinds and ids hold no quotes.
    match (&filter.subject_kind, &filter.subject_id) {
        (Some(kind), Some(id)) => add(
            &mut sql,
            " AND subjects LIKE ? ESCAPE '\\'",
            Bind::Text(format!(
                "%[\"{}\",\"{}\"]%",
                like_escape(kind),
                like_escape(id)
            )),
        ),
        (Some(kind), None) => add(
            &mut sql,
            " AND subjects LIKE ? ESCAPE '\\'",
            Bind::Text(format!("%[\"{}\",%", like_escape(kind))),
        ),
        (None, Some(id)) => add(
            &mut sql,
            " AND subjects LIKE ? ESCAPE '\\'",
            Bind::Text(format!("%,\"{}\"]%", like_escape(id))),
        ),
        (None, None) => {}
    }
    if let Some(from) = filter.from {
        add(
            &mut sql,
            " AND at >= ?",
            Bind::Text(crate::store::timestamp(from)),
        );
    }
    if let Some(until) = filter.until {
        add(
            &mut sql,
            " AND at < ?",
            Bind::Text(crate::store::timestamp(until)),
        );
    }
    if let Some(before) = filter.before {
        add(&mut sql, " AND seq < ?", Bind::Int(before));
    }
    add(
        &mut sql,
        " ORDER BY seq DESC LIMIT ?",
        Bind::Int(limit.saturating_add(1)),
    );
    let mut query = sqlx::query(&sql);
    for bind in binds {
        query = match bind {
            Bind::Text(text) => query.bind(text),
            Bind::Int(n) => query.bind(n),
        };
    }
    let rows = query.fetch_all(&mut *conn).await?;
    let mut events = Vec::with_capacity(rows.len());
    for row in &rows {
        events.push(EventRow {
            seq: row.try_get(0)?,
            at: row.try_get(1)?,
            actor_kind: row.try_get(2)?,
            actor_id: row.try_get(3)?,
            action: row.try_get(4)?,
            subjects: row.try_get(5)?,
            details: row.try_get(6)?,
            key_version: row.try_get(7)?,
            prev_hash: row.try_get(8)?,
            hash: row.try_get(9)?,
        });
    }
    let more = i64::try_from(events.len()).unwrap_or(i64::MAX) > limit;
    if more {
        events.truncate(usize::try_from(limit).unwrap_or(0));
    }
    let next_cursor = more.then(|| events.last().map(|e| e.seq)).flatten();
    Ok(Page {
        events,
        next_cursor,
    })
}

/// The CSV header of [`to_csv`].
pub const CSV_HEADER: [&str; 10] = [
    "seq",
    "at",
    "actor_kind",
    "actor_id",
    "action",
    "subjects",
    "details",
    "key_version",
    "prev_hash",
    "hash",
];

/// Events as CSV (with a header row; JSON columns as stored, hashes in hex).
///
/// # Errors
/// Writing failed (not expected in memory).
pub fn to_csv(events: &[EventRow]) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(CSV_HEADER)?;
    for e in events {
        writer.write_record([
            e.seq.to_string().as_str(),
            &e.at,
            &e.actor_kind,
            &e.actor_id,
            &e.action,
            &e.subjects,
            &e.details,
            &e.key_version.to_string(),
            &hex::encode(&e.prev_hash),
            &hex::encode(&e.hash),
        ])?;
    }
    writer
        .into_inner()
        .map_err(|e| csv::Error::from(std::io::Error::other(e.to_string())))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn text(pairs: &[(&str, &str)]) -> FilterText {
        let mut t = FilterText::default();
        for (k, v) in pairs {
            let v = Some((*v).to_owned());
            match *k {
                "actor_kind" => t.actor_kind = v,
                "actor_id" => t.actor_id = v,
                "action" => t.action = v,
                "subject_kind" => t.subject_kind = v,
                "subject_id" => t.subject_id = v,
                "from" => t.from = v,
                "until" => t.until = v,
                "before" => t.before = v,
                "limit" => t.limit = v,
                _ => unreachable!(),
            }
        }
        t
    }

    #[test]
    fn filters_parse_and_refuse_by_field() {
        let (f, limit) = text(&[
            ("action", "secure_link."),
            ("from", "2026-11-01"),
            ("until", "2026-11-02"),
            ("limit", "10"),
        ])
        .parse()
        .unwrap();
        assert_eq!(f.action.as_deref(), Some("secure_link."));
        assert_eq!(
            f.until.map(crate::store::timestamp).as_deref(),
            Some("2026-11-03T00:00:00.000000Z")
        );
        assert_eq!(limit, 10);
        assert_eq!(f.used(), vec!["action", "from", "until"]);
        for (pairs, field) in [
            (vec![("actor_kind", "robot")], "actor_kind"),
            (vec![("actor_id", "a@b.c")], "actor_id"),
            (vec![("action", "Consent.X")], "action"),
            (vec![("action", "%")], "action"),
            (vec![("subject_id", "+1 555 123")], "subject_id"),
            (vec![("from", "yesterday")], "from"),
            (
                vec![("from", "2026-11-02"), ("until", "2026-11-01")],
                "from",
            ),
            (vec![("before", "0")], "before"),
            (vec![("limit", "501")], "limit"),
        ] {
            let BadFilter(message) = text(&pairs).parse().unwrap_err();
            assert!(message.starts_with(field), "{message}");
            assert!(!message.contains("555") && !message.contains("@b"));
        }
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_escape("secure_link.%\\"), "secure\\_link.\\%\\\\");
    }

    #[test]
    fn csv_quotes_json_columns() {
        let row = EventRow {
            seq: 7,
            at: "2026-11-27T10:00:00.000000Z".into(),
            actor_kind: "user".into(),
            actor_id: "u-1".into(),
            action: "consent.opt_out".into(),
            subjects: r#"[["contact","c-1"]]"#.into(),
            details: r#"{"keyword":"STOP","n":1}"#.into(),
            key_version: 1,
            prev_hash: vec![0; 2],
            hash: vec![0xab; 2],
        };
        let csv = String::from_utf8(to_csv(&[row]).unwrap()).unwrap();
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let record = reader.records().next().unwrap().unwrap();
        assert_eq!(&record[5], r#"[["contact","c-1"]]"#);
        assert_eq!(&record[6], r#"{"keyword":"STOP","n":1}"#);
        assert_eq!(&record[9], "abab");
    }
}
