//! The rule editor in the console (compliance only), over [`crate::rules`]:
//!
//! | route | what |
//! |---|---|
//! | `GET /compliance/rules` | the version in force: packs and rules with hit counts (7 and 30 days); open drafts; published versions with rollback; the test panel |
//! | `POST /compliance/rules/test` | the test panel with the rules in force |
//! | `POST /compliance/rules/drafts` | a new draft of the version in force |
//! | `GET /compliance/rules/drafts/{id}` | a draft: approval state, diff, rules, test panel, dry run, approve / publish / discard |
//! | `GET /compliance/rules/drafts/{id}/edit?rule=…` | the rule form (no `rule`: a new rule) |
//! | `POST /compliance/rules/drafts/{id}/edit` | save the rule (refusals re-show the form with the reasons and what was typed) |
//! | `POST /compliance/rules/drafts/{id}/delete` | remove a rule |
//! | `POST /compliance/rules/drafts/{id}/test` | the test panel with the draft's rules (JSON for the page's script when it asks) |
//! | `POST /compliance/rules/drafts/{id}/dry-run` | the dry run: a pasted or loaded corpus, or the built-in sample |
//! | `POST /compliance/rules/drafts/{id}/approve`, `…/publish`, `…/discard` | the draft's life |
//! | `POST /compliance/rules/versions/{version}/rollback` | publish an earlier version's rules again |
//!
//! The test panel works without JavaScript (the form posts and the page shows the result); with
//! it, `console.js` tests as the compliance officer types and draws the result with
//! `textContent` only. Tested text and dry-run corpora are never stored, logged or audited.

use super::{csrf_field, html_response, page, see_other, ConsoleError, Staff};
use crate::redact::rules::{
    Action, Category, Direction, EntityType, Examples, Intent, Rule, RuleKind, Topic,
};
use crate::redact::validators::Validator;
use crate::rules::{self, Context, Draft, RuleEdit, RulesError, TestResult};
use crate::store::tokens::Role;
use crate::web::AppState;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;
use std::collections::HashMap;

/// Registers the rule editor's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/compliance/rules", web::get().to(overview))
        .route("/compliance/rules/test", web::post().to(test_in_force))
        .route("/compliance/rules/drafts", web::post().to(create_draft))
        .route("/compliance/rules/drafts/{id}", web::get().to(draft_page))
        .route(
            "/compliance/rules/drafts/{id}/edit",
            web::get().to(edit_form),
        )
        .route("/compliance/rules/drafts/{id}/edit", web::post().to(save))
        .route(
            "/compliance/rules/drafts/{id}/delete",
            web::post().to(delete),
        )
        .route(
            "/compliance/rules/drafts/{id}/test",
            web::post().to(test_draft),
        )
        .service(
            web::resource("/compliance/rules/drafts/{id}/dry-run")
                .app_data(web::FormConfig::default().limit(rules::dry_run::MAX_BYTES + 4096))
                .route(web::post().to(dry_run)),
        )
        .route(
            "/compliance/rules/drafts/{id}/approve",
            web::post().to(approve),
        )
        .route(
            "/compliance/rules/drafts/{id}/publish",
            web::post().to(publish),
        )
        .route(
            "/compliance/rules/drafts/{id}/discard",
            web::post().to(discard),
        )
        .route(
            "/compliance/rules/versions/{version}/rollback",
            web::post().to(rollback),
        );
}

const WHAT: &str = "work on the redaction rules";

fn compliance(staff: &Staff) -> Result<(), ConsoleError> {
    staff.require(&[Role::Compliance], WHAT)
}

fn context(state: &AppState) -> Context<'_> {
    Context::of(state)
}

impl From<RulesError> for ConsoleError {
    fn from(error: RulesError) -> Self {
        match error {
            RulesError::NotFound(what) => Self::NotFound(what),
            RulesError::Forbidden(message) => Self::Forbidden(message),
            RulesError::Conflict(message) => Self::Refused(StatusCode::CONFLICT, message),
            RulesError::Invalid(problems) => {
                Self::Refused(StatusCode::UNPROCESSABLE_ENTITY, problems.join("\n"))
            }
            RulesError::BadRequest(message) => Self::Refused(StatusCode::BAD_REQUEST, message),
            RulesError::Database(e) | RulesError::Audit(crate::audit::AuditError::Database(e)) => {
                Self::database(&e)
            }
            other => {
                tracing::error!(error = %other, "rule editor request failed");
                Self::Internal
            }
        }
    }
}

/// Someone's name as the rule records keep it (`user:<id>` / `api_token:<id>`), shown as the
/// user's e-mail address when it is a console user the page knows.
fn who(names: &HashMap<String, String>, actor: &str) -> String {
    names
        .get(actor)
        .cloned()
        .unwrap_or_else(|| actor.to_owned())
}

