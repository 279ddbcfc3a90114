//! Raising the drawbridge, black box over HTTP with the fake carrier: an escalating inbound message
//! texts the customer a secure link (once per cool-down), the customer verifies with a one-time
//! code and chats on the secure page, agents see secure messages only through an audited reveal
//! and reply into the secure channel, and every dead link gets the same neutral answer.

use crate::both_backends;
use crate::helpers::{contains, eventually, Backend, Options, TestApp, CUSTOMER};
use drawbridge::escalation::EscalationSettings;
use drawbridge::simulate::fake::RunningFake;
use drawbridge::store::tokens::Role;
use reqwest::header::{HeaderMap, COOKIE, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::{json, Value};
use sqlx::Row;
use std::time::Duration;

both_backends!(
    an_escalating_message_sends_one_link_per_cool_down,
    the_customer_verifies_chats_and_agents_reveal,
    dead_links_get_one_neutral_answer,
    codes_are_limited_and_forms_need_their_token,
    agents_reply_into_the_secure_channel,
    a_knowledge_check_must_say_yes,
    an_rcs_customer_gets_an_open_url_action,
);

const PAN: &str = "4539148803436467";

/// Texts the fake carrier accepted for `to`, in order.
fn texts_to(fake: &RunningFake, to: &str) -> Vec<String> {
    fake.state
        .records()
        .into_iter()
        .filter(|r| r.kind == "send" && r.is_accepted() && r.to.as_deref() == Some(to))
        .filter_map(|r| r.text)
        .collect()
}

/// Waits until the fake has taken `n` texts for the customer; returns them.
async fn texts(fake: &RunningFake, n: usize) -> Vec<String> {
    eventually(15, &format!("{n} texts at the carrier"), || async {
        texts_to(fake, CUSTOMER).len() >= n
    })
    .await;
    texts_to(fake, CUSTOMER)
}

/// The token of the link in a text.
pub(crate) fn token_in(text: &str) -> String {
    let start = text
        .find("/s/")
        .unwrap_or_else(|| panic!("no link in {text:?}"))
        + 3;
    let token: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert_eq!(token.len(), 43, "{text:?}");
    token
}

/// The six-digit code in a text.
pub(crate) fn code_in(text: &str) -> String {
    let re = regex::Regex::new(r"\b(\d{6})\b").unwrap();
    re.captures(text)
        .unwrap_or_else(|| panic!("no code in {text:?}"))[1]
        .to_owned()
}

/// A different six-digit code.
fn wrong(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 1) % 1_000_000)
}

fn csrf_in(page: &str) -> String {
    let re = regex::Regex::new(r#"name="csrf_token" value="([0-9a-f]+)""#).unwrap();
    re.captures(page)
        .unwrap_or_else(|| panic!("no csrf_token in {page}"))[1]
        .to_owned()
}

/// The customer's browser on one link: no redirects followed, its one cookie kept by hand.
struct Customer {
    client: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

/// A response: status, headers, body.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Customer {
    fn new(app: &TestApp, token: &str) -> Self {
        Self {
            client: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            base: format!("{}/s/{token}", app.address),
            cookie: None,
        }
    }

    async fn answer(&mut self, response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        if let Some(set) = headers.get(SET_COOKIE).and_then(|v| v.to_str().ok()) {
            let pair = set.split(';').next().unwrap().to_owned();
            self.cookie = (!pair.ends_with('=')).then_some(pair);
        }
        Answer {
            status,
            headers,
            body: response.text().await.unwrap(),
        }
    }

    async fn get(&mut self, suffix: &str) -> Answer {
        let mut request = self.client.get(format!("{}{suffix}", self.base));
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, cookie);
        }
        let response = request.send().await.unwrap();
        self.answer(response).await
    }

    async fn post(&mut self, suffix: &str, fields: &[(&str, &str)]) -> Answer {
        let mut request = self
            .client
            .post(format!("{}{suffix}", self.base))
            .form(fields);
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, cookie);
        }
        let response = request.send().await.unwrap();
        self.answer(response).await
    }

    /// Asks for a code from the verification page; returns the status.
    async fn ask_code(&mut self) -> u16 {
        let page = self.get("").await;
        assert_eq!(page.status, 200, "{}", page.body);
        let csrf = csrf_in(&page.body);
        self.post("/code", &[("csrf_token", &csrf)]).await.status
    }

    /// Enters a code (and an answer) from the verification page.
    async fn enter(&mut self, code: &str, answer: Option<&str>) -> Answer {
        let page = self.get("").await;
        assert_eq!(page.status, 200, "{}", page.body);
        let csrf = csrf_in(&page.body);
        let mut fields = vec![("csrf_token", csrf.as_str()), ("code", code)];
        if let Some(answer) = answer {
            fields.push(("answer", answer));
        }
        self.post("/verify", &fields).await
    }

    /// Sends a message from the chat page.
    async fn send(&mut self, body: &str) -> Answer {
        let page = self.get("").await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(
            page.body.contains("id=\"send\""),
            "not the chat: {}",
            page.body
        );
        let csrf = csrf_in(&page.body);
        self.post("/messages", &[("csrf_token", &csrf), ("body", body)])
            .await
    }
}

