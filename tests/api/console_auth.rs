//! Console sign-in, sessions and administration, through HTTP as a browser would: password
//! sign-in and its rate limits, session cookies and timeouts, sign-out, CSRF, the first admin,
//! one-time codes, admin actions on users and tokens, and single sign-on against the fake
//! identity provider. Every test also checks that no staff e-mail address reaches the database
//! in the clear or the logs.

use crate::both_backends;
use crate::helpers::{self, captured_logs, contains, Backend, Options, TestApp};
use drawbridge::accounts::oidc::OidcSettings;
use drawbridge::accounts::{password, totp};
use drawbridge::clock::Clock;
use drawbridge::config::ConsoleSettings;
use drawbridge::simulate::idp::{self, FakeIdpConfig};
use drawbridge::startup::{Application, ServerOptions};
use drawbridge::store::tokens::Role;
use drawbridge::store::users::{self, NewUser};
use drawbridge::web::console::auth::WRONG_CREDENTIALS;
use reqwest::header::{LOCATION, SET_COOKIE};
use reqwest::Response;
use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;
use std::time::Duration;

const PASSWORD: &str = "correct horse battery staple";

/// A browser: keeps cookies, does not follow redirects (so tests see each 303).
struct Browser {
    client: reqwest::Client,
    base: String,
}

impl Browser {
    fn new(base: &str) -> Self {
        Self {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_owned(),
        }
    }

    fn of(app: &TestApp) -> Self {
        Self::new(&app.address)
    }

    async fn get(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.client
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// The CSRF token of the form on `path`.
    async fn csrf(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        csrf_in(&response.text().await.unwrap())
    }

    /// Signs in with the password form.
    async fn sign_in(&self, email: &str, password: &str) -> Response {
        let csrf = self.csrf("/login").await;
        self.post(
            "/login",
            &[
                ("email", email),
                ("password", password),
                ("csrf_token", &csrf),
            ],
        )
        .await
    }

    /// Signs in and expects to land at `expected`.
    async fn signed_in(&self, email: &str, password: &str, expected: &str) {
        let response = self.sign_in(email, password).await;
        assert_eq!(response.status(), 303, "sign-in of a valid account");
        assert_eq!(location(&response), expected);
    }

    /// Posts a form carrying the CSRF token of the form on `page`.
    async fn submit(&self, page: &str, action: &str, fields: &[(&str, &str)]) -> Response {
        let csrf = self.csrf(page).await;
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf_token", &csrf));
        self.post(action, &form).await
    }

    async fn sign_out(&self) {
        let response = self.submit("/account/password", "/logout", &[]).await;
        assert_eq!(response.status(), 303);
        assert_eq!(location(&response), "/login");
    }
}

fn csrf_in(html: &str) -> String {
    between(html, "name=\"csrf_token\" value=\"", "\"")
        .unwrap_or_else(|| panic!("no CSRF token in {html}"))
}

fn between(text: &str, start: &str, end: &str) -> Option<String> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(text[from..from + len].to_owned())
}

fn location(response: &Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The `Set-Cookie` header that sets `name`.
fn set_cookie(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with(&format!("{name}=")))
}

fn cookie_value(header: &str) -> String {
    header
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_owned())
        .unwrap()
}

/// The error paragraph of a page.
fn error_of(html: &str) -> String {
    between(html, "<p class=\"error\" role=\"alert\">", "</p>").unwrap_or_default()
}

async fn add_user(app: &TestApp, email: &str, role: Role, pw: Option<&str>) -> String {
    let hash = pw.map(|pw| password::hash(&SecretString::from(pw.to_owned())).unwrap());
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    users::create(
        &mut conn,
        &app.state.vault,
        &NewUser {
            email,
            role,
            password_hash: hash.as_deref(),
            must_change_password: false,
        },
        &drawbridge::store::now(),
    )
    .await
    .unwrap()
    .unwrap()
}