async fn staff_names(state: &AppState) -> HashMap<String, String> {
    let listed = match state.db.pool().acquire().await {
        Ok(mut conn) => crate::store::users::list(&mut conn, &state.vault)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match listed {
        Ok(users) => users
            .into_iter()
            .map(|u| (format!("user:{}", u.id), u.email))
            .collect(),
        Err(error) => {
            tracing::warn!(%error, "listing users for the rule editor failed");
            HashMap::new()
        }
    }
}

fn test_panel(action: &str, csrf: &str, text: &str, result: Option<&TestResult>) -> Markup {
    html! {
        section.panel #test-panel aria-labelledby="test-heading" {
            h2 #test-heading { "Test" }
            form.rule-test method="post" action=(action) data-live-test=(action) {
                (csrf_field(csrf))
                label for="test-text" { "Text to test (never stored)" }
                textarea #test-text name="text" rows="3" maxlength="4096" { (text) }
                label for="test-direction" { "Direction" }
                select #test-direction name="direction" {
                    option value="inbound" { "Inbound (customer to business)" }
                    option value="outbound" { "Outbound (business to customer)" }
                }
                button type="submit" { "Test" }
            }
            div #test-result aria-live="polite" {
                @if let Some(result) = result { (test_result(result)) }
            }
        }
    }
}

fn test_result(result: &TestResult) -> Markup {
    html! {
        p.tested data-role="segments" {
            @for segment in &result.segments {
                @if let (Some(rule), Some(kind)) = (&segment.rule, &segment.kind) {
                    mark title=(format!("{kind} · rule {rule}")) data-rule=(rule) { (segment.text) }
                } @else {
                    span { (segment.text) }
                }
            }
        }
        dl.test-facts {
            dt { "Redacted" } dd data-role="redacted" { (result.redacted) }
            dt { "Matched" }
            dd data-role="matches" {
                @let matched: Vec<String> = result.segments.iter()
                    .filter_map(|s| Some(format!("{} ({})", s.rule.as_ref()?, s.kind.as_ref()?)))
                    .collect();
                @if matched.is_empty() { "nothing" } @else { (matched.join(", ")) }
            }
            dt { "Escalates" } dd data-role="escalate" { @if result.escalate { "yes" } @else { "no" } }
            @if result.block_outbound {
                dt { "Outbound" } dd { "refused (block_outbound)" }
            }
        }
    }
}

fn hits_cell(hits: &HashMap<String, (i64, i64)>, id: &str) -> (i64, i64) {
    hits.get(id).copied().unwrap_or((0, 0))
}

