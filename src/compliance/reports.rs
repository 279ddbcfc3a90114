//! Compliance reports: counts per day (or per week for ranges over 62 days) from content-free
//! records, rendered as inline SVG bar charts, tables and CSV by the console
//! (`/compliance/reports`) and as JSON by the API (`/api/v1/reports/{name}`).
//!
//! | report | source |
//! |---|---|
//! | `redactions` | `message.findings` of inbound messages (type names and counts, never values), by the message's day |
//! | `escalations` | conversations escalated (`conversation.escalated_at`), secure links created (`secure_link.created_at`) and of those verified (`verified_at`), by the link's day; the completion rate is verified ÷ created |
//! | `opt_outs` | `consent_event` rows of kind `opt_out`, by source |
//! | `quiet_holds` | `quiet_hold` rows: a business message held by quiet hours (at queueing or by the worker) |
//! | `dlp_refusals` | audit events `outbound.dlp_refused` (a staff reply refused by outbound DLP), by type |
//!
//! Quiet-hour holds and DLP refusals were not recorded durably before issue #8 (the outbox clears
//! its `quiet_hours` mark when it sends; a refusal left only a 422): they are recorded from now on
//! ([`super::outbound::record_quiet_hold`], `inbox::reply`), so earlier ones are not counted.
//!
//! Days are UTC days, grouped in SQL with `substr(at, 1, 10)` on the RFC 3339 text (both
//! backends). Every query is bounded by the range and groups in the database, except the
//! redaction report, which groups by (day, findings JSON) and adds the types up here.

use chrono::{Datelike, Duration, NaiveDate};
use serde_json::{json, Value};
use sqlx::{AnyConnection, Row};
use std::collections::BTreeMap;

/// The reports, by name.
pub const NAMES: [&str; 5] = [
    "redactions",
    "escalations",
    "opt_outs",
    "quiet_holds",
    "dlp_refusals",
];

/// The default range: the last 30 days (today included).
pub const DEFAULT_DAYS: i64 = 30;
/// The longest range.
pub const MAX_DAYS: i64 = 732;
/// Ranges longer than this are bucketed by ISO week (Monday).
pub const DAILY_UP_TO: i64 = 62;

/// A date range, both ends included (UTC days).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Range {
    /// `from`/`to` as `YYYY-MM-DD` (either may be empty: the default is the 30 days to `today`).
    ///
    /// # Errors
    /// A message naming the field.
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        today: NaiveDate,
    ) -> Result<Self, &'static str> {
        let date = |t: Option<&str>, what| {
            t.map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| NaiveDate::parse_from_str(t, "%Y-%m-%d").map_err(|_| what))
                .transpose()
        };
        let to = date(to, "to is a date (YYYY-MM-DD)")?.unwrap_or(today);
        let from = date(from, "from is a date (YYYY-MM-DD)")?
            .unwrap_or(to - Duration::days(DEFAULT_DAYS - 1));
        if from > to {
            return Err("from must not be after to");
        }
        if (to - from).num_days() >= MAX_DAYS {
            return Err("the range is at most 732 days");
        }
        Ok(Self { from, to })
    }

    fn start(&self) -> String {
        format!("{}T00:00:00.000000Z", self.from.format("%Y-%m-%d"))
    }

    fn end(&self) -> String {
        let next = self.to.succ_opt().unwrap_or(self.to);
        format!("{}T00:00:00.000000Z", next.format("%Y-%m-%d"))
    }

    fn weekly(&self) -> bool {
        (self.to - self.from).num_days() >= DAILY_UP_TO
    }

    /// The buckets' labels, in order: every day, or every week's Monday.
    fn buckets(&self) -> Vec<NaiveDate> {
        let mut out = Vec::new();
        let mut day = self.bucket(self.from);
        while day <= self.to {
            out.push(day);
            day += Duration::days(if self.weekly() { 7 } else { 1 });
        }
        out
    }

    fn bucket(&self, day: NaiveDate) -> NaiveDate {
        if self.weekly() {
            day - Duration::days(i64::from(day.weekday().num_days_from_monday()))
        } else {
            day
        }
    }
}