/// Every audit event as (action, actor kind, actor id, details).
async fn audit_events(state: &drawbridge::web::AppState) -> Vec<(String, String, String, String)> {
    sqlx::query("SELECT action, actor_kind, actor_id, details FROM audit_event ORDER BY seq")
        .fetch_all(state.db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

fn has_event(events: &[(String, String, String, String)], action: &str, detail: &str) -> bool {
    events
        .iter()
        .any(|(a, _, _, details)| a == action && details.contains(detail))
}

/// No address appears in the database's bytes, the audit trail or the logs.
async fn assert_no_addresses(app: &TestApp, emails: &[&str]) {
    let stored = app.stored_bytes().await;
    let events = audit_events(&app.state).await;
    let logs = captured_logs();
    for email in emails {
        assert!(!contains(&stored, email), "{email} stored in the clear");
        assert!(
            !events
                .iter()
                .any(|(a, k, i, d)| [a, k, i, d].iter().any(|t| t.contains(email))),
            "{email} in the audit trail"
        );
        assert!(!logs.contains(email), "{email} in the logs");
    }
    assert!(
        !events.iter().any(|(_, _, _, d)| d.contains('@')),
        "an address in audit details"
    );
}

async fn session_count(app: &TestApp) -> i64 {
    app.count("user_session").await
}

both_backends!(
    password_sign_in,
    secure_cookies_under_https,
    idle_and_absolute_timeouts,
    sign_out_ends_the_session,
    forms_need_their_csrf_token,
    sign_in_is_rate_limited_per_account,
    sign_in_is_rate_limited_per_address,
    first_admin_must_change_password,
    one_time_codes,
    admin_can_require_a_second_factor,
    disabling_a_user_ends_their_sessions,
    the_last_admin_stays,
    admin_manages_tokens,
    single_sign_on,
    single_sign_on_refusals,
    users_command,
);

async fn password_sign_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = "ana.password@example.com";
    let user_id = add_user(&app, email, Role::Agent, Some(PASSWORD)).await;
    let disabled = "dora.disabled@example.com";
    let disabled_id = add_user(&app, disabled, Role::Agent, Some(PASSWORD)).await;
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    users::set_disabled(&mut conn, &disabled_id, true, &drawbridge::store::now())
        .await
        .unwrap();
    drop(conn);

    let browser = Browser::of(&app);
    let page = browser.get("/login").await;
    assert_eq!(page.status(), 200);
    let pre = set_cookie(&page, "drawbridge_pre").expect("a pre-session cookie");
    assert!(
        pre.contains("HttpOnly") && pre.contains("SameSite=Strict") && !pre.contains("Secure"),
        "{pre}"
    );
    let html = page.text().await.unwrap();
    for needle in [
        "id=\"login\"",
        "<label for=\"email\"",
        "id=\"email\"",
        "name=\"email\"",
        "<label for=\"password\"",
        "id=\"password\"",
        "type=\"password\"",
        "id=\"sign-in\"",
    ] {
        assert!(html.contains(needle), "{needle} in the sign-in form");
    }
    assert!(
        !html.contains("/auth/oidc/start"),
        "no SSO link without SSO"
    );

    // Wrong password, unknown account and disabled account: one message.
    let mut messages = Vec::new();
    for (who, pw) in [
        (email, "not the password at all"),
        ("nobody.here@example.com", PASSWORD),
        (disabled, PASSWORD),
    ] {
        let response = browser.sign_in(who, pw).await;
        assert_eq!(response.status(), 401);
        assert!(set_cookie(&response, "drawbridge_session").is_none());
        messages.push(error_of(&response.text().await.unwrap()));
    }
    assert_eq!(messages[0], WRONG_CREDENTIALS);
    assert!(messages.iter().all(|m| *m == messages[0]), "{messages:?}");
    assert_eq!(session_count(&app).await, 0);

    // The right password: a session cookie, 303 to the console; an uppercase address works.
    let response = browser.sign_in(&email.to_uppercase(), PASSWORD).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/console");
    let cookie = set_cookie(&response, "drawbridge_session").expect("a session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Secure"), "no Secure over http: {cookie}");
    assert!(cookie_value(&cookie).starts_with("dbs_"));
    let page = browser.get("/account/password").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Sign out") && html.contains("current_password"));
    // An agent is not an admin.
    assert_eq!(browser.get("/console/admin/users").await.status(), 403);

    // `next` is followed when local, ignored otherwise.
    let other = Browser::of(&app);
    let page = other.get("/login?next=/console/admin/users").await;
    let html = page.text().await.unwrap();
    assert!(html.contains("name=\"next\" value=\"/console/admin/users\""));
    let csrf = csrf_in(&html);
    let response = other
        .post(
            "/login",
            &[
                ("email", email),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
                ("next", "/account/two-factor"),
            ],
        )
        .await;
    assert_eq!(location(&response), "/account/two-factor");
    let third = Browser::of(&app);
    let csrf = third.csrf("/login").await;
    let response = third
        .post(
            "/login",
            &[
                ("email", email),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
                ("next", "//evil.example/"),
            ],
        )
        .await;
    assert_eq!(location(&response), "/console");

    let events = audit_events(&app.state).await;
    assert!(events.iter().any(|(a, k, i, d)| a == "auth.sign_in"
        && k == "user"
        && *i == user_id
        && d.contains("\"method\":\"password\"")
        && d.contains("\"stage\":\"signed_in\"")));
    for reason in ["wrong_password", "unknown_account", "disabled"] {
        assert!(
            has_event(
                &events,
                "auth.sign_in_failed",
                &format!("\"reason\":\"{reason}\"")
            ),
            "{reason}"
        );
    }
    assert!(events.iter().any(|(a, k, _, d)| a == "auth.sign_in_failed"
        && k == "system"
        && d.contains("unknown_account")));
    assert_no_addresses(&app, &[email, disabled, "nobody.here@example.com"]).await;
}

