//! The console's inbox, conversation page, replies, canned replies, notes, reveal, live updates
//! (server-sent events) and static assets, over HTTP with session cookies, on both backends.

use crate::both_backends;
use crate::helpers::{eventually, Backend, Options, TestApp, CUSTOMER};
use drawbridge::store::sessions::{self, Stage};
use drawbridge::store::tokens::Role;
use drawbridge::store::users::{self, NewUser};
use futures_util::StreamExt;
use reqwest::StatusCode;
use sqlx::Row;
use std::time::Duration;

both_backends!(
    inbox_lists_a_conversation_with_masked_contact_and_badges,
    inbox_filters_mine_unassigned_closed_and_escalated,
    inbox_pages,
    conversation_shows_redacted_body_and_finding_badges,
    a_reply_from_the_form_reaches_the_carrier,
    a_reply_with_a_card_number_is_refused_and_the_dlp_check_says_so,
    agents_see_only_their_own_or_unassigned_conversations,
    compliance_sees_no_content_until_a_reveal_with_a_reason,
    supervisors_manage_canned_replies_and_agents_use_them,
    notes_close_and_reopen,
    secure_link_from_the_console,
    the_event_stream_delivers_an_inbound_message,
    forms_without_the_csrf_token_change_nothing,
    message_bodies_render_as_text,
    static_assets_and_sign_in_redirects,
);

const PAN: &str = "4539148803436467";

/// A signed-in console user.
pub(crate) struct Who {
    pub(crate) cookie: String,
    pub(crate) csrf: String,
    pub(crate) user_id: String,
    pub(crate) client: reqwest::Client,
}

/// Creates a user with `role` and a signed-in session for it.
pub(crate) async fn signed_in(app: &TestApp, role: Role) -> Who {
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let email = format!(
        "{}-{}@example.test",
        role.as_str(),
        uuid::Uuid::now_v7().simple()
    );
    let user_id = users::create(
        &mut conn,
        &app.state.vault,
        &NewUser {
            email: &email,
            role,
            password_hash: None,
            must_change_password: false,
        },
        &drawbridge::store::now(),
    )
    .await
    .unwrap()
    .unwrap();
    let (session, token) = sessions::create(
        &mut conn,
        &user_id,
        Stage::SignedIn,
        "password",
        app.state.clock.now(),
        chrono::TimeDelta::hours(1),
    )
    .await
    .unwrap();
    Who {
        cookie: format!("drawbridge_session={}", token.as_str()),
        csrf: app.state.vault.csrf_token(&session.id),
        user_id,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    }
}

impl Who {
    async fn get(&self, app: &TestApp, path: &str) -> (StatusCode, String) {
        let response = self
            .client
            .get(format!("{}{path}", app.address))
            .header("Cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.text().await.unwrap())
    }

    /// Posts a form with the CSRF token added.
    async fn post(&self, app: &TestApp, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        fields.push(("csrf_token", &self.csrf));
        self.post_raw(app, path, &fields).await
    }

    /// Posts a form as is.
    async fn post_raw(
        &self,
        app: &TestApp,
        path: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", app.address))
            .header("Cookie", &self.cookie)
            .form(form)
            .send()
            .await
            .unwrap()
    }

    async fn dlp_check(&self, app: &TestApp, body: &str, csrf: Option<&str>) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/console/dlp-check", app.address))
            .header("Cookie", &self.cookie)
            .json(&serde_json::json!({ "body": body }));
        if let Some(token) = csrf {
            request = request.header("X-CSRF-Token", token);
        }
        request.send().await.unwrap()
    }
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The ids of the conversations an inbox page lists, in order.
fn listed(html: &str) -> Vec<String> {
    html.split("<li class=\"conversation\" data-id=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next().map(str::to_owned))
        .collect()
}

/// The opening tag of the element with `id`.
fn tag_with_id<'a>(html: &'a str, id: &str) -> &'a str {
    let at = html
        .find(&format!("id=\"{id}\""))
        .expect("the element exists");
    let start = html[..at].rfind('<').unwrap();
    let end = at + html[at..].find('>').unwrap();
    &html[start..=end]
}

async fn audit_count(app: &TestApp, action: &str) -> i64 {
    sqlx::query("SELECT COUNT(*) FROM audit_event WHERE action = $1")
        .bind(action)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get::<i64, _>(0)
}

