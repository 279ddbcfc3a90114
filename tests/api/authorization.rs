//! Every route that needs authentication × every role × anonymous: the JSON API with a token of
//! each role, a wrong token and none; the console with a signed-in session of each role and none.
//! Each cell runs against fresh objects (its own conversation, messages, canned reply, user and
//! token), so one cell's effect never decides another's answer. An agent is also tried on a
//! conversation assigned to someone else, which must stay invisible (404) in every way. Every
//! console form is also posted with a wrong CSRF token, which must be refused.

use crate::both_backends;
use crate::console_api::{assign_to, secure_message, user};
use crate::helpers::{no_worker, Backend, Options, TestApp};
use drawbridge::accounts::Principal;
use drawbridge::store::sessions::{self, Stage};
use drawbridge::store::tokens::Role;
use serde_json::{json, Value};
use sqlx::Row;
use std::sync::atomic::{AtomicU32, Ordering};

both_backends!(
    every_api_route_for_every_role,
    every_console_route_for_every_role
);

/// Who makes the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// No credentials.
    Anonymous,
    /// A bearer token that does not exist (API only).
    BadToken,
    Agent,
    /// An agent, on a conversation assigned to another agent.
    AgentElsewhere,
    Supervisor,
    Compliance,
    Admin,
}

impl Who {
    fn role(self) -> Option<Role> {
        match self {
            Self::Agent | Self::AgentElsewhere => Some(Role::Agent),
            Self::Supervisor => Some(Role::Supervisor),
            Self::Compliance => Some(Role::Compliance),
            Self::Admin => Some(Role::Admin),
            Self::Anonymous | Self::BadToken => None,
        }
    }
}

/// Expected statuses: anonymous, agent, agent on a conversation assigned to someone else
/// (`None`: the route has no conversation), supervisor, compliance, admin.
type Row6 = (u16, u16, Option<u16>, u16, u16, u16);

/// The objects one cell acts on.
struct Fixture {
    conversation: String,
    /// Another conversation, with an active secure link.
    linked: String,
    contact: String,
    /// The conversation's inbound carrier message.
    message: String,
    /// A secure-channel message in it.
    secure: String,
    /// An outbound message held by quiet hours.
    held: String,
    /// A canned reply.
    canned: String,
    /// A user (for the admin pages to change).
    user: String,
    /// An API token's id (for the admin pages to revoke).
    token: String,
    /// An open rule draft (made by another compliance principal) holding the rule `auth-probe`.
    draft: String,
    draft_revision: i64,
    /// An open rule draft approved by a second principal, ready to publish.
    approved: String,
    /// The first conversation's number without its `+` (forms write `%2B{phone}`).
    phone: String,
    /// An active legal hold (on the linked conversation's contact, never on `contact`).
    hold: String,
    n: u32,
}

/// Two rule drafts for the rule editor's routes: one with a rule to edit or delete, made by a
/// compliance token that is neither the cell's user nor its token; one approved by another.
async fn rule_drafts(app: &TestApp) -> (String, i64, String) {
    use drawbridge::rules::{self, Context, RuleEdit};
    let author = Principal::token("fixture-author", Role::Compliance);
    let approver = Principal::token("fixture-approver", Role::Compliance);
    let cx = Context::of(&app.state);
    let draft = rules::create_draft(cx, &author).await.unwrap();
    let rule: drawbridge::redact::rules::Rule = toml::from_str(
        r#"
        id = "auth-probe"
        description = "probe"
        type = "legal"
        kind = "keywords"
        terms = ["zanzibar"]
        action = "escalate"
        examples.match = ["about zanzibar"]
        "#,
    )
    .unwrap();
    let draft = rules::save_rule(
        cx,
        &author,
        &draft.id,
        RuleEdit {
            pack: "probes".to_owned(),
            revision: None,
            rule,
        },
    )
    .await
    .unwrap();
    let approved = rules::create_draft(cx, &author).await.unwrap();
    rules::approve(cx, &approver, &approved.id, approved.revision)
        .await
        .unwrap();
    (draft.id, draft.revision, approved.id)
}

/// The users and tokens of the test.
struct Cast {
    users: Vec<(Role, String)>,
    other_agent: String,
    supervisor: String,
}