async fn secure_cookies_under_https(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            public_url: Some("https://console.example.com".to_owned()),
            ..Options::default()
        },
    )
    .await;
    let email = "sam.secure@example.com";
    add_user(&app, email, Role::Agent, Some(PASSWORD)).await;
    // A client without a cookie store: Secure cookies are not sent over http by a browser, so
    // the test carries them by hand.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client
        .get(format!("{}/login", app.address))
        .send()
        .await
        .unwrap();
    let pre = set_cookie(&page, "drawbridge_pre").unwrap();
    assert!(
        pre.contains("Secure") && pre.contains("HttpOnly") && pre.contains("SameSite=Strict"),
        "{pre}"
    );
    let csrf = csrf_in(&page.text().await.unwrap());
    let response = client
        .post(format!("{}/login", app.address))
        .header("Cookie", format!("drawbridge_pre={}", cookie_value(&pre)))
        .form(&[
            ("email", email),
            ("password", PASSWORD),
            ("csrf_token", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let cookie = set_cookie(&response, "drawbridge_session").unwrap();
    assert!(
        cookie.contains("Secure")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
}

async fn idle_and_absolute_timeouts(backend: Backend) {
    let clock = Clock::adjustable();
    let app = TestApp::spawn_with(
        backend,
        Options {
            clock: Some(clock.clone()),
            console: Some(ConsoleSettings {
                idle_timeout: Duration::from_secs(15 * 60),
                absolute_timeout: Duration::from_secs(3600),
                ..ConsoleSettings::default()
            }),
            ..Options::default()
        },
    )
    .await;
    let email = "ida.idle@example.com";
    add_user(&app, email, Role::Agent, Some(PASSWORD)).await;

    // Idle: 14 minutes is fine, and resets the timer; 16 more without a request is not.
    let browser = Browser::of(&app);
    browser.signed_in(email, PASSWORD, "/console").await;
    clock.advance(Duration::from_secs(14 * 60));
    assert_eq!(browser.get("/account/password").await.status(), 200);
    clock.advance(Duration::from_secs(14 * 60));
    assert_eq!(browser.get("/account/password").await.status(), 200);
    clock.advance(Duration::from_secs(16 * 60));
    let response = browser.get("/account/password").await;
    assert_eq!(response.status(), 303);
    assert!(location(&response).starts_with("/login"));
    assert_eq!(
        session_count(&app).await,
        0,
        "the timed-out session is deleted"
    );

    // Absolute: busy all along, the session still ends an hour after sign-in.
    browser.signed_in(email, PASSWORD, "/console").await;
    for _ in 0..5 {
        clock.advance(Duration::from_secs(10 * 60));
        assert_eq!(browser.get("/account/password").await.status(), 200);
    }
    clock.advance(Duration::from_secs(10 * 60));
    let response = browser.get("/account/password").await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/login?next=%2Faccount%2Fpassword");
}

async fn sign_out_ends_the_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = "otto.out@example.com";
    let id = add_user(&app, email, Role::Agent, Some(PASSWORD)).await;
    let browser = Browser::of(&app);
    let response = browser.sign_in(email, PASSWORD).await;
    let token = cookie_value(&set_cookie(&response, "drawbridge_session").unwrap());
    let csrf = browser.csrf("/account/password").await;
    let response = browser.post("/logout", &[("csrf_token", &csrf)]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/login");
    let cleared = set_cookie(&response, "drawbridge_session").unwrap();
    assert!(
        cleared.contains("Max-Age=0") || cleared.contains("Expires"),
        "{cleared}"
    );
    assert_eq!(session_count(&app).await, 0);

    // The old token opens nothing.
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/account/password", app.address))
        .header("Cookie", format!("drawbridge_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert!(location(&response).starts_with("/login"));
    let events = audit_events(&app.state).await;
    assert!(events
        .iter()
        .any(|(a, _, i, _)| a == "auth.sign_out" && *i == id));
}

async fn forms_need_their_csrf_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = "cora.csrf@example.com";
    let admin = "adam.csrf@example.com";
    let id = add_user(&app, email, Role::Agent, Some(PASSWORD)).await;
    add_user(&app, admin, Role::Admin, Some(PASSWORD)).await;
    let browser = Browser::of(&app);

    // Sign-in: no pre-session cookie, no token, a wrong token.
    let bare = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = bare
        .post(format!("{}/login", app.address))
        .form(&[
            ("email", email),
            ("password", PASSWORD),
            ("csrf_token", "00"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let _ = browser.get("/login").await;
    let response = browser
        .post("/login", &[("email", email), ("password", PASSWORD)])
        .await;
    assert_eq!(response.status(), 403);
    let response = browser
        .post(
            "/login",
            &[
                ("email", email),
                ("password", PASSWORD),
                ("csrf_token", &"ab".repeat(32)),
            ],
        )
        .await;
    assert_eq!(response.status(), 403);
    assert_eq!(session_count(&app).await, 0, "no session without the token");

    // Signed in: password change, sign-out, admin forms.
    browser.signed_in(email, PASSWORD, "/console").await;
    let hash_before = password_hash(&app, &id).await;
    for token in [None, Some("nonsense"), Some(&"0".repeat(64)[..])] {
        let mut form = vec![
            ("current_password", PASSWORD),
            ("new_password", "a brand new passphrase"),
            ("confirm_password", "a brand new passphrase"),
        ];
        if let Some(token) = token {
            form.push(("csrf_token", token));
        }
        assert_eq!(browser.post("/account/password", &form).await.status(), 403);
        let logout: Vec<(&str, &str)> = form
            .iter()
            .filter(|(k, _)| *k == "csrf_token")
            .copied()
            .collect();
        assert_eq!(browser.post("/logout", &logout).await.status(), 403);
    }
    assert_eq!(
        password_hash(&app, &id).await,
        hash_before,
        "the password is unchanged"
    );
    assert_eq!(session_count(&app).await, 1, "still signed in");
    assert_eq!(browser.get("/account/password").await.status(), 200);

    // Another session's token is not this session's.
    let admin_browser = Browser::of(&app);
    admin_browser.signed_in(admin, PASSWORD, "/console").await;
    let foreign = browser.csrf("/account/password").await;
    let users_before = app.count("app_user").await;
    let response = admin_browser
        .post(
            "/console/admin/users",
            &[
                ("email", "new.person@example.com"),
                ("role", "agent"),
                ("csrf_token", &foreign),
            ],
        )
        .await;
    assert_eq!(response.status(), 403);
    let response = admin_browser
        .post(
            &format!("/console/admin/users/{id}"),
            &[("action", "disable"), ("csrf_token", &foreign)],
        )
        .await;
    assert_eq!(response.status(), 403);
    assert_eq!(app.count("app_user").await, users_before);
    assert_eq!(
        browser.get("/account/password").await.status(),
        200,
        "not disabled"
    );
}

async fn password_hash(app: &TestApp, id: &str) -> Option<String> {
    sqlx::query("SELECT password_hash FROM app_user WHERE user_id = $1")
        .bind(id)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0)
}

async fn sign_in_is_rate_limited_per_account(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            console: Some(ConsoleSettings {
                sign_in_failures_per_account: 3,
                ..ConsoleSettings::default()
            }),
            ..Options::default()
        },
    )
    .await;
    let email = "lena.limited@example.com";
    let other = "olga.other@example.com";
    add_user(&app, email, Role::Agent, Some(PASSWORD)).await;
    add_user(&app, other, Role::Agent, Some(PASSWORD)).await;
    let browser = Browser::of(&app);
    for _ in 0..3 {
        assert_eq!(
            browser
                .sign_in(email, "a wrong password here")
                .await
                .status(),
            401
        );
    }
    let response = browser.sign_in(email, "a wrong password here").await;
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "Retry-After {retry}");
    assert!(response.text().await.unwrap().contains("Please wait"));
    // Even the right password waits now; another account does not.
    let response = browser.sign_in(email, PASSWORD).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(session_count(&app).await, 0);
    browser.signed_in(other, PASSWORD, "/console").await;

    // A blind-index key rotation re-keys the stored e-mail index; the failure budget it spent
    // stays spent (the counters are not keyed by that index).
    let settings = helpers::settings_for(&app.data_dir, &app.database_url, None, [42; 32]);
    let (master_keys, _) = drawbridge::keys::configured_keys(&settings).unwrap();
    let options = drawbridge::keys::index::ReindexOptions {
        progress: false,
        ..Default::default()
    };
    drawbridge::keys::index::reindex(
        &app.state.db,
        &master_keys,
        drawbridge::audit::Actor::Cli("test"),
        &options,
    )
    .await
    .unwrap();
    helpers::eventually(5, "the server to take up the new index keys", || async {
        app.state.vault.index_generation() == 2
    })
    .await;
    Browser::of(&app)
        .signed_in(other, PASSWORD, "/console")
        .await;
    let response = Browser::of(&app).sign_in(email, PASSWORD).await;
    assert_eq!(
        response.status(),
        429,
        "the re-index reset the failure count"
    );

    let events = audit_events(&app.state).await;
    assert!(has_event(
        &events,
        "auth.sign_in_failed",
        "\"reason\":\"rate_limited\""
    ));
    assert_no_addresses(&app, &[email, other]).await;
}

async fn sign_in_is_rate_limited_per_address(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            console: Some(ConsoleSettings {
                sign_in_per_ip_per_minute: 4,
                ..ConsoleSettings::default()
            }),
            ..Options::default()
        },
    )
    .await;
    let browser = Browser::of(&app);
    for n in 0..4 {
        let who = format!("user{n}@example.com");
        assert_eq!(browser.sign_in(&who, PASSWORD).await.status(), 401);
    }
    let response = browser.sign_in("user9@example.com", PASSWORD).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let events = audit_events(&app.state).await;
    assert!(has_event(
        &events,
        "auth.sign_in_failed",
        "\"reason\":\"rate_limited\""
    ));
}

/// Builds the real application on a fresh database, as `serve` does, with the first admin.
async fn first_start(
    backend: &Backend,
    data_dir: &std::path::Path,
) -> (
    String,
    Option<helpers::PgDatabase>,
    drawbridge::config::Settings,
) {
    let (pg, url) = match backend {
        Backend::Sqlite => (
            None,
            format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("drawbridge.db").display()
            ),
        ),
        Backend::Postgres(server) => {
            let pg = helpers::PgDatabase::create(server).await;
            let url = pg.url();
            (Some(pg), url)
        }
    };
    let mut settings = helpers::settings_with(
        data_dir,
        &url,
        None,
        [7; 32],
        &Options {
            outbox: Some(helpers::no_worker()),
            ..Options::default()
        },
    );
    settings.console.first_admin_email = "it-admin@example.com".to_owned();
    (url, pg, settings)
}

