//! The JSON API's conversation routes (`/api/v1/conversations…`, `/api/v1/messages/{id}/reveal`,
//! `/api/v1/openapi.json`): listing and filtering, threads as stored, assignment, closing and
//! reopening, secure links, reveals, the error format, and the OpenAPI document against the
//! router's own list of routes.

use crate::both_backends;
use crate::helpers::{no_worker, Backend, Options, TestApp, CUSTOMER};
use drawbridge::accounts::Principal;
use drawbridge::store::tokens::Role;
use drawbridge::store::users::{self, NewUser};
use serde_json::{json, Value};
use sqlx::Row;
use std::collections::BTreeSet;

both_backends!(
    conversations_are_listed_filtered_and_paged,
    a_thread_is_as_stored_and_every_read_is_audited,
    assign_close_and_reopen,
    a_secure_link_is_sent_once,
    secure_channel_messages_are_revealed_only_with_a_reason,
    the_openapi_document_describes_every_route,
);

const CARD: &str = "4539 1488 0343 6467";

/// A user with `role` (no password: these tests act for them in-process).
pub async fn user(app: &TestApp, role: Role, email: &str) -> String {
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    users::create(
        &mut conn,
        &app.state.vault,
        &NewUser {
            email,
            role,
            password_hash: None,
            must_change_password: false,
        },
        &drawbridge::store::now(),
    )
    .await
    .unwrap()
    .unwrap()
}

/// Assigns `conversation` to `user_id` as a supervisor would in the console.
pub async fn assign_to(app: &TestApp, conversation: &str, user_id: &str) {
    let supervisor = Principal::user("test-supervisor", Role::Supervisor);
    drawbridge::inbox::assign(&app.state, &supervisor, conversation, Some(user_id))
        .await
        .unwrap();
}

/// A conversation with a new contact `+1555123{n:04}`: (conversation, contact).
pub async fn conversation_with(app: &TestApp, n: u32, body: &str) -> (String, String) {
    let from = format!("+1555123{n:04}");
    assert_eq!(app.text_from(&from, body).await.status(), 200);
    app.conversation_of(&from).await
}

/// Stores a secure-channel message from the contact, sealed under the contact's data key as the
/// secure chat stores it; returns its id.
pub async fn secure_message(
    app: &TestApp,
    conversation: &str,
    contact: &str,
    body: &str,
) -> String {
    let wrapped: Vec<u8> =
        sqlx::query("SELECT data_key_wrapped FROM contact WHERE contact_id = $1")
            .bind(contact)
            .fetch_one(app.state.db.pool())
            .await
            .unwrap()
            .get(0);
    let dek = app.state.vault.unwrap_data_key(&wrapped, contact).unwrap();
    let id = drawbridge::store::new_id();
    let sealed = drawbridge::vault::seal(
        &dek,
        body.as_bytes(),
        drawbridge::vault::Aad::new("secure_message", "body_sealed", &id),
    )
    .unwrap();
    sqlx::query(
        "INSERT INTO secure_message (secure_message_id, conversation_id, direction, body_sealed, findings, created_at) \
         VALUES ($1, $2, 'inbound', $3, '{}', $4)",
    )
    .bind(&id)
    .bind(conversation)
    .bind(sealed)
    .bind(drawbridge::store::now())
    .execute(app.state.db.pool())
    .await
    .unwrap();
    id
}

/// The status and JSON body of a response.
async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Checks an error body: exactly `code` and `message`, with this code.
fn assert_problem(body: &Value, code: &str) {
    let keys: BTreeSet<&str> = body
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {body}"))
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, BTreeSet::from(["code", "message"]), "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(!body["message"].as_str().unwrap().is_empty());
}

