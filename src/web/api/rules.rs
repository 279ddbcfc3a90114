//! The rule editor's API (compliance tokens only), over [`crate::rules`]:
//!
//! | route | what |
//! |---|---|
//! | `GET /api/v1/rules` | the version in force, its packs and rules with hit counts (7 and 30 days), open drafts |
//! | `GET /api/v1/rules/versions` | every published version, newest first |
//! | `GET /api/v1/rules/versions/{version}` | one version's packs (0: the shipped rules) |
//! | `POST /api/v1/rules/versions/{version}/rollback` | 201: the rules of that version, published as a new version |
//! | `POST /api/v1/rules/test` | `{"text", "direction"?}` → the test panel's answer with the rules in force |
//! | `POST /api/v1/rules/drafts` | 201: a new draft of the version in force |
//! | `GET /api/v1/rules/drafts/{id}` | the draft, its rules, its diff against the version in force |
//! | `PUT /api/v1/rules/drafts/{id}/rules/{rule}` | `{"pack", "revision"?, "rule": {…as in a pack file…}}`: add or replace; 422 with the reasons |
//! | `DELETE /api/v1/rules/drafts/{id}/rules/{rule}` | `?revision=N` optional |
//! | `POST /api/v1/rules/drafts/{id}/test` | the test panel with the draft's rules |
//! | `POST /api/v1/rules/drafts/{id}/dry-run` | body: a corpus (JSON lines or one message per line; empty: the built-in sample) |
//! | `POST /api/v1/rules/drafts/{id}/approve` | `{"revision"}`: the second person's approval |
//! | `POST /api/v1/rules/drafts/{id}/publish` | `{"revision"}` → 201 the new version |
//! | `POST /api/v1/rules/drafts/{id}/discard` | closes the draft |

use super::{problem, ApiError, Caller};
use crate::redact::rules::Direction;
use crate::rules::{self, Context, RuleEdit, RulesError};
use crate::web::AppState;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

/// The largest dry-run corpus the API takes.
pub const DRY_RUN_LIMIT: usize = rules::dry_run::MAX_BYTES;

fn context(state: &AppState) -> Context<'_> {
    Context::of(state)
}

/// The API's answer to a workspace error.
#[must_use]
pub fn rules_problem(error: RulesError) -> ApiError {
    match error {
        RulesError::NotFound(what) => problem::not_found(what),
        RulesError::Forbidden(message) => ApiError::forbidden(message),
        RulesError::Conflict(message) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
        RulesError::Invalid(problems) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_rules",
            problems.join("; "),
        ),
        RulesError::BadRequest(message) => ApiError::bad_request(message),
        RulesError::Database(e) => problem::from_database(&e),
        RulesError::Audit(crate::audit::AuditError::Database(e)) => problem::from_database(&e),
        other => {
            tracing::error!(error = %other, "rule editor request failed");
            ApiError::internal()
        }
    }
}

fn json_ok(status: StatusCode, value: &serde_json::Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(value)
}

fn allowed(caller: &Caller) -> Result<(), ApiError> {
    rules::require(caller.principal()).map_err(rules_problem)
}

fn packs_json(
    set: &rules::RuleSet,
    hits: Option<&std::collections::HashMap<String, (i64, i64)>>,
) -> serde_json::Value {
    let packs: Vec<serde_json::Value> = set
        .iter()
        .map(|(file, pack)| {
            let rules: Vec<serde_json::Value> = pack
                .rules
                .iter()
                .map(|rule| {
                    let mut value = serde_json::to_value(rule).unwrap_or_default();
                    if let (Some(hits), Some(map)) = (hits, value.as_object_mut()) {
                        let (h7, h30) = hits.get(&rule.id).copied().unwrap_or((0, 0));
                        map.insert("hits_7d".to_owned(), json!(h7));
                        map.insert("hits_30d".to_owned(), json!(h30));
                    }
                    value
                })
                .collect();
            json!({"file": file, "pack": pack.pack, "description": pack.description, "rules": rules})
        })
        .collect();
    json!(packs)
}

fn draft_json(draft: &rules::Draft, two_person: bool) -> serde_json::Value {
    let mut value = serde_json::to_value(draft).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert("approved".to_owned(), json!(draft.approved()));
        map.insert(
            "publishable".to_owned(),
            json!(draft.status == "draft" && (!two_person || draft.approved())),
        );
    }
    value
}