async fn first_admin_must_change_password(backend: Backend) {
    let temp = tempfile::tempdir().unwrap();
    let (_url, _pg, settings) = first_start(&backend, temp.path()).await;
    let options = || ServerOptions {
        handle_signals: false,
        workers: Some(1),
        clock: Clock::system(),
    };
    let app = Application::build(&settings, options()).await.unwrap();
    let (email, one_time) = app
        .first_admin()
        .map(|(e, p)| (e.to_owned(), p.expose_secret().to_owned()))
        .expect("a first admin on an empty database");
    assert_eq!(email, "it-admin@example.com");
    let address = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    // A second start creates nobody.
    let again = Application::build(&settings, options()).await.unwrap();
    assert!(again.first_admin().is_none());
    drop(again);

    let browser = Browser::new(&address);
    browser
        .signed_in(&email, &one_time, "/account/password")
        .await;
    // Nothing else opens until the password is changed.
    for path in ["/console/admin/users", "/account/two-factor"] {
        let response = browser.get(path).await;
        assert_eq!(response.status(), 303, "{path}");
        assert_eq!(location(&response), "/account/password");
    }
    let html = browser.get("/account/password").await.text().await.unwrap();
    assert!(
        !html.contains("name=\"current_password\""),
        "not asked right after sign-in"
    );
    let response = browser
        .submit(
            "/account/password",
            "/account/password",
            &[
                ("new_password", "a fresh admin passphrase"),
                ("confirm_password", "a different one entirely"),
            ],
        )
        .await;
    assert_eq!(response.status(), 422);
    let response = browser
        .submit(
            "/account/password",
            "/account/password",
            &[("new_password", "short"), ("confirm_password", "short")],
        )
        .await;
    assert_eq!(response.status(), 422);
    let response = browser
        .submit(
            "/account/password",
            "/account/password",
            &[
                ("new_password", "a fresh admin passphrase"),
                ("confirm_password", "a fresh admin passphrase"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/console");
    assert!(
        set_cookie(&response, "drawbridge_session").is_some(),
        "a new token"
    );
    assert_eq!(browser.get("/console/admin/users").await.status(), 200);

    // The old one-time password no longer works; the new one does, straight in.
    let fresh = Browser::new(&address);
    assert_eq!(fresh.sign_in(&email, &one_time).await.status(), 401);
    fresh
        .signed_in(&email, "a fresh admin passphrase", "/console")
        .await;

    let events = audit_events(&state).await;
    assert!(events.iter().any(|(a, k, _, d)| a == "user.create"
        && k == "system"
        && d.contains("\"role\":\"admin\"")));
    assert!(has_event(&events, "user.password", ""));
    assert!(
        !captured_logs().contains(&one_time),
        "the one-time password is never logged"
    );
    assert!(!captured_logs().contains(&email));
}

fn totp_secret(html: &str) -> Vec<u8> {
    let text = between(html, "<code id=\"totp-secret\">", "</code>").expect("the secret as text");
    assert!(html.contains("otpauth://totp/Drawbridge:"));
    base32::decode(base32::Alphabet::Rfc4648 { padding: false }, &text).unwrap()
}

fn code(clock: &Clock, secret: &[u8]) -> String {
    totp::code_at(secret, u64::try_from(clock.now().timestamp()).unwrap()).unwrap()
}

/// Enrols a one-time-code authenticator from the two-factor page; returns the secret.
async fn enrol(browser: &Browser, clock: &Clock) -> (Vec<u8>, Response) {
    let page = browser.get("/account/two-factor").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let secret = totp_secret(&html);
    let csrf = csrf_in(&html);
    // A wrong code first: refused, the same secret stays on offer.
    let response = browser
        .post(
            "/account/two-factor",
            &[("code", "000000"), ("csrf_token", &csrf)],
        )
        .await;
    if response.status() == 303 {
        // 000000 happened to be right; vanishingly rare, and enrolment is then done.
        return (secret, response);
    }
    assert_eq!(response.status(), 422);
    assert_eq!(totp_secret(&response.text().await.unwrap()), secret);
    let response = browser
        .post(
            "/account/two-factor",
            &[("code", &code(clock, &secret)), ("csrf_token", &csrf)],
        )
        .await;
    (secret, response)
}

async fn one_time_codes(backend: Backend) {
    let clock = Clock::adjustable();
    let app = TestApp::spawn_with(
        backend,
        Options {
            clock: Some(clock.clone()),
            ..Options::default()
        },
    )
    .await;
    let email = "tess.totp@example.com";
    let id = add_user(&app, email, Role::Agent, Some(PASSWORD)).await;
    let browser = Browser::of(&app);
    browser.signed_in(email, PASSWORD, "/console").await;
    let (secret, response) = enrol(&browser, &clock).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/account/two-factor");
    let html = browser
        .get("/account/two-factor")
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Two-factor sign-in is on"));
    browser.sign_out().await;

    // Sign-in now asks for a code; nothing else opens meanwhile.
    browser.signed_in(email, PASSWORD, "/login/code").await;
    let response = browser.get("/account/password").await;
    assert_eq!(location(&response), "/login/code");
    let html = browser.get("/login/code").await.text().await.unwrap();
    assert!(
        html.contains("id=\"code\"")
            && html.contains("name=\"code\"")
            && html.contains("autocomplete=\"one-time-code\"")
            && html.contains("<label for=\"code\"")
    );
    clock.advance(Duration::from_secs(31));
    let used = code(&clock, &secret);
    let response = browser
        .submit("/login/code", "/login/code", &[("code", &used)])
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/console");
    assert!(
        set_cookie(&response, "drawbridge_session").is_some(),
        "a new token for the new stage"
    );
    assert_eq!(browser.get("/account/password").await.status(), 200);
    browser.sign_out().await;

    // The same code again (same time step): refused.
    browser.signed_in(email, PASSWORD, "/login/code").await;
    let response = browser
        .submit("/login/code", "/login/code", &[("code", &used)])
        .await;
    assert_eq!(response.status(), 401);
    assert_eq!(browser.get("/account/password").await.status(), 303);

    // Five wrong codes end the session.
    for _ in 0..3 {
        assert_eq!(
            browser
                .submit("/login/code", "/login/code", &[("code", "12345x")])
                .await
                .status(),
            401
        );
    }
    let response = browser
        .submit("/login/code", "/login/code", &[("code", "12345x")])
        .await;
    assert_eq!(response.status(), 401);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("Too many wrong codes"));
    let response = browser.get("/login/code").await;
    assert_eq!(response.status(), 303);
    assert!(location(&response).starts_with("/login"));
    assert_eq!(session_count(&app).await, 0);

    let events = audit_events(&app.state).await;
    assert!(events
        .iter()
        .any(|(a, _, i, _)| a == "user.totp_enroll" && *i == id));
    assert!(has_event(
        &events,
        "auth.sign_in",
        "\"stage\":\"second_factor\""
    ));
    assert!(has_event(&events, "auth.second_factor", ""));
    assert!(has_event(
        &events,
        "auth.sign_in_failed",
        "\"reason\":\"wrong_code\""
    ));
    assert_no_addresses(&app, &[email]).await;
}

async fn admin_can_require_a_second_factor(backend: Backend) {
    let clock = Clock::adjustable();
    let app = TestApp::spawn_with(
        backend,
        Options {
            clock: Some(clock.clone()),
            ..Options::default()
        },
    )
    .await;
    let admin = "ada.admin@example.com";
    let agent = "avi.agent@example.com";
    add_user(&app, admin, Role::Admin, Some(PASSWORD)).await;
    let agent_id = add_user(&app, agent, Role::Agent, Some(PASSWORD)).await;
    let admins = Browser::of(&app);
    admins.signed_in(admin, PASSWORD, "/console").await;
    let html = admins
        .get("/console/admin/users")
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains(agent) && !html.contains("Required, not set up"));
    let response = admins
        .submit(
            "/console/admin/users",
            &format!("/console/admin/users/{agent_id}"),
            &[("action", "require_totp")],
        )
        .await;
    assert_eq!(response.status(), 303);
    let html = admins
        .get("/console/admin/users")
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Required, not set up"));

    // The agent's next sign-in must enrol before anything else.
    let browser = Browser::of(&app);
    browser
        .signed_in(agent, PASSWORD, "/account/two-factor")
        .await;
    let response = browser.get("/account/password").await;
    assert_eq!(location(&response), "/account/two-factor");
    let (secret, response) = enrol(&browser, &clock).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/console");
    assert_eq!(browser.get("/account/password").await.status(), 200);
    browser.sign_out().await;
    browser.signed_in(agent, PASSWORD, "/login/code").await;
    clock.advance(Duration::from_secs(31));
    let response = browser
        .submit(
            "/login/code",
            "/login/code",
            &[("code", &code(&clock, &secret))],
        )
        .await;
    assert_eq!(location(&response), "/console");

    // An admin resets it: the next sign-in enrols again.
    let response = admins
        .submit(
            "/console/admin/users",
            &format!("/console/admin/users/{agent_id}"),
            &[("action", "reset_totp")],
        )
        .await;
    assert_eq!(response.status(), 303);
    let fresh = Browser::of(&app);
    fresh
        .signed_in(agent, PASSWORD, "/account/two-factor")
        .await;

    let events = audit_events(&app.state).await;
    assert!(has_event(&events, "user.totp_require", "\"required\":true"));
    assert!(has_event(&events, "user.totp_reset", ""));
    assert!(has_event(
        &events,
        "auth.sign_in",
        "\"stage\":\"enroll_totp\""
    ));
    assert_no_addresses(&app, &[admin, agent]).await;
}

async fn disabling_a_user_ends_their_sessions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = "abe.admin@example.com";
    let agent = "dan.disabled@example.com";
    add_user(&app, admin, Role::Admin, Some(PASSWORD)).await;
    let agent_id = add_user(&app, agent, Role::Agent, Some(PASSWORD)).await;
    let admins = Browser::of(&app);
    admins.signed_in(admin, PASSWORD, "/console").await;
    let browser = Browser::of(&app);
    browser.signed_in(agent, PASSWORD, "/console").await;
    assert_eq!(browser.get("/account/password").await.status(), 200);

    let action = format!("/console/admin/users/{agent_id}");
    let response = admins
        .submit("/console/admin/users", &action, &[("action", "disable")])
        .await;
    assert_eq!(response.status(), 303);
    let response = browser.get("/account/password").await;
    assert_eq!(response.status(), 303);
    assert!(location(&response).starts_with("/login"));
    let response = browser.sign_in(agent, PASSWORD).await;
    assert_eq!(response.status(), 401);
    assert_eq!(error_of(&response.text().await.unwrap()), WRONG_CREDENTIALS);

    // Enabled again, with a role change and a password reset.
    assert_eq!(
        admins
            .submit("/console/admin/users", &action, &[("action", "enable")])
            .await
            .status(),
        303
    );
    assert_eq!(
        admins
            .submit(
                "/console/admin/users",
                &action,
                &[("action", "role"), ("role", "supervisor")]
            )
            .await
            .status(),
        303
    );
    let response = admins
        .submit(
            "/console/admin/users",
            &action,
            &[("action", "reset_password")],
        )
        .await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    let one_time = between(&html, "<code id=\"one-time-password\">", "</code>").unwrap();
    assert_eq!(
        browser.sign_in(agent, PASSWORD).await.status(),
        401,
        "the old password is gone"
    );
    browser
        .signed_in(agent, &one_time, "/account/password")
        .await;
    let html = admins
        .get("/console/admin/users")
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains(&one_time), "shown once");

    // Adding a user: a one-time password, shown once; a duplicate address is refused.
    let response = admins
        .submit(
            "/console/admin/users",
            "/console/admin/users",
            &[("email", "Nina.New@example.com"), ("role", "compliance")],
        )
        .await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    let first = between(&html, "<code id=\"one-time-password\">", "</code>").unwrap();
    let response = admins
        .submit(
            "/console/admin/users",
            "/console/admin/users",
            &[("email", "nina.new@example.com"), ("role", "agent")],
        )
        .await;
    assert_eq!(response.status(), 409);
    let newcomer = Browser::of(&app);
    newcomer
        .signed_in("nina.new@example.com", &first, "/account/password")
        .await;

    let events = audit_events(&app.state).await;
    for action in [
        "user.disable",
        "user.enable",
        "user.role",
        "user.password_reset",
        "user.create",
    ] {
        assert!(
            events.iter().any(|(a, k, _, _)| a == action && k == "user"),
            "{action}"
        );
    }
    assert!(has_event(&events, "user.role", "\"to\":\"supervisor\""));
    assert!(!captured_logs().contains(&one_time) && !captured_logs().contains(&first));
    assert_no_addresses(&app, &[admin, agent, "nina.new@example.com"]).await;
}

