//! The browser harness: one headless Chromium per test, driven over WebDriver (fantoccini) through
//! a `chromedriver` started for that test on a free port and stopped when the test ends.
//!
//! Without Chromium or chromedriver the tests print a notice once and pass without running, unless
//! `DRAWBRIDGE_REQUIRE_BROWSER=1` (CI) makes that a failure. A scenario that fails (an `Err` or a
//! panic) leaves a screenshot, the page's source and the browser's console log in
//! `target/browser-failures/<test>-<n>.{png,html,log}` before the test fails.
//!
//! Waits are explicit: every `wait_*` polls its condition every 100 ms for up to [`WAIT`].

use anyhow::{anyhow, bail, Context};
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use serde_json::{json, Value};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a wait polls before giving up.
pub const WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);

/// Where Chromium and chromedriver are.
#[derive(Debug, Clone)]
struct Binaries {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

/// `name` on `PATH`, if it is there.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

fn binaries() -> Option<Binaries> {
    let chromium = std::env::var_os("DRAWBRIDGE_CHROMIUM")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| Some(PathBuf::from("/usr/bin/chromium")).filter(|p| p.is_file()))
        .or_else(|| on_path("chromium"))
        .or_else(|| on_path("chromium-browser"))?;
    let chromedriver = std::env::var_os("DRAWBRIDGE_CHROMEDRIVER")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| on_path("chromedriver"))?;
    Some(Binaries {
        chromium,
        chromedriver,
    })
}

/// Whether a missing browser fails the test (CI) rather than skipping it.
fn browser_required() -> bool {
    std::env::var("DRAWBRIDGE_REQUIRE_BROWSER").is_ok_and(|v| v.trim() == "1")
}