fn rules_table(
    set: &rules::RuleSet,
    hits: Option<&HashMap<String, (i64, i64)>>,
    edit: Option<(&str, &str, i64)>,
) -> Markup {
    html! {
        @for (_, pack) in set {
            section.pack {
                h3 { (pack.pack) " " small { (pack.description) } }
                div.overflow { table.rules {
                    thead { tr {
                        th scope="col" { "Rule" } th scope="col" { "Type" } th scope="col" { "Action" }
                        th scope="col" { "Direction" } th scope="col" { "On" }
                        @if hits.is_some() { th scope="col" { "Hits 7 d" } th scope="col" { "Hits 30 d" } }
                        @if edit.is_some() { th scope="col" { span.visually-hidden { "Actions" } } }
                    } }
                    tbody {
                        @for rule in &pack.rules {
                            tr data-rule=(rule.id) {
                                td { code { (rule.id) } br; small { (rule.description) } }
                                td { (rule.category.to_string()) }
                                td { (action_name(rule.action)) }
                                td { (direction_name(rule.direction)) }
                                td { @if rule.enabled { "yes" } @else { "no" } }
                                @if let Some(hits) = hits {
                                    @let (h7, h30) = hits_cell(hits, &rule.id);
                                    td.num { (h7) } td.num { (h30) }
                                }
                                @if let Some((draft_id, csrf, revision)) = edit {
                                    td.actions {
                                        a href=(format!("/compliance/rules/drafts/{draft_id}/edit?rule={}", rule.id)) { "Edit " span.visually-hidden { (rule.id) } }
                                        form.inline method="post" action=(format!("/compliance/rules/drafts/{draft_id}/delete")) {
                                            (csrf_field(csrf))
                                            input type="hidden" name="rule" value=(rule.id);
                                            input type="hidden" name="revision" value=(revision);
                                            button.link type="submit" { "Delete " span.visually-hidden { (rule.id) } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                }
            }
        }
    }
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Redact => "redact",
        Action::RedactAndEscalate => "redact_and_escalate",
        Action::Escalate => "escalate",
        Action::BlockOutbound => "block_outbound",
        Action::Detect => "detect",
    }
}

fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
        Direction::Both => "both",
    }
}

async fn overview_markup(
    state: &AppState,
    staff: &Staff,
    test: Option<(&str, &TestResult)>,
) -> Result<Markup, ConsoleError> {
    let (version, set, record) = rules::in_force(&state.db, &state.rules).await?;
    let hits = rules::hit_counts(&state.db, &state.rules, state.clock.now()).await?;
    let drafts = rules::open_drafts(&state.db).await?;
    let versions = rules::versions(&state.db).await?;
    let names = staff_names(state).await;
    let body = html! {
        h1 { "Redaction rules" }
        p.lede {
            "Version " strong data-role="version" { (version) } " is in force"
            @if let Some(record) = &record {
                ", published " (record.published_at) " by " (who(&names, &record.published_by))
                @if let Some(approver) = &record.approved_by { ", approved by " (who(&names, approver)) }
            } @else { " (the rules shipped with the service)" }
            ". This instance uses version " (state.redactor.version()) ". "
            @if state.rules.settings.two_person {
                "Two-person rule: a second compliance user approves every change before it is published."
            } @else {
                "The two-person rule is off: changes are published without a second approval."
            }
        }
        section.panel aria-labelledby="drafts-heading" {
            h2 #drafts-heading { "Drafts" }
            @if drafts.is_empty() { p { "No open drafts." } }
            ul {
                @for draft in &drafts {
                    li { a href=(format!("/compliance/rules/drafts/{}", draft.id)) {
                        "Draft of version " (draft.based_on) ", revision " (draft.revision)
                        " by " (who(&names, &draft.created_by))
                        @if draft.approved() { " (approved)" }
                    } }
                }
            }
            form method="post" action="/compliance/rules/drafts" {
                (csrf_field(&staff.csrf))
                button type="submit" { "New draft" }
            }
        }
        (test_panel("/compliance/rules/test", &staff.csrf, test.map_or("", |t| t.0), test.map(|t| t.1)))
        section aria-labelledby="rules-heading" {
            h2 #rules-heading { "Rules in force" }
            (rules_table(&set, Some(&hits), None))
        }
        section.panel aria-labelledby="versions-heading" {
            h2 #versions-heading { "Published versions" }
            div.overflow { table.versions {
                thead { tr { th scope="col" { "Version" } th scope="col" { "Published" } th scope="col" { "By" } th scope="col" { "Approved by" } th scope="col" { "How" } th scope="col" { span.visually-hidden { "Roll back" } } } }
                tbody {
                    @for v in &versions {
                        tr {
                            td { (v.version) }
                            td { (v.published_at) }
                            td { (who(&names, &v.published_by)) }
                            td { (v.approved_by.as_deref().map(|a| who(&names, a)).unwrap_or_default()) }
                            td { @if let Some(r) = v.restores { "rollback to " (r) } @else { "draft" } }
                            td { @if v.version != version { (rollback_form(&staff.csrf, v.version)) } }
                        }
                    }
                    tr {
                        td { "0" } td { "—" } td { "shipped" } td {} td { "built in" }
                        td { @if version != 0 { (rollback_form(&staff.csrf, 0)) } }
                    }
                }
            }
            }
        }
    };
    Ok(page(staff, "Redaction rules", &body))
}

fn rollback_form(csrf: &str, version: i64) -> Markup {
    html! {
        form.inline method="post" action=(format!("/compliance/rules/versions/{version}/rollback")) {
            (csrf_field(csrf))
            button type="submit" { "Roll back to " (version) }
        }
    }
}

async fn overview(state: web::Data<AppState>, staff: Staff) -> Result<HttpResponse, ConsoleError> {
    compliance(&staff)?;
    Ok(html_response(&overview_markup(&state, &staff, None).await?))
}

#[derive(Deserialize)]
struct TestForm {
    csrf_token: String,
    text: String,
    direction: Option<String>,
}

fn test_direction(form: &TestForm) -> Direction {
    match form.direction.as_deref() {
        Some("outbound") => Direction::Outbound,
        _ => Direction::Inbound,
    }
}

fn check_test_text(text: &str) -> Result<(), ConsoleError> {
    if text.chars().count() > rules::MAX_TEST_CHARS {
        return Err(ConsoleError::Refused(
            StatusCode::BAD_REQUEST,
            format!(
                "The test text is longer than {} characters.",
                rules::MAX_TEST_CHARS
            ),
        ));
    }
    Ok(())
}

fn wants_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

fn json_result(result: &TestResult) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(result)
}

async fn test_in_force(
    req: HttpRequest,
    state: web::Data<AppState>,
    staff: Staff,
    form: web::Form<TestForm>,
) -> Result<HttpResponse, ConsoleError> {
    compliance(&staff)?;
    staff.check_csrf(&state, &form.csrf_token)?;
    check_test_text(&form.text)?;
    let result = rules::test(&state.redactor.current(), &form.text, test_direction(&form));
    if wants_json(&req) {
        return Ok(json_result(&result));
    }
    Ok(html_response(
        &overview_markup(&state, &staff, Some((&form.text, &result))).await?,
    ))
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf_token: String,
}

async fn create_draft(
    state: web::Data<AppState>,
    staff: Staff,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    compliance(&staff)?;
    staff.check_csrf(&state, &form.csrf_token)?;
    let draft = rules::create_draft(context(&state), &staff.principal()).await?;
    Ok(see_other(&format!("/compliance/rules/drafts/{}", draft.id)))
}

/// What the draft page shows beyond the draft itself.
#[derive(Default)]
struct Extras<'a> {
    test: Option<(&'a str, &'a TestResult)>,
    dry_run: Option<&'a rules::dry_run::DryRun>,
    problems: Vec<String>,
}

async fn draft_markup(
    state: &AppState,
    staff: &Staff,
    draft: &Draft,
    extras: Extras<'_>,
) -> Result<Markup, ConsoleError> {
    let (version, in_force, _) = rules::in_force(&state.db, &state.rules).await?;
    let changes = rules::diff::diff(&in_force, &draft.packs);
    let names = staff_names(state).await;
    let principal = staff.principal();
    let open = draft.status == "draft";
    let two_person = state.rules.settings.two_person;
    let base = format!("/compliance/rules/drafts/{}", draft.id);
    let body = html! {
        p { a href="/compliance/rules" { "← Redaction rules" } }
        h1 { "Draft of version " (draft.based_on) }
        dl.draft-facts {
            dt { "Status" } dd data-role="status" { (draft.status) @if let Some(v) = draft.published_version { " as version " (v) } }
            dt { "Revision" } dd data-role="revision" { (draft.revision) }
            dt { "Made by" } dd { (who(&names, &draft.created_by)) " at " (draft.created_at) }
            dt { "Edited by" } dd { @if draft.editors.is_empty() { "nobody yet" } @else { (draft.editors.iter().map(|e| who(&names, e)).collect::<Vec<_>>().join(", ")) } }
            dt { "Approval" }
            dd data-role="approval" {
                @if draft.approved() {
                    "Approved by " (draft.approved_by.as_deref().map(|a| who(&names, a)).unwrap_or_default()) " at revision " (draft.revision)
                } @else if two_person { "Not approved" } @else { "Not needed (two-person rule off)" }
            }
        }
        @if open && draft.based_on != version {
            p.warning role="alert" { "Version " (version) " has been published since this draft was made: it cannot be published. Make a new draft." }
        }
        @if !extras.problems.is_empty() {
            div.error role="alert" {
                p { "Refused:" }
                ul { @for p in &extras.problems { li { (p) } } }
            }
        }
        @if open {
            section.panel.draft-actions aria-label="Approve and publish" {
                @if two_person && !draft.approved() {
                    @if draft.may_approve(&principal) {
                        form.inline method="post" action=(format!("{base}/approve")) {
                            (csrf_field(&staff.csrf))
                            input type="hidden" name="revision" value=(draft.revision);
                            button type="submit" { "Approve revision " (draft.revision) }
                        }
                    } @else {
                        p { "A compliance user who has not edited this draft must approve it before it is published." }
                    }
                }
                @if !two_person || draft.approved() {
                    form.inline method="post" action=(format!("{base}/publish")) {
                        (csrf_field(&staff.csrf))
                        input type="hidden" name="revision" value=(draft.revision);
                        button type="submit" { "Publish" }
                    }
                }
                form.inline method="post" action=(format!("{base}/discard")) {
                    (csrf_field(&staff.csrf))
                    button.secondary type="submit" { "Discard draft" }
                }
            }
        }
        section aria-labelledby="diff-heading" {
            h2 #diff-heading { "Changes against version " (version) }
            @if changes.is_empty() { p data-role="no-changes" { "No changes." } }
            @for change in &changes {
                article.change data-change=(change.kind) data-rule=(change.rule) {
                    h3 { (change.kind) ": " code { (change.rule) } " in " (change.pack)
                        @if !change.fields.is_empty() { " (" (change.fields.join(", ")) ")" } }
                    div.diff {
                        @if let Some(before) = &change.before { div { h4 { "Before" } pre.before { (before) } } }
                        @if let Some(after) = &change.after { div { h4 { "After" } pre.after { (after) } } }
                    }
                }
            }
        }
        @if open {
            (test_panel(&format!("{base}/test"), &staff.csrf, extras.test.map_or("", |t| t.0), extras.test.map(|t| t.1)))
            section.panel aria-labelledby="dry-heading" {
                h2 #dry-heading { "Dry run" }
                form method="post" action=(format!("{base}/dry-run")) {
                    (csrf_field(&staff.csrf))
                    label for="corpus" { "Corpus: JSON lines with a \"text\" field, or one message per line. Leave empty for the built-in sample of 1,000 synthetic messages. Never stored." }
                    input #corpus-file type="file" accept=".jsonl,.txt,.json,text/plain" aria-label="Load a corpus file";
                    textarea #corpus name="corpus" rows="4" {}
                    button type="submit" { "Dry run" }
                }
                @if let Some(report) = extras.dry_run { (dry_run_markup(report)) }
            }
            section aria-labelledby="edit-heading" {
                h2 #edit-heading { "Rules in this draft" }
                p { a.button href=(format!("{base}/edit")) { "Add a rule" } }
                (rules_table(&draft.packs, None, Some((&draft.id, &staff.csrf, draft.revision))))
            }
        }
    };
    Ok(page(staff, "Rule draft", &body))
}

fn dry_run_markup(report: &rules::dry_run::DryRun) -> Markup {
    html! {
        div #dry-run-result {
            p data-role="dry-run-summary" {
                (report.messages) " messages: " strong { (report.newly_hit) " newly hit" } ", "
                strong { (report.newly_missed) " newly missed" } ", " (report.changed) " redacted differently. "
                "Matched: " (report.hit_before) " → " (report.hit_after) "; escalations: "
                (report.escalations_before) " → " (report.escalations_after) "."
            }
            @if !report.examples.is_empty() {
                div.overflow { table.examples {
                    thead { tr { th scope="col" { "Message" } th scope="col" { "Difference" } th scope="col" { "In force" } th scope="col" { "Draft" } } }
                    tbody {
                        @for e in &report.examples {
                            tr data-kind=(e.kind) {
                                td { (e.id) }
                                td { (e.kind.replace('_', " ")) }
                                td { (e.before) br; small { (e.rules_before.join(", ")) } }
                                td { (e.after) br; small { (e.rules_after.join(", ")) } }
                            }
                        }
                    }
                }
                }
            }
        }
    }
}

async fn open_draft(state: &AppState, id: &str) -> Result<Draft, ConsoleError> {
    Ok(rules::draft(&state.db, id).await?)
}

async fn draft_page(
    state: web::Data<AppState>,
    staff: Staff,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    compliance(&staff)?;
    let draft = open_draft(&state, &path).await?;
    Ok(html_response(
        &draft_markup(&state, &staff, &draft, Extras::default()).await?,
    ))
}

#[derive(Deserialize)]
struct EditQuery {
    rule: Option<String>,
}

/// The rule form's fields, as typed.
#[derive(Deserialize, Default)]
struct RuleForm {
    csrf_token: String,
    revision: Option<i64>,
    pack: String,
    id: String,
    description: String,
    #[serde(rename = "type")]
    category: String,
    kind: String,
    pattern: Option<String>,
    terms: Option<String>,
    validator: Option<String>,
    context: Option<String>,
    context_window: Option<String>,
    case_sensitive: Option<String>,
    replacement: Option<String>,
    action: String,
    direction: String,
    enabled: Option<String>,
    priority: Option<String>,
    examples_match: Option<String>,
    examples_no_match: Option<String>,
}

fn lines(text: Option<&str>) -> Vec<String> {
    text.unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn take<T>(problems: &mut Vec<String>, result: Result<T, String>) -> Option<T> {
    result.map_err(|e| problems.push(e)).ok()
}

fn word<T: serde::de::DeserializeOwned>(field: &str, value: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(value.trim().to_owned()))
        .map_err(|_| format!("{field}: `{}` is not one of the choices", value.trim()))
}

impl RuleForm {
    fn from_rule(pack: &str, rule: &Rule, revision: i64) -> Self {
        Self {
            csrf_token: String::new(),
            revision: Some(revision),
            pack: pack.to_owned(),
            id: rule.id.clone(),
            description: rule.description.clone(),
            category: rule.category.to_string(),
            kind: match rule.kind {
                RuleKind::Pattern => "pattern",
                RuleKind::Keywords => "keywords",
            }
            .to_owned(),
            pattern: rule.pattern.clone(),
            terms: Some(rule.terms.join("\n")),
            validator: Some(
                serde_json::to_value(rule.validator)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            ),
            context: Some(rule.context.join("\n")),
            context_window: Some(rule.context_window.to_string()),
            case_sensitive: rule.case_sensitive.then(|| "on".to_owned()),
            replacement: rule.replacement.clone(),
            action: action_name(rule.action).to_owned(),
            direction: direction_name(rule.direction).to_owned(),
            enabled: rule.enabled.then(|| "on".to_owned()),
            priority: Some(rule.priority.to_string()),
            examples_match: Some(rule.examples.matches.join("\n")),
            examples_no_match: Some(rule.examples.no_match.join("\n")),
        }
    }

    /// The rule the form describes, or what is wrong with it.
    fn rule(&self) -> Result<Rule, Vec<String>> {
        let mut problems = Vec::new();
        let category: Option<Category> = take(&mut problems, word("type", &self.category));
        let kind: Option<RuleKind> = take(&mut problems, word("kind", &self.kind));
        let validator: Option<Validator> = take(
            &mut problems,
            word(
                "validator",
                self.validator
                    .as_deref()
                    .filter(|v| !v.is_empty())
                    .unwrap_or("none"),
            ),
        );
        let action: Option<Action> = take(&mut problems, word("action", &self.action));
        let direction: Option<Direction> = take(&mut problems, word("direction", &self.direction));
        let window = take(
            &mut problems,
            self.context_window
                .as_deref()
                .map(str::trim)
                .filter(|w| !w.is_empty())
                .unwrap_or("5")
                .parse::<usize>()
                .ok()
                .filter(|w| (1..=50).contains(w))
                .ok_or_else(|| "context window: a whole number from 1 to 50".to_owned()),
        );
        let priority = take(
            &mut problems,
            self.priority
                .as_deref()
                .map(str::trim)
                .filter(|w| !w.is_empty())
                .unwrap_or("0")
                .parse::<i32>()
                .map_err(|_| "priority: a whole number".to_owned()),
        );
        let (
            Some(category),
            Some(kind),
            Some(validator),
            Some(action),
            Some(direction),
            Some(window),
            Some(priority),
        ) = (
            category, kind, validator, action, direction, window, priority,
        )
        else {
            return Err(problems);
        };
        let pattern = self
            .pattern
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty() && kind == RuleKind::Pattern)
            .map(str::to_owned);
        Ok(Rule {
            id: self.id.trim().to_owned(),
            description: self.description.trim().to_owned(),
            category,
            kind,
            pattern,
            terms: if kind == RuleKind::Keywords {
                lines(self.terms.as_deref())
            } else {
                Vec::new()
            },
            validator,
            context: lines(self.context.as_deref()),
            context_window: window,
            case_sensitive: self.case_sensitive.is_some(),
            replacement: self
                .replacement
                .as_deref()
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned),
            action,
            direction,
            enabled: self.enabled.is_some(),
            priority,
            examples: Examples {
                matches: lines(self.examples_match.as_deref()),
                no_match: lines(self.examples_no_match.as_deref()),
            },
        })
    }
}

