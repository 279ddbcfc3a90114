//! Compliance pages: the audit trail browser and the reports.
//!
//! | route | roles | what |
//! |---|---|---|
//! | `GET /compliance/audit` | compliance | events newest first, filtered by actor, action (exact or `prefix.`), subject, time; 50 a page with "Older events" |
//! | `POST /compliance/audit/verify` | compliance, admin | walks the chain (`audit::verify`) and shows intact or the first bad event; audited `audit.verify` |
//! | `GET /compliance/audit/export/csv`, `…/export/json` | compliance | the filtered events (at most 10,000, newest first) as a download; audited `audit.export` |
//! | `GET /compliance/audit/anchor` | compliance | the signed head and checkpoint as JSON, to keep outside the database; audited `audit.export` |
//! | `GET /compliance/reports` | compliance, supervisor | the five reports as inline SVG charts with tables, `from`/`to` dates (default the last 30 days) |
//! | `GET /compliance/reports/csv/{name}` | compliance, supervisor | one report as CSV |
//!
//! Who: the audit trail is compliance's (it records admins' own actions, so admins do not browse
//! or export it; they may run the integrity check, which reveals no events). Reports hold counts
//! only and supervisors run the teams they describe, so supervisors see them too.
//!
//! What is audited: every download of the trail (`audit.export`, with the format, the number of
//! events and the names — not values — of the filters) and every verification from the console
//! or the API (`audit.verify`). Browsing pages is not recorded: the trail holds no customer
//! content, and an event per page would bury the events being looked for under the looking.

use super::auth::record;
use super::{csrf_field, html_response, page, ConsoleError, Staff};
use crate::audit::{self, query, Event};
use crate::compliance::reports::{self, Range, Report};
use crate::store::tokens::Role;
use crate::web::AppState;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};

/// Roles that browse and export the audit trail.
pub const AUDIT_ROLES: [Role; 1] = [Role::Compliance];
/// Roles that may run the integrity check.
pub const VERIFY_ROLES: [Role; 2] = [Role::Compliance, Role::Admin];
/// Roles that see the reports.
pub const REPORT_ROLES: [Role; 2] = [Role::Compliance, Role::Supervisor];

/// Registers the compliance pages.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/compliance/audit", web::get().to(audit_page))
        .route("/compliance/audit/verify", web::post().to(verify_page))
        .route("/compliance/audit/export/csv", web::get().to(export_csv))
        .route("/compliance/audit/export/json", web::get().to(export_json))
        .route("/compliance/audit/anchor", web::get().to(anchor))
        .route("/compliance/reports", web::get().to(reports_page))
        .route("/compliance/reports/csv/{name}", web::get().to(report_csv));
}

fn bad_request(message: &str) -> ConsoleError {
    ConsoleError::Refused(StatusCode::BAD_REQUEST, message.to_owned())
}

fn filter_of(req: &HttpRequest) -> Result<(query::FilterText, query::Filter, i64), ConsoleError> {
    let text = web::Query::<query::FilterText>::from_query(req.query_string())
        .map_err(|_| bad_request("Unknown or repeated filter field."))?
        .into_inner();
    let (filter, limit) = text.parse().map_err(|e| bad_request(e.0))?;
    Ok((text, filter, limit))
}

/// The query string of `text` with `before` replaced.
fn query_with(text: &query::FilterText, before: Option<i64>) -> String {
    let mut t = text.clone();
    t.before = before.map(|b| b.to_string());
    let pairs = [
        ("actor_kind", &t.actor_kind),
        ("actor_id", &t.actor_id),
        ("action", &t.action),
        ("subject_kind", &t.subject_kind),
        ("subject_id", &t.subject_id),
        ("from", &t.from),
        ("until", &t.until),
        ("before", &t.before),
        ("limit", &t.limit),
    ];
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v.as_deref().filter(|v| !v.trim().is_empty()) {
            out.append_pair(k, v);
        }
    }
    out.finish()
}

fn text_input(id: &str, label: &str, value: Option<&String>, hint: &str) -> Markup {
    html! {
        div.field {
            label for=(id) { (label) }
            input id=(id) name=(id) type="text" value=[value] placeholder=(hint);
        }
    }
}