static NEXT: AtomicU32 = AtomicU32::new(1);

async fn fixture(app: &TestApp, cast: &Cast, who: Who, path: &str) -> Fixture {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let from = format!("+1555300{:04}", n % 10_000);
    assert_eq!(
        app.text_from(&from, "where is my order?").await.status(),
        200
    );
    let (conversation, contact) = app.conversation_of(&from).await;
    let message: String = sqlx::query(
        "SELECT message_id FROM message WHERE conversation_id = $1 AND direction = 'inbound'",
    )
    .bind(&conversation)
    .fetch_one(app.state.db.pool())
    .await
    .unwrap()
    .get(0);
    let secure = secure_message(app, &conversation, &contact, "my account is 12-34").await;
    let held = app
        .queue_reply(&conversation, "Your parcel left today.")
        .await;
    sqlx::query(
        "UPDATE outbox SET error_class = 'quiet_hours', next_attempt_at = '2999-01-01T00:00:00.000000Z' WHERE outbox_id = $1",
    )
    .bind(&held.outbox_id)
    .execute(app.state.db.pool())
    .await
    .unwrap();
    let supervisor = Principal::user(&cast.supervisor, Role::Supervisor);
    let canned = drawbridge::inbox::canned::save(
        &app.state,
        &supervisor,
        None,
        &format!("Greeting {n}"),
        "Hello, how can we help?",
    )
    .await
    .unwrap();
    let target = user(app, Role::Agent, &format!("target{n}@example.test")).await;
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let (token, _) = drawbridge::store::tokens::create(
        &mut conn,
        &format!("cell{n}"),
        Role::Agent,
        &drawbridge::store::now(),
    )
    .await
    .unwrap();
    drop(conn);
    // A conversation whose card number escalated: it has an active secure link.
    let linked_from = format!("+1555400{:04}", n % 10_000);
    assert_eq!(
        app.text_from(&linked_from, "my card is 4539148803436467")
            .await
            .status(),
        200
    );
    let (linked, _) = app.conversation_of(&linked_from).await;
    // Rule drafts only for the rule editor's routes: making them runs the rules' examples.
    let (draft, draft_revision, approved) =
        if path.contains("{draft}") || path.contains("{approved}") {
            rule_drafts(app).await
        } else {
            (String::new(), 0, String::new())
        };
    if who == Who::AgentElsewhere {
        assign_to(app, &conversation, &cast.other_agent).await;
        assign_to(app, &linked, &cast.other_agent).await;
    }
    let hold = drawbridge::retention::place(
        &app.state.db,
        &app.state.vault,
        drawbridge::audit::Actor::Cli("test"),
        drawbridge::retention::HoldTarget::Conversation(&linked),
        "litigation",
        None,
        &drawbridge::store::now(),
    )
    .await
    .unwrap()
    .id;
    Fixture {
        conversation,
        linked,
        contact,
        message,
        secure,
        held: held.message_id,
        canned,
        user: target,
        token,
        draft,
        draft_revision,
        approved,
        phone: from.trim_start_matches('+').to_owned(),
        hold,
        n,
    }
}

/// `path` with `{id}`-style placeholders filled from the fixture.
fn fill(path: &str, f: &Fixture, actor: &str) -> String {
    path.replace("{conversation}", &f.conversation)
        .replace("{linked}", &f.linked)
        .replace("{contact}", &f.contact)
        .replace("{message}", &f.message)
        .replace("{secure}", &f.secure)
        .replace("{held}", &f.held)
        .replace("{canned}", &f.canned)
        .replace("{user}", &f.user)
        .replace("{token}", &f.token)
        .replace("{self}", actor)
        .replace("{draft}", &f.draft)
        .replace("{draft_revision}", &f.draft_revision.to_string())
        .replace("{approved}", &f.approved)
        .replace("{phone}", &f.phone)
        .replace("{hold}", &f.hold)
        .replace("{n}", &f.n.to_string())
}