pub(super) async fn overview(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    allowed(&caller)?;
    let (version, set, record) = rules::in_force(&state.db, &state.rules)
        .await
        .map_err(rules_problem)?;
    let hits = rules::hit_counts(&state.db, &state.rules, state.clock.now())
        .await
        .map_err(|e| problem::from_database(&e))?;
    let drafts = rules::open_drafts(&state.db).await.map_err(rules_problem)?;
    let drafts: Vec<serde_json::Value> = drafts
        .iter()
        .map(|d| draft_json(d, state.rules.settings.two_person))
        .collect();
    Ok(json_ok(
        StatusCode::OK,
        &json!({
            "version": version,
            "in_use": state.redactor.version(),
            "published": record,
            "two_person": state.rules.settings.two_person,
            "packs": packs_json(&set, Some(&hits)),
            "drafts": drafts,
        }),
    ))
}

pub(super) async fn list_versions(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    allowed(&caller)?;
    let versions = rules::versions(&state.db)
        .await
        .map_err(|e| problem::from_database(&e))?;
    Ok(json_ok(StatusCode::OK, &json!({ "versions": versions })))
}

fn version_number(path: &str) -> Result<i64, ApiError> {
    path.parse::<i64>()
        .ok()
        .filter(|v| *v >= 0)
        .ok_or_else(|| problem::not_found("rule set version"))
}

pub(super) async fn get_version(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    allowed(&caller)?;
    let version = version_number(&path)?;
    let (set, record) = rules::version_rules(&state.db, &state.rules, version)
        .await
        .map_err(rules_problem)?;
    Ok(json_ok(
        StatusCode::OK,
        &json!({"version": version, "published": record, "packs": packs_json(&set, None)}),
    ))
}

