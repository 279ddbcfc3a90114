//! The console in a real browser: headless Chromium driven over WebDriver against the real server
//! and the fake carrier (issue #6, items 9 and 10).
//!
//! - [`an_agent_signs_in_replies_and_sees_delivery_live`]: sign in; a message sent by webhook
//!   appears in the open inbox without a reload (server-sent events); open it; reply; the carrier
//!   fake receives the reply; its status callback turns the message "delivered" on screen without
//!   a reload; the outbound-DLP warning appears for a card number; sign out.
//! - [`hostile_message_bodies_render_as_text`]: markup in a customer's message is shown, not run.
//! - [`the_console_works_on_a_phone_with_a_keyboard_alone`]: at 360×740 no page scrolls sideways,
//!   every form field has a label, and sign-in, the skip link and a reply work from the keyboard.
//! - [`a_customer_verifies_and_chats_on_a_phone`]: the customer's secure page (`/s/{token}`) at
//!   360×740: the number masked, a code by text, the chat; card details sent without a reload
//!   appear live, an agent's secure reply (through the API) too, markup in a message stays text,
//!   and nothing scrolls sideways or lacks a label.
//!
//! - [`compliance_edits_a_rule_a_second_user_approves_and_it_is_published`]: the rule editor: a
//!   compliance user drafts a rule in the form, sees it in the diff and in the live test panel
//!   (highlighted, without a reload), cannot approve it; a second compliance user approves it and
//!   publishes it, and the server redacts with it at once.
//! - [`a_legal_hold_blocks_erasure_until_released_and_erasure_is_confirmed`]: on a phone-sized
//!   window, a compliance user places a legal hold on a number, is refused erasure under it (the
//!   confirmation page says why and offers no erase button), releases the hold, and erases the
//!   number after typing ERASE; the contact's content is gone.
//!
//! These run on SQLite only: the pages are the same whatever the database, the API tests cover
//! both backends, and one browser per test is what CI time allows. Without Chromium and
//! chromedriver they print a notice and pass, unless `DRAWBRIDGE_REQUIRE_BROWSER=1` (CI). A failing
//! scenario saves a screenshot, the page source and the browser console in
//! `target/browser-failures/`.

mod harness;

use crate::helpers::*;
use anyhow::{anyhow, ensure, Context};
use drawbridge::simulate::fake::RunningFake;
use drawbridge::store::tokens::Role;
use drawbridge::store::users::{self, NewUser};
use fantoccini::key::Key;
use fantoccini::Locator;
use harness::{step, Browser};
use secrecy::SecretString;
use sqlx::Row;

const AGENT_EMAIL: &str = "agent.browser@example.test";
const AGENT_PASSWORD: &str = "paper lantern orchard 7";
const FIRST_MESSAGE: &str = "Hi, I need help with my bill";
/// A Luhn-valid test card number, as a person would type it.
const CARD_NUMBER: &str = "4539 1488 0343 6467";

/// Creates a signed-up agent (no password change pending, no second factor).
async fn create_agent(app: &TestApp) -> anyhow::Result<String> {
    let hash =
        drawbridge::accounts::password::hash(&SecretString::from(AGENT_PASSWORD.to_owned()))?;
    let mut conn = app.state.db.pool().acquire().await?;
    users::create(
        &mut conn,
        &app.state.vault,
        &NewUser {
            email: AGENT_EMAIL,
            role: Role::Agent,
            password_hash: Some(&hash),
            must_change_password: false,
        },
        &drawbridge::store::now(),
    )
    .await?
    .ok_or_else(|| anyhow!("the agent already existed"))
}

/// Signs in through the form with the mouse and lands on the inbox.
async fn sign_in(browser: &Browser, app: &TestApp) -> anyhow::Result<()> {
    browser.open(&app.address, "/login").await?;
    browser.find("#email").await?.send_keys(AGENT_EMAIL).await?;
    browser
        .find("#password")
        .await?
        .send_keys(AGENT_PASSWORD)
        .await?;
    browser.find("#sign-in").await?.click().await?;
    browser.wait_path("/console", |p| p == "/console").await?;
    browser.find("ul#conversations").await?;
    Ok(())
}

/// The texts the fake carrier accepted for the customer.
fn accepted_sends(fake: &RunningFake) -> Vec<(String, Option<String>)> {
    fake.state
        .records()
        .into_iter()
        .filter(|r| r.kind == "send" && r.is_accepted() && r.to.as_deref() == Some(CUSTOMER))
        .filter_map(|r| r.text.map(|text| (text, r.message_id)))
        .collect()
}

/// Waits until the fake carrier has accepted `text`; returns the carrier's id for it.
async fn carrier_received(
    browser: &Browser,
    fake: &RunningFake,
    text: &str,
) -> anyhow::Result<String> {
    let carrier_id = browser
        .wait_for("the carrier fake to receive the reply", || async {
            Ok(accepted_sends(fake)
                .into_iter()
                .find(|(sent, _)| sent == text)
                .map(|(_, id)| id))
        })
        .await
        .with_context(|| format!("the fake received: {:?}", accepted_sends(fake)))?;
    carrier_id.ok_or_else(|| anyhow!("the fake took the reply without naming it"))
}