async fn setup(backend: Backend) -> (TestApp, Cast) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            outbox: Some(no_worker()),
            ..Options::default()
        },
    )
    .await;
    let mut users = Vec::new();
    for (role, email) in [
        (Role::Agent, "agent@example.test"),
        (Role::Supervisor, "supervisor@example.test"),
        (Role::Compliance, "compliance@example.test"),
        (Role::Admin, "admin@example.test"),
    ] {
        users.push((role, user(&app, role, email).await));
    }
    let other_agent = user(&app, Role::Agent, "other-agent@example.test").await;
    let supervisor = users[1].1.clone();
    (
        app,
        Cast {
            users,
            other_agent,
            supervisor,
        },
    )
}

fn expected(row: &Row6, who: Who) -> Option<u16> {
    match who {
        Who::Anonymous => Some(row.0),
        Who::BadToken => Some(row.0),
        Who::Agent => Some(row.1),
        Who::AgentElsewhere => row.2,
        Who::Supervisor => Some(row.3),
        Who::Compliance => Some(row.4),
        Who::Admin => Some(row.5),
    }
}

const EVERYONE: [Who; 7] = [
    Who::Anonymous,
    Who::BadToken,
    Who::Agent,
    Who::AgentElsewhere,
    Who::Supervisor,
    Who::Compliance,
    Who::Admin,
];