async fn the_last_admin_stays(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = "last.admin@example.com";
    let admin_id = add_user(&app, admin, Role::Admin, Some(PASSWORD)).await;
    let browser = Browser::of(&app);
    browser.signed_in(admin, PASSWORD, "/console").await;
    // Disable every other admin (the bootstrap one, at least).
    let others: Vec<String> =
        sqlx::query("SELECT user_id FROM app_user WHERE role = 'admin' AND user_id <> $1")
            .bind(&admin_id)
            .fetch_all(app.state.db.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    for other in &others {
        let response = browser
            .submit(
                "/console/admin/users",
                &format!("/console/admin/users/{other}"),
                &[("action", "disable")],
            )
            .await;
        assert_eq!(response.status(), 303);
    }
    let own = format!("/console/admin/users/{admin_id}");
    let response = browser
        .submit("/console/admin/users", &own, &[("action", "disable")])
        .await;
    assert_eq!(response.status(), 409);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("last enabled admin"));
    let response = browser
        .submit(
            "/console/admin/users",
            &own,
            &[("action", "role"), ("role", "agent")],
        )
        .await;
    assert_eq!(response.status(), 409);
    assert_eq!(
        browser.get("/console/admin/users").await.status(),
        200,
        "still an admin, still signed in"
    );
    let role: String = sqlx::query("SELECT role FROM app_user WHERE user_id = $1")
        .bind(&admin_id)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(role, "admin");
    // With another admin enabled again, demoting oneself is allowed.
    if let Some(other) = others.first() {
        let response = browser
            .submit(
                "/console/admin/users",
                &format!("/console/admin/users/{other}"),
                &[("action", "enable")],
            )
            .await;
        assert_eq!(response.status(), 303);
        let response = browser
            .submit(
                "/console/admin/users",
                &own,
                &[("action", "role"), ("role", "agent")],
            )
            .await;
        assert_eq!(response.status(), 303);
        assert_eq!(browser.get("/console/admin/users").await.status(), 403);
    }
}