fn select(id: &str, name: &str, options: &[String], selected: &str) -> Markup {
    html! {
        select id=(id) name=(name) {
            @for option in options {
                option value=(option) selected[option == selected] { (option) }
            }
        }
    }
}

fn type_names() -> Vec<String> {
    EntityType::ALL
        .iter()
        .map(|e| e.as_str().to_owned())
        .chain(Topic::ALL.iter().map(|t| t.as_str().to_owned()))
        .chain(Intent::ALL.iter().map(|i| i.as_str().to_owned()))
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn rule_form_markup(
    staff: &Staff,
    draft: &Draft,
    form: &RuleForm,
    editing: bool,
    problems: &[String],
) -> Markup {
    let base = format!("/compliance/rules/drafts/{}", draft.id);
    let body = html! {
        p { a href=(base) { "← The draft" } }
        h1 { @if editing { "Edit rule " code { (form.id) } } @else { "Add a rule" } }
        @if !problems.is_empty() {
            div.error role="alert" #rule-problems {
                p { "The rule was not saved:" }
                ul { @for p in problems { li { (p) } } }
            }
        }
        form.rule-form method="post" action=(format!("{base}/edit")) {
            (csrf_field(&staff.csrf))
            input type="hidden" name="revision" value=(form.revision.unwrap_or(draft.revision));
            label for="rule-pack" { "Pack (an existing pack's name, or a new one)" }
            input #rule-pack name="pack" required value=(form.pack) list="packs";
            datalist #packs { @for (_, p) in &draft.packs { option value=(p.pack) {} } }
            label for="rule-id" { "Rule id (a-z, 0-9, - and _)" }
            input #rule-id name="id" required maxlength="64" value=(form.id) readonly[editing];
            label for="rule-description" { "Description" }
            input #rule-description name="description" required value=(form.description);
            label for="rule-type" { "Type" }
            (select("rule-type", "type", &type_names(), &form.category))
            label for="rule-kind" { "Kind" }
            (select("rule-kind", "kind", &strings(&["pattern", "keywords"]), &form.kind))
            label for="rule-pattern" { "Pattern (Rust regex; a group named value is the finding)" }
            input #rule-pattern name="pattern" value=(form.pattern.as_deref().unwrap_or_default());
            label for="rule-terms" { "Keywords (one per line)" }
            textarea #rule-terms name="terms" rows="3" { (form.terms.as_deref().unwrap_or_default()) }
            label for="rule-validator" { "Validator" }
            (select("rule-validator", "validator", &strings(&["none", "luhn", "aba", "iban", "ssn", "itin", "mbi"]), form.validator.as_deref().unwrap_or("none")))
            label for="rule-context" { "Context words (one per line; one must be near)" }
            textarea #rule-context name="context" rows="2" { (form.context.as_deref().unwrap_or_default()) }
            label for="rule-window" { "Context window (words)" }
            input #rule-window name="context_window" inputmode="numeric" value=(form.context_window.as_deref().unwrap_or("5"));
            label.check { input type="checkbox" name="case_sensitive" checked[form.case_sensitive.is_some()]; " Case-sensitive" }
            label for="rule-replacement" { "Replacement ({last4}: the value's last four digits)" }
            input #rule-replacement name="replacement" value=(form.replacement.as_deref().unwrap_or_default());
            label for="rule-action" { "Action" }
            (select("rule-action", "action", &strings(&["redact", "redact_and_escalate", "escalate", "block_outbound", "detect"]), &form.action))
            label for="rule-direction" { "Direction" }
            (select("rule-direction", "direction", &strings(&["both", "inbound", "outbound"]), &form.direction))
            label for="rule-priority" { "Priority" }
            input #rule-priority name="priority" inputmode="numeric" value=(form.priority.as_deref().unwrap_or("0"));
            label.check { input type="checkbox" name="enabled" checked[form.enabled.is_some() || !editing && problems.is_empty()]; " Enabled" }
            label for="rule-match" { "Examples that must match (one per line)" }
            textarea #rule-match name="examples_match" rows="3" { (form.examples_match.as_deref().unwrap_or_default()) }
            label for="rule-no-match" { "Examples that must not match (one per line)" }
            textarea #rule-no-match name="examples_no_match" rows="3" { (form.examples_no_match.as_deref().unwrap_or_default()) }
            button type="submit" { "Save to draft" }
        }
    };
    page(staff, "Rule", &body)
}