fn verify_form(staff: &Staff) -> Markup {
    html! {
        form.inline #verify method="post" action="/compliance/audit/verify" {
            (csrf_field(&staff.csrf))
            button type="submit" { "Verify chain" }
        }
    }
}

async fn audit_page(
    state: web::Data<AppState>,
    staff: Staff,
    req: HttpRequest,
) -> Result<HttpResponse, ConsoleError> {
    staff.require(&AUDIT_ROLES, "read the audit trail")?;
    let (text, filter, limit) = filter_of(&req)?;
    let page_of = {
        let mut conn = state.db.pool().acquire().await?;
        query::list(&mut conn, &filter, limit).await?
    };
    let kinds = ["", "system", "user", "api_token", "cli"];
    let selected = text.actor_kind.clone().unwrap_or_default();
    let body = html! {
        h1 { "Audit trail" }
        (verify_form(&staff))
        form.form #audit-filter method="get" action="/compliance/audit" {
            fieldset {
                legend { "Filter events" }
                div.field {
                    label for="actor_kind" { "Actor kind" }
                    select #actor_kind name="actor_kind" {
                        @for kind in kinds {
                            option value=(kind) selected[kind == selected] { @if kind.is_empty() { "Any" } @else { (kind) } }
                        }
                    }
                }
                (text_input("actor_id", "Actor id", text.actor_id.as_ref(), "user or token id"))
                (text_input("action", "Action (exact, or a prefix ending in a dot)", text.action.as_ref(), "secure_link."))
                (text_input("subject_kind", "Subject kind", text.subject_kind.as_ref(), "conversation"))
                (text_input("subject_id", "Subject id", text.subject_id.as_ref(), ""))
                div.field {
                    label for="from" { "From (date or RFC 3339 time, UTC)" }
                    input #from name="from" type="text" value=[text.from.as_ref()] placeholder="2026-11-01";
                }
                div.field {
                    label for="until" { "Until (date included, or RFC 3339 time excluded)" }
                    input #until name="until" type="text" value=[text.until.as_ref()] placeholder="2026-11-30";
                }
                button type="submit" { "Filter" }
            }
        }
        p {
            a #export-csv href={ "/compliance/audit/export/csv?" (query_with(&text, filter.before)) } download { "Export CSV" }
            " · "
            a #export-json href={ "/compliance/audit/export/json?" (query_with(&text, filter.before)) } download { "Export JSON" }
            " · "
            a #anchor href="/compliance/audit/anchor" download { "Export signed head and checkpoint" }
        }
        div.table-wrap {
            table.table #audit-events {
                caption { "Audit events, newest first" }
                thead {
                    tr {
                        th scope="col" { "#" }
                        th scope="col" { "Time (UTC)" }
                        th scope="col" { "Actor" }
                        th scope="col" { "Action" }
                        th scope="col" { "Subjects" }
                        th scope="col" { "Details" }
                    }
                }
                tbody {
                    @for event in &page_of.events {
                        tr data-seq=(event.seq) {
                            td { (event.seq) }
                            td { (event.at) }
                            td { (event.actor_kind) @if !event.actor_id.is_empty() { " " code { (event.actor_id) } } }
                            td { code { (event.action) } }
                            td {
                                @for (kind, id) in event.subject_pairs() {
                                    span { (kind) ": " code { (id) } } " "
                                }
                            }
                            td { code { (event.details) } }
                        }
                    }
                }
            }
        }
        @if page_of.events.is_empty() {
            p.notice { "No events match." }
        }
        @if let Some(cursor) = page_of.next_cursor {
            p { a #older href={ "/compliance/audit?" (query_with(&text, Some(cursor))) } { "Older events" } }
        }
    };
    Ok(html_response(&page(&staff, "Audit trail", &body)))
}