fn ids(list: &Value) -> BTreeSet<String> {
    list["conversations"]
        .as_array()
        .unwrap_or_else(|| panic!("no conversations in {list}"))
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `(action, actor_kind, details)` of every audit event with this action.
async fn audit_events(app: &TestApp, action: &str) -> Vec<(String, String, Value)> {
    sqlx::query(
        "SELECT action, actor_kind, details FROM audit_event WHERE action = $1 ORDER BY seq",
    )
    .bind(action)
    .fetch_all(app.state.db.pool())
    .await
    .unwrap()
    .into_iter()
    .map(|r| {
        let details: String = r.get(2);
        (r.get(0), r.get(1), serde_json::from_str(&details).unwrap())
    })
    .collect()
}

async fn conversations_are_listed_filtered_and_paged(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            outbox: Some(no_worker()),
            ..Options::default()
        },
    )
    .await;
    let supervisor = app.token(Role::Supervisor).await;
    let agent = app.token(Role::Agent).await;
    let compliance = app.token(Role::Compliance).await;
    let admin = app.token(Role::Admin).await;
    let mut conversations = Vec::new();
    for n in 1..=4 {
        conversations.push(conversation_with(&app, n, "hello").await.0);
    }
    let all: BTreeSet<String> = conversations.iter().cloned().collect();

    // Everything open, with the documented fields.
    let (status, list) = answer(app.api_get(&supervisor, "/api/v1/conversations").await).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(ids(&list), all);
    assert_eq!(list["next_page"], Value::Null);
    let first = &list["conversations"][0];
    for field in [
        "id",
        "contact_id",
        "status",
        "channel",
        "last_activity",
        "assigned_user_id",
        "escalated",
        "opted_out",
        "unread",
    ] {
        assert!(first.get(field).is_some(), "{field} missing from {first}");
    }
    assert_eq!(first["status"], "open");
    assert_eq!(first["channel"], "sms");
    assert_eq!(first["escalated"], false);
    assert_eq!(first["opted_out"], false);
    assert_eq!(first["assigned_user_id"], Value::Null);
    // No customer number anywhere in a list.
    let text = list.to_string();
    assert!(!text.contains("5551230001") && !text.contains(CUSTOMER));

    // Pages of two: newest activity first, no overlap, the last page says so.
    let (_, page1) = answer(
        app.api_get(&supervisor, "/api/v1/conversations?per_page=2")
            .await,
    )
    .await;
    assert_eq!(page1["next_page"], 2);
    let (_, page2) = answer(
        app.api_get(&supervisor, "/api/v1/conversations?per_page=2&page=2")
            .await,
    )
    .await;
    assert_eq!(page2["next_page"], Value::Null);
    let (a, b) = (ids(&page1), ids(&page2));
    assert_eq!((a.len(), b.len()), (2, 2));
    assert!(a.is_disjoint(&b));
    assert_eq!(a.union(&b).cloned().collect::<BTreeSet<_>>(), all);
    let (_, page3) = answer(
        app.api_get(&supervisor, "/api/v1/conversations?per_page=2&page=3")
            .await,
    )
    .await;
    assert!(ids(&page3).is_empty());

    // Close one, assign one to a user, escalate one.
    let (status, closed) = answer(
        app.api_post(
            &supervisor,
            &format!("/api/v1/conversations/{}/close", conversations[0]),
            json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{closed}");
    let agent_user = user(&app, Role::Agent, "agent@example.test").await;
    assign_to(&app, &conversations[1], &agent_user).await;
    let (status, link) = answer(
        app.api_post(
            &supervisor,
            &format!("/api/v1/conversations/{}/secure-link", conversations[2]),
            json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{link}");

    let get = |token: String, query: &'static str| {
        let app = &app;
        async move {
            let (status, list) = answer(
                app.api_get(&token, &format!("/api/v1/conversations{query}"))
                    .await,
            )
            .await;
            assert_eq!(status, 200, "{query}: {list}");
            ids(&list)
        }
    };
    let set = |indices: &[usize]| -> BTreeSet<String> {
        indices.iter().map(|i| conversations[*i].clone()).collect()
    };
    assert_eq!(get(supervisor.clone(), "").await, set(&[1, 2, 3]));
    assert_eq!(
        get(supervisor.clone(), "?status=open").await,
        set(&[1, 2, 3])
    );
    assert_eq!(get(supervisor.clone(), "?status=closed").await, set(&[0]));
    assert_eq!(
        get(supervisor.clone(), "?status=escalated").await,
        set(&[2])
    );
    assert_eq!(
        get(supervisor.clone(), "?assigned=none").await,
        set(&[2, 3])
    );
    assert_eq!(
        get(supervisor.clone(), "?status=open&assigned=none").await,
        set(&[2, 3])
    );
    // Nothing is ever assigned to a token.
    assert_eq!(get(supervisor.clone(), "?assigned=me").await, set(&[]));
    assert_eq!(get(agent.clone(), "?assigned=me").await, set(&[]));
    // An agent's token sees unassigned conversations only; compliance sees all.
    assert_eq!(get(agent.clone(), "").await, set(&[2, 3]));
    assert_eq!(get(agent.clone(), "?status=closed").await, set(&[0]));
    assert_eq!(get(compliance.clone(), "").await, set(&[1, 2, 3]));
    let (_, escalated) = answer(
        app.api_get(&supervisor, "/api/v1/conversations?status=escalated")
            .await,
    )
    .await;
    assert_eq!(escalated["conversations"][0]["escalated"], true);
    let (_, assigned) = answer(app.api_get(&supervisor, "/api/v1/conversations").await).await;
    let row = assigned["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == conversations[1].as_str())
        .unwrap()
        .clone();
    assert_eq!(row["assigned_user_id"], agent_user.as_str());

    // An agent's token cannot reach the conversation assigned to a user, in any way.
    let hidden = &conversations[1];
    let (status, body) = answer(
        app.api_get(&agent, &format!("/api/v1/conversations/{hidden}/messages"))
            .await,
    )
    .await;
    assert_eq!(status, 404);
    assert_problem(&body, "not_found");
    for (path, body) in [
        ("messages", json!({"body": "hi"})),
        ("secure-link", json!({})),
        ("close", json!({})),
        ("reopen", json!({})),
    ] {
        let (status, problem) = answer(
            app.api_post(
                &agent,
                &format!("/api/v1/conversations/{hidden}/{path}"),
                body,
            )
            .await,
        )
        .await;
        assert_eq!(status, 404, "{path}: {problem}");
        assert_problem(&problem, "not_found");
    }

    // Admins read no conversations.
    let (status, body) = answer(app.api_get(&admin, "/api/v1/conversations").await).await;
    assert_eq!(status, 403);
    assert_problem(&body, "forbidden");

    // Unknown values are refused, naming the parameter.
    for (query, names) in [
        ("?status=everything", "`status`"),
        ("?status=mine", "`status`"),
        ("?assigned=someone", "`assigned`"),
        ("?status=closed&assigned=none", "`assigned`"),
        ("?page=0", "`page`"),
        ("?page=two", "`page`"),
        ("?per_page=1000", "`per_page`"),
    ] {
        let (status, body) = answer(
            app.api_get(&supervisor, &format!("/api/v1/conversations{query}"))
                .await,
        )
        .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_problem(&body, "bad_request");
        assert!(
            body["message"].as_str().unwrap().contains(names),
            "{query}: {body}"
        );
    }
    let (status, body) = answer(
        app.api_get(&supervisor, "/api/v1/conversations?colour=blue")
            .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_problem(&body, "bad_request");
    assert!(!body["message"].as_str().unwrap().contains("colour"));
}

async fn a_thread_is_as_stored_and_every_read_is_audited(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            outbox: Some(no_worker()),
            ..Options::default()
        },
    )
    .await;
    let supervisor = app.token(Role::Supervisor).await;
    let agent = app.token(Role::Agent).await;
    let compliance = app.token(Role::Compliance).await;
    let admin = app.token(Role::Admin).await;
    assert_eq!(
        app.text_from(CUSTOMER, &format!("my card is {CARD} thanks"))
            .await
            .status(),
        200
    );
    let (conversation, _) = app.conversation_of(CUSTOMER).await;
    let (status, sent) = answer(
        app.api_post(
            &agent,
            &format!("/api/v1/conversations/{conversation}/messages"),
            json!({"body": "Thanks, we will call you."}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 202, "{sent}");
    assert_eq!(sent["status"], "queued");
    let path = format!("/api/v1/conversations/{conversation}/messages");

    let response = app.api_get(&agent, &path).await;
    assert_eq!(
        response.headers()["cache-control"].to_str().unwrap(),
        "no-store"
    );
    let (status, thread) = answer(response).await;
    assert_eq!(status, 200, "{thread}");
    let messages = thread["messages"].as_array().unwrap();
    // The card number escalated: the secure link's message (its token masked) comes between.
    assert_eq!(messages.len(), 3, "{thread}");
    assert!(messages[1]["body"]
        .as_str()
        .unwrap()
        .ends_with(&format!("Continue here: {}/s/••••••", app.public_url)));
    let messages = [messages[0].clone(), messages[2].clone()];
    let inbound = &messages[0];
    assert_eq!(inbound["direction"], "inbound");
    assert_eq!(inbound["channel"], "sms");
    assert_eq!(inbound["withheld"], false);
    let body = inbound["body"].as_str().unwrap();
    assert!(body.starts_with("my card is "), "{body}");
    assert!(!body.contains(CARD) && !body.contains("0343"), "{body}");
    assert_eq!(inbound["findings"]["CARD_NUMBER"], 1, "{inbound}");
    for field in ["id", "status", "created_at"] {
        assert!(inbound[field].is_string(), "{field}: {inbound}");
    }
    assert_eq!(messages[1]["direction"], "outbound");
    assert_eq!(messages[1]["body"], "Thanks, we will call you.");
    assert_eq!(messages[1]["id"], sent["id"]);
    assert_eq!(messages[1]["status"], "queued");

    // Compliance sees the thread's metadata, no bodies.
    let (status, metadata) = answer(app.api_get(&compliance, &path).await).await;
    assert_eq!(status, 200);
    for message in metadata["messages"].as_array().unwrap() {
        assert_eq!(message["body"], Value::Null, "{message}");
        assert_eq!(message["withheld"], true);
    }
    assert_eq!(metadata["messages"][0]["findings"]["CARD_NUMBER"], 1);
    // Supervisors see it all; admins nothing; an unknown conversation is not found.
    assert_eq!(app.api_get(&supervisor, &path).await.status(), 200);
    let (status, problem) = answer(app.api_get(&admin, &path).await).await;
    assert_eq!(status, 403);
    assert_problem(&problem, "forbidden");
    let (status, problem) = answer(
        app.api_get(&supervisor, "/api/v1/conversations/nope/messages")
            .await,
    )
    .await;
    assert_eq!(status, 404);
    assert_problem(&problem, "not_found");

    // Three reads, three audited views by tokens; the refused ones are not views.
    let views = audit_events(&app, "conversation.view").await;
    assert_eq!(views.len(), 3, "{views:?}");
    assert!(views.iter().all(|(_, kind, _)| kind == "api_token"));
    assert_eq!(views[0].2["messages"], 3);

    // A reply through the API still passes the outbound DLP, and compliance may not reply.
    let (status, problem) = answer(
        app.api_post(&agent, &path, json!({"body": format!("is it {CARD}?")}))
            .await,
    )
    .await;
    assert_eq!(status, 422);
    assert_problem(&problem, "sensitive_content");
    let (status, problem) = answer(
        app.api_post(&compliance, &path, json!({"body": "hello"}))
            .await,
    )
    .await;
    assert_eq!(status, 403);
    assert_problem(&problem, "forbidden");
}

async fn assign_close_and_reopen(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            outbox: Some(no_worker()),
            ..Options::default()
        },
    )
    .await;
    let supervisor = app.token(Role::Supervisor).await;
    let agent = app.token(Role::Agent).await;
    let compliance = app.token(Role::Compliance).await;
    let agent_user = user(&app, Role::Agent, "agent@example.test").await;
    let compliance_user = user(&app, Role::Compliance, "audit@example.test").await;
    let conversation = app.conversation().await;
    let base = format!("/api/v1/conversations/{conversation}");
    let visible_to_agent = |app: &TestApp, agent: String| {
        let path = format!("{base}/messages");
        let app = app
            .client
            .get(format!("{}{path}", app.address))
            .bearer_auth(agent);
        async move { app.send().await.unwrap().status().as_u16() }
    };

    // A supervisor assigns it to the agent user: the agent's token no longer sees it.
    let (status, body) = answer(
        app.api_post(
            &supervisor,
            &format!("{base}/assign"),
            json!({"user_id": agent_user}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"id": conversation, "assigned_user_id": agent_user})
    );
    assert_eq!(visible_to_agent(&app, agent.clone()).await, 404);
    // Only agents and supervisors can be assignees; the field is required.
    for (request, code, status) in [
        (json!({"user_id": compliance_user}), "unknown_assignee", 422),
        (json!({"user_id": "no-such-user"}), "unknown_assignee", 422),
        (json!({}), "bad_request", 400),
        (json!({"user": agent_user}), "bad_request", 400),
    ] {
        let (got, problem) = answer(
            app.api_post(&supervisor, &format!("{base}/assign"), request.clone())
                .await,
        )
        .await;
        assert_eq!(got, status, "{request}: {problem}");
        assert_problem(&problem, code);
    }
    // Released: the agent's token sees it again. Agents' tokens cannot assign (a token is never
    // an assignee), compliance never.
    let (status, body) = answer(
        app.api_post(
            &supervisor,
            &format!("{base}/assign"),
            json!({"user_id": null}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["assigned_user_id"], Value::Null);
    assert_eq!(visible_to_agent(&app, agent.clone()).await, 200);
    for token in [&agent, &compliance] {
        let (status, problem) = answer(
            app.api_post(
                token,
                &format!("{base}/assign"),
                json!({"user_id": agent_user}),
            )
            .await,
        )
        .await;
        assert_eq!(status, 403);
        assert_problem(&problem, "forbidden");
    }

    // Close and reopen (an agent's token may, on an unassigned conversation; compliance not).
    let (status, problem) = answer(
        app.api_post(&compliance, &format!("{base}/close"), json!({}))
            .await,
    )
    .await;
    assert_eq!(status, 403);
    assert_problem(&problem, "forbidden");
    let (status, body) = answer(
        app.api_post(&agent, &format!("{base}/close"), json!({}))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"id": conversation, "status": "closed"}));
    let stored: String = sqlx::query("SELECT status FROM conversation WHERE conversation_id = $1")
        .bind(&conversation)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, "closed");
    let (status, body) = answer(
        app.api_post(&supervisor, &format!("{base}/reopen"), json!({}))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"id": conversation, "status": "open"}));
    let missing = app
        .api_post(&supervisor, "/api/v1/conversations/nope/close", json!({}))
        .await;
    assert_eq!(missing.status(), 404);

    // A newer open conversation with the same number blocks reopening the old one.
    assert_eq!(
        app.api_post(&supervisor, &format!("{base}/close"), json!({}))
            .await
            .status(),
        200
    );
    assert_eq!(app.text_from(CUSTOMER, "me again").await.status(), 200);
    let (status, problem) = answer(
        app.api_post(&supervisor, &format!("{base}/reopen"), json!({}))
            .await,
    )
    .await;
    assert_eq!(status, 409, "{problem}");
    assert_problem(&problem, "conversation_open");

    // All of it audited, with the token as the actor.
    let assigns = audit_events(&app, "conversation.assign").await;
    assert_eq!(assigns.len(), 2, "{assigns:?}");
    // The assignee is named in the event (as a subject or a detail), by id.
    let named: i64 = sqlx::query(
        "SELECT COUNT(*) FROM audit_event WHERE action = 'conversation.assign' AND (subjects LIKE $1 OR details LIKE $1)",
    )
    .bind(format!("%{agent_user}%"))
    .fetch_one(app.state.db.pool())
    .await
    .unwrap()
    .get(0);
    assert_eq!(named, 1);
    assert_eq!(audit_events(&app, "conversation.close").await.len(), 2);
    assert_eq!(audit_events(&app, "conversation.reopen").await.len(), 1);
    assert!(assigns.iter().all(|(_, kind, _)| kind == "api_token"));
}