async fn edit_form(
    state: web::Data<AppState>,
    staff: Staff,
    path: web::Path<String>,
    query: web::Query<EditQuery>,
) -> Result<HttpResponse, ConsoleError> {
    compliance(&staff)?;
    let draft = open_draft(&state, &path).await?;
    let (form, editing) = match query.rule.as_deref() {
        Some(id) => {
            let (pack, rule) = draft.rule(id).ok_or(ConsoleError::NotFound("rule"))?;
            (RuleForm::from_rule(pack, rule, draft.revision), true)
        }
        None => (
            RuleForm {
                revision: Some(draft.revision),
                kind: "pattern".to_owned(),
                action: "redact".to_owned(),
                direction: "both".to_owned(),
                category: EntityType::BankAccount.as_str().to_owned(),
                ..RuleForm::default()
            },
            false,
        ),
    };
    Ok(html_response(&rule_form_markup(
        &staff,
        &draft,
        &form,
        editing,
        &[],
    )))
}

async fn save(
    state: web::Data<AppState>,
    staff: Staff,
    path: web::Path<String>,
    form: web::Form<RuleForm>,
) -> Result<HttpResponse, ConsoleError> {
    compliance(&staff)?;
    staff.check_csrf(&state, &form.csrf_token)?;
    let draft = open_draft(&state, &path).await?;
    let editing = draft.rule(form.id.trim()).is_some();
    let refused = |problems: Vec<String>| {
        HttpResponse::build(StatusCode::UNPROCESSABLE_ENTITY)
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(rule_form_markup(&staff, &draft, &form, editing, &problems).into_string())
    };
    let rule = match form.rule() {
        Ok(rule) => rule,
        Err(problems) => return Ok(refused(problems)),
    };
    let edit = RuleEdit {
        pack: form.pack.trim().to_owned(),
        revision: form.revision,
        rule,
    };
    match rules::save_rule(context(&state), &staff.principal(), &draft.id, edit).await {
        Ok(saved) => Ok(see_other(&format!("/compliance/rules/drafts/{}", saved.id))),
        Err(RulesError::Invalid(problems)) => Ok(refused(problems)),
        Err(RulesError::BadRequest(problem)) => Ok(refused(vec![problem])),
        Err(other) => Err(other.into()),
    }
}