async fn admin_manages_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = "tom.tokens@example.com";
    add_user(&app, admin, Role::Admin, Some(PASSWORD)).await;
    let agent = "alf.agent@example.com";
    add_user(&app, agent, Role::Agent, Some(PASSWORD)).await;
    let browser = Browser::of(&app);
    browser.signed_in(admin, PASSWORD, "/console").await;
    let response = browser
        .submit(
            "/console/admin/tokens",
            "/console/admin/tokens",
            &[("name", "crm"), ("role", "supervisor")],
        )
        .await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    let token = between(&html, "<code id=\"new-token\">", "</code>").unwrap();
    assert!(token.starts_with("dbt_"));
    assert_eq!(
        app.api_get(&token, "/api/v1/conversations").await.status(),
        200
    );
    let html = browser
        .get("/console/admin/tokens")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("crm") && !html.contains(&token),
        "listed, never shown again"
    );
    let id: String = sqlx::query("SELECT api_token_id FROM api_token WHERE name = 'crm'")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0);
    let response = browser
        .submit(
            "/console/admin/tokens",
            &format!("/console/admin/tokens/{id}/revoke"),
            &[],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        app.api_get(&token, "/api/v1/conversations").await.status(),
        401
    );
    let response = browser
        .submit(
            "/console/admin/tokens",
            "/console/admin/tokens",
            &[("name", "bad name 1234567"), ("role", "agent")],
        )
        .await;
    assert_eq!(response.status(), 422);

    // Not for other roles.
    let agents = Browser::of(&app);
    agents.signed_in(agent, PASSWORD, "/console").await;
    assert_eq!(agents.get("/console/admin/tokens").await.status(), 403);
    let csrf = agents.csrf("/account/password").await;
    let response = agents
        .post(
            "/console/admin/tokens",
            &[("name", "sneaky"), ("role", "admin"), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(response.status(), 403);
    assert_eq!(app.count("api_token").await, 1);

    let events = audit_events(&app.state).await;
    assert!(has_event(
        &events,
        "token.create",
        "\"role\":\"supervisor\""
    ));
    assert!(has_event(&events, "token.revoke", ""));
    assert!(!captured_logs().contains(&token));
}

const CLIENT_SECRET: &str = "fake-idp-client-secret";
const CONSOLE_URL: &str = "http://console.test";

async fn with_idp(backend: Backend) -> (TestApp, idp::RunningIdp) {
    let idp = idp::spawn(
        "127.0.0.1:0".parse().unwrap(),
        FakeIdpConfig {
            client_id: "drawbridge-console".to_owned(),
            client_secret: CLIENT_SECRET.to_owned(),
            redirect_uri: format!("{CONSOLE_URL}/auth/oidc/callback"),
        },
    )
    .unwrap();
    let app = TestApp::spawn_with(
        backend,
        Options {
            public_url: Some(CONSOLE_URL.to_owned()),
            console: Some(ConsoleSettings {
                oidc: Some(OidcSettings {
                    issuer: url::Url::parse(&idp.url()).unwrap(),
                    client_id: "drawbridge-console".to_owned(),
                    client_secret: SecretString::from(CLIENT_SECRET.to_owned()),
                    scopes: vec!["openid".to_owned(), "email".to_owned()],
                    label: Some("Sign in with Example IdP".to_owned()),
                }),
                ..ConsoleSettings::default()
            }),
            ..Options::default()
        },
    )
    .await;
    (app, idp)
}

/// Start → the provider → back to the callback (the console's public URL is a name; the test
/// sends the browser to the real address).
async fn sso(browser: &Browser, app: &TestApp) -> Response {
    let response = browser.get("/auth/oidc/start").await;
    assert_eq!(response.status(), 303);
    let pending = set_cookie(&response, "drawbridge_oidc").expect("the pending-login cookie");
    assert!(
        pending.contains("HttpOnly") && pending.contains("SameSite=Lax"),
        "{pending}"
    );
    let authorize = location(&response);
    let response = browser.client.get(&authorize).send().await.unwrap();
    assert_eq!(response.status(), 302, "the fake provider signs in");
    let back = location(&response).replace(CONSOLE_URL, &app.address);
    assert!(back.contains("/auth/oidc/callback?"));
    browser.client.get(back).send().await.unwrap()
}

async fn single_sign_on(backend: Backend) {
    let (app, idp) = with_idp(backend).await;
    let email = "sso.sofia@example.com";
    let id = add_user(&app, email, Role::Agent, None).await;
    let browser = Browser::of(&app);
    let html = browser.get("/login").await.text().await.unwrap();
    assert!(
        html.contains("href=\"/auth/oidc/start\"") && html.contains("Sign in with Example IdP")
    );

    idp.sign_in_as("subject-sofia", email, true);
    let response = sso(&browser, &app).await;
    assert_eq!(response.status(), 200);
    assert!(set_cookie(&response, "drawbridge_session").is_some());
    let html = response.text().await.unwrap();
    assert!(
        html.contains("http-equiv=\"refresh\"") && html.contains("0;url=/console"),
        "{html}"
    );
    let page = browser.get("/account/password").await;
    assert_eq!(page.status(), 200);
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("managed by your identity provider"));
    let method: String = sqlx::query("SELECT method FROM user_session")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(method, "oidc");
    browser.sign_out().await;

    // Linked by subject: a changed address at the provider still signs in the same user.
    idp.sign_in_as("subject-sofia", "sofia.renamed@example.com", false);
    let response = sso(&browser, &app).await;
    assert_eq!(response.status(), 200);
    assert_eq!(browser.get("/account/password").await.status(), 200);
    browser.sign_out().await;

    // An admin requires a second factor: single sign-on must enrol too.
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    users::set_totp_required(&mut conn, &id, true, &drawbridge::store::now())
        .await
        .unwrap();
    drop(conn);
    let response = sso(&browser, &app).await;
    assert_eq!(response.status(), 200);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("0;url=/account/two-factor"));
    assert_eq!(
        location(&browser.get("/account/password").await),
        "/account/two-factor"
    );

    let events = audit_events(&app.state).await;
    assert!(events
        .iter()
        .any(|(a, _, i, d)| a == "auth.sign_in" && *i == id && d.contains("\"method\":\"oidc\"")));
    assert!(has_event(&events, "user.sso_link", ""));
    assert_no_addresses(&app, &[email, "sofia.renamed@example.com"]).await;
}