/// A customer number for `i` (distinct last four digits).
fn customer(i: u32) -> String {
    format!("+1555123{:04}", 5000 + i)
}

/// Texts `body` from `from` and returns the conversation id.
async fn texted(app: &TestApp, from: &str, body: &str) -> String {
    let response = app.text_from(from, body).await;
    assert_eq!(response.status(), 200, "the webhook took the message");
    app.conversation_of(from).await.0
}

async fn inbox_lists_a_conversation_with_masked_contact_and_badges(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let agent = signed_in(&app, Role::Agent).await;
    let (status, html) = agent.get(&app, "/console").await;
    assert_eq!(status, 200);
    assert!(html.contains("No conversations here."), "empty state");

    let id = texted(&app, CUSTOMER, "hello, is my order ready?").await;
    let (status, html) = agent.get(&app, "/console").await;
    assert_eq!(status, 200);
    assert_eq!(listed(&html), vec![id.clone()]);
    assert!(html.contains("<ul id=\"conversations\""));
    assert!(html.contains("+1 ••• ••• 4567"), "masked contact");
    for form in crate::helpers::phone_forms(CUSTOMER).iter().take(3) {
        assert!(
            !html.contains(form.as_str()),
            "the full number is not shown"
        );
    }
    assert!(html.contains("channel-sms\">SMS</span>"), "channel badge");
    assert!(html.contains("<span class=\"unread\""), "unread count");
    assert!(html.contains("<time datetime=\""), "last activity");
    assert!(html.contains(&format!(
        "<a class=\"open-conversation\" href=\"/console/conversations/{id}\""
    )));
    assert!(html.contains("Unassigned"));
    assert!(!html.contains("Escalated</span>"));
    assert!(!html.contains("Opted out</span>"));
    assert!(html.contains("href=\"/console?filter=open\" aria-current=\"page\""));

    // Reading the conversation clears the unread count.
    let (status, _) = agent
        .get(&app, &format!("/console/conversations/{id}"))
        .await;
    assert_eq!(status, 200);
    let (_, html) = agent.get(&app, "/console").await;
    assert!(!html.contains("<span class=\"unread\""));

    // STOP: the opted-out badge.
    app.text_from(CUSTOMER, "STOP").await;
    let (_, html) = agent.get(&app, "/console").await;
    assert!(html.contains("Opted out</span>"));

    // Admins have no inbox: they are sent to the users page.
    let admin = signed_in(&app, Role::Admin).await;
    let response = admin
        .client
        .get(format!("{}/console", app.address))
        .header("Cookie", &admin.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/console/admin/users");
}

async fn inbox_filters_mine_unassigned_closed_and_escalated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let agent = signed_in(&app, Role::Agent).await;
    let plain = texted(&app, &customer(1), "hello").await;
    let card = texted(&app, &customer(2), &format!("my card is {PAN}")).await;
    let mine = texted(&app, &customer(3), "hi again").await;

    let response = agent
        .post(
            &app,
            &format!("/console/conversations/{mine}/assign"),
            &[("user_id", &agent.user_id)],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        location(&response),
        format!("/console/conversations/{mine}?notice=assigned")
    );
    let response = agent
        .post(&app, &format!("/console/conversations/{plain}/close"), &[])
        .await;
    assert_eq!(response.status(), 303);

    let ids = |filter: &'static str| {
        let agent = &agent;
        let app = &app;
        async move {
            let (status, html) = agent.get(app, &format!("/console?filter={filter}")).await;
            assert_eq!(status, 200);
            assert!(html.contains(&format!(
                "href=\"/console?filter={filter}\" aria-current=\"page\""
            )));
            let mut ids = listed(&html);
            ids.sort();
            ids
        }
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(ids("open").await, sorted(vec![card.clone(), mine.clone()]));
    assert_eq!(ids("mine").await, vec![mine.clone()]);
    assert_eq!(ids("unassigned").await, vec![card.clone()]);
    assert_eq!(ids("closed").await, vec![plain.clone()]);
    assert_eq!(ids("escalated").await, vec![card.clone()]);
    let (_, html) = agent.get(&app, "/console?filter=escalated").await;
    assert!(html.contains("Escalated</span>"));
    // An unknown filter is the default (open).
    let (status, html) = agent.get(&app, "/console?filter=everything").await;
    assert_eq!(status, 200);
    assert_eq!(listed(&html).len(), 2);
}