#[derive(Deserialize)]
struct DeleteForm {
    csrf_token: String,
    rule: String,
    revision: Option<i64>,
}

async fn delete(
    state: web::Data<AppState>,
    staff: Staff,
    path: web::Path<String>,
    form: web::Form<DeleteForm>,
) -> Result<HttpResponse, ConsoleError> {
    compliance(&staff)?;
    staff.check_csrf(&state, &form.csrf_token)?;
    rules::delete_rule(
        context(&state),
        &staff.principal(),
        &path,
        &form.rule,
        form.revision,
    )
    .await?;
    Ok(see_other(&format!(
        "/compliance/rules/drafts/{}",
        path.into_inner()
    )))
}

async fn test_draft(
    req: HttpRequest,
    state: web::Data<AppState>,
    staff: Staff,
    path: web::Path<String>,
    form: web::Form<TestForm>,
) -> Result<HttpResponse, ConsoleError> {
    compliance(&staff)?;
    staff.check_csrf(&state, &form.csrf_token)?;
    check_test_text(&form.text)?;
    let draft = open_draft(&state, &path).await?;
    let engine = state.rules.engine_for(&draft).await?;
    let result = rules::test(&engine, &form.text, test_direction(&form));
    if wants_json(&req) {
        return Ok(json_result(&result));
    }
    let extras = Extras {
        test: Some((&form.text, &result)),
        ..Extras::default()
    };
    Ok(html_response(
        &draft_markup(&state, &staff, &draft, extras).await?,
    ))
}