pub(super) async fn rollback(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    allowed(&caller)?;
    let version = version_number(&path)?;
    let published = rules::rollback(context(&state), caller.principal(), version)
        .await
        .map_err(rules_problem)?;
    Ok(json_ok(StatusCode::CREATED, &json!(published)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TestBody {
    text: String,
    direction: Option<Direction>,
}

fn test_answer(engine: &crate::redact::Engine, body: &TestBody) -> Result<HttpResponse, ApiError> {
    if body.text.chars().count() > rules::MAX_TEST_CHARS {
        return Err(ApiError::bad_request(format!(
            "the test text is longer than {} characters",
            rules::MAX_TEST_CHARS
        )));
    }
    let direction = match body.direction.unwrap_or(Direction::Inbound) {
        Direction::Both => Direction::Inbound,
        other => other,
    };
    Ok(json_ok(
        StatusCode::OK,
        &json!(rules::test(engine, &body.text, direction)),
    ))
}

pub(super) async fn test_in_force(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<TestBody>,
) -> Result<HttpResponse, ApiError> {
    allowed(&caller)?;
    test_answer(&state.redactor.current(), &body)
}

pub(super) async fn create_draft(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let draft = rules::create_draft(context(&state), caller.principal())
        .await
        .map_err(rules_problem)?;
    Ok(json_ok(
        StatusCode::CREATED,
        &draft_json(&draft, state.rules.settings.two_person),
    ))
}

pub(super) async fn get_draft(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    allowed(&caller)?;
    let draft = rules::draft(&state.db, &path)
        .await
        .map_err(rules_problem)?;
    let (_, in_force, _) = rules::in_force(&state.db, &state.rules)
        .await
        .map_err(rules_problem)?;
    let mut value = draft_json(&draft, state.rules.settings.two_person);
    if let Some(map) = value.as_object_mut() {
        map.insert("packs".to_owned(), packs_json(&draft.packs, None));
        map.insert(
            "diff".to_owned(),
            json!(rules::diff::diff(&in_force, &draft.packs)),
        );
    }
    Ok(json_ok(StatusCode::OK, &value))
}

pub(super) async fn save_rule(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Json<RuleEdit>,
) -> Result<HttpResponse, ApiError> {
    let (draft_id, rule_id) = path.into_inner();
    let edit = body.into_inner();
    if edit.rule.id != rule_id {
        return Err(ApiError::bad_request(
            "the rule's `id` must be the one in the path",
        ));
    }
    let draft = rules::save_rule(context(&state), caller.principal(), &draft_id, edit)
        .await
        .map_err(rules_problem)?;
    Ok(json_ok(
        StatusCode::OK,
        &draft_json(&draft, state.rules.settings.two_person),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RevisionQuery {
    revision: Option<i64>,
}

pub(super) async fn delete_rule(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<RevisionQuery>,
) -> Result<HttpResponse, ApiError> {
    let (draft_id, rule_id) = path.into_inner();
    let draft = rules::delete_rule(
        context(&state),
        caller.principal(),
        &draft_id,
        &rule_id,
        query.revision,
    )
    .await
    .map_err(rules_problem)?;
    Ok(json_ok(
        StatusCode::OK,
        &draft_json(&draft, state.rules.settings.two_person),
    ))
}

pub(super) async fn test_draft(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<TestBody>,
) -> Result<HttpResponse, ApiError> {
    allowed(&caller)?;
    let draft = rules::draft(&state.db, &path)
        .await
        .map_err(rules_problem)?;
    let engine = state
        .rules
        .engine_for(&draft)
        .await
        .map_err(rules_problem)?;
    test_answer(&engine, &body)
}

/// Runs a dry run of `draft_id` over `corpus` (empty: the built-in sample), audited
/// `rules.dry_run` with the counts (never the corpus).
///
/// # Errors
/// The workspace's errors; 400 for a corpus that does not parse.
pub async fn dry_run(
    state: &AppState,
    principal: &crate::accounts::Principal,
    draft_id: &str,
    corpus: &str,
) -> Result<rules::dry_run::DryRun, RulesError> {
    rules::require(principal)?;
    let draft = rules::draft(&state.db, draft_id).await?;
    let after = state.rules.engine_for(&draft).await?;
    let before = state.redactor.current();
    let builtin = corpus.trim().is_empty();
    let text = if builtin {
        rules::dry_run::SAMPLE_CORPUS.to_owned()
    } else {
        corpus.to_owned()
    };
    let report = tokio::task::spawn_blocking(move || {
        let samples = rules::dry_run::parse(&text).map_err(RulesError::BadRequest)?;
        Ok::<_, RulesError>(rules::dry_run::run(&before, &after, &samples))
    })
    .await
    .map_err(|_| RulesError::BadRequest("the dry run failed".to_owned()))??;
    let now = crate::store::timestamp(state.clock.now());
    let mut tx = state.db.pool().begin().await?;
    crate::audit::append(
        &mut tx,
        state.vault.audit_key(),
        &crate::audit::Event::new(principal.actor(), "rules.dry_run")
            .subject("rule_draft", draft_id)
            .detail("revision", draft.revision)
            .detail("corpus", if builtin { "builtin" } else { "uploaded" })
            .detail(
                "messages",
                i64::try_from(report.messages).unwrap_or(i64::MAX),
            )
            .detail(
                "newly_hit",
                i64::try_from(report.newly_hit).unwrap_or(i64::MAX),
            )
            .detail(
                "newly_missed",
                i64::try_from(report.newly_missed).unwrap_or(i64::MAX),
            ),
        &now,
    )
    .await?;
    tx.commit().await?;
    Ok(report)
}

pub(super) async fn dry_run_draft(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    allowed(&caller)?;
    let corpus = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the corpus must be UTF-8 text"))?;
    let report = dry_run(&state, caller.principal(), &path, corpus)
        .await
        .map_err(rules_problem)?;
    Ok(json_ok(StatusCode::OK, &json!(report)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RevisionBody {
    revision: i64,
}

pub(super) async fn approve(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<RevisionBody>,
) -> Result<HttpResponse, ApiError> {
    let draft = rules::approve(context(&state), caller.principal(), &path, body.revision)
        .await
        .map_err(rules_problem)?;
    Ok(json_ok(
        StatusCode::OK,
        &draft_json(&draft, state.rules.settings.two_person),
    ))
}

pub(super) async fn publish(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<RevisionBody>,
) -> Result<HttpResponse, ApiError> {
    let version = rules::publish(context(&state), caller.principal(), &path, body.revision)
        .await
        .map_err(rules_problem)?;
    Ok(json_ok(StatusCode::CREATED, &json!(version)))
}

pub(super) async fn discard(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    rules::discard(context(&state), caller.principal(), &path)
        .await
        .map_err(rules_problem)?;
    Ok(json_ok(
        StatusCode::OK,
        &json!({"id": path.into_inner(), "status": "discarded"}),
    ))
}