async fn inbox_pages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let supervisor = signed_in(&app, Role::Supervisor).await;
    let page_size = app.state.console.page_size;
    for i in 0..=page_size {
        assert_eq!(app.text_from(&customer(i), "hello").await.status(), 200);
    }
    let (_, first) = supervisor.get(&app, "/console").await;
    let first_ids = listed(&first);
    assert_eq!(first_ids.len(), page_size as usize);
    assert!(first.contains("rel=\"next\" href=\"/console?filter=open&amp;page=2\""));
    assert!(!first.contains("rel=\"prev\""));
    let (_, second) = supervisor.get(&app, "/console?filter=open&page=2").await;
    let second_ids = listed(&second);
    assert_eq!(second_ids.len(), 1);
    assert!(!first_ids.contains(&second_ids[0]));
    assert!(second.contains("rel=\"prev\" href=\"/console?filter=open\""));
    assert!(!second.contains("rel=\"next\""));
    // The oldest conversation is last.
    assert_eq!(second_ids[0], app.conversation_of(&customer(0)).await.0);
}

async fn conversation_shows_redacted_body_and_finding_badges(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let agent = signed_in(&app, Role::Agent).await;
    let id = texted(
        &app,
        CUSTOMER,
        &format!("please charge {PAN} for the order"),
    )
    .await;
    let views = audit_count(&app, "conversation.view").await;
    let (status, html) = agent
        .get(&app, &format!("/console/conversations/{id}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(audit_count(&app, "conversation.view").await, views + 1);
    assert!(!html.contains(PAN), "the card number was never stored");
    assert!(html.contains("please charge"));
    assert!(html.contains("card number removed"));
    assert!(html.contains("<ol id=\"messages\" aria-live=\"polite\""));
    assert!(html.contains("<li class=\"message inbound\" data-id=\""));
    assert!(html.contains("<span class=\"status\" data-status=\"received\">received</span>"));
    assert!(html.contains("+1 ••• ••• 4567"));
    assert!(html.contains("Escalated</span>"));
    assert!(html.contains("Opted in"));
    assert!(html.contains("id=\"quiet-hours\""));
    assert!(html.contains("reply window"), "the customer just wrote");
    // The reply form, as the browser tests find it.
    assert!(html.contains(&format!(
        "<form id=\"reply-form\" method=\"post\" action=\"/console/conversations/{id}/reply\">"
    )));
    assert!(html.contains("<label for=\"reply-body\">Reply</label>"));
    assert!(html.contains("<textarea id=\"reply-body\" name=\"body\""));
    assert!(html.contains("<button id=\"send-reply\" type=\"submit\">Send</button>"));
    let warning = tag_with_id(&html, "dlp-warning");
    assert!(
        warning.starts_with("<div ")
            && warning.contains("role=\"alert\"")
            && warning.ends_with(" hidden>")
    );
    assert!(html.contains("<meta name=\"csrf-token\""));
    assert!(html.contains("Take</button>"));

    // The live fragment: one message, no layout, audited.
    let message_id: String =
        sqlx::query("SELECT message_id FROM message WHERE conversation_id = $1")
            .bind(&id)
            .fetch_one(app.state.db.pool())
            .await
            .unwrap()
            .get(0);
    let (status, fragment) = agent
        .get(
            &app,
            &format!("/console/conversations/{id}/messages/{message_id}"),
        )
        .await;
    assert_eq!(status, 200);
    assert!(fragment.starts_with("<li class=\"message inbound\""));
    assert!(!fragment.contains("<html"));
    assert!(fragment.contains("card number removed"));
    assert_eq!(audit_count(&app, "conversation.view").await, views + 2);
    let (status, _) = agent
        .get(
            &app,
            &format!(
                "/console/conversations/{id}/messages/{}",
                uuid::Uuid::now_v7()
            ),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = agent
        .get(
            &app,
            &format!("/console/conversations/{}", uuid::Uuid::now_v7()),
        )
        .await;
    assert_eq!(status, 404);
}

async fn a_reply_from_the_form_reaches_the_carrier(backend: Backend) {
    let (app, fake) = TestApp::with_fake(backend, Options::default()).await;
    let agent = signed_in(&app, Role::Agent).await;
    let id = texted(&app, CUSTOMER, "when do you open?").await;
    let response = agent
        .post(
            &app,
            &format!("/console/conversations/{id}/reply"),
            &[("body", "We open at nine.")],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        location(&response),
        format!("/console/conversations/{id}?notice=queued")
    );
    eventually(15, "the fake carrier to take the reply", || async {
        fake.state.records().into_iter().any(|r| {
            r.kind == "send"
                && r.is_accepted()
                && r.to.as_deref() == Some(CUSTOMER)
                && r.text.as_deref() == Some("We open at nine.")
        })
    })
    .await;
    let (status, html) = agent
        .get(&app, &format!("/console/conversations/{id}?notice=queued"))
        .await;
    assert_eq!(status, 200);
    assert!(html.contains("Reply queued."));
    assert!(html.contains("<li class=\"message outbound\""));
    assert!(html.contains("We open at nine."));
}

async fn a_reply_with_a_card_number_is_refused_and_the_dlp_check_says_so(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let agent = signed_in(&app, Role::Agent).await;
    let id = texted(&app, CUSTOMER, "hello").await;
    let outbox = app.count("outbox").await;
    let response = agent
        .post(
            &app,
            &format!("/console/conversations/{id}/reply"),
            &[("body", &format!("your card {PAN} is on file"))],
        )
        .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(html.contains("cannot be sent by text"));
    assert!(html.contains("CARD_NUMBER"));
    assert!(!html.contains(PAN), "the refused text is not echoed");
    assert_eq!(app.count("outbox").await, outbox, "nothing queued");
    let outbound: i64 = sqlx::query("SELECT COUNT(*) FROM message WHERE direction = 'outbound'")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(outbound, 0);

    let response = agent
        .dlp_check(&app, &format!("card {PAN}"), Some(&agent.csrf))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("cache-control").unwrap(), "no-store");
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["ok"], false);
    assert_eq!(answer["types"], serde_json::json!(["CARD_NUMBER"]));
    assert!(answer["message"].as_str().unwrap().contains("secure link"));
    let answer: serde_json::Value = agent
        .dlp_check(&app, "See you at nine.", Some(&agent.csrf))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["ok"], true);
    assert_eq!(answer["types"], serde_json::json!([]));
    // Without the CSRF header: refused.
    let response = agent.dlp_check(&app, "hello", None).await;
    assert_eq!(response.status(), 403);
    // Not JSON: a 400 that does not quote the input.
    let response = agent
        .client
        .post(format!("{}/console/dlp-check", app.address))
        .header("Cookie", &agent.cookie)
        .header("X-CSRF-Token", &agent.csrf)
        .header("Content-Type", "application/json")
        .body(format!("{{\"body\": {PAN}}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(!response.text().await.unwrap().contains(PAN));

    // An opted-out contact: 409 and nothing queued.
    app.text_from(CUSTOMER, "STOP").await;
    let outbox = app.count("outbox").await;
    let response = agent
        .post(
            &app,
            &format!("/console/conversations/{id}/reply"),
            &[("body", "Are you still there?")],
        )
        .await;
    assert_eq!(response.status(), 409);
    assert!(response.text().await.unwrap().contains("opted out"));
    assert_eq!(app.count("outbox").await, outbox);
}

async fn agents_see_only_their_own_or_unassigned_conversations(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let supervisor = signed_in(&app, Role::Supervisor).await;
    let alice = signed_in(&app, Role::Agent).await;
    let bob = signed_in(&app, Role::Agent).await;
    let id = texted(&app, CUSTOMER, "hello").await;

    // The supervisor's page offers every assignable user.
    let (_, html) = supervisor
        .get(&app, &format!("/console/conversations/{id}"))
        .await;
    assert!(html.contains(&format!("<option value=\"{}\"", alice.user_id)));
    assert!(html.contains(&format!("<option value=\"{}\"", bob.user_id)));
    let response = supervisor
        .post(
            &app,
            &format!("/console/conversations/{id}/assign"),
            &[("user_id", &alice.user_id)],
        )
        .await;
    assert_eq!(response.status(), 303);

    let (status, html) = alice
        .get(&app, &format!("/console/conversations/{id}"))
        .await;
    assert_eq!(status, 200);
    assert!(html.contains("Release</button>"));
    assert_eq!(
        listed(&alice.get(&app, "/console").await.1),
        vec![id.clone()]
    );

    let (status, _) = bob.get(&app, &format!("/console/conversations/{id}")).await;
    assert_eq!(
        status, 404,
        "another agent's conversation does not exist for bob"
    );
    assert!(listed(&bob.get(&app, "/console").await.1).is_empty());
    let response = bob
        .post(
            &app,
            &format!("/console/conversations/{id}/reply"),
            &[("body", "hi")],
        )
        .await;
    assert_eq!(response.status(), 404);
    let response = bob
        .post(
            &app,
            &format!("/console/conversations/{id}/assign"),
            &[("user_id", &bob.user_id)],
        )
        .await;
    assert_eq!(response.status(), 404);

    // Alice releases it; now bob may take it, but not give it to alice.
    let response = alice
        .post(
            &app,
            &format!("/console/conversations/{id}/assign"),
            &[("user_id", "")],
        )
        .await;
    assert_eq!(response.status(), 303);
    let response = bob
        .post(
            &app,
            &format!("/console/conversations/{id}/assign"),
            &[("user_id", &alice.user_id)],
        )
        .await;
    assert_eq!(response.status(), 403);
    let response = bob
        .post(
            &app,
            &format!("/console/conversations/{id}/assign"),
            &[("user_id", &bob.user_id)],
        )
        .await;
    assert_eq!(response.status(), 303);
    let (status, _) = alice
        .get(&app, &format!("/console/conversations/{id}"))
        .await;
    assert_eq!(status, 404);
    assert_eq!(audit_count(&app, "conversation.assign").await, 3);
}

async fn compliance_sees_no_content_until_a_reveal_with_a_reason(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let compliance = signed_in(&app, Role::Compliance).await;
    let id = texted(&app, CUSTOMER, "my order number is late again").await;
    let (status, html) = compliance
        .get(&app, &format!("/console/conversations/{id}"))
        .await;
    assert_eq!(status, 200);
    assert!(!html.contains("my order number is late again"));
    assert!(html.contains("Message content hidden"));
    assert!(html.contains("Reason for viewing"));
    assert!(
        !html.contains("id=\"reply-form\""),
        "compliance does not reply"
    );
    assert!(!html.contains("/assign"));
    let message_id: String =
        sqlx::query("SELECT message_id FROM message WHERE conversation_id = $1")
            .bind(&id)
            .fetch_one(app.state.db.pool())
            .await
            .unwrap()
            .get(0);
    assert!(html.contains(&format!("action=\"/console/messages/{message_id}/reveal\"")));

    // No reason: refused, not recorded.
    let path = format!("/console/messages/{message_id}/reveal");
    let response = compliance
        .post(&app, &path, &[("reason", ""), ("conversation_id", &id)])
        .await;
    assert_eq!(response.status(), 422);
    assert_eq!(audit_count(&app, "message.reveal").await, 0);

    let response = compliance
        .post(
            &app,
            &path,
            &[("reason", "complaint review"), ("conversation_id", &id)],
        )
        .await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("my order number is late again"));
    assert!(html.contains(&format!("href=\"/console/conversations/{id}\"")));
    assert_eq!(audit_count(&app, "message.reveal").await, 1);

    // Compliance may not act on the conversation.
    let response = compliance
        .post(
            &app,
            &format!("/console/conversations/{id}/reply"),
            &[("body", "hi")],
        )
        .await;
    assert_eq!(response.status(), 403);
    let response = compliance
        .post(&app, &format!("/console/conversations/{id}/close"), &[])
        .await;
    assert_eq!(response.status(), 403);
}

async fn supervisors_manage_canned_replies_and_agents_use_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let supervisor = signed_in(&app, Role::Supervisor).await;
    let agent = signed_in(&app, Role::Agent).await;
    let (status, html) = supervisor.get(&app, "/console/canned").await;
    assert_eq!(status, 200);
    assert!(html.contains("None yet."));
    let (status, _) = agent.get(&app, "/console/canned").await;
    assert_eq!(status, 403);
    let response = agent
        .post(
            &app,
            "/console/canned",
            &[("title", "Hours"), ("body", "We open at nine.")],
        )
        .await;
    assert_eq!(response.status(), 403);

    let response = supervisor
        .post(
            &app,
            "/console/canned",
            &[("title", "Hours"), ("body", "We open at nine.")],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/console/canned?notice=saved");
    let canned_id: String = sqlx::query("SELECT canned_reply_id FROM canned_reply")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0);
    let (_, html) = supervisor.get(&app, "/console/canned?notice=saved").await;
    assert!(html.contains("Canned reply saved."));
    assert!(html.contains("We open at nine."));

    // A card number in a canned reply: refused, nothing saved.
    let response = supervisor
        .post(
            &app,
            "/console/canned",
            &[("title", "Card"), ("body", &format!("use card {PAN}"))],
        )
        .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(html.contains("CARD_NUMBER"));
    assert!(!html.contains(PAN));
    assert_eq!(app.count("canned_reply").await, 1);

    let response = supervisor
        .post(
            &app,
            &format!("/console/canned/{canned_id}"),
            &[
                ("title", "Opening hours"),
                ("body", "We open at nine, Monday to Friday."),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    let (_, html) = supervisor.get(&app, "/console/canned").await;
    assert!(html.contains("Opening hours"));
    assert!(html.contains("Monday to Friday"));

    // The agent's conversation page offers it; "Use" without JavaScript fills the reply box.
    let id = texted(&app, CUSTOMER, "when do you open?").await;
    let (_, html) = agent
        .get(&app, &format!("/console/conversations/{id}"))
        .await;
    assert!(html.contains(&format!(
        "<option value=\"{canned_id}\" data-body=\"We open at nine, Monday to Friday.\">Opening hours</option>"
    )));
    let (_, html) = agent
        .get(
            &app,
            &format!("/console/conversations/{id}?canned={canned_id}"),
        )
        .await;
    assert!(html.contains(
        "required aria-describedby=\"dlp-warning\">We open at nine, Monday to Friday.</textarea>"
    ));

    let response = supervisor
        .post(&app, &format!("/console/canned/{canned_id}/delete"), &[])
        .await;
    assert_eq!(response.status(), 303);
    let (_, html) = supervisor.get(&app, "/console/canned").await;
    assert!(!html.contains("Opening hours"));
    let response = supervisor
        .post(&app, &format!("/console/canned/{canned_id}/delete"), &[])
        .await;
    assert_eq!(response.status(), 404);
    for action in [
        "canned_reply.create",
        "canned_reply.update",
        "canned_reply.delete",
    ] {
        assert_eq!(audit_count(&app, action).await, 1, "{action}");
    }
}

async fn notes_close_and_reopen(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let agent = signed_in(&app, Role::Agent).await;
    let id = texted(&app, CUSTOMER, "hello").await;
    let response = agent
        .post(
            &app,
            &format!("/console/conversations/{id}/notes"),
            &[("body", "Customer prefers mornings <b>really</b>")],
        )
        .await;
    assert_eq!(response.status(), 303);
    let (_, html) = agent
        .get(&app, &format!("/console/conversations/{id}?notice=note"))
        .await;
    assert!(html.contains("Note added."));
    assert!(html.contains("Customer prefers mornings &lt;b&gt;really&lt;/b&gt;"));
    assert!(html.contains("<label for=\"note-body\">Internal note</label>"));
    let response = agent
        .post(
            &app,
            &format!("/console/conversations/{id}/notes"),
            &[("body", "   ")],
        )
        .await;
    assert_eq!(response.status(), 422);

    let response = agent
        .post(&app, &format!("/console/conversations/{id}/close"), &[])
        .await;
    assert_eq!(response.status(), 303);
    let (_, html) = agent
        .get(&app, &format!("/console/conversations/{id}"))
        .await;
    assert!(html.contains("Reopen conversation"));
    assert!(html.contains("data-status=\"closed\""));
    let response = agent
        .post(&app, &format!("/console/conversations/{id}/reopen"), &[])
        .await;
    assert_eq!(response.status(), 303);
    let (_, html) = agent
        .get(&app, &format!("/console/conversations/{id}"))
        .await;
    assert!(html.contains("Close conversation"));
    assert_eq!(audit_count(&app, "conversation.close").await, 1);
    assert_eq!(audit_count(&app, "conversation.reopen").await, 1);
    assert_eq!(audit_count(&app, "note.add").await, 1);
}

async fn secure_link_from_the_console(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            outbox: Some(crate::helpers::no_worker()),
            ..Options::default()
        },
    )
    .await;
    let agent = signed_in(&app, Role::Agent).await;
    let id = texted(&app, CUSTOMER, "hello, can you help me?").await;
    let path = format!("/console/conversations/{id}/secure-link");
    let response = agent.post(&app, &path, &[]).await;
    assert_eq!(response.status(), 303);
    let to = location(&response);
    assert!(to.starts_with(&format!("/console/conversations/{id}?notice=link&until=")));
    let (_, html) = agent.get(&app, &to).await;
    assert!(html.contains("Secure link sent; it works until"));
    assert_eq!(app.count("secure_link").await, 1);
    // A second one while the first is active: 409, shown as a notice, nothing sent.
    let response = agent.post(&app, &path, &[]).await;
    assert_eq!(response.status(), 409);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("A secure link is already active"));
    assert_eq!(app.count("secure_link").await, 1);

    // The page offers to revoke it and to write in the secure channel.
    let (_, html) = agent
        .get(&app, &format!("/console/conversations/{id}"))
        .await;
    assert!(html.contains("Revoke secure link") && html.contains("Send in secure chat"));
    assert!(!html.contains("id=\"send-secure-link\""));
    let response = agent
        .post(
            &app,
            &format!("/console/conversations/{id}/secure-messages"),
            &[("body", "Your balance is ready.")],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert!(
        location(&response).ends_with("notice=secure_notified"),
        "not on the page: texted"
    );
    assert_eq!(app.count("secure_message").await, 1);
    let response = agent
        .post(
            &app,
            &format!("/console/conversations/{id}/secure-link/revoke"),
            &[],
        )
        .await;
    assert_eq!(response.status(), 303);
    let (_, html) = agent.get(&app, &location(&response)).await;
    assert!(html.contains("Secure link revoked"), "{html}");
    assert!(html.contains("id=\"send-secure-link\""));
    // Nothing left to revoke, and no secure channel without a link.
    let response = agent
        .post(
            &app,
            &format!("/console/conversations/{id}/secure-link/revoke"),
            &[],
        )
        .await;
    assert_eq!(response.status(), 409);
    let response = agent
        .post(
            &app,
            &format!("/console/conversations/{id}/secure-messages"),
            &[("body", "hi")],
        )
        .await;
    assert_eq!(response.status(), 409);
}