#[derive(Deserialize)]
struct DryRunForm {
    csrf_token: String,
    corpus: String,
}

async fn dry_run(
    state: web::Data<AppState>,
    staff: Staff,
    path: web::Path<String>,
    form: web::Form<DryRunForm>,
) -> Result<HttpResponse, ConsoleError> {
    compliance(&staff)?;
    staff.check_csrf(&state, &form.csrf_token)?;
    let report =
        crate::web::api::rules::dry_run(&state, &staff.principal(), &path, &form.corpus).await;
    let draft = open_draft(&state, &path).await?;
    let (report, problems) = match report {
        Ok(report) => (Some(report), Vec::new()),
        Err(RulesError::BadRequest(problem)) => (None, vec![problem]),
        Err(other) => return Err(other.into()),
    };
    let extras = Extras {
        dry_run: report.as_ref(),
        problems,
        ..Extras::default()
    };
    Ok(html_response(
        &draft_markup(&state, &staff, &draft, extras).await?,
    ))
}

#[derive(Deserialize)]
struct RevisionForm {
    csrf_token: String,
    revision: i64,
}

/// A refusal on the draft page itself (the reasons listed above the draft), or the error page.
async fn on_draft_page(
    state: &AppState,
    staff: &Staff,
    draft_id: &str,
    error: RulesError,
) -> Result<HttpResponse, ConsoleError> {
    let (status, problems) = match error {
        RulesError::Invalid(problems) => (StatusCode::UNPROCESSABLE_ENTITY, problems),
        RulesError::Conflict(problem) => (StatusCode::CONFLICT, vec![problem]),
        RulesError::Forbidden(problem) => (StatusCode::FORBIDDEN, vec![problem]),
        other => return Err(other.into()),
    };
    let draft = open_draft(state, draft_id).await?;
    let markup = draft_markup(
        state,
        staff,
        &draft,
        Extras {
            problems,
            ..Extras::default()
        },
    )
    .await?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(markup.into_string()))
}