async fn single_sign_on_refusals(backend: Backend) {
    let (app, idp) = with_idp(backend).await;
    let email = "uma.unverified@example.com";
    add_user(&app, email, Role::Agent, Some(PASSWORD)).await;
    let browser = Browser::of(&app);

    // An address the provider has not verified links nothing.
    idp.sign_in_as("subject-uma", email, false);
    let response = sso(&browser, &app).await;
    assert_eq!(response.status(), 403);
    assert!(set_cookie(&response, "drawbridge_session").is_none());
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("no Drawbridge account for this identity; ask an admin"));

    // Nobody with that address: no account is made.
    let users_before = app.count("app_user").await;
    idp.sign_in_as("subject-stranger", "stranger@example.com", true);
    let response = sso(&browser, &app).await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        app.count("app_user").await,
        users_before,
        "no auto-provisioning"
    );
    assert_eq!(session_count(&app).await, 0);

    // A callback without the pending-login cookie (another browser) is refused.
    let response = Browser::of(&app)
        .get("/auth/oidc/callback?code=abc&state=def")
        .await;
    assert_eq!(response.status(), 400);

    // A token the provider got wrong is refused.
    idp.sign_in_as("subject-uma", email, true);
    idp.set_fault(Some(idp::IdpFault::WrongNonce));
    let response = sso(&browser, &app).await;
    assert_eq!(response.status(), 401);
    idp.set_fault(None);
    assert_eq!(session_count(&app).await, 0);
    // And with everything right, it works (and links).
    let response = sso(&browser, &app).await;
    assert_eq!(response.status(), 200);
    assert_eq!(session_count(&app).await, 1);

    let events = audit_events(&app.state).await;
    assert!(has_event(
        &events,
        "auth.sign_in_failed",
        "\"reason\":\"unverified_email\""
    ));
    assert!(has_event(
        &events,
        "auth.sign_in_failed",
        "\"reason\":\"unknown_account\""
    ));
    assert!(has_event(
        &events,
        "auth.sign_in_failed",
        "\"reason\":\"sso_error\""
    ));
    assert_no_addresses(&app, &[email, "stranger@example.com"]).await;
}