/// The API: (method, route as registered, the path to request, JSON body, expected statuses).
/// Anonymous and a wrong token get 401 everywhere but the OpenAPI document.
fn api_table() -> Vec<(&'static str, &'static str, &'static str, Value, Row6)> {
    vec![
        (
            "get",
            "/api/v1/openapi.json",
            "/api/v1/openapi.json",
            Value::Null,
            (200, 200, None, 200, 200, 200),
        ),
        (
            "get",
            "/api/v1/conversations",
            "/api/v1/conversations",
            Value::Null,
            (401, 200, None, 200, 200, 403),
        ),
        (
            "get",
            "/api/v1/conversations/{id}/messages",
            "/api/v1/conversations/{conversation}/messages",
            Value::Null,
            (401, 200, Some(404), 200, 200, 403),
        ),
        (
            "post",
            "/api/v1/conversations/{id}/messages",
            "/api/v1/conversations/{conversation}/messages",
            json!({"body": "It left today."}),
            (401, 202, Some(404), 202, 403, 403),
        ),
        (
            "post",
            "/api/v1/conversations/{id}/secure-link",
            "/api/v1/conversations/{conversation}/secure-link",
            json!({}),
            (401, 201, Some(404), 201, 403, 403),
        ),
        (
            "delete",
            "/api/v1/conversations/{id}/secure-link",
            "/api/v1/conversations/{linked}/secure-link",
            Value::Null,
            (401, 200, Some(404), 200, 403, 403),
        ),
        (
            "post",
            "/api/v1/conversations/{id}/secure-messages",
            "/api/v1/conversations/{linked}/secure-messages",
            json!({"body": "Your receipt is ready."}),
            (401, 201, Some(404), 201, 403, 403),
        ),
        // A token is never an assignee: an agent's token cannot assign (agents take conversations
        // for themselves).
        (
            "post",
            "/api/v1/conversations/{id}/assign",
            "/api/v1/conversations/{conversation}/assign",
            json!({"user_id": "{user}"}),
            (401, 403, Some(404), 200, 403, 403),
        ),
        (
            "post",
            "/api/v1/conversations/{id}/close",
            "/api/v1/conversations/{conversation}/close",
            json!({}),
            (401, 200, Some(404), 200, 403, 403),
        ),
        (
            "post",
            "/api/v1/conversations/{id}/reopen",
            "/api/v1/conversations/{conversation}/reopen",
            json!({}),
            (401, 200, Some(404), 200, 403, 403),
        ),
        (
            "post",
            "/api/v1/conversations/{id}/consent",
            "/api/v1/conversations/{conversation}/consent",
            json!({"kind": "opt_out"}),
            (401, 200, Some(404), 200, 200, 403),
        ),
        (
            "get",
            "/api/v1/contacts/{id}/consent",
            "/api/v1/contacts/{contact}/consent",
            Value::Null,
            (401, 200, Some(404), 200, 200, 403),
        ),
        (
            "put",
            "/api/v1/contacts/{id}/time-zone",
            "/api/v1/contacts/{contact}/time-zone",
            json!({"time_zone": "America/Chicago"}),
            (401, 200, Some(404), 200, 403, 403),
        ),
        (
            "post",
            "/api/v1/messages/{id}/reveal",
            "/api/v1/messages/{secure}/reveal",
            json!({"reason": "checking the order"}),
            (401, 200, Some(404), 200, 200, 403),
        ),
        (
            "post",
            "/api/v1/messages/{id}/override-quiet-hours",
            "/api/v1/messages/{held}/override-quiet-hours",
            json!({"reason": "customer_requested"}),
            (401, 403, Some(403), 200, 403, 403),
        ),
        // The rule editor: compliance only.
        (
            "get",
            "/api/v1/rules",
            "/api/v1/rules",
            Value::Null,
            COMPLIANCE_200,
        ),
        (
            "get",
            "/api/v1/rules/versions",
            "/api/v1/rules/versions",
            Value::Null,
            COMPLIANCE_200,
        ),
        (
            "get",
            "/api/v1/rules/versions/{version}",
            "/api/v1/rules/versions/0",
            Value::Null,
            COMPLIANCE_200,
        ),
        (
            "post",
            "/api/v1/rules/versions/{version}/rollback",
            "/api/v1/rules/versions/0/rollback",
            json!({}),
            COMPLIANCE_201,
        ),
        (
            "post",
            "/api/v1/rules/test",
            "/api/v1/rules/test",
            json!({"text": "about zanzibar"}),
            COMPLIANCE_200,
        ),
        (
            "post",
            "/api/v1/rules/drafts",
            "/api/v1/rules/drafts",
            json!({}),
            COMPLIANCE_201,
        ),
        (
            "get",
            "/api/v1/rules/drafts/{id}",
            "/api/v1/rules/drafts/{draft}",
            Value::Null,
            COMPLIANCE_200,
        ),
        (
            "put",
            "/api/v1/rules/drafts/{id}/rules/{rule}",
            "/api/v1/rules/drafts/{draft}/rules/auth-probe",
            json!({"pack": "probes", "rule": {"id": "auth-probe", "description": "probe", "type": "legal", "kind": "keywords", "terms": ["zanzibar", "tanganyika"], "action": "escalate", "examples": {"match": ["about tanganyika"]}}}),
            COMPLIANCE_200,
        ),
        (
            "delete",
            "/api/v1/rules/drafts/{id}/rules/{rule}",
            "/api/v1/rules/drafts/{draft}/rules/auth-probe",
            Value::Null,
            COMPLIANCE_200,
        ),
        (
            "post",
            "/api/v1/rules/drafts/{id}/test",
            "/api/v1/rules/drafts/{draft}/test",
            json!({"text": "about zanzibar"}),
            COMPLIANCE_200,
        ),
        (
            "post",
            "/api/v1/rules/drafts/{id}/dry-run",
            "/api/v1/rules/drafts/{draft}/dry-run",
            json!("about zanzibar"),
            COMPLIANCE_200,
        ),
        (
            "post",
            "/api/v1/rules/drafts/{id}/approve",
            "/api/v1/rules/drafts/{draft}/approve",
            json!({"revision": 2}),
            COMPLIANCE_200,
        ),
        (
            "post",
            "/api/v1/rules/drafts/{id}/publish",
            "/api/v1/rules/drafts/{approved}/publish",
            json!({"revision": 1}),
            COMPLIANCE_201,
        ),
        (
            "post",
            "/api/v1/rules/drafts/{id}/discard",
            "/api/v1/rules/drafts/{draft}/discard",
            json!({}),
            COMPLIANCE_200,
        ),
        // The audit trail is compliance's; admins may run the integrity check.
        (
            "get",
            "/api/v1/audit/events",
            "/api/v1/audit/events",
            Value::Null,
            (401, 403, None, 403, 200, 403),
        ),
        (
            "get",
            "/api/v1/audit/verify",
            "/api/v1/audit/verify",
            Value::Null,
            (401, 403, None, 403, 200, 200),
        ),
        (
            "get",
            "/api/v1/audit/anchor",
            "/api/v1/audit/anchor",
            Value::Null,
            (401, 403, None, 403, 200, 403),
        ),
        // Reports (counts only): compliance and supervisors.
        (
            "get",
            "/api/v1/reports/{id}",
            "/api/v1/reports/redactions",
            Value::Null,
            (401, 403, None, 200, 200, 403),
        ),
        // Legal holds: compliance only.
        (
            "get",
            "/api/v1/legal-holds",
            "/api/v1/legal-holds",
            Value::Null,
            (401, 403, None, 403, 200, 403),
        ),
        (
            "post",
            "/api/v1/legal-holds",
            "/api/v1/legal-holds",
            json!({"phone": "+{phone}", "reason": "litigation"}),
            (401, 403, None, 403, 201, 403),
        ),
        (
            "post",
            "/api/v1/legal-holds/{id}/release",
            "/api/v1/legal-holds/{hold}/release",
            json!({}),
            (401, 403, None, 403, 200, 403),
        ),
    ]
}