async fn approve(
    state: web::Data<AppState>,
    staff: Staff,
    path: web::Path<String>,
    form: web::Form<RevisionForm>,
) -> Result<HttpResponse, ConsoleError> {
    compliance(&staff)?;
    staff.check_csrf(&state, &form.csrf_token)?;
    match rules::approve(context(&state), &staff.principal(), &path, form.revision).await {
        Ok(draft) => Ok(see_other(&format!("/compliance/rules/drafts/{}", draft.id))),
        Err(error) => on_draft_page(&state, &staff, &path, error).await,
    }
}

async fn publish(
    state: web::Data<AppState>,
    staff: Staff,
    path: web::Path<String>,
    form: web::Form<RevisionForm>,
) -> Result<HttpResponse, ConsoleError> {
    compliance(&staff)?;
    staff.check_csrf(&state, &form.csrf_token)?;
    match rules::publish(context(&state), &staff.principal(), &path, form.revision).await {
        Ok(_) => Ok(see_other("/compliance/rules")),
        Err(error) => on_draft_page(&state, &staff, &path, error).await,
    }
}

async fn discard(
    state: web::Data<AppState>,
    staff: Staff,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    compliance(&staff)?;
    staff.check_csrf(&state, &form.csrf_token)?;
    rules::discard(context(&state), &staff.principal(), &path).await?;
    Ok(see_other("/compliance/rules"))
}

async fn rollback(
    state: web::Data<AppState>,
    staff: Staff,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    compliance(&staff)?;
    staff.check_csrf(&state, &form.csrf_token)?;
    let version = path
        .parse::<i64>()
        .ok()
        .filter(|v| *v >= 0)
        .ok_or(ConsoleError::NotFound("rule set version"))?;
    rules::rollback(context(&state), &staff.principal(), version).await?;
    Ok(see_other("/compliance/rules"))
}