async fn users_command(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // The command's settings: the same data directory, database and master key as the service.
    let settings = helpers::settings_with(
        &app.data_dir,
        &app.database_url,
        None,
        [42; 32],
        &Options::default(),
    );
    let chosen = SecretString::from(PASSWORD.to_owned());
    let (id, generated) = drawbridge::cli::users_add(
        &settings,
        "Carl.Cli@example.com",
        "supervisor",
        Some(chosen),
    )
    .await
    .unwrap();
    assert!(generated.is_none(), "a chosen password is not printed");
    let (_, generated) =
        drawbridge::cli::users_add(&settings, "gina.generated@example.com", "admin", None)
            .await
            .unwrap();
    let generated = generated
        .expect("a generated password")
        .expose_secret()
        .to_owned();
    assert!(
        drawbridge::cli::users_add(&settings, "carl.cli@example.com", "agent", None)
            .await
            .is_err(),
        "duplicate"
    );
    assert!(
        drawbridge::cli::users_add(&settings, "x@example.com", "root", None)
            .await
            .is_err(),
        "unknown role"
    );
    assert!(
        drawbridge::cli::users_add(
            &settings,
            "x@example.com",
            "agent",
            Some(SecretString::from("short".to_owned()))
        )
        .await
        .is_err(),
        "the password policy applies"
    );
    let list = drawbridge::cli::users_list(&settings).await.unwrap();
    assert!(list
        .iter()
        .any(|u| u.id == id && u.email == "carl.cli@example.com" && u.role == "supervisor"));
    assert!(list
        .iter()
        .any(|u| u.email == "gina.generated@example.com" && u.role == "admin"));

    let browser = Browser::of(&app);
    browser
        .signed_in("carl.cli@example.com", PASSWORD, "/console")
        .await;
    let other = Browser::of(&app);
    other
        .signed_in(
            "gina.generated@example.com",
            &generated,
            "/account/password",
        )
        .await;
    let events = audit_events(&app.state).await;
    assert!(events
        .iter()
        .any(|(a, k, _, d)| a == "user.create" && k == "cli" && d.contains("supervisor")));
    assert_no_addresses(
        &app,
        &["carl.cli@example.com", "gina.generated@example.com"],
    )
    .await;
}