async fn the_event_stream_delivers_an_inbound_message(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let agent = signed_in(&app, Role::Agent).await;
    let response = agent
        .client
        .get(format!("{}/console/events", app.address))
        .header("Cookie", &agent.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    assert_eq!(response.headers().get("cache-control").unwrap(), "no-store");
    assert_eq!(response.headers().get("x-accel-buffering").unwrap(), "no");
    let mut stream = response.bytes_stream();
    let mut seen = String::new();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("the stream opens at once")
        .unwrap()
        .unwrap();
    seen.push_str(&String::from_utf8_lossy(&first));
    assert!(seen.starts_with("retry: "));

    let id = texted(&app, CUSTOMER, "are you there?").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !seen.contains("event: message\ndata: ") {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("a message event within 15 s")
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let data = seen
        .split("event: message\ndata: ")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .unwrap();
    let change: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(change["type"], "message");
    assert_eq!(change["conversation_id"], id.as_str());
    assert_eq!(change["direction"], "inbound");
    assert!(!seen.contains("are you there"), "events carry no content");

    // Without a session: to sign-in. Admins have no stream.
    let response = agent
        .client
        .get(format!("{}/console/events", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let admin = signed_in(&app, Role::Admin).await;
    let (status, _) = admin.get(&app, "/console/events").await;
    assert_eq!(status, 403);
}

async fn forms_without_the_csrf_token_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let agent = signed_in(&app, Role::Agent).await;
    let supervisor = signed_in(&app, Role::Supervisor).await;
    let id = texted(&app, CUSTOMER, "hello").await;
    let outbox = app.count("outbox").await;
    let posts: [(&str, Vec<(&str, &str)>); 5] = [
        ("close", vec![]),
        ("assign", vec![("user_id", agent.user_id.as_str())]),
        ("notes", vec![("body", "a note")]),
        ("reply", vec![("body", "a reply")]),
        ("secure-link", vec![]),
    ];
    for (action, form) in &posts {
        let path = format!("/console/conversations/{id}/{action}");
        let response = agent.post_raw(&app, &path, form).await;
        assert_eq!(response.status(), 403, "{action} without a token");
        let mut wrong = form.clone();
        wrong.push(("csrf_token", "forged"));
        let response = agent.post_raw(&app, &path, &wrong).await;
        assert_eq!(response.status(), 403, "{action} with a forged token");
        // Another session's token does not work either.
        let mut other = form.clone();
        other.push(("csrf_token", supervisor.csrf.as_str()));
        let response = agent.post_raw(&app, &path, &other).await;
        assert_eq!(
            response.status(),
            403,
            "{action} with another session's token"
        );
    }
    let response = supervisor
        .post_raw(
            &app,
            "/console/canned",
            &[("title", "Hours"), ("body", "We open at nine.")],
        )
        .await;
    assert_eq!(response.status(), 403);
    assert_eq!(app.count("outbox").await, outbox);
    assert_eq!(app.count("note").await, 0);
    assert_eq!(app.count("canned_reply").await, 0);
    assert_eq!(app.count("secure_link").await, 0);
    let row =
        sqlx::query("SELECT status, assigned_user_id FROM conversation WHERE conversation_id = $1")
            .bind(&id)
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
    assert_eq!(row.get::<String, _>(0), "open");
    assert_eq!(row.get::<Option<String>, _>(1), None);
}

async fn message_bodies_render_as_text(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let agent = signed_in(&app, Role::Agent).await;
    let id = texted(&app, CUSTOMER, "<script>alert(1)</script>").await;
    app.text_from(CUSTOMER, "\"><img src=x onerror=alert(1)>")
        .await;
    let (status, html) = agent
        .get(&app, &format!("/console/conversations/{id}"))
        .await;
    assert_eq!(status, 200);
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!html.contains("<script>alert(1)"));
    assert!(html.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
    assert!(!html.contains("<img src=x"));
    assert!(!html.contains("\"><img"));
    // The only script is the console's own file.
    assert_eq!(html.matches("<script").count(), 1);
    assert!(html.contains("<script src=\"/static/console.js\" defer></script>"));

    for path in [
        "/console".to_owned(),
        format!("/console/conversations/{id}"),
        "/console/canned".to_owned(),
    ] {
        let response = agent
            .client
            .get(format!("{}{path}", app.address))
            .header("Cookie", &agent.cookie)
            .send()
            .await
            .unwrap();
        let headers = response.headers();
        let csp = headers
            .get("content-security-policy")
            .unwrap()
            .to_str()
            .unwrap();
        assert!(csp.contains("script-src 'self'"), "{path}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}");
        assert!(!csp.contains("unsafe-inline"), "{path}");
        assert_eq!(headers.get("x-content-type-options").unwrap(), "nosniff");
        assert_eq!(headers.get("referrer-policy").unwrap(), "no-referrer");
        assert_eq!(headers.get("x-frame-options").unwrap(), "DENY");
    }
    let (_, html) = agent.get(&app, "/console").await;
    assert!(!html.contains("<img src=x"));
}

async fn static_assets_and_sign_in_redirects(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (path, kind, needle) in [
        ("/static/console.css", "text/css; charset=utf-8", "[hidden]"),
        (
            "/static/console.js",
            "text/javascript; charset=utf-8",
            "EventSource",
        ),
    ] {
        let response = client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers().get("content-type").unwrap(), kind);
        assert_eq!(response.headers().get("cache-control").unwrap(), "no-cache");
        let etag = response.headers().get("etag").unwrap().clone();
        assert!(response.text().await.unwrap().contains(needle));
        let response = client
            .get(format!("{}{path}", app.address))
            .header("If-None-Match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 304);
    }
    // Signed out: the inbox and a conversation send the browser to sign-in, and back.
    let response = client
        .get(format!("{}/console?filter=mine", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        location(&response),
        "/login?next=%2Fconsole%3Ffilter%3Dmine"
    );
    let response = client
        .post(format!("{}/console/dlp-check", app.address))
        .json(&serde_json::json!({"body": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
}