/// The id of our outbound message the carrier knows as `carrier_id`, once it is recorded.
async fn outbound_message_id(
    browser: &Browser,
    app: &TestApp,
    carrier_id: &str,
) -> anyhow::Result<String> {
    browser
        .wait_for("the carrier's id to be recorded on the message", || async {
            Ok(
                sqlx::query("SELECT message_id FROM outbox WHERE carrier_message_id = $1")
                    .bind(carrier_id)
                    .fetch_optional(app.state.db.pool())
                    .await?
                    .map(|row| row.get::<String, _>(0)),
            )
        })
        .await
}

/// Posts a signed Twilio status callback for `carrier_id`.
async fn status_callback(app: &TestApp, carrier_id: &str, status: &str) -> anyhow::Result<()> {
    let form = [
        ("MessageSid", carrier_id),
        ("MessageStatus", status),
        ("AccountSid", ACCOUNT_SID),
        ("From", BUSINESS_NUMBER),
        ("To", CUSTOMER),
    ];
    let response = app.post_signed("/webhooks/twilio/status", &form).await;
    ensure!(
        response.status() == 200,
        "the status callback was answered {}",
        response.status()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_signs_in_replies_and_sees_delivery_live() {
    let Some(browser) = Browser::start("sign_in_reply_delivered").await else {
        return;
    };
    let (app, fake) = TestApp::with_fake(Backend::Sqlite, Options::default()).await;
    browser.run(reply_scenario(&browser, &app, &fake)).await;
    fake.handle.stop(false).await;
}

async fn reply_scenario(
    browser: &Browser,
    app: &TestApp,
    fake: &RunningFake,
) -> anyhow::Result<()> {
    let reply = "Thanks, I can help with your bill today.";
    step(browser, "create the agent", create_agent(app)).await?;
    step(browser, "sign in", sign_in(browser, app)).await?;

    step(
        browser,
        "a texted message appears in the inbox live",
        async {
            ensure!(
                browser
                    .client
                    .find_all(Locator::Css("ul#conversations li.conversation"))
                    .await?
                    .is_empty(),
                "the inbox of a fresh database lists conversations"
            );
            browser.mark_document().await?;
            let response = app.text_from(CUSTOMER, FIRST_MESSAGE).await;
            ensure!(
                response.status() == 200,
                "the webhook answered {}",
                response.status()
            );
            let (conversation, _) = app.conversation_of(CUSTOMER).await;
            let item = browser.find("ul#conversations li.conversation").await?;
            ensure!(
                item.attr("data-id").await?.as_deref() == Some(conversation.as_str()),
                "the new row's data-id is {:?}, not the conversation {conversation}",
                item.attr("data-id").await?
            );
            browser.not_reloaded("the conversation appeared").await
        },
    )
    .await?;

    step(browser, "open the conversation", async {
        browser
            .find("ul#conversations li.conversation a.open-conversation")
            .await?
            .click()
            .await?;
        browser
            .wait_until("the customer's message in ol#messages", || async {
                let text = browser.find("ol#messages").await?.text().await?;
                Ok(text.contains(FIRST_MESSAGE))
            })
            .await
    })
    .await?;

    let message_id = step(browser, "reply; the carrier receives it", async {
        browser
            .find("textarea#reply-body")
            .await?
            .send_keys(reply)
            .await?;
        browser.find("#send-reply").await?.click().await?;
        let carrier_id = carrier_received(browser, fake, reply).await?;
        let message_id = outbound_message_id(browser, app, &carrier_id).await?;
        Ok((carrier_id, message_id))
    })
    .await?;
    let (carrier_id, message_id) = message_id;

    step(
        browser,
        "the status callback shows \"delivered\" live",
        async {
            let status = format!(r#"ol#messages li.message[data-id="{message_id}"] span.status"#);
            browser.find(&status).await?;
            browser
                .wait_until("the page to finish loading", || async {
                    browser
                        .js_bool("return document.readyState === 'complete';", vec![])
                        .await
                })
                .await?;
            browser.mark_document().await?;
            status_callback(app, &carrier_id, "delivered").await?;
            browser
                .wait_until("the reply's status to read \"delivered\"", || async {
                    let element = browser.client.find(Locator::Css(&status)).await?;
                    let data = element.attr("data-status").await?;
                    let text = element.text().await?;
                    Ok(data.as_deref() == Some("delivered")
                        && text.to_lowercase().contains("delivered"))
                })
                .await
                .with_context(|| format!("the reply is message {message_id}"))?;
            browser.not_reloaded("the status changed").await
        },
    )
    .await?;

    step(
        browser,
        "the DLP warning appears for a card number",
        async {
            let warning = browser.find("#dlp-warning").await?;
            ensure!(
                !warning.is_displayed().await?,
                "#dlp-warning shows before anything sensitive was typed"
            );
            let body = browser.find("textarea#reply-body").await?;
            body.clear().await?;
            body.send_keys(&format!("Is your card {CARD_NUMBER}?"))
                .await?;
            browser
                .wait_until("#dlp-warning to be shown and not hidden", || async {
                    let warning = browser.client.find(Locator::Css("#dlp-warning")).await?;
                    Ok(warning.attr("hidden").await?.is_none() && warning.is_displayed().await?)
                })
                .await?;
            let text = browser.find("#dlp-warning").await?.text().await?;
            ensure!(
                text.to_lowercase().contains("card"),
                "the DLP warning does not mention a card number: {text:?}"
            );
            ensure!(
                !text.contains("4539") && !text.contains("6467"),
                "the DLP warning repeats the card number: {text:?}"
            );
            Ok(())
        },
    )
    .await?;

    step(browser, "sign out", async {
        browser.find("form.signout button").await?.click().await?;
        browser.wait_path("/login", |p| p == "/login").await?;
        browser.find("#email").await?;
        browser.open(&app.address, "/console").await?;
        browser
            .wait_path("/login (signed out, /console sends you there)", |p| {
                p == "/login"
            })
            .await
    })
    .await?;

    ensure!(
        accepted_sends(fake)
            .iter()
            .all(|(text, _)| !text.contains("4539")),
        "the card number was sent"
    );
    Ok(())
}

const HOSTILE: &str = r#"<script>window.__xss=1</script>"><img src=x onerror="window.__xss=2">"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_message_bodies_render_as_text() {
    let Some(browser) = Browser::start("hostile_bodies").await else {
        return;
    };
    let (app, fake) = TestApp::with_fake(Backend::Sqlite, Options::default()).await;
    browser.run(hostile_scenario(&browser, &app)).await;
    fake.handle.stop(false).await;
}

/// Whether nothing the hostile body carried has run.
async fn nothing_ran(browser: &Browser, page: &str) -> anyhow::Result<()> {
    ensure!(
        browser
            .js_bool("return window.__xss === undefined;", vec![])
            .await?,
        "script from a message body ran on {page}"
    );
    Ok(())
}

async fn hostile_scenario(browser: &Browser, app: &TestApp) -> anyhow::Result<()> {
    step(browser, "create the agent", create_agent(app)).await?;
    step(browser, "a customer texts markup", async {
        let response = app.text_from(CUSTOMER, HOSTILE).await;
        ensure!(
            response.status() == 200,
            "the webhook answered {}",
            response.status()
        );
        Ok(())
    })
    .await?;
    step(browser, "sign in", sign_in(browser, app)).await?;
    step(browser, "the inbox runs none of it", async {
        browser.find("ul#conversations li.conversation").await?;
        nothing_ran(browser, "the inbox").await
    })
    .await?;
    step(browser, "the conversation shows it as text", async {
        browser.find("a.open-conversation").await?.click().await?;
        browser
            .wait_until("the message in ol#messages", || async {
                let text = browser.find("ol#messages").await?.text().await?;
                Ok(text.contains("<script>"))
            })
            .await?;
        let text = browser.find("ol#messages").await?.text().await?;
        ensure!(
            text.contains(r#"<img src=x onerror="window.__xss=2">"#),
            "the body is not shown verbatim: {text:?}"
        );
        ensure!(
            browser
                .js_bool(
                    "return document.querySelectorAll('ol#messages script, ol#messages img[src=\"x\"], [onerror]').length === 0;",
                    vec![],
                )
                .await?,
            "the message body became elements"
        );
        // Give a broken image time to fail, as it would if it had been parsed.
        browser
            .wait_until("the document to finish loading", || async {
                browser
                    .js_bool("return document.readyState === 'complete';", vec![])
                    .await
            })
            .await?;
        nothing_ran(browser, "the conversation page").await
    })
    .await
}

/// What on the page is wider than the window (empty when nothing scrolls sideways).
async fn sideways_overflow(browser: &Browser) -> anyhow::Result<Option<String>> {
    let found = browser
        .js(
            "const w = window.innerWidth; \
             if (document.documentElement.scrollWidth <= w) return null; \
             const wide = Array.from(document.querySelectorAll('body *')) \
               .filter(e => e.getBoundingClientRect().right > w + 0.5) \
               .slice(0, 5).map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + \
                 (e.className && typeof e.className === 'string' ? '.' + e.className.trim().split(/\\s+/).join('.') : '') + \
                 ' (right edge ' + Math.round(e.getBoundingClientRect().right) + ')'); \
             return 'scrollWidth ' + document.documentElement.scrollWidth + ' > innerWidth ' + w + '; widest: ' + wide.join(', ');",
            vec![],
        )
        .await?;
    Ok(found.as_str().map(str::to_owned))
}

/// Fields (other than hidden inputs) without a label.
async fn unlabelled_fields(browser: &Browser) -> anyhow::Result<Vec<String>> {
    let found = browser
        .js(
            "return Array.from(document.querySelectorAll('input, select, textarea')) \
               .filter(e => e.type !== 'hidden') \
               .filter(e => !(e.labels && e.labels.length > 0) \
                 && !(e.getAttribute('aria-label') || '').trim() \
                 && !(e.getAttribute('aria-labelledby') || '').trim()) \
               .map(e => e.outerHTML.slice(0, 160));",
            vec![],
        )
        .await?;
    Ok(found
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// The phone-size layout and label checks for the page now shown.
async fn fits_a_phone(browser: &Browser, page: &str) -> anyhow::Result<()> {
    if let Some(overflow) = sideways_overflow(browser).await? {
        return Err(anyhow!("{page} scrolls sideways at 360 px: {overflow}"));
    }
    let unlabelled = unlabelled_fields(browser).await?;
    ensure!(
        unlabelled.is_empty(),
        "{page} has form fields without a label: {unlabelled:#?}"
    );
    Ok(())
}

/// Fails unless the first Tab on a freshly loaded console page focuses the skip link, and the
/// skip link moves the keyboard into the main content.
async fn skip_link_first(browser: &Browser, page: &str) -> anyhow::Result<()> {
    browser.press(&Key::Tab.to_string()).await?;
    ensure!(
        browser.focused_matches("a.skip").await?,
        "the first Tab on {page} focuses {} rather than the skip link (a.skip)",
        browser.focused().await
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_works_on_a_phone_with_a_keyboard_alone() {
    let Some(browser) = Browser::start("phone_and_keyboard").await else {
        return;
    };
    let (app, fake) = TestApp::with_fake(Backend::Sqlite, Options::default()).await;
    browser.run(phone_scenario(&browser, &app, &fake)).await;
    fake.handle.stop(false).await;
}

async fn phone_scenario(
    browser: &Browser,
    app: &TestApp,
    fake: &RunningFake,
) -> anyhow::Result<()> {
    let reply = "Sent from the keyboard alone.";
    step(browser, "create the agent and a conversation", async {
        create_agent(app).await?;
        let response = app.text_from(CUSTOMER, FIRST_MESSAGE).await;
        ensure!(
            response.status() == 200,
            "the webhook answered {}",
            response.status()
        );
        Ok(())
    })
    .await?;

    step(browser, "a phone-sized window", async {
        browser.client.set_window_size(360, 740).await?;
        browser.open(&app.address, "/login").await?;
        browser.find("#email").await?;
        let width = browser.js("return window.innerWidth;", vec![]).await?;
        ensure!(
            width.as_u64().is_some_and(|w| w <= 360),
            "the viewport is {width} px wide, not a phone's"
        );
        Ok(())
    })
    .await?;

    step(
        browser,
        "/login fits and is labelled",
        fits_a_phone(browser, "/login"),
    )
    .await?;

    step(browser, "sign in with the keyboard", async {
        ensure!(
            browser
                .js_bool("return document.activeElement === document.body;", vec![])
                .await?,
            "the sign-in page starts with the focus on {}",
            browser.focused().await
        );
        browser.tab_to("#email", 3).await?;
        browser.press(AGENT_EMAIL).await?;
        browser.tab_to("#password", 1).await?;
        browser.press(AGENT_PASSWORD).await?;
        browser.press(&Key::Enter.to_string()).await?;
        browser.wait_path("/console", |p| p == "/console").await?;
        browser.find("ul#conversations li.conversation").await?;
        Ok(())
    })
    .await?;

    step(
        browser,
        "/console fits and is labelled",
        fits_a_phone(browser, "/console"),
    )
    .await?;
    step(browser, "/console: the skip link comes first", async {
        browser.open(&app.address, "/console").await?;
        browser.find("ul#conversations").await?;
        skip_link_first(browser, "/console").await?;
        // The skip link takes the keyboard past the navigation.
        browser.press(&Key::Enter.to_string()).await?;
        browser.press(&Key::Tab.to_string()).await?;
        ensure!(
            browser
                .js_bool(
                    "const m = document.getElementById('main'); return !!m && m.contains(document.activeElement) && document.activeElement !== m;",
                    vec![],
                )
                .await?,
            "after the skip link, Tab focuses {} instead of something in #main",
            browser.focused().await
        );
        Ok(())
    })
    .await?;

    let conversation_href = step(browser, "find the conversation", async {
        browser
            .find("a.open-conversation")
            .await?
            .attr("href")
            .await?
            .ok_or_else(|| anyhow!("a.open-conversation has no href"))
    })
    .await?;

    step(browser, "the conversation fits and is labelled", async {
        browser.open(&app.address, &conversation_href).await?;
        browser.find("ol#messages li.message").await?;
        fits_a_phone(browser, "the conversation page").await
    })
    .await?;

    step(browser, "reply with the keyboard", async {
        skip_link_first(browser, "the conversation page").await?;
        browser.tab_to("textarea#reply-body", 60).await?;
        browser.press(reply).await?;
        browser.tab_to("#send-reply", 10).await?;
        browser.press(&Key::Enter.to_string()).await?;
        carrier_received(browser, fake, reply).await.map(drop)
    })
    .await
}

/// The customer's escalating text, with a Luhn-valid test card number.
const ESCALATING: &str = "I'd like to pay with my card 4539148803436467";
/// What the customer types on the secure page.
const CARD_DETAILS: &str = "card 4539148803436467 exp 04/29";
/// The agent's reply in the secure channel.
const SECURE_REPLY: &str = "Thanks — payment received.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_verifies_and_chats_on_a_phone() {
    let Some(browser) = Browser::start("secure_page_phone").await else {
        return;
    };
    let (app, fake) = TestApp::with_fake(Backend::Sqlite, Options::default()).await;
    browser.run(secure_scenario(&browser, &app, &fake)).await;
    fake.handle.stop(false).await;
}

/// The `n`th text the fake carrier accepted for the customer, once it has arrived.
async fn nth_text(browser: &Browser, fake: &RunningFake, n: usize) -> anyhow::Result<String> {
    browser
        .wait_for(
            &format!("text {n} to the customer at the carrier fake"),
            || async {
                Ok(accepted_sends(fake)
                    .into_iter()
                    .nth(n - 1)
                    .map(|(text, _)| text))
            },
        )
        .await
        .with_context(|| format!("the fake received: {:?}", accepted_sends(fake)))
}

/// The `class` of the message in `ol#thread` whose body is exactly `body`, if it is there.
async fn thread_item_class(browser: &Browser, body: &str) -> anyhow::Result<Option<String>> {
    let found = browser
        .js(
            "const item = Array.from(document.querySelectorAll('ol#thread li.message')) \
               .find(li => { const b = li.querySelector('p.body'); return !!b && b.textContent === arguments[0]; }); \
             return item ? item.className : null;",
            vec![serde_json::json!(body)],
        )
        .await?;
    Ok(found.as_str().map(str::to_owned))
}

/// Waits until `ol#thread` shows a message with exactly `body`, on the `direction` side
/// (`inbound`: the customer's; `outbound`: ours).
async fn thread_shows(browser: &Browser, body: &str, direction: &str) -> anyhow::Result<()> {
    let class = browser
        .wait_for(&format!("{body:?} in ol#thread"), || async {
            thread_item_class(browser, body).await
        })
        .await?;
    ensure!(
        class.split_whitespace().any(|c| c == direction),
        "{body:?} is shown as {class:?}, not as {direction}"
    );
    Ok(())
}

/// Fails if `ol#thread` holds elements made from a message body, or script from one ran.
async fn thread_is_text(browser: &Browser, page: &str) -> anyhow::Result<()> {
    ensure!(
        browser
            .js_bool(
                "return document.querySelectorAll('ol#thread img, ol#thread script, [onerror]').length === 0;",
                vec![],
            )
            .await?,
        "a message body became elements on {page}"
    );
    browser
        .wait_until("the document to finish loading", || async {
            browser
                .js_bool("return document.readyState === 'complete';", vec![])
                .await
        })
        .await?;
    nothing_ran(browser, page).await
}

async fn secure_scenario(
    browser: &Browser,
    app: &TestApp,
    fake: &RunningFake,
) -> anyhow::Result<()> {
    let token = step(browser, "an escalating text gets a secure link", async {
        let response = app.text_from(CUSTOMER, ESCALATING).await;
        ensure!(
            response.status() == 200,
            "the webhook answered {}",
            response.status()
        );
        let text = nth_text(browser, fake, 1).await?;
        ensure!(text.contains("/s/"), "the first text has no link: {text:?}");
        Ok(crate::secure_link::token_in(&text))
    })
    .await?;
    let (conversation, _) = app.conversation_of(CUSTOMER).await;
    let page = format!("/s/{token}");

    step(
        browser,
        "the link at phone size: the number, masked",
        async {
            browser.client.set_window_size(360, 740).await?;
            browser.open(&app.address, &page).await?;
            let number = browser.find("#masked-number").await?.text().await?;
            let width = browser.js("return window.innerWidth;", vec![]).await?;
            ensure!(
                width.as_u64().is_some_and(|w| w <= 360),
                "the viewport is {width} px wide, not a phone's"
            );
            let last_two = &CUSTOMER[CUSTOMER.len() - 2..];
            ensure!(
                number.contains(&format!("••{last_two}")),
                "the number is not shown masked to its last two digits: {number:?}"
            );
            let shown = browser.find("body").await?.text().await?;
            ensure!(
                !shown.contains(&CUSTOMER[CUSTOMER.len() - 4..]),
                "the page shows more of the number than its last two digits: {shown:?}"
            );
            fits_a_phone(browser, "the verification page").await
        },
    )
    .await?;

    let code = step(browser, "text me a code", async {
        browser.find("button#send-code").await?.click().await?;
        let text = nth_text(browser, fake, 2).await?;
        browser.find("div.notice").await?;
        Ok(crate::secure_link::code_in(&text))
    })
    .await?;

    step(browser, "enter the code: the chat", async {
        let labelled = browser
            .js(
                "const label = Array.from(document.querySelectorAll('label')) \
                   .find(l => l.textContent.trim() === arguments[0]); \
                 return label && label.control ? label.control.id : null;",
                vec![serde_json::json!("6-digit code")],
            )
            .await?;
        ensure!(
            labelled.as_str() == Some("code"),
            "the field labelled \"6-digit code\" is {labelled}, not #code"
        );
        browser.find("input#code").await?.send_keys(&code).await?;
        browser.find("button#verify-code").await?.click().await?;
        browser.find("textarea#body").await?;
        browser.find("ol#thread").await?;
        ensure!(
            browser.path().await? == page,
            "the chat is at {}, not {page}",
            browser.path().await?
        );
        let thread = browser.find("ol#thread").await?.text().await?;
        ensure!(
            thread.contains("[CARD •••• 6467]") && !thread.contains("4539148803436467"),
            "the thread does not show the escalating text redacted: {thread:?}"
        );
        fits_a_phone(browser, "the chat").await
    })
    .await?;

    step(browser, "the chat's live stream connects", async {
        browser
            .wait_until("the page's event stream to mark the session", || async {
                let row = sqlx::query(
                    "SELECT COUNT(*) FROM customer_session \
                     WHERE streaming_at IS NOT NULL AND ended_at IS NULL",
                )
                .fetch_one(app.state.db.pool())
                .await?;
                Ok(row.get::<i64, _>(0) > 0)
            })
            .await
    })
    .await?;

    step(browser, "send card details: shown live", async {
        browser.mark_document().await?;
        browser
            .find("textarea#body")
            .await?
            .send_keys(CARD_DETAILS)
            .await?;
        browser.find("button#send-button").await?.click().await?;
        thread_shows(browser, CARD_DETAILS, "inbound").await?;
        browser
            .wait_until("the message field to be emptied", || async {
                browser
                    .js_bool(
                        "return document.getElementById('body').value === '';",
                        vec![],
                    )
                    .await
            })
            .await?;
        browser.not_reloaded("the message was sent").await
    })
    .await?;

    step(browser, "an agent replies: shown live", async {
        let response = app
            .api_post(
                &app.token(Role::Agent).await,
                &format!("/api/v1/conversations/{conversation}/secure-messages"),
                serde_json::json!({"body": SECURE_REPLY}),
            )
            .await;
        let status = response.status();
        let reply: serde_json::Value = response.json().await?;
        ensure!(status == 201, "the API answered {status}: {reply}");
        ensure!(
            reply["notified"] == false,
            "the reply was texted about although the page is open: {reply}"
        );
        thread_shows(browser, SECURE_REPLY, "outbound").await?;
        browser.not_reloaded("the reply arrived").await
    })
    .await?;

    step(browser, "markup in a message stays text", async {
        let body = browser.find("textarea#body").await?;
        body.send_keys(HOSTILE).await?;
        browser.find("button#send-button").await?.click().await?;
        thread_shows(browser, HOSTILE, "inbound").await?;
        thread_is_text(browser, "the chat (added live)").await?;
        browser.not_reloaded("markup was sent").await?;
        // The server renders the same thread as text, too.
        browser.client.refresh().await?;
        browser.find("ol#thread li.message").await?;
        thread_shows(browser, HOSTILE, "inbound").await?;
        thread_is_text(browser, "the chat (reloaded)").await
    })
    .await?;

    step(
        browser,
        "the chat with its messages fits and is labelled",
        fits_a_phone(browser, "the chat"),
    )
    .await?;

    ensure!(
        accepted_sends(fake)
            .iter()
            .all(|(text, _)| !text.contains("4539148803436467") && !text.contains(SECURE_REPLY)),
        "the card number or the secure reply was texted: {:?}",
        accepted_sends(fake)
    );
    Ok(())
}

const RULES_AUTHOR: &str = "author.compliance@example.test";
const RULES_REVIEWER: &str = "reviewer.compliance@example.test";

/// Creates a signed-up compliance user with the agent's password.
async fn create_compliance(app: &TestApp, email: &str) -> anyhow::Result<String> {
    let hash =
        drawbridge::accounts::password::hash(&SecretString::from(AGENT_PASSWORD.to_owned()))?;
    let mut conn = app.state.db.pool().acquire().await?;
    users::create(
        &mut conn,
        &app.state.vault,
        &NewUser {
            email,
            role: Role::Compliance,
            password_hash: Some(&hash),
            must_change_password: false,
        },
        &drawbridge::store::now(),
    )
    .await?
    .ok_or_else(|| anyhow!("the user already existed"))
}

/// Signs `email` in and opens `page` from the navigation.
async fn open_as(
    browser: &Browser,
    app: &TestApp,
    email: &str,
    page: &'static str,
) -> anyhow::Result<()> {
    browser.open(&app.address, "/login").await?;
    browser.find("#email").await?.send_keys(email).await?;
    browser
        .find("#password")
        .await?
        .send_keys(AGENT_PASSWORD)
        .await?;
    browser.find("#sign-in").await?.click().await?;
    browser.wait_path("/console", |p| p == "/console").await?;
    open_from_nav(browser, page).await
}

/// Follows the navigation's link to `page`.
async fn open_from_nav(browser: &Browser, page: &'static str) -> anyhow::Result<()> {
    browser
        .find(&format!("nav a[href='{page}']"))
        .await?
        .click()
        .await?;
    browser.wait_path(page, |p| p == page).await
}

/// Signs `email` in and opens the rule editor from the navigation.
async fn open_rules_as(browser: &Browser, app: &TestApp, email: &str) -> anyhow::Result<()> {
    open_as(browser, app, email, "/compliance/rules").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compliance_edits_a_rule_a_second_user_approves_and_it_is_published() {
    let Some(browser) = Browser::start("rule_editor_two_person").await else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await;
    browser.run(rule_editor_scenario(&browser, &app)).await;
}

async fn rule_editor_scenario(browser: &Browser, app: &TestApp) -> anyhow::Result<()> {
    step(browser, "create two compliance users", async {
        create_compliance(app, RULES_AUTHOR).await?;
        create_compliance(app, RULES_REVIEWER).await
    })
    .await?;
    step(
        browser,
        "the author opens the rule editor",
        open_rules_as(browser, app, RULES_AUTHOR),
    )
    .await?;
    let draft_path = step(browser, "the author makes a draft", async {
        browser
            .find("#drafts-heading ~ form button[type=submit]")
            .await?
            .click()
            .await?;
        browser
            .wait_path("the draft page", |p| {
                p.starts_with("/compliance/rules/drafts/")
            })
            .await?;
        browser.path().await
    })
    .await?;

    step(browser, "the author adds a rule in the form", async {
        browser.find("a[href$='/edit']").await?.click().await?;
        browser.find("form.rule-form").await?;
        for (field, value) in [
            ("#rule-pack", "members"),
            ("#rule-id", "member-id"),
            ("#rule-description", "Our member numbers"),
            ("#rule-pattern", r"\bMB-\d{6}\b"),
            ("#rule-replacement", "[MEMBER ID]"),
            ("#rule-match", "member MB-123456"),
            ("#rule-no-match", "MB-12"),
        ] {
            browser.find(field).await?.send_keys(value).await?;
        }
        browser
            .find("form.rule-form button[type=submit]")
            .await?
            .click()
            .await?;
        browser
            .wait_path("back on the draft", |p| p == draft_path)
            .await?;
        let change = browser
            .find("article.change[data-rule='member-id']")
            .await?;
        ensure!(
            change.attr("data-change").await?.as_deref() == Some("added"),
            "the diff does not show the rule as added"
        );
        let after = browser
            .find("article.change pre.after")
            .await?
            .text()
            .await?;
        ensure!(after.contains("MB-"), "the diff's new rule: {after:?}");
        Ok(())
    })
    .await?;

    step(
        browser,
        "the test panel previews as the author types",
        async {
            browser.mark_document().await?;
            browser
                .find("#test-text")
                .await?
                .send_keys("my member id is MB-123456")
                .await?;
            let mark = browser
                .find("#test-result mark[data-rule='member-id']")
                .await?;
            ensure!(
                mark.text().await? == "MB-123456",
                "the highlighted span is {:?}",
                mark.text().await?
            );
            browser
                .wait_until("the redacted preview", || async {
                    Ok(browser
                        .find("#test-result [data-role='redacted']")
                        .await?
                        .text()
                        .await?
                        == "my member id is [MEMBER ID]")
                })
                .await?;
            browser.not_reloaded("the preview appeared").await?;
            ensure!(
                browser
                    .client
                    .find_all(Locator::Css("form[action$='/approve']"))
                    .await?
                    .is_empty(),
                "the author is offered to approve their own draft"
            );
            ensure!(
                browser
                    .client
                    .find_all(Locator::Css("form[action$='/publish']"))
                    .await?
                    .is_empty(),
                "an unapproved draft offers to publish"
            );
            Ok(())
        },
    )
    .await?;

    step(browser, "the author signs out", async {
        browser.find("form.signout button").await?.click().await?;
        browser.wait_path("sign-in", |p| p == "/login").await
    })
    .await?;
    step(
        browser,
        "the reviewer opens the rule editor",
        open_rules_as(browser, app, RULES_REVIEWER),
    )
    .await?;
    step(browser, "the reviewer approves the draft", async {
        browser
            .find(&format!("a[href='{draft_path}']"))
            .await?
            .click()
            .await?;
        browser
            .find("form[action$='/approve'] button")
            .await?
            .click()
            .await?;
        browser
            .wait_until("the approval shown", || async {
                Ok(browser
                    .find("[data-role='approval']")
                    .await?
                    .text()
                    .await?
                    .starts_with("Approved by reviewer.compliance@example.test"))
            })
            .await
    })
    .await?;
    step(browser, "the draft is published", async {
        browser
            .find("form[action$='/publish'] button")
            .await?
            .click()
            .await?;
        browser
            .wait_path("the rule editor", |p| p == "/compliance/rules")
            .await?;
        let version = browser.find("[data-role='version']").await?.text().await?;
        ensure!(version == "1", "version in force: {version}");
        browser
            .find("table.rules tr[data-rule='member-id']")
            .await?;
        ensure!(
            app.state.redactor.version() == 1,
            "the server redacts with version {}",
            app.state.redactor.version()
        );
        let redaction = app.state.redactor.current().redact(
            "member MB-123456",
            drawbridge::redact::rules::Direction::Inbound,
        );
        ensure!(
            redaction.text.as_str() == "member [MEMBER ID]",
            "the published rule does not redact"
        );
        Ok(())
    })
    .await?;
    step(browser, "the editor fits a phone", async {
        browser.client.set_window_size(360, 740).await?;
        fits_a_phone(browser, "/compliance/rules").await
    })
    .await
}

const HOLDS_OFFICER: &str = "holds.compliance@example.test";
const HELD_NUMBER: &str = "+15557004444";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legal_hold_blocks_erasure_until_released_and_erasure_is_confirmed() {
    let Some(browser) = Browser::start("legal_hold_and_erasure").await else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await;
    browser.run(hold_and_erasure_scenario(&browser, &app)).await;
}

/// Asks to erase [`HELD_NUMBER`] from the data requests page; leaves the browser on the
/// confirmation page.
async fn ask_to_erase(browser: &Browser) -> anyhow::Result<()> {
    open_from_nav(browser, "/compliance/subjects").await?;
    fits_a_phone(browser, "/compliance/subjects").await?;
    browser
        .find("form[action='/compliance/subjects/erase'] input[name='phone']")
        .await?
        .send_keys(HELD_NUMBER)
        .await?;
    browser
        .find("form[action='/compliance/subjects/erase'] button[type=submit]")
        .await?
        .click()
        .await?;
    browser
        .wait_path("the erasure confirmation", |p| {
            p == "/compliance/subjects/erase"
        })
        .await?;
    fits_a_phone(browser, "the erasure confirmation").await
}

async fn hold_and_erasure_scenario(browser: &Browser, app: &TestApp) -> anyhow::Result<()> {
    let contact = step(
        browser,
        "a customer texts; a compliance user exists",
        async {
            let status = app
                .text_from(HELD_NUMBER, "question about my policy")
                .await
                .status();
            ensure!(status == 200, "the webhook answered {status}");
            create_compliance(app, HOLDS_OFFICER).await?;
            Ok(app.conversation_of(HELD_NUMBER).await.1)
        },
    )
    .await?;
    step(browser, "the officer places a hold on the number", async {
        browser.client.set_window_size(360, 740).await?;
        open_as(browser, app, HOLDS_OFFICER, "/compliance/holds").await?;
        fits_a_phone(browser, "/compliance/holds").await?;
        let form = "form[action='/compliance/holds']";
        browser
            .find(&format!("{form} input[name='phone']"))
            .await?
            .send_keys(HELD_NUMBER)
            .await?;
        browser
            .find(&format!("{form} select[name='reason']"))
            .await?
            .select_by_value("subpoena")
            .await?;
        browser
            .find(&format!("{form} textarea[name='note']"))
            .await?
            .send_keys("case 2026-77")
            .await?;
        browser
            .find(&format!("{form} button[type=submit]"))
            .await?
            .click()
            .await?;
        browser
            .wait_until("the hold listed", || async {
                let rows = browser
                    .client
                    .find_all(Locator::Css("form[action$='/release']"))
                    .await?;
                Ok(rows.len() == 1)
            })
            .await?;
        let table = browser.find("table").await?.text().await?;
        ensure!(
            table.contains("subpoena")
                && table.contains("case 2026-77")
                && table.contains(&contact),
            "the holds table: {table:?}"
        );
        fits_a_phone(browser, "/compliance/holds with a hold").await
    })
    .await?;
    step(browser, "erasure is refused under the hold", async {
        ask_to_erase(browser).await?;
        let notice = browser.find("p.notice").await?.text().await?;
        ensure!(notice.contains("legal hold"), "the notice: {notice:?}");
        ensure!(
            browser
                .client
                .find_all(Locator::Css(
                    "form[action='/compliance/subjects/erase/confirm']"
                ))
                .await?
                .is_empty(),
            "an erase button is offered under a hold"
        );
        Ok(())
    })
    .await?;
    step(browser, "the officer releases the hold", async {
        open_from_nav(browser, "/compliance/holds").await?;
        browser
            .find("form[action$='/release'] button")
            .await?
            .click()
            .await?;
        browser
            .wait_until("no active holds", || async {
                Ok(browser
                    .client
                    .find_all(Locator::Css("form[action$='/release']"))
                    .await?
                    .is_empty())
            })
            .await
    })
    .await?;
    step(browser, "erasure needs ERASE typed, then erases", async {
        ask_to_erase(browser).await?;
        let summary = browser.find("main").await?.text().await?;
        ensure!(
            summary.contains("1 conversations") && !summary.contains(HELD_NUMBER),
            "the confirmation's summary (the number masked): {summary:?}"
        );
        browser
            .find("input[name='confirm']")
            .await?
            .send_keys("ERASE")
            .await?;
        browser
            .find("form[action='/compliance/subjects/erase/confirm'] button[type=submit]")
            .await?
            .click()
            .await?;
        browser
            .wait_path("the erasure result", |p| {
                p == "/compliance/subjects/erase/confirm"
            })
            .await?;
        let heading = browser.find("h1").await?.text().await?;
        ensure!(heading == "Erased", "the result page says {heading:?}");
        let row = sqlx::query(
            "SELECT erased_at, (SELECT COUNT(*) FROM conversation WHERE contact_id = $1) \
             FROM contact WHERE contact_id = $1",
        )
        .bind(&contact)
        .fetch_one(app.state.db.pool())
        .await?;
        let erased_at: Option<String> = row.try_get(0)?;
        let conversations: i64 = row.try_get(1)?;
        ensure!(
            erased_at.is_some() && conversations == 0,
            "the contact was not erased (erased_at {erased_at:?}, {conversations} conversations)"
        );
        let events: Vec<String> = sqlx::query_scalar(
            "SELECT action FROM audit_event WHERE action IN \
             ('legal_hold.place', 'legal_hold.release', 'subject.erase') ORDER BY seq",
        )
        .fetch_all(app.state.db.pool())
        .await?;
        ensure!(
            events == ["legal_hold.place", "legal_hold.release", "subject.erase"],
            "audited: {events:?}"
        );
        Ok(())
    })
    .await
}