/// A compliance-only API route answering 200 (or 201) to compliance, 403 to every other role.
const COMPLIANCE_200: Row6 = (401, 403, None, 403, 200, 403);
const COMPLIANCE_201: Row6 = (401, 403, None, 403, 201, 403);

async fn every_api_route_for_every_role(backend: Backend) {
    let (app, cast) = setup(backend).await;
    let table = api_table();
    // The table covers exactly the registered routes.
    let mut covered: Vec<(&str, &str)> = table.iter().map(|r| (r.0, r.1)).collect();
    let mut registered: Vec<(&str, &str)> = drawbridge::web::api::routes::ROUTES.to_vec();
    covered.sort_unstable();
    registered.sort_unstable();
    assert_eq!(covered, registered, "every API route is in the matrix");
    let mut tokens = std::collections::HashMap::new();
    for role in [Role::Agent, Role::Supervisor, Role::Compliance, Role::Admin] {
        tokens.insert(role.as_str(), app.token(role).await);
    }
    let mut failures = Vec::new();
    for (method, route, path, body, row) in &table {
        for who in EVERYONE {
            let Some(want) = expected(row, who) else {
                continue;
            };
            let f = fixture(&app, &cast, who, path).await;
            let url = format!("{}{}", app.address, fill(path, &f, ""));
            let mut request = match *method {
                "get" => app.client.get(&url),
                "post" => app.client.post(&url),
                "put" => app.client.put(&url),
                "delete" => app.client.delete(&url),
                other => panic!("method {other}"),
            };
            request = match who {
                Who::Anonymous => request,
                Who::BadToken => {
                    request.bearer_auth("dbt_not-a-token-0000000000000000000000000000")
                }
                _ => request.bearer_auth(&tokens[who.role().unwrap().as_str()]),
            };
            if !body.is_null() {
                let text = fill(&body.to_string(), &f, "");
                request = request
                    .header("content-type", "application/json")
                    .body(text);
            }
            let response = request.send().await.unwrap();
            let got = response.status().as_u16();
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            if got != want {
                failures.push(format!(
                    "{method} {route} as {who:?}: {got}, expected {want}: {answer}"
                ));
                continue;
            }
            // Refusals are in the API's error format with the matching code.
            let code = match got {
                401 => Some("unauthorized"),
                403 => Some("forbidden"),
                404 => Some("not_found"),
                _ => None,
            };
            if let Some(code) = code {
                if answer["code"] != code || !answer["message"].is_string() {
                    failures.push(format!("{method} {route} as {who:?}: body {answer}"));
                }
            }
        }
    }
    // Opting a contact in is compliance's alone.
    for (role, want) in [
        (Role::Agent, 403),
        (Role::Supervisor, 403),
        (Role::Compliance, 200),
        (Role::Admin, 403),
    ] {
        let f = fixture(&app, &cast, Who::Agent, "").await;
        let got = app
            .api_post(
                &tokens[role.as_str()],
                &format!("/api/v1/conversations/{}/consent", f.conversation),
                json!({"kind": "opt_in"}),
            )
            .await
            .status()
            .as_u16();
        if got != want {
            failures.push(format!("opt_in as {role:?}: {got}, expected {want}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The console: (method, path, form or JSON body, expected statuses). Anonymous: 303 to
/// `/login` everywhere. `{self}` is the acting user's id.
fn console_table() -> Vec<(&'static str, &'static str, &'static str, Row6)> {
    const ANON: u16 = 303;
    vec![
        // The inbox: admins are sent to their own pages.
        ("get", "/console", "", (ANON, 200, None, 200, 200, 303)),
        ("get", "/console/conversations/{conversation}", "", (ANON, 200, Some(404), 200, 200, 404)),
        ("get", "/console/conversations/{conversation}/messages/{message}", "", (ANON, 200, Some(404), 200, 200, 404)),
        ("get", "/console/events", "", (ANON, 200, None, 200, 200, 403)),
        ("post", "/console/conversations/{conversation}/reply", "body=It+left+today.", (ANON, 303, Some(404), 303, 403, 403)),
        ("post", "/console/conversations/{conversation}/assign", "user_id={self}", (ANON, 303, Some(404), 303, 403, 403)),
        ("post", "/console/conversations/{conversation}/close", "", (ANON, 303, Some(404), 303, 403, 403)),
        ("post", "/console/conversations/{conversation}/reopen", "", (ANON, 303, Some(404), 303, 403, 403)),
        ("post", "/console/conversations/{conversation}/notes", "body=Called+back.", (ANON, 303, Some(404), 303, 403, 403)),
        ("post", "/console/conversations/{conversation}/secure-link", "", (ANON, 303, Some(404), 303, 403, 403)),
        ("post", "/console/conversations/{linked}/secure-link/revoke", "", (ANON, 303, Some(404), 303, 403, 403)),
        ("post", "/console/conversations/{linked}/secure-messages", "body=Your+receipt+is+ready.", (ANON, 303, Some(404), 303, 403, 403)),
        ("post", "/console/messages/{secure}/reveal", "reason=checking+the+order", (ANON, 200, Some(404), 200, 200, 403)),
        // The reply box's pre-check reads no customer data: any signed-in user.
        ("json", "/console/dlp-check", r#"{"body": "hello"}"#, (ANON, 200, None, 200, 200, 200)),
        // Canned replies: supervisors.
        ("get", "/console/canned", "", (ANON, 403, None, 200, 403, 403)),
        ("post", "/console/canned", "title=Thanks+{n}&body=Thank+you!", (ANON, 403, None, 303, 403, 403)),
        ("post", "/console/canned/{canned}", "title=Hi+{n}&body=Hello+again.", (ANON, 403, None, 303, 403, 403)),
        ("post", "/console/canned/{canned}/delete", "", (ANON, 403, None, 303, 403, 403)),
        // Users and tokens: admins.
        ("get", "/console/admin/users", "", (ANON, 403, None, 403, 403, 200)),
        ("post", "/console/admin/users", "email=new{n}%40example.test&role=agent", (ANON, 403, None, 403, 403, 200)),
        ("post", "/console/admin/users/{user}", "action=disable", (ANON, 403, None, 403, 403, 303)),
        ("get", "/console/admin/tokens", "", (ANON, 403, None, 403, 403, 200)),
        ("post", "/console/admin/tokens", "name=crm-{n}&role=agent", (ANON, 403, None, 403, 403, 200)),
        ("post", "/console/admin/tokens/{token}/revoke", "", (ANON, 403, None, 403, 403, 303)),
        // The rule editor: compliance.
        ("get", "/compliance/rules", "", (ANON, 403, None, 403, 200, 403)),
        ("post", "/compliance/rules/test", "text=about+zanzibar", (ANON, 403, None, 403, 200, 403)),
        ("post", "/compliance/rules/drafts", "", (ANON, 403, None, 403, 303, 403)),
        ("get", "/compliance/rules/drafts/{draft}", "", (ANON, 403, None, 403, 200, 403)),
        ("get", "/compliance/rules/drafts/{draft}/edit?rule=auth-probe", "", (ANON, 403, None, 403, 200, 403)),
        ("post", "/compliance/rules/drafts/{draft}/edit", "revision={draft_revision}&pack=probes&id=probe-{n}&description=probe&type=legal&kind=keywords&terms=tanganyika&action=escalate&direction=both&enabled=on&examples_match=about+tanganyika", (ANON, 403, None, 403, 303, 403)),
        ("post", "/compliance/rules/drafts/{draft}/delete", "rule=auth-probe&revision={draft_revision}", (ANON, 403, None, 403, 303, 403)),
        ("post", "/compliance/rules/drafts/{draft}/test", "text=about+zanzibar", (ANON, 403, None, 403, 200, 403)),
        ("post", "/compliance/rules/drafts/{draft}/dry-run", "corpus=about+zanzibar", (ANON, 403, None, 403, 200, 403)),
        ("post", "/compliance/rules/drafts/{draft}/approve", "revision={draft_revision}", (ANON, 403, None, 403, 303, 403)),
        ("post", "/compliance/rules/drafts/{approved}/publish", "revision=1", (ANON, 403, None, 403, 303, 403)),
        ("post", "/compliance/rules/drafts/{draft}/discard", "", (ANON, 403, None, 403, 303, 403)),
        ("post", "/compliance/rules/versions/0/rollback", "", (ANON, 403, None, 403, 303, 403)),
        // One's own account: everyone signed in.
        ("get", "/account/password", "", (ANON, 200, None, 200, 200, 200)),
        ("post", "/account/password", "current_password=not-it-at-all&new_password=a+long+new+passphrase&confirm_password=a+long+new+passphrase", (ANON, 422, None, 422, 422, 422)),
        ("get", "/account/two-factor", "", (ANON, 200, None, 200, 200, 200)),
        ("post", "/account/two-factor", "code=000000", (ANON, 422, None, 422, 422, 422)),
        ("post", "/logout", "", (ANON, 303, None, 303, 303, 303)),
        // The audit trail: compliance; the integrity check also admins.
        ("get", "/compliance/audit", "", (ANON, 403, None, 403, 200, 403)),
        ("post", "/compliance/audit/verify", "", (ANON, 403, None, 403, 200, 200)),
        ("get", "/compliance/audit/export/csv", "", (ANON, 403, None, 403, 200, 403)),
        ("get", "/compliance/audit/export/json", "", (ANON, 403, None, 403, 200, 403)),
        ("get", "/compliance/audit/anchor", "", (ANON, 403, None, 403, 200, 403)),
        // Reports: compliance and supervisors.
        ("get", "/compliance/reports", "", (ANON, 403, None, 200, 200, 403)),
        ("get", "/compliance/reports/csv/opt_outs", "", (ANON, 403, None, 200, 200, 403)),
        // Legal holds and data subject requests: compliance only.
        ("get", "/compliance/holds", "", (ANON, 403, None, 403, 200, 403)),
        ("post", "/compliance/holds", "phone=%2B{phone}&reason=litigation&note=case+{n}", (ANON, 403, None, 403, 303, 403)),
        ("post", "/compliance/holds/{hold}/release", "", (ANON, 403, None, 403, 303, 403)),
        ("get", "/compliance/subjects", "", (ANON, 403, None, 403, 200, 403)),
        ("post", "/compliance/subjects/export", "phone=%2B{phone}&format=json", (ANON, 403, None, 403, 200, 403)),
        ("post", "/compliance/subjects/erase", "phone=%2B{phone}", (ANON, 403, None, 403, 200, 403)),
        ("post", "/compliance/subjects/erase/confirm", "contact_id={contact}&confirm=ERASE", (ANON, 403, None, 403, 200, 403)),
    ]
}

/// A password every console user of this test has (hashed once: argon2 is slow by design).
const PASSWORD: &str = "correct horse battery staple";

async fn every_console_route_for_every_role(backend: Backend) {
    let (app, cast) = setup(backend).await;
    let hash =
        drawbridge::accounts::password::hash(&secrecy::SecretString::from(PASSWORD.to_owned()))
            .unwrap();
    for (_, id) in &cast.users {
        sqlx::query("UPDATE app_user SET password_hash = $1 WHERE user_id = $2")
            .bind(&hash)
            .bind(id)
            .execute(app.state.db.pool())
            .await
            .unwrap();
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut failures = Vec::new();
    for (method, path, body, row) in console_table() {
        for who in EVERYONE {
            if who == Who::BadToken {
                continue;
            }
            let Some(want) = expected(&row, who) else {
                continue;
            };
            let f = fixture(&app, &cast, who, path).await;
            let actor = match who.role() {
                Some(role) => cast
                    .users
                    .iter()
                    .find(|(r, _)| *r == role)
                    .unwrap()
                    .1
                    .clone(),
                None => String::new(),
            };
            // A fresh session per cell (a cell may sign out, or change the password).
            let session = if who == Who::Anonymous {
                None
            } else {
                let mut conn = app.state.db.pool().acquire().await.unwrap();
                let (session, token) = sessions::create(
                    &mut conn,
                    &actor,
                    Stage::SignedIn,
                    "password",
                    app.state.clock.now(),
                    chrono::TimeDelta::hours(8),
                )
                .await
                .unwrap();
                Some((app.state.vault.csrf_token(&session.id), token.to_string()))
            };
            let csrf = session.as_ref().map(|s| s.0.clone()).unwrap_or_default();
            let url = format!("{}{}", app.address, fill(path, &f, &actor));
            let body = fill(body, &f, &actor);
            let mut request = match method {
                "get" => client.get(&url),
                "post" => {
                    let form = if body.is_empty() {
                        format!("csrf_token={csrf}")
                    } else {
                        format!("{body}&csrf_token={csrf}")
                    };
                    client
                        .post(&url)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(form)
                }
                "json" => client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-csrf-token", &csrf)
                    .body(body.clone()),
                other => panic!("method {other}"),
            };
            if let Some((_, token)) = &session {
                request = request.header("cookie", format!("drawbridge_session={token}"));
            }
            let response = request.send().await.unwrap();
            let got = response.status().as_u16();
            let location = response
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            drop(response);
            if got != want {
                failures.push(format!(
                    "{method} {path} as {who:?}: {got}, expected {want} (location {location:?})"
                ));
                continue;
            }
            if who == Who::Anonymous && !location.starts_with("/login") {
                failures.push(format!(
                    "{method} {path} anonymous: to {location:?}, not /login"
                ));
            }
            // Nothing that was refused went through a sign-in page by mistake.
            if who != Who::Anonymous
                && got == 303
                && location.starts_with("/login")
                && path != "/logout"
            {
                failures.push(format!("{method} {path} as {who:?}: sent to sign-in"));
            }
        }
    }

    // Every form with a wrong CSRF token is refused, for a role that could otherwise post it.
    for (method, path, body, row) in console_table() {
        if method == "get" {
            continue;
        }
        let allowed = [
            (Who::Agent, row.1),
            (Who::Supervisor, row.3),
            (Who::Compliance, row.4),
            (Who::Admin, row.5),
        ]
        .into_iter()
        .find(|(_, status)| *status != 403 && *status != 404)
        .map(|(who, _)| who);
        let Some(who) = allowed else { continue };
        let f = fixture(&app, &cast, who, path).await;
        let role = who.role().unwrap();
        let actor = cast
            .users
            .iter()
            .find(|(r, _)| *r == role)
            .unwrap()
            .1
            .clone();
        let mut conn = app.state.db.pool().acquire().await.unwrap();
        let (_, token) = sessions::create(
            &mut conn,
            &actor,
            Stage::SignedIn,
            "password",
            app.state.clock.now(),
            chrono::TimeDelta::hours(8),
        )
        .await
        .unwrap();
        drop(conn);
        // Another session's token is as wrong as none.
        let mut conn = app.state.db.pool().acquire().await.unwrap();
        let (other, _) = sessions::create(
            &mut conn,
            &actor,
            Stage::SignedIn,
            "password",
            app.state.clock.now(),
            chrono::TimeDelta::hours(8),
        )
        .await
        .unwrap();
        drop(conn);
        let wrong = app.state.vault.csrf_token(&other.id);
        let url = format!("{}{}", app.address, fill(path, &f, &actor));
        let body = fill(body, &f, &actor);
        for csrf in [String::new(), wrong.clone()] {
            let request = if method == "json" {
                client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-csrf-token", &csrf)
                    .body(body.clone())
            } else {
                client
                    .post(&url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(format!("{body}&csrf_token={csrf}"))
            };
            let got = request
                .header("cookie", format!("drawbridge_session={}", token.as_str()))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            if got != 403 {
                failures.push(format!("{path} as {who:?} with a wrong CSRF token: {got}"));
            }
        }
    }
    // The refused posts changed nothing: no note, no reply from the CSRF round.
    let notes: i64 = sqlx::query("SELECT COUNT(*) FROM note")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        notes, 2,
        "one note each from the agent's and the supervisor's cells"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