/// Runs `audit::verify` and records `audit.verify` by `actor`; shared by the console and the API.
///
/// # Errors
/// Database errors; an audit refusal (as a database-like failure).
pub async fn verify_and_record(
    state: &AppState,
    actor: audit::Actor<'_>,
) -> Result<audit::Report, audit::AuditError> {
    let report = audit::verify(&state.db, state.vault.audit_key()).await?;
    let mut tx = state.db.pool().begin().await?;
    let event = Event::new(actor, "audit.verify").detail("intact", report.is_intact());
    let bad_seq = report.first_bad.as_ref().map(|bad| bad.seq.to_string());
    let event = match &bad_seq {
        Some(seq) => event.subject("audit_event", seq),
        None => event,
    };
    audit::append(
        &mut tx,
        state.vault.audit_key(),
        &event,
        &state.clock.timestamp(),
    )
    .await?;
    tx.commit().await?;
    Ok(report)
}

fn audit_failure(error: &audit::AuditError) -> ConsoleError {
    match error {
        audit::AuditError::Database(e) => ConsoleError::database(e),
        other => {
            tracing::error!(error = %other, "console: audit trail operation failed");
            ConsoleError::Internal
        }
    }
}

#[derive(Debug, serde::Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf_token: String,
}

async fn verify_page(
    state: web::Data<AppState>,
    staff: Staff,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    staff.require(&VERIFY_ROLES, "verify the audit trail")?;
    staff.check_csrf(&state, &form.csrf_token)?;
    let principal = staff.principal();
    let report = verify_and_record(&state, principal.actor())
        .await
        .map_err(|e| audit_failure(&e))?;
    let body = html! {
        h1 { "Audit trail verification" }
        @if report.is_intact() {
            p.notice #verify-result role="status" data-intact="true" { (report.to_string()) }
        } @else {
            p.error #verify-result role="alert" data-intact="false" { (report.to_string()) }
        }
        (verify_form(&staff))
        @if staff.user.role == Role::Compliance {
            p { a href="/compliance/audit" { "Back to the audit trail" } }
        }
    };
    Ok(html_response(&page(&staff, "Audit verification", &body)))
}

/// Reads the export (at most [`query::MAX_EXPORT`] events) and records `audit.export`.
async fn exported(
    state: &AppState,
    staff: &Staff,
    req: &HttpRequest,
    format: &str,
) -> Result<query::Page, ConsoleError> {
    staff.require(&AUDIT_ROLES, "export the audit trail")?;
    let (_, filter, _) = filter_of(req)?;
    let mut conn = state.db.pool().acquire().await?;
    let page_of = query::list(&mut conn, &filter, query::MAX_EXPORT).await?;
    drop(conn);
    let principal = staff.principal();
    let mut tx = state.db.pool().begin().await?;
    record(
        &mut tx,
        state,
        &Event::new(principal.actor(), "audit.export")
            .detail("format", format)
            .detail("events", page_of.events.len())
            .detail("filters", filter.used()),
    )
    .await?;
    tx.commit().await?;
    Ok(page_of)
}

fn download(content_type: &str, name: &str, body: Vec<u8>, next: Option<i64>) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    response
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ));
    if let Some(next) = next {
        response.insert_header(("X-Next-Cursor", next.to_string()));
    }
    response.body(body)
}

async fn export_csv(
    state: web::Data<AppState>,
    staff: Staff,
    req: HttpRequest,
) -> Result<HttpResponse, ConsoleError> {
    let page_of = exported(&state, &staff, &req, "csv").await?;
    let body = query::to_csv(&page_of.events).map_err(|e| {
        tracing::error!(error = %e, "console: writing the audit CSV failed");
        ConsoleError::Internal
    })?;
    Ok(download(
        "text/csv; charset=utf-8",
        "audit-events.csv",
        body,
        page_of.next_cursor,
    ))
}

async fn export_json(
    state: web::Data<AppState>,
    staff: Staff,
    req: HttpRequest,
) -> Result<HttpResponse, ConsoleError> {
    let page_of = exported(&state, &staff, &req, "json").await?;
    let doc = serde_json::json!({
        "events": page_of.events.iter().map(query::EventRow::to_json).collect::<Vec<_>>(),
        "next_cursor": page_of.next_cursor,
    });
    Ok(download(
        "application/json",
        "audit-events.json",
        doc.to_string().into_bytes(),
        page_of.next_cursor,
    ))
}