async fn a_secure_link_is_sent_once(backend: Backend) {
    let (app, fake) = TestApp::with_fake(backend, Options::default()).await;
    let agent = app.token(Role::Agent).await;
    let compliance = app.token(Role::Compliance).await;
    let conversation = app.conversation().await;
    let path = format!("/api/v1/conversations/{conversation}/secure-link");

    let (status, problem) = answer(app.api_post(&compliance, &path, json!({})).await).await;
    assert_eq!(status, 403);
    assert_problem(&problem, "forbidden");

    let (status, link) = answer(app.api_post(&agent, &path, json!({})).await).await;
    assert_eq!(status, 201, "{link}");
    assert_eq!(link["status"], "queued");
    for field in ["id", "message_id", "expires_at"] {
        assert!(link[field].is_string(), "{field}: {link}");
    }
    let stored: i64 = sqlx::query(
        "SELECT COUNT(*) FROM secure_link WHERE secure_link_id = $1 AND conversation_id = $2",
    )
    .bind(link["id"].as_str().unwrap())
    .bind(&conversation)
    .fetch_one(app.state.db.pool())
    .await
    .unwrap()
    .get(0);
    assert_eq!(stored, 1);

    // The customer gets the link text; a second request while it works sends nothing.
    let texts = || {
        fake.state
            .records()
            .into_iter()
            .filter(|r| r.kind == "send" && r.is_accepted() && r.to.as_deref() == Some(CUSTOMER))
            .filter_map(|r| r.text)
            .collect::<Vec<_>>()
    };
    crate::helpers::eventually(10, "the link message at the carrier", || async {
        texts().len() == 1
    })
    .await;
    let text = &texts()[0];
    assert!(
        text.contains("can't take card details by text") && text.contains("/s/"),
        "{text}"
    );
    let (status, problem) = answer(app.api_post(&agent, &path, json!({})).await).await;
    assert_eq!(status, 409, "{problem}");
    assert_problem(&problem, "secure_link_active");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(texts().len(), 1, "nothing more was sent");
    assert_eq!(audit_events(&app, "secure_link.create").await.len(), 1);
    // The thread shows the link message; the conversation is escalated.
    let (_, list) = answer(
        app.api_get(&agent, "/api/v1/conversations?status=escalated")
            .await,
    )
    .await;
    assert_eq!(ids(&list), BTreeSet::from([conversation.clone()]));

    // The gate applies: no link to a contact who opted out.
    let (other, _) = conversation_with(&app, 9, "STOP").await;
    let (status, problem) = answer(
        app.api_post(
            &agent,
            &format!("/api/v1/conversations/{other}/secure-link"),
            json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 409, "{problem}");
    assert_problem(&problem, "opted_out");
    fake.handle.stop(false).await;
}

async fn secure_channel_messages_are_revealed_only_with_a_reason(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            outbox: Some(no_worker()),
            ..Options::default()
        },
    )
    .await;
    let agent = app.token(Role::Agent).await;
    let compliance = app.token(Role::Compliance).await;
    let admin = app.token(Role::Admin).await;
    let (conversation, contact) = conversation_with(&app, 1, "can I pay by card?").await;
    let secret = "Card 4539 1488 0343 6467, expiry 04/29";
    let secure = secure_message(&app, &conversation, &contact, secret).await;

    // Withheld in the thread.
    let (_, thread) = answer(
        app.api_get(
            &agent,
            &format!("/api/v1/conversations/{conversation}/messages"),
        )
        .await,
    )
    .await;
    let listed = thread["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == secure.as_str())
        .unwrap_or_else(|| panic!("the secure message is listed: {thread}"))
        .clone();
    assert_eq!(listed["channel"], "secure");
    assert_eq!(listed["body"], Value::Null);
    assert_eq!(listed["withheld"], true);
    assert!(!thread.to_string().contains("0343"));

    let path = format!("/api/v1/messages/{secure}/reveal");
    // No reason, a blank one, or one that holds customer data: refused, nothing audited.
    for (request, code) in [
        (json!({}), "reason_required"),
        (json!({"reason": "  "}), "reason_required"),
        (
            json!({"reason": format!("customer read out {CARD}")}),
            "reason_refused",
        ),
        (
            json!({"reason": "call back on 5551234567"}),
            "reason_refused",
        ),
    ] {
        let (status, problem) = answer(app.api_post(&agent, &path, request.clone()).await).await;
        assert_eq!(status, 422, "{request}: {problem}");
        assert_problem(&problem, code);
        assert!(!problem.to_string().contains("0343"));
    }
    assert!(audit_events(&app, "message.reveal").await.is_empty());
    let (status, problem) = answer(
        app.api_post(&admin, &path, json!({"reason": "checking the payment"}))
            .await,
    )
    .await;
    assert_eq!(status, 403);
    assert_problem(&problem, "forbidden");
    let (status, problem) = answer(
        app.api_post(
            &agent,
            "/api/v1/messages/nope/reveal",
            json!({"reason": "checking the payment"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 404);
    assert_problem(&problem, "not_found");

    // With a reason: the body, uncached, and the reason in the audit trail.
    let response = app
        .api_post(
            &agent,
            &path,
            json!({"reason": "checking the payment details"}),
        )
        .await;
    assert_eq!(
        response.headers()["cache-control"].to_str().unwrap(),
        "no-store"
    );
    let (status, revealed) = answer(response).await;
    assert_eq!(status, 200, "{revealed}");
    assert_eq!(revealed, json!({"id": secure, "body": secret}));
    let (status, revealed) = answer(
        app.api_post(&compliance, &path, json!({"reason": "dispute review"}))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(revealed["body"], secret);
    let reveals = audit_events(&app, "message.reveal").await;
    assert_eq!(reveals.len(), 2, "{reveals:?}");
    assert_eq!(reveals[0].1, "api_token");
    assert_eq!(reveals[0].2["reason"], "checking the payment details");
    assert_eq!(reveals[0].2["channel"], "secure");
    assert_eq!(reveals[1].2["reason"], "dispute review");

    // Once the conversation is assigned to a user, an agent's token cannot reveal in it.
    let agent_user = user(&app, Role::Agent, "agent@example.test").await;
    assign_to(&app, &conversation, &agent_user).await;
    let (status, problem) = answer(
        app.api_post(&agent, &path, json!({"reason": "checking the payment"}))
            .await,
    )
    .await;
    assert_eq!(status, 404);
    assert_problem(&problem, "not_found");
    // And the plaintext is nowhere in the logs.
    assert!(!crate::helpers::captured_logs().contains("0343 6467"));
}

async fn the_openapi_document_describes_every_route(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // No token needed.
    let response = app.get("/api/v1/openapi.json").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let doc: Value = response.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let base = doc["servers"][0]["url"].as_str().unwrap();
    assert_eq!(base, "/api/v1");

    // Exactly the routes the router registers.
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            documented.insert((method.clone(), format!("{base}{path}")));
            assert!(operation["responses"].is_object(), "{method} {path}");
            let open = operation.get("security") == Some(&json!([]));
            assert_eq!(open, path == "/openapi.json", "{method} {path}: security");
            if !open {
                for status in ["401", "403"] {
                    assert!(
                        operation["responses"].get(status).is_some(),
                        "{method} {path} documents {status}"
                    );
                }
            }
        }
    }
    let registered: BTreeSet<(String, String)> = drawbridge::web::api::routes::ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, registered);

    // The bearer scheme, and the error schema with its stable codes.
    assert_eq!(doc["security"], json!([{"bearer": []}]));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let error = &doc["components"]["schemas"]["Error"];
    assert_eq!(error["required"], json!(["code", "message"]));
    let codes: BTreeSet<&str> = error["properties"]["code"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for code in [
        "bad_request",
        "unauthorized",
        "forbidden",
        "not_found",
        "rate_limited",
        "opted_out",
        "sensitive_content",
        "secure_link_active",
        "reason_required",
        "reason_refused",
        "unknown_assignee",
        "conversation_open",
    ] {
        assert!(codes.contains(code), "{code} is documented");
    }
    // Every schema a route refers to exists.
    let text = doc.to_string();
    for reference in text.split("\"$ref\":\"#/components/").skip(1) {
        let target = &reference[..reference.find('"').unwrap()];
        let mut node = &doc["components"];
        for part in target.split('/') {
            node = &node[part];
        }
        assert!(!node.is_null(), "dangling $ref {target}");
    }

    // Without a token, every other route is 401 in the error format.
    let (status, problem) = answer(app.get("/api/v1/conversations").await).await;
    assert_eq!(status, 401);
    assert_problem(&problem, "unauthorized");
}