/// One report: a count per bucket for each series.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub name: &'static str,
    pub title: &'static str,
    /// What the numbers count.
    pub description: &'static str,
    pub range: Range,
    /// `day` or `week`.
    pub bucket: &'static str,
    /// Series names (the columns).
    pub series: Vec<String>,
    /// Per bucket (label `YYYY-MM-DD`), one count per series.
    pub rows: Vec<(String, Vec<i64>)>,
    /// Named figures over the whole range (totals, the completion rate).
    pub summary: Vec<(String, String)>,
}

impl Report {
    /// Totals per series.
    #[must_use]
    pub fn totals(&self) -> Vec<i64> {
        let mut totals = vec![0; self.series.len()];
        for (_, counts) in &self.rows {
            for (t, c) in totals.iter_mut().zip(counts) {
                *t += c;
            }
        }
        totals
    }

    /// The report as JSON.
    #[must_use]
    pub fn to_json(&self) -> Value {
        json!({
            "report": self.name,
            "title": self.title,
            "description": self.description,
            "from": self.range.from.to_string(),
            "to": self.range.to.to_string(),
            "bucket": self.bucket,
            "series": self.series,
            "rows": self.rows.iter().map(|(label, counts)| {
                let mut row = serde_json::Map::new();
                row.insert(self.bucket.to_owned(), json!(label));
                for (name, count) in self.series.iter().zip(counts) {
                    row.insert(name.clone(), json!(count));
                }
                Value::Object(row)
            }).collect::<Vec<_>>(),
            "totals": self.series.iter().cloned().zip(self.totals()).collect::<BTreeMap<_, _>>(),
            "summary": self.summary.iter().cloned().collect::<BTreeMap<_, _>>(),
        })
    }

    /// The report as CSV: a header (`day` or `week`, then the series), a row per bucket.
    ///
    /// # Errors
    /// Writing failed (not expected in memory).
    pub fn to_csv(&self) -> Result<Vec<u8>, csv::Error> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let mut header = vec![self.bucket.to_owned()];
        header.extend(self.series.iter().cloned());
        writer.write_record(&header)?;
        for (label, counts) in &self.rows {
            let mut record = vec![label.clone()];
            record.extend(counts.iter().map(ToString::to_string));
            writer.write_record(&record)?;
        }
        writer
            .into_inner()
            .map_err(|e| csv::Error::from(std::io::Error::other(e.to_string())))
    }
}

/// Counts keyed by (bucket, series), folded into a [`Report`]'s rows.
struct Tally {
    range: Range,
    counts: BTreeMap<(NaiveDate, String), i64>,
}

impl Tally {
    fn new(range: Range) -> Self {
        Self {
            range,
            counts: BTreeMap::new(),
        }
    }

    fn add(&mut self, day: &str, series: &str, n: i64) {
        if let Ok(day) = NaiveDate::parse_from_str(day, "%Y-%m-%d") {
            *self
                .counts
                .entry((self.range.bucket(day), series.to_owned()))
                .or_default() += n;
        }
    }

    /// `series` first (in order), then any others found, sorted.
    fn into_report(
        self,
        name: &'static str,
        title: &'static str,
        description: &'static str,
        series: &[&str],
    ) -> Report {
        let mut names: Vec<String> = series.iter().map(|s| (*s).to_owned()).collect();
        let mut others: Vec<String> = self
            .counts
            .keys()
            .map(|(_, s)| s.clone())
            .filter(|s| !names.contains(s))
            .collect();
        others.sort();
        others.dedup();
        names.extend(others);
        let rows = self
            .range
            .buckets()
            .into_iter()
            .map(|bucket| {
                let counts = names
                    .iter()
                    .map(|s| self.counts.get(&(bucket, s.clone())).copied().unwrap_or(0))
                    .collect();
                (bucket.to_string(), counts)
            })
            .collect();
        Report {
            name,
            title,
            description,
            range: self.range,
            bucket: if self.range.weekly() { "week" } else { "day" },
            series: names,
            rows,
            summary: Vec::new(),
        }
    }
}