/// Builds the signed anchor and records `audit.export` (format `anchor`); console and API.
///
/// # Errors
/// Database errors, a missing head, an audit refusal.
pub async fn anchor_and_record(
    state: &AppState,
    actor: audit::Actor<'_>,
) -> Result<serde_json::Value, audit::AuditError> {
    let doc = audit::prune::anchor(&state.db, state.vault.audit_key(), &state.clock).await?;
    let mut tx = state.db.pool().begin().await?;
    let event = Event::new(actor, "audit.export").detail("format", "anchor");
    audit::append(
        &mut tx,
        state.vault.audit_key(),
        &event,
        &state.clock.timestamp(),
    )
    .await?;
    tx.commit().await?;
    Ok(doc)
}

async fn anchor(state: web::Data<AppState>, staff: Staff) -> Result<HttpResponse, ConsoleError> {
    staff.require(&AUDIT_ROLES, "export the audit trail")?;
    let principal = staff.principal();
    let doc = anchor_and_record(&state, principal.actor())
        .await
        .map_err(|e| audit_failure(&e))?;
    Ok(download(
        "application/json",
        "audit-anchor.json",
        doc.to_string().into_bytes(),
        None,
    ))
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeQuery {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

fn range_of(state: &AppState, req: &HttpRequest) -> Result<Range, ConsoleError> {
    let q = web::Query::<RangeQuery>::from_query(req.query_string())
        .map_err(|_| bad_request("The reports take from and to (dates)."))?;
    Range::parse(
        q.from.as_deref(),
        q.to.as_deref(),
        state.clock.now().date_naive(),
    )
    .map_err(bad_request)
}

/// Colours of the series, in order (colour-blind-safe palette); the legend and table name them.
const COLOURS: [&str; 8] = [
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000",
];

/// One stacked segment of a bar: top, height, colour, series, count.
type Segment<'a> = (usize, usize, &'static str, &'a str, i64);

/// A stacked bar chart of `report`: one bar per bucket, one colour per series, with a title and
/// a description for screen readers (the table below it holds the numbers).
#[must_use]
pub fn chart(report: &Report) -> Markup {
    const WIDTH: usize = 720;
    const HEIGHT: usize = 220;
    const LEFT: usize = 40;
    const BOTTOM: usize = 24;
    let max = report
        .rows
        .iter()
        .map(|(_, c)| c.iter().sum::<i64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let n = report.rows.len().max(1);
    let slot = (WIDTH - LEFT) / n;
    let bar = (slot * 3 / 4).max(1);
    let plot = HEIGHT - BOTTOM - 8;
    let title_id = format!("chart-{}-title", report.name);
    let desc_id = format!("chart-{}-desc", report.name);
    let totals = report.totals();
    let description = format!(
        "{} from {} to {}, per {}. Totals: {}.",
        report.description,
        report.range.from,
        report.range.to,
        report.bucket,
        if report.series.is_empty() {
            "none".to_owned()
        } else {
            report
                .series
                .iter()
                .zip(&totals)
                .map(|(s, t)| format!("{s} {t}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    // Bar heights in whole pixels; counts are small enough for f64.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let height = |count: i64| ((count as f64 / max as f64) * plot as f64).round() as usize;
    let bars: Vec<(String, usize, Vec<Segment<'_>>)> = report
        .rows
        .iter()
        .enumerate()
        .map(|(i, (label, counts))| {
            let x = LEFT + i * slot + (slot - bar) / 2;
            let mut y = HEIGHT - BOTTOM;
            let mut segments = Vec::new();
            for (j, count) in counts.iter().enumerate() {
                let h = height(*count);
                if h > 0 {
                    y -= h;
                    segments.push((
                        y,
                        h,
                        COLOURS[j % COLOURS.len()],
                        report.series[j].as_str(),
                        *count,
                    ));
                }
            }
            let summary = counts
                .iter()
                .zip(&report.series)
                .map(|(c, s)| format!("{s} {c}"))
                .collect::<Vec<_>>()
                .join(", ");
            (format!("{label}: {summary}"), x, segments)
        })
        .collect();
    html! {
        svg.chart id={ "chart-" (report.name) } role="img" aria-labelledby={ (title_id) " " (desc_id) }
            viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } width="100%" xmlns="http://www.w3.org/2000/svg" {
            title id=(title_id) { (report.title) }
            desc id=(desc_id) { (description) }
            line x1=(LEFT) y1=(HEIGHT - BOTTOM) x2=(WIDTH) y2=(HEIGHT - BOTTOM) stroke="#57606a" {}
            text x="2" y="14" font-size="11" fill="#24292f" { (max) }
            text x="2" y=(HEIGHT - BOTTOM) font-size="11" fill="#24292f" { "0" }
            @for (label, x, segments) in &bars {
                g {
                    title { (label) }
                    @for (top, h, colour, series, count) in segments {
                        rect x=(x) y=(top) width=(bar) height=(h) fill=(colour) data-series=(series) data-count=(count) {}
                    }
                }
            }
            @if let (Some(first), Some(last)) = (report.rows.first(), report.rows.last()) {
                text x=(LEFT) y=(HEIGHT - 6) font-size="11" fill="#24292f" { (first.0) }
                text x=(WIDTH) y=(HEIGHT - 6) font-size="11" fill="#24292f" text-anchor="end" { (last.0) }
            }
        }
    }
}

fn report_section(report: &Report, range: &Range) -> Markup {
    let totals = report.totals();
    html! {
        section.report id={ "report-" (report.name) } {
            h2 { (report.title) }
            p { (report.description) "." }
            (chart(report))
            ul.legend {
                @for (j, (series, total)) in report.series.iter().zip(&totals).enumerate() {
                    li { span aria-hidden="true" { svg width="12" height="12" { rect width="12" height="12" fill=(COLOURS[j % COLOURS.len()]) {} } } " " (series) ": " strong { (total) } }
                }
                @for (name, value) in &report.summary {
                    li { (name) ": " strong { (value) } }
                }
            }
            p {
                a href={ "/compliance/reports/csv/" (report.name) "?from=" (range.from) "&to=" (range.to) } download { "Download " (report.title) " as CSV" }
            }
            details {
                summary { "Table" }
                div.table-wrap {
                    table.table {
                        caption { (report.title) ", per " (report.bucket) }
                        thead {
                            tr {
                                th scope="col" { (report.bucket) }
                                @for series in &report.series { th scope="col" { (series) } }
                            }
                        }
                        tbody {
                            @for (label, counts) in &report.rows {
                                tr {
                                    th scope="row" { (label) }
                                    @for count in counts { td { (count) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn reports_page(
    state: web::Data<AppState>,
    staff: Staff,
    req: HttpRequest,
) -> Result<HttpResponse, ConsoleError> {
    staff.require(&REPORT_ROLES, "see the compliance reports")?;
    let range = range_of(&state, &req)?;
    let mut all = Vec::new();
    {
        let mut conn = state.db.pool().acquire().await?;
        for name in reports::NAMES {
            if let Some(report) = reports::run(&mut conn, name, range).await? {
                all.push(report);
            }
        }
    }
    let body = html! {
        h1 { "Reports" }
        form.form #report-range method="get" action="/compliance/reports" {
            div.field {
                label for="from" { "From" }
                input #from name="from" type="date" value=(range.from);
            }
            div.field {
                label for="to" { "To (included)" }
                input #to name="to" type="date" value=(range.to);
            }
            button type="submit" { "Show" }
        }
        @for report in &all {
            (report_section(report, &range))
        }
    };
    Ok(html_response(&page(&staff, "Reports", &body)))
}

async fn report_csv(
    state: web::Data<AppState>,
    staff: Staff,
    req: HttpRequest,
    name: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    staff.require(&REPORT_ROLES, "see the compliance reports")?;
    let range = range_of(&state, &req)?;
    let report = {
        let mut conn = state.db.pool().acquire().await?;
        reports::run(&mut conn, &name, range).await?
    }
    .ok_or(ConsoleError::NotFound("report"))?;
    let body = report.to_csv().map_err(|e| {
        tracing::error!(error = %e, "console: writing a report CSV failed");
        ConsoleError::Internal
    })?;
    Ok(download(
        "text/csv; charset=utf-8",
        &format!("{}-{}-{}.csv", report.name, range.from, range.to),
        body,
        None,
    ))
}