/// The customer writes an escalating message; returns the link's token from the text they get
/// (the `nth` text to them).
async fn escalate(app: &TestApp, fake: &RunningFake, nth: usize) -> String {
    let response = app
        .text_from(CUSTOMER, &format!("I'd like to pay with my card {PAN}"))
        .await;
    assert_eq!(response.status(), 200);
    let texts = texts(fake, nth).await;
    token_in(&texts[nth - 1])
}

/// Verifies a customer on `token` with the next code texted (the `nth` text); returns them.
async fn verified(app: &TestApp, fake: &RunningFake, token: &str, nth: usize) -> Customer {
    let mut customer = Customer::new(app, token);
    assert_eq!(customer.ask_code().await, 303);
    let code = code_in(&texts(fake, nth).await[nth - 1]);
    let done = customer.enter(&code, None).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(customer.cookie.is_some());
    customer
}

async fn audit_details(app: &TestApp, action: &str) -> Vec<Value> {
    sqlx::query("SELECT details FROM audit_event WHERE action = $1 ORDER BY seq")
        .bind(action)
        .fetch_all(app.state.db.pool())
        .await
        .unwrap()
        .into_iter()
        .map(|r| serde_json::from_str(&r.get::<String, _>(0)).unwrap())
        .collect()
}

async fn api(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn an_escalating_message_sends_one_link_per_cool_down(backend: Backend) {
    let (app, fake) = TestApp::with_fake(backend, Options::default()).await;
    let token = escalate(&app, &fake, 1).await;
    let (conversation, _) = app.conversation_of(CUSTOMER).await;

    // Stored redacted; the conversation is escalated.
    let agent = app.token(Role::Agent).await;
    let (status, thread) = api(app
        .api_get(
            &agent,
            &format!("/api/v1/conversations/{conversation}/messages"),
        )
        .await)
    .await;
    assert_eq!(status, 200, "{thread}");
    let bodies: Vec<&str> = thread["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["body"].as_str())
        .collect();
    assert!(
        bodies.contains(&"I'd like to pay with my card [CARD •••• 6467]"),
        "{bodies:?}"
    );
    // Staff see the link message with its token masked, never a working link.
    assert!(
        bodies
            .iter()
            .any(|b| b.contains("can't take card details") && b.contains("/s/••••••")),
        "{bodies:?}"
    );
    assert!(!thread.to_string().contains(&token));
    let (_, escalated) = api(app
        .api_get(&agent, "/api/v1/conversations?status=escalated")
        .await)
    .await;
    assert_eq!(escalated["conversations"][0]["id"], conversation.as_str());

    // The text is the template with the link; the database holds neither the token nor the PAN.
    let sent = texts_to(&fake, CUSTOMER);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0],
        format!(
            "For your security we can't take card details by text. Continue here: {}/s/{token}",
            app.public_url
        )
    );
    let bytes = app.stored_bytes().await;
    assert!(!contains(&bytes, &token), "the token reached the database");
    assert!(!contains(&bytes, PAN));

    // A second sensitive message within the cool-down sends nothing.
    assert_eq!(
        app.text_from(CUSTOMER, "my SSN is 123-45-6789")
            .await
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(texts_to(&fake, CUSTOMER).len(), 1);
    assert_eq!(
        audit_details(&app, "secure_link.create").await,
        [json!({"trigger": "inbound"})]
    );

    // No link to a contact who has opted out, and nothing minted for them.
    let other = "+15557654321";
    assert_eq!(app.text_from(other, "STOP").await.status(), 200);
    assert_eq!(
        app.text_from(other, &format!("my card is {PAN}"))
            .await
            .status(),
        200
    );
    let (other_conversation, _) = app.conversation_of(other).await;
    let escalated: Option<String> =
        sqlx::query("SELECT escalated_at FROM conversation WHERE conversation_id = $1")
            .bind(&other_conversation)
            .fetch_one(app.state.db.pool())
            .await
            .unwrap()
            .get(0);
    assert!(escalated.is_some(), "still marked escalated for the agents");
    let links: i64 = sqlx::query("SELECT COUNT(*) FROM secure_link WHERE conversation_id = $1")
        .bind(&other_conversation)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(links, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let to_other = texts_to(&fake, other);
    assert!(to_other.iter().all(|t| !t.contains("/s/")), "{to_other:?}");
    fake.handle.stop(false).await;
}

async fn the_customer_verifies_chats_and_agents_reveal(backend: Backend) {
    let (app, fake) = TestApp::with_fake(backend, Options::default()).await;
    let token = escalate(&app, &fake, 1).await;
    let (conversation, _) = app.conversation_of(CUSTOMER).await;
    let mut customer = Customer::new(&app, &token);

    // The verification page: the number masked to its last two digits.
    let page = customer.get("").await;
    assert_eq!(page.status, 200);
    let last_two = &CUSTOMER[CUSTOMER.len() - 2..];
    assert!(
        page.body.contains(&format!("••{last_two}")),
        "{}",
        page.body
    );
    assert!(!page.body.contains(&CUSTOMER[2..]), "the number is masked");
    assert!(page.body.contains("name=\"code\""));

    // A code by text; five wrong entries kill it, even for the right digits.
    assert_eq!(customer.ask_code().await, 303);
    let first = code_in(&texts(&fake, 2).await[1]);
    for attempt in 1..=5 {
        let answer = customer.enter(&wrong(&first), None).await;
        assert_eq!(answer.status, 422, "attempt {attempt}");
        assert!(customer.cookie.is_none());
    }
    let locked = customer.enter(&first, None).await;
    assert_eq!(locked.status, 422);
    assert!(locked.body.contains("no longer works"), "{}", locked.body);
    assert!(customer.cookie.is_none());

    // A new code, right: a session cookie, HttpOnly, SameSite=Strict, scoped to /s/.
    assert_eq!(customer.ask_code().await, 303);
    let second = code_in(&texts(&fake, 3).await[2]);
    assert_ne!(first, second);
    let done = customer.enter(&second, None).await;
    assert_eq!(done.status, 303, "{}", done.body);
    let set_cookie = done.headers[SET_COOKIE].to_str().unwrap().to_owned();
    for part in [
        "drawbridge_secure_",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/s/",
    ] {
        assert!(set_cookie.contains(part), "{part}: {set_cookie}");
    }
    assert!(!set_cookie.contains("Secure;") && !set_cookie.ends_with("Secure"));

    // The chat: the earlier text as stored (redacted).
    let chat = customer.get("").await;
    assert_eq!(chat.status, 200);
    assert!(chat.body.contains("[CARD •••• 6467]"), "{}", chat.body);
    assert!(!chat.body.contains(PAN));

    // The customer sends card details: sealed, not redacted, findings recorded.
    let secret = format!("card {PAN} exp 04/29");
    let sent = customer.send(&secret).await;
    assert_eq!(sent.status, 303, "{}", sent.body);
    let row = sqlx::query(
        "SELECT secure_message_id, direction, findings FROM secure_message WHERE conversation_id = $1",
    )
    .bind(&conversation)
    .fetch_one(app.state.db.pool())
    .await
    .unwrap();
    let secure_id: String = row.get(0);
    assert_eq!(row.get::<String, _>(1), "inbound");
    assert!(
        row.get::<String, _>(2).contains("CARD_NUMBER"),
        "findings are recorded"
    );
    let bytes = app.stored_bytes().await;
    assert!(!contains(&bytes, PAN), "the PAN reached the database");
    assert!(!contains(&bytes, "exp 04/29"));
    assert!(!contains(&bytes, &second));
    // The customer sees it in full.
    let chat = customer.get("").await;
    assert!(chat.body.contains(&secret));

    // The agent API withholds it, and the code texts show masked.
    let agent = app.token(Role::Agent).await;
    let (_, thread) = api(app
        .api_get(
            &agent,
            &format!("/api/v1/conversations/{conversation}/messages"),
        )
        .await)
    .await;
    let secure = thread["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == secure_id.as_str())
        .unwrap_or_else(|| panic!("{thread}"));
    assert_eq!(secure["channel"], "secure");
    assert!(secure["body"].is_null(), "{secure}");
    let text = thread.to_string();
    assert!(!text.contains(PAN) && !text.contains(&first) && !text.contains(&second));
    assert!(text.contains("•••••• is your"), "{text}");

    // Until an audited reveal with a reason.
    let (status, revealed) = api(app
        .api_post(
            &agent,
            &format!("/api/v1/messages/{secure_id}/reveal"),
            json!({"reason": "customer asked us to take the payment"}),
        )
        .await)
    .await;
    assert_eq!(status, 200, "{revealed}");
    assert_eq!(revealed["body"], secret.as_str());
    let reveals = audit_details(&app, "message.reveal").await;
    assert_eq!(reveals.len(), 1);
    assert_eq!(
        reveals[0]["reason"],
        "customer asked us to take the payment"
    );
    assert_eq!(reveals[0]["channel"], "secure");
    assert_eq!(audit_details(&app, "secure_link.verify").await.len(), 1);
    // Counted, with fixed labels only.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for line in [
        r#"drawbridge_secure_link_events_total{event="link_inbound"} 1"#,
        r#"drawbridge_secure_link_events_total{event="code_sent"} 2"#,
        r#"drawbridge_secure_link_events_total{event="verified"} 1"#,
        r#"drawbridge_secure_link_events_total{event="customer_message"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    // Paths carry the token, bodies the card: the logs hold neither.
    let logs = crate::helpers::captured_logs();
    assert!(!logs.contains(&token) && !logs.contains(PAN));

    // Leaving ends the session.
    let page = customer.get("").await;
    let csrf = csrf_in(&page.body);
    assert_eq!(
        customer
            .post("/leave", &[("csrf_token", &csrf)])
            .await
            .status,
        200
    );
    let after = customer.get("").await;
    assert!(after.body.contains("name=\"code\""), "back to verification");
    fake.handle.stop(false).await;
}

async fn dead_links_get_one_neutral_answer(backend: Backend) {
    let clock = drawbridge::clock::Clock::adjustable();
    let (app, fake) = TestApp::with_fake(
        backend,
        Options {
            clock: Some(clock.clone()),
            escalation: Some(EscalationSettings {
                link_failed_codes: 5,
                ..EscalationSettings::default()
            }),
            ..Options::default()
        },
    )
    .await;
    let agent = app.token(Role::Agent).await;
    let forged = "A".repeat(43);
    let mut answers: Vec<(String, u16, String)> = Vec::new();
    let mut record = |name: &str, answer: Answer| {
        answers.push((name.to_owned(), answer.status, answer.body));
    };

    // Forged and malformed tokens.
    for (name, token) in [("forged", forged.as_str()), ("malformed", "short")] {
        let mut stranger = Customer::new(&app, token);
        record(name, stranger.get("").await);
        record(
            &format!("{name} code"),
            stranger.post("/code", &[("csrf_token", "00")]).await,
        );
        record(&format!("{name} events"), stranger.get("/events").await);
    }

    // Revoked: by an agent, through the API.
    let token = escalate(&app, &fake, 1).await;
    let (conversation, _) = app.conversation_of(CUSTOMER).await;
    let mut customer = verified(&app, &fake, &token, 2).await;
    let (status, revoked) = api(app
        .client
        .delete(format!(
            "{}/api/v1/conversations/{conversation}/secure-link",
            app.address
        ))
        .bearer_auth(&agent)
        .send()
        .await
        .unwrap())
    .await;
    assert_eq!(status, 200, "{revoked}");
    // Its session ended with it.
    record("revoked with a session", customer.get("").await);
    record("revoked", Customer::new(&app, &token).get("").await);
    assert_eq!(audit_details(&app, "secure_link.revoke").await.len(), 1);
    // With no active link, the cool-down does not hold back a new one.
    let fresh = escalate(&app, &fake, 3).await;
    assert_ne!(fresh, token);
    assert_eq!(Customer::new(&app, &fresh).get("").await.status, 200);

    // Locked: too many wrong codes over the link (five, in this test).
    let other = "+15557654321";
    assert_eq!(
        app.text_from(other, &format!("card {PAN}")).await.status(),
        200
    );
    let link = token_in(&texts_to_wait(&fake, other, 1).await[0]);
    let mut guesser = Customer::new(&app, &link);
    assert_eq!(guesser.ask_code().await, 303);
    let code = code_in(&texts_to_wait(&fake, other, 2).await[1]);
    for _ in 0..4 {
        assert_eq!(guesser.enter(&wrong(&code), None).await.status, 422);
    }
    let page = guesser.get("").await;
    let csrf = csrf_in(&page.body);
    record(
        "the locking guess",
        guesser
            .post("/verify", &[("csrf_token", &csrf), ("code", &wrong(&code))])
            .await,
    );
    record("locked", guesser.get("").await);
    record(
        "locked, right code",
        guesser
            .post("/verify", &[("csrf_token", &csrf), ("code", &code)])
            .await,
    );

    // Expired: a third customer's link, a day later.
    let third = "+15550001111";
    assert_eq!(
        app.text_from(third, &format!("card {PAN}")).await.status(),
        200
    );
    let expiring = token_in(&texts_to_wait(&fake, third, 1).await[0]);
    let mut late = Customer::new(&app, &expiring);
    assert_eq!(late.get("").await.status, 200, "works before it expires");
    clock.advance(Duration::from_secs(24 * 3600 + 1));
    record("expired", late.get("").await);

    let (first_name, status, body) = answers[0].clone();
    assert_eq!(status, 404);
    assert!(body.contains("This link is not valid"));
    for (name, other_status, other_body) in &answers {
        assert_eq!(
            (other_status, other_body),
            (&status, &body),
            "{name} differs from {first_name}"
        );
    }
    fake.handle.stop(false).await;
}

/// [`texts_to`] once `n` have arrived.
async fn texts_to_wait(fake: &RunningFake, to: &str, n: usize) -> Vec<String> {
    eventually(15, &format!("{n} texts to another customer"), || async {
        texts_to(fake, to).len() >= n
    })
    .await;
    texts_to(fake, to)
}

async fn codes_are_limited_and_forms_need_their_token(backend: Backend) {
    let (app, fake) = TestApp::with_fake(backend, Options::default()).await;
    let token = escalate(&app, &fake, 1).await;
    let mut customer = Customer::new(&app, &token);

    // Forms without their token do nothing.
    assert_eq!(customer.post("/code", &[]).await.status, 403);
    assert_eq!(
        customer
            .post(
                "/verify",
                &[("csrf_token", &"0".repeat(64)), ("code", "123456")]
            )
            .await
            .status,
        403
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(texts_to(&fake, CUSTOMER).len(), 1, "no code was sent");

    // Three codes an hour.
    for n in 0..3 {
        assert_eq!(customer.ask_code().await, 303, "code {n}");
    }
    let page = customer.get("").await;
    let csrf = csrf_in(&page.body);
    let refused = customer.post("/code", &[("csrf_token", &csrf)]).await;
    assert_eq!(refused.status, 429);
    assert!(refused.headers.contains_key("retry-after"));
    let sent = texts(&fake, 4).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(texts_to(&fake, CUSTOMER).len(), 4, "{sent:?}");
    // Only the newest code works.
    let older = code_in(&sent[2]);
    let newest = code_in(&sent[3]);
    if older != newest {
        assert_eq!(customer.enter(&older, None).await.status, 422);
    }

    // Verified, the chat's forms need the session's token, not the link's.
    let done = customer.enter(&newest, None).await;
    assert_eq!(done.status, 303, "{}", done.body);
    let refused = customer
        .post("/messages", &[("csrf_token", &csrf), ("body", "hello")])
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(app.count("secure_message").await, 0);

    // A cookie from this link opens no other link.
    let other = "+15557654321";
    assert_eq!(
        app.text_from(other, &format!("card {PAN}")).await.status(),
        200
    );
    let other_token = token_in(&texts_to_wait(&fake, other, 1).await[0]);
    let mut intruder = Customer::new(&app, &other_token);
    intruder.cookie.clone_from(&customer.cookie);
    let page = intruder.get("").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("name=\"code\""), "asked to verify");

    // No code to an opted-out number; the page says why.
    assert_eq!(app.text_from(other, "STOP").await.status(), 200);
    assert_eq!(intruder.ask_code().await, 409);
    fake.handle.stop(false).await;
}

async fn agents_reply_into_the_secure_channel(backend: Backend) {
    let clock = drawbridge::clock::Clock::adjustable();
    let (app, fake) = TestApp::with_fake(
        backend,
        Options {
            clock: Some(clock.clone()),
            ..Options::default()
        },
    )
    .await;
    let agent = app.token(Role::Agent).await;
    let token = escalate(&app, &fake, 1).await;
    let (conversation, _) = app.conversation_of(CUSTOMER).await;
    let path = format!("/api/v1/conversations/{conversation}/secure-messages");

    // No link for another conversation: 409.
    let other = "+15557654321";
    assert_eq!(app.text_from(other, "hello").await.status(), 200);
    let (other_conversation, _) = app.conversation_of(other).await;
    let (status, problem) = api(app
        .api_post(
            &agent,
            &format!("/api/v1/conversations/{other_conversation}/secure-messages"),
            json!({"body": "hi"}),
        )
        .await)
    .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("no_secure_link"))
    );

    let mut customer = verified(&app, &fake, &token, 2).await;

    // The customer is not on the page: the reply is texted about, with a fresh working link.
    let (status, reply) = api(app
        .api_post(
            &agent,
            &path,
            json!({"body": "Thanks, payment of $40 taken."}),
        )
        .await)
    .await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["notified"], true);
    let sent = texts(&fake, 3).await;
    assert!(
        sent[2].starts_with("You have a new secure message: "),
        "{}",
        sent[2]
    );
    let fresh = token_in(&sent[2]);
    assert_ne!(fresh, token);
    let mut via_fresh = Customer::new(&app, &fresh);
    via_fresh.cookie.clone_from(&customer.cookie);
    let chat = via_fresh.get("").await;
    assert_eq!(chat.status, 200);
    assert!(
        chat.body.contains("Thanks, payment of $40 taken."),
        "{}",
        chat.body
    );

    // A second reply within 15 minutes: no second text.
    let (_, again) = api(app
        .api_post(&agent, &path, json!({"body": "Anything else?"}))
        .await)
    .await;
    assert_eq!(again["notified"], false);

    // With the page open (its event stream), the reply arrives live and nothing is texted.
    clock.advance(Duration::from_secs(16 * 60));
    let mut stream = customer
        .client
        .get(format!("{}/events", customer.base))
        .header(COOKIE, customer.cookie.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut seen = String::new();
    // The first heartbeat marks the session as streaming.
    eventually(10, "the stream's heartbeat", || async {
        let row =
            sqlx::query("SELECT COUNT(*) FROM customer_session WHERE streaming_at IS NOT NULL")
                .fetch_one(app.state.db.pool())
                .await
                .unwrap();
        row.get::<i64, _>(0) > 0
    })
    .await;
    let (_, live) = api(app
        .api_post(
            &agent,
            &path,
            json!({"body": "Your receipt is on its way."}),
        )
        .await)
    .await;
    assert_eq!(live["notified"], false, "{live}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains("Your receipt is on its way.") {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .expect("the live message")
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("event: message"), "{seen}");
    assert_eq!(texts_to(&fake, CUSTOMER).len(), 3);

    // The agent's messages are sealed and audited; staff see them only by reveal.
    let bytes = app.stored_bytes().await;
    assert!(!contains(&bytes, "payment of $40"));
    assert_eq!(audit_details(&app, "secure_message.send").await.len(), 3);

    // The customer replies in the chat.
    let sent = customer.send("Thank you!").await;
    assert_eq!(sent.status, 303);
    fake.handle.stop(false).await;
}

async fn a_knowledge_check_must_say_yes(backend: Backend) {
    use drawbridge::escalation::knowledge::{KnowledgeCheck, KnowledgeSettings};
    use drawbridge::simulate::knowledge::FakeKnowledge;
    let secret = "business-shared-secret-0123456789";
    let business = FakeKnowledge::spawn(secret).await.unwrap();
    let check = KnowledgeCheck::new(KnowledgeSettings {
        url: business.url.clone(),
        secret: secrecy::SecretString::from(secret.to_owned()),
        prompt: "Your date of birth (DD/MM/YYYY)".to_owned(),
        timeout: Duration::from_secs(2),
    })
    .unwrap();
    let (app, fake) = TestApp::with_fake(
        backend,
        Options {
            escalation: Some(EscalationSettings {
                knowledge: Some(check),
                ..EscalationSettings::default()
            }),
            ..Options::default()
        },
    )
    .await;
    let token = escalate(&app, &fake, 1).await;
    let (conversation, _) = app.conversation_of(CUSTOMER).await;
    business.accept(&conversation, "04/07/1986");
    let mut customer = Customer::new(&app, &token);
    let page = customer.get("").await;
    assert!(page.body.contains("Your date of birth (DD/MM/YYYY)"));
    assert_eq!(customer.ask_code().await, 303);
    let code = code_in(&texts(&fake, 2).await[1]);

    // The right code and a wrong answer: refused, counted.
    let refused = customer.enter(&code, Some("01/01/1970")).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(customer.cookie.is_none());
    // The business's system is down: not the customer's fault, nothing counted.
    business.set_mode(drawbridge::simulate::knowledge::KnowledgeMode::ServerError);
    let down = customer.enter(&code, Some("04/07/1986")).await;
    assert_eq!(down.status, 503);
    assert!(customer.cookie.is_none());
    business.set_mode(drawbridge::simulate::knowledge::KnowledgeMode::Normal);
    // The right answer opens the session.
    let done = customer.enter(&code, Some("04/07/1986")).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(customer.cookie.is_some());
    let requests = business.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| r.signature_valid));
    assert!(requests.iter().all(|r| r.conversation_id == conversation));
    let verify = audit_details(&app, "secure_link.verify").await;
    assert_eq!(verify, [json!({"knowledge_check": true})]);

    // A right code posted many times at once with guesses: the business hears at most the
    // code's five attempts, however the posts interleave.
    let mut guesser = Customer::new(&app, &token);
    assert_eq!(guesser.ask_code().await, 303);
    let code = code_in(&texts(&fake, 3).await[2]);
    let page = guesser.get("").await;
    let csrf = csrf_in(&page.body);
    let guesses = (0..12).map(|n| {
        let (client, url) = (guesser.client.clone(), format!("{}/verify", guesser.base));
        let (csrf, code) = (csrf.clone(), code.clone());
        async move {
            client
                .post(url)
                .form(&[
                    ("csrf_token", csrf.as_str()),
                    ("code", code.as_str()),
                    ("answer", &format!("01/01/19{n:02}")),
                ])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    assert!(statuses.iter().all(|s| *s == 422), "{statuses:?}");
    assert_eq!(
        business.requests().len(),
        3 + 5,
        "five guesses reached the business"
    );
    // The answer is the customer's: never stored, never logged.
    assert!(!contains(&app.stored_bytes().await, "04/07/1986"));
    assert!(!crate::helpers::captured_logs().contains("04/07/1986"));
    fake.handle.stop(false).await;
    business.stop().await;
}

async fn an_rcs_customer_gets_an_open_url_action(backend: Backend) {
    let key = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/carriers/rbm/TEST-ONLY-service-account-key.json"
    ))
    .unwrap();
    let mut key: Value = serde_json::from_str(&key).unwrap();
    key["token_uri"] = "{api_base}/token".into();
    let (app, fake) = TestApp::with_fake(
        backend,
        Options {
            accounts_toml: Some(format!(
                r#"
[[accounts]]
name = "rbm"
carrier = "rbm"
agent_id = "drawbridge-test-agent"
client_token = "drawbridge-test-client-token-0123"
service_account_key = '''{key}'''
api_base = "{{api_base}}"

[[numbers]]
rcs_agent = "drawbridge-test-agent"
account = "rbm"
throughput = 50.0
"#
            )),
            ..Options::default()
        },
    )
    .await;
    let account = app.state.accounts[0].carrier.clone();
    let customer = drawbridge::phone::E164::parse(CUSTOMER).unwrap();
    let business =
        drawbridge::phone::BusinessAddress::from_key("rcs:drawbridge-test-agent").unwrap();
    let request = account
        .simulate_inbound(
            &format!("{}/webhooks/rbm", app.public_url),
            &drawbridge::carriers::SimulatedInbound {
                message_id: &drawbridge::carriers::Carrier::Rbm.new_message_id(),
                from: &customer,
                to: &business,
                body: &format!("can I pay with {PAN}?"),
                media: &[],
            },
            &drawbridge::carriers::SimulationKeys {
                now: chrono::Utc::now(),
                signing_key: None,
            },
        )
        .unwrap();
    let delivered = drawbridge::simulate::deliver(&request).await.unwrap();
    assert_eq!(delivered.status.as_u16(), 200, "{}", delivered.body);
    eventually(15, "the RCS link message", || async {
        fake.state
            .records()
            .iter()
            .any(|r| r.kind == "send" && r.is_accepted())
    })
    .await;
    let record = fake
        .state
        .records()
        .into_iter()
        .find(|r| r.kind == "send" && r.is_accepted())
        .unwrap();
    let body: Value = serde_json::from_str(&record.body).unwrap();
    let text = body["contentMessage"]["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("Continue here: ") && text.contains("/s/"),
        "{body}"
    );
    let token = token_in(text);
    let action = &body["contentMessage"]["suggestions"][0]["action"];
    assert_eq!(action["text"], "Open secure chat", "{body}");
    assert_eq!(
        action["openUrlAction"]["url"],
        format!("{}/s/{token}", app.public_url),
        "{body}"
    );
    // The link works.
    assert_eq!(Customer::new(&app, &token).get("").await.status, 200);
    fake.handle.stop(false).await;
}