/// Runs `sql` (binding the range's start and end as $1 and $2), whose rows are (day, series,
/// count), into `tally`.
async fn grouped(
    conn: &mut AnyConnection,
    sql: &str,
    range: &Range,
    tally: &mut Tally,
) -> Result<(), sqlx::Error> {
    let rows = sqlx::query(sql)
        .bind(range.start())
        .bind(range.end())
        .fetch_all(&mut *conn)
        .await?;
    for row in rows {
        let day: String = row.try_get(0)?;
        let series: String = row.try_get(1)?;
        let count: i64 = row.try_get(2)?;
        tally.add(&day, &series, count);
    }
    Ok(())
}

/// The report `name` over `range`; `None` for an unknown name.
///
/// # Errors
/// Database errors.
pub async fn run(
    conn: &mut AnyConnection,
    name: &str,
    range: Range,
) -> Result<Option<Report>, sqlx::Error> {
    let mut tally = Tally::new(range);
    let report = match name {
        "redactions" => {
            let rows = sqlx::query(
                "SELECT substr(created_at, 1, 10), findings, COUNT(*) FROM message \
                 WHERE direction = 'inbound' AND created_at >= $1 AND created_at < $2 AND findings <> '{}' \
                 GROUP BY substr(created_at, 1, 10), findings",
            )
            .bind(range.start())
            .bind(range.end())
            .fetch_all(&mut *conn)
            .await?;
            for row in rows {
                let day: String = row.try_get(0)?;
                let findings: String = row.try_get(1)?;
                let messages: i64 = row.try_get(2)?;
                let parsed: BTreeMap<String, i64> =
                    serde_json::from_str(&findings).unwrap_or_default();
                for (kind, count) in parsed {
                    // Type names only (upper-case words): never anything else from the column.
                    if kind.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                        tally.add(&day, &kind, count.saturating_mul(messages));
                    }
                }
            }
            tally.into_report(
                "redactions",
                "Redactions by type",
                "Values redacted from inbound messages, by type",
                &[],
            )
        }
        "escalations" => {
            grouped(
                conn,
                "SELECT substr(escalated_at, 1, 10), 'conversations_escalated', COUNT(*) FROM conversation \
                 WHERE escalated_at >= $1 AND escalated_at < $2 GROUP BY substr(escalated_at, 1, 10)",
                &range,
                &mut tally,
            )
            .await?;
            grouped(
                conn,
                "SELECT substr(created_at, 1, 10), 'links_created', COUNT(*) FROM secure_link \
                 WHERE created_at >= $1 AND created_at < $2 GROUP BY substr(created_at, 1, 10)",
                &range,
                &mut tally,
            )
            .await?;
            grouped(
                conn,
                "SELECT substr(created_at, 1, 10), 'links_verified', COUNT(*) FROM secure_link \
                 WHERE created_at >= $1 AND created_at < $2 AND verified_at IS NOT NULL \
                 GROUP BY substr(created_at, 1, 10)",
                &range,
                &mut tally,
            )
            .await?;
            let mut report = tally.into_report(
                "escalations",
                "Escalations and secure-link completion",
                "Conversations escalated; secure links created, and of those verified by the customer (by the day the link was created)",
                &["conversations_escalated", "links_created", "links_verified"],
            );
            let totals = report.totals();
            let rate = if totals[1] == 0 {
                "n/a".to_owned()
            } else {
                // Counts are far below 2^52: exact in f64.
                #[allow(clippy::cast_precision_loss)]
                let percent = totals[2] as f64 * 100.0 / totals[1] as f64;
                format!("{percent:.1}%")
            };
            report.summary.push(("completion_rate".to_owned(), rate));
            report
        }
        "opt_outs" => {
            grouped(
                conn,
                "SELECT substr(at, 1, 10), source, COUNT(*) FROM consent_event \
                 WHERE kind = 'opt_out' AND at >= $1 AND at < $2 GROUP BY substr(at, 1, 10), source",
                &range,
                &mut tally,
            )
            .await?;
            tally.into_report(
                "opt_outs",
                "Opt-outs",
                "Opt-outs recorded in the consent ledger, by source",
                &[],
            )
        }
        "quiet_holds" => {
            grouped(
                conn,
                "SELECT substr(at, 1, 10), 'held', COUNT(DISTINCT message_id) FROM quiet_hold \
                 WHERE at >= $1 AND at < $2 GROUP BY substr(at, 1, 10)",
                &range,
                &mut tally,
            )
            .await?;
            tally.into_report(
                "quiet_holds",
                "Quiet-hour holds",
                "Business messages held by quiet hours in the contact's time zone",
                &["held"],
            )
        }
        "dlp_refusals" => {
            let rows = sqlx::query(
                "SELECT substr(at, 1, 10), details, COUNT(*) FROM audit_event \
                 WHERE action = 'outbound.dlp_refused' AND at >= $1 AND at < $2 \
                 GROUP BY substr(at, 1, 10), details",
            )
            .bind(range.start())
            .bind(range.end())
            .fetch_all(&mut *conn)
            .await?;
            for row in rows {
                let day: String = row.try_get(0)?;
                let details: String = row.try_get(1)?;
                let refusals: i64 = row.try_get(2)?;
                tally.add(&day, "refusals", refusals);
                let parsed: Value = serde_json::from_str(&details).unwrap_or(Value::Null);
                for kind in parsed["types"].as_array().into_iter().flatten() {
                    if let Some(kind) = kind.as_str() {
                        if kind.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                            tally.add(&day, kind, refusals);
                        }
                    }
                }
            }
            tally.into_report(
                "dlp_refusals",
                "Outbound DLP refusals",
                "Staff replies refused by outbound DLP (refusals, and the types they held)",
                &["refusals"],
            )
        }
        _ => return Ok(None),
    };
    Ok(Some(report))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn ranges_default_and_refuse() {
        let today = day("2026-11-28");
        let range = Range::parse(None, None, today).unwrap();
        assert_eq!((range.from, range.to), (day("2026-10-30"), today));
        assert_eq!(range.buckets().len(), 30);
        assert_eq!(range.end(), "2026-11-29T00:00:00.000000Z");
        assert!(Range::parse(Some("2026-11-29"), Some("2026-11-28"), today).is_err());
        assert!(Range::parse(Some("yesterday"), None, today).is_err());
        assert!(Range::parse(Some("2020-01-01"), None, today).is_err());
        let long = Range::parse(Some("2026-01-01"), None, today).unwrap();
        assert!(long.weekly());
        assert_eq!(long.buckets()[0], day("2025-12-29"));
    }

    #[test]
    fn tallies_fold_into_rows_and_csv() {
        let range =
            Range::parse(Some("2026-11-01"), Some("2026-11-03"), day("2026-11-28")).unwrap();
        let mut tally = Tally::new(range);
        tally.add("2026-11-01", "CARD_NUMBER", 2);
        tally.add("2026-11-03", "US_SSN", 1);
        tally.add("2026-11-03", "CARD_NUMBER", 1);
        let report = tally.into_report("redactions", "t", "d", &[]);
        assert_eq!(report.series, vec!["CARD_NUMBER", "US_SSN"]);
        assert_eq!(report.totals(), vec![3, 1]);
        let csv = String::from_utf8(report.to_csv().unwrap()).unwrap();
        assert_eq!(
            csv,
            "day,CARD_NUMBER,US_SSN\n2026-11-01,2,0\n2026-11-02,0,0\n2026-11-03,1,1\n"
        );
        assert_eq!(report.to_json()["totals"]["CARD_NUMBER"], 3);
    }
}