/// A running chromedriver, in its own process group with the Chromium it starts; dropping it
/// ends them all (SIGTERM first, so Chromium exits cleanly, then SIGKILL) and reaps chromedriver.
#[derive(Debug)]
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let signal = |name: &str| {
            let _ = Command::new("kill")
                .args([name, "--", &group])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        signal("-KILL");
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A headless Chromium for one test.
#[derive(Debug)]
pub struct Browser {
    pub client: Client,
    test: &'static str,
    driver_url: String,
    started: Instant,
    // Dropped after the fields above: the session's connection first, then the processes, then
    // the profile directory.
    _driver: Driver,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a fresh headless Chromium for `test`. `None` (after a notice) when
    /// they are not installed and `DRAWBRIDGE_REQUIRE_BROWSER=1` is not set.
    pub async fn start(test: &'static str) -> Option<Self> {
        let Some(binaries) = binaries() else {
            assert!(
                !browser_required(),
                "DRAWBRIDGE_REQUIRE_BROWSER=1 but chromium/chromedriver was not found"
            );
            static NOTICE: OnceLock<()> = OnceLock::new();
            NOTICE.get_or_init(|| {
                eprintln!("notice: chromium/chromedriver not found; browser tests are skipped");
            });
            return None;
        };
        match Self::launch(test, &binaries).await {
            Ok(browser) => Some(browser),
            Err(e) => panic!("{test}: the browser did not start: {e:#}"),
        }
    }

    async fn launch(test: &'static str, binaries: &Binaries) -> anyhow::Result<Self> {
        let started = Instant::now();
        // The test build links rustls with both of its crypto back ends (fantoccini's brings
        // aws-lc-rs, reqwest's ring), so rustls cannot pick a default itself: name one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut command = Command::new(&binaries.chromedriver);
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let driver = Driver(
            command
                .spawn()
                .with_context(|| format!("starting {}", binaries.chromedriver.display()))?,
        );
        let profile = tempfile::tempdir()?;
        let driver_url = format!("http://127.0.0.1:{port}");

        let http = reqwest::Client::new();
        let deadline = Instant::now() + WAIT;
        loop {
            let ready = http
                .get(format!("{driver_url}/status"))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success());
            if ready.is_some() {
                break;
            }
            if Instant::now() >= deadline {
                bail!("chromedriver did not answer on port {port} within {WAIT:?}");
            }
            tokio::time::sleep(POLL).await;
        }

        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": binaries.chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        capabilities.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let client = ClientBuilder::rustls()?
            .capabilities(capabilities)
            .connect(&driver_url)
            .await
            .map_err(|e| anyhow!("WebDriver session: {e}"))?;
        let browser = Self {
            client,
            test,
            driver_url,
            started,
            _driver: driver,
            _profile: profile,
        };
        browser.note("browser started");
        Ok(browser)
    }

    /// Logs progress (`TEST_LOG`-independent: cargo shows it for failing tests only).
    pub fn note(&self, what: &str) {
        eprintln!(
            "[{} +{:.1}s] {what}",
            self.test,
            self.started.elapsed().as_secs_f64()
        );
    }

    /// Runs `scenario`; on an error or a panic saves the failure's screenshot, source and console
    /// log, then fails the test. Ends the browser session either way (chromedriver stops when the
    /// `Browser` is dropped).
    pub async fn run<F>(&self, scenario: F)
    where
        F: Future<Output = anyhow::Result<()>>,
    {
        let outcome = AssertUnwindSafe(scenario).catch_unwind().await;
        let failure = match &outcome {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("{e:#}")),
            Err(panic) => Some(
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "a panic".to_owned()),
            ),
        };
        let saved = match &failure {
            Some(_) => self.save_failure().await,
            None => String::new(),
        };
        self.note(match failure {
            None => "passed",
            Some(_) => "FAILED",
        });
        let _ = self.client.clone().close().await;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{e:#}\n{saved}"),
            Err(panic) => {
                eprintln!("{saved}");
                std::panic::resume_unwind(panic)
            }
        }
    }

    fn failure_dir() -> PathBuf {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
        target.join("browser-failures")
    }

    /// Saves `<test>-<n>.png`, `.html` and `.log`; returns a line naming them.
    async fn save_failure(&self) -> String {
        let dir = Self::failure_dir();
        if let Err(e) = std::fs::create_dir_all(&dir) {
            return format!("(no screenshot: {} could not be made: {e})", dir.display());
        }
        let n = (1..)
            .find(|n| !dir.join(format!("{}-{n}.png", self.test)).exists())
            .unwrap_or(1);
        let base = dir.join(format!("{}-{n}", self.test));
        let png = base.with_extension("png");
        let mut lines = Vec::new();
        match self.client.screenshot().await {
            Ok(bytes) => match std::fs::write(&png, bytes) {
                Ok(()) => lines.push(format!("screenshot: {}", png.display())),
                Err(e) => lines.push(format!("screenshot not written: {e}")),
            },
            Err(e) => lines.push(format!("no screenshot: {e}")),
        }
        let url = self
            .client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        if let Ok(source) = self.client.source().await {
            let html = base.with_extension("html");
            if std::fs::write(&html, format!("<!-- {url} -->\n{source}")).is_ok() {
                lines.push(format!("page source ({url}): {}", html.display()));
            }
        }
        let log = self.console_log().await;
        if !log.is_empty() {
            let path = base.with_extension("log");
            if std::fs::write(&path, &log).is_ok() {
                lines.push(format!("browser console: {}", path.display()));
            }
        }
        lines.join("\n")
    }

    /// The browser's console messages so far (chromedriver's log endpoint), one a line.
    pub async fn console_log(&self) -> String {
        let Ok(Some(session)) = self.client.session_id().await else {
            return String::new();
        };
        let response = reqwest::Client::new()
            .post(format!("{}/session/{session}/se/log", self.driver_url))
            .json(&json!({"type": "browser"}))
            .send()
            .await;
        let Ok(value) = (match response {
            Ok(r) => r.json::<Value>().await,
            Err(e) => Err(e),
        }) else {
            return String::new();
        };
        value["value"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {}",
                            e["level"].as_str().unwrap_or_default(),
                            e["message"].as_str().unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }

    /// Polls `check` until it answers `Some` (errors count as "not yet"), for up to [`WAIT`].
    pub async fn wait_for<T, F, Fut>(&self, what: &str, mut check: F) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<Option<T>>>,
    {
        let deadline = Instant::now() + WAIT;
        let mut last_error = None;
        loop {
            match check().await {
                Ok(Some(found)) => return Ok(found),
                Ok(None) => {}
                Err(e) => last_error = Some(e),
            }
            if Instant::now() >= deadline {
                let why = last_error.map(|e| format!(" (last error: {e:#})"));
                bail!(
                    "timed out after {WAIT:?} waiting for {what}{}",
                    why.unwrap_or_default()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls `check` until it answers `true` (errors count as "not yet"), for up to [`WAIT`].
    pub async fn wait_until<F, Fut>(&self, what: &str, mut check: F) -> anyhow::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<bool>>,
    {
        self.wait_for(what, || {
            let future = check();
            async move { Ok(future.await?.then_some(())) }
        })
        .await
    }

    /// Opens `path` on `base`.
    pub async fn open(&self, base: &str, path: &str) -> anyhow::Result<()> {
        self.client
            .goto(&format!("{base}{path}"))
            .await
            .with_context(|| format!("opening {path}"))
    }

    /// The current URL's path.
    pub async fn path(&self) -> anyhow::Result<String> {
        Ok(self.client.current_url().await?.path().to_owned())
    }

    /// Waits until the current URL's path satisfies `want`.
    pub async fn wait_path(&self, what: &str, want: impl Fn(&str) -> bool) -> anyhow::Result<()> {
        let result = self
            .wait_until(&format!("the page to be {what}"), || async {
                Ok(want(&self.path().await?))
            })
            .await;
        match result {
            Ok(()) => Ok(()),
            Err(e) => {
                let at = self.client.current_url().await.map(|u| u.to_string());
                Err(e.context(format!("the browser is at {}", at.unwrap_or_default())))
            }
        }
    }

    /// Waits for an element matching `css` to exist.
    pub async fn find(&self, css: &str) -> anyhow::Result<Element> {
        self.wait_for(&format!("an element matching `{css}`"), || async {
            Ok(self.client.find(Locator::Css(css)).await.ok())
        })
        .await
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) and returns its value.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        self.client
            .execute(script, args)
            .await
            .with_context(|| format!("running `{script}`"))
    }

    /// Runs `script` and expects a boolean.
    pub async fn js_bool(&self, script: &str, args: Vec<Value>) -> anyhow::Result<bool> {
        self.js(script, args)
            .await?
            .as_bool()
            .ok_or_else(|| anyhow!("`{script}` did not return a boolean"))
    }

    /// Marks the current document so [`Browser::not_reloaded`] can tell it is still the same one.
    pub async fn mark_document(&self) -> anyhow::Result<()> {
        self.js(
            "window.__drawbridgeTestMark = 'same-document'; return true;",
            vec![],
        )
        .await
        .map(drop)
    }

    /// Fails unless the document marked by [`Browser::mark_document`] is still loaded.
    pub async fn not_reloaded(&self, what: &str) -> anyhow::Result<()> {
        let same = self
            .js_bool(
                "return window.__drawbridgeTestMark === 'same-document';",
                vec![],
            )
            .await?;
        anyhow::ensure!(same, "the page was reloaded or navigated while {what}");
        Ok(())
    }

    /// Presses keys on whatever has the focus, as a keyboard would: `keys` holds characters and
    /// [`fantoccini::key::Key`] codes (`Key::Tab` converts to a `char`).
    pub async fn press(&self, keys: &str) -> anyhow::Result<()> {
        let mut actions = KeyActions::new("keyboard".to_owned());
        for value in keys.chars() {
            actions = actions
                .then(KeyAction::Down { value })
                .then(KeyAction::Up { value });
        }
        self.client
            .perform_actions(actions)
            .await
            .context("pressing keys")?;
        self.client
            .release_actions()
            .await
            .context("releasing keys")
    }

    /// Whether the focused element matches `css`.
    pub async fn focused_matches(&self, css: &str) -> anyhow::Result<bool> {
        self.js_bool(
            "const a = document.activeElement; return !!a && a !== document.body && a.matches(arguments[0]);",
            vec![json!(css)],
        )
        .await
    }

    /// A short description of the focused element (for messages).
    pub async fn focused(&self) -> String {
        self.js(
            "const a = document.activeElement; if (!a) return 'nothing'; \
             return a.outerHTML.slice(0, 160);",
            vec![],
        )
        .await
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
    }

    /// Presses Tab until the focus is on an element matching `css`, at most `max` times; returns
    /// how many presses it took.
    pub async fn tab_to(&self, css: &str, max: usize) -> anyhow::Result<usize> {
        let mut path = Vec::new();
        for presses in 1..=max {
            self.press(&fantoccini::key::Key::Tab.to_string()).await?;
            if self.focused_matches(css).await? {
                return Ok(presses);
            }
            path.push(self.focused().await);
        }
        bail!(
            "Tab did not reach `{css}` in {max} presses; the focus went through:\n  {}",
            path.join("\n  ")
        )
    }
}

/// Runs one named step of a scenario, labelling its error.
pub async fn step<T>(
    browser: &Browser,
    name: &str,
    future: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    browser.note(name);
    future.await.with_context(|| format!("step `{name}`"))
}
