//! Raising the drawbridge: moving a conversation off SMS to an authenticated secure page.
//!
//! - [`links`] mints a secure link, texts it to the customer — automatically when the redaction
//!   engine decides an inbound message should escalate, or when an agent asks — and revokes it.
//! - [`codes`] texts a six-digit one-time code to the conversation's number and checks it.
//! - [`sessions`] are the customer's sessions on the secure page, opened by a verified code.
//! - [`chat`] is the secure channel itself: the thread as the customer sees it, the customer's
//!   messages (sealed, not redacted, findings recorded) and agents' replies, and the "you have a
//!   new secure message" text for a customer who is not on the page.
//! - [`knowledge`] is the optional knowledge check: the business's own system must confirm an
//!   answer the customer gives before a session opens.
//!
//! The pages behind `/s/{token}` are `crate::web::secure`.
//!
//! # Messages the customer is sent, and the gate they pass
//!
//! | message | when | consent | quiet hours |
//! |---|---|---|---|
//! | the link | an escalating inbound message (once per cool-down), or an agent | not to an opted-out contact | an automatic link answers the customer's own message and is never held; an agent's link follows the reply rules |
//! | a one-time code | the customer asks for one on the page | not to an opted-out contact (the page says so) | never held: the customer is waiting for it |
//! | "you have a new secure message" | an agent writes in the secure channel and the customer is not on the page; at most one per `notify_interval` | not to an opted-out contact | held, as any message the business starts |
//!
//! They are queued with [`crate::compliance::outbound::queue`], in the transaction of what caused
//! them. The conversation's record shows these messages with their secret part masked (the link's
//! token, the code): staff never see a working link or code. The text actually sent is kept
//! only in the outbox row's sealed extras.

pub mod chat;
pub mod codes;
pub mod knowledge;
pub mod links;
pub mod sessions;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::time::Duration;

/// Secure-link settings (`[escalation]`).
#[derive(Debug, Clone)]
pub struct EscalationSettings {
    /// How long a link works (`link_lifetime_hours`, default 24).
    pub link_lifetime: Duration,
    /// After a link is sent, escalating messages send no other for this long
    /// (`cooldown_minutes`, default 30). See [`links::escalate`].
    pub cooldown: Duration,
    /// The link message; `{link}` becomes the link (`link_template`).
    pub link_template: String,
    /// The one-time code message; `{code}` becomes the code, `{business}` the business's name
    /// (`code_template`).
    pub code_template: String,
    /// The new-message notification; `{link}` becomes a link (`notification_template`).
    pub notification_template: String,
    /// How long a code works (`code_lifetime_minutes`, default 10).
    pub code_lifetime: Duration,
    /// Wrong entries a code allows before it stops working (`code_attempts`, default 5).
    pub code_attempts: u32,
    /// Codes a link may have texted per hour (`codes_per_hour`, default 3).
    pub codes_per_hour: u32,
    /// Wrong entries over all of a link's codes after which the link itself locks
    /// (`link_failed_codes`, default 10).
    pub link_failed_codes: u32,
    /// A customer session unused this long ends (`session_idle_minutes`, default 30).
    pub session_idle: Duration,
    /// At most one new-message notification per this long (`notify_interval_minutes`,
    /// default 15).
    pub notify_interval: Duration,
    /// The optional knowledge check (`[escalation.knowledge_check]`).
    pub knowledge: Option<knowledge::KnowledgeCheck>,
}

/// The default link message.
pub const LINK_TEMPLATE: &str =
    "For your security we can't take card details by text. Continue here: {link}";
/// The default code message.
pub const CODE_TEMPLATE: &str =
    "{code} is your {business} verification code. It expires in 10 minutes. Never share it.";
/// The default notification.
pub const NOTIFICATION_TEMPLATE: &str = "You have a new secure message: {link}";

impl Default for EscalationSettings {
    fn default() -> Self {
        Self {
            link_lifetime: Duration::from_secs(24 * 3600),
            cooldown: Duration::from_secs(30 * 60),
            link_template: LINK_TEMPLATE.to_owned(),
            code_template: CODE_TEMPLATE.to_owned(),
            notification_template: NOTIFICATION_TEMPLATE.to_owned(),
            code_lifetime: Duration::from_secs(10 * 60),
            code_attempts: 5,
            codes_per_hour: 3,
            link_failed_codes: 10,
            session_idle: Duration::from_secs(30 * 60),
            notify_interval: Duration::from_secs(15 * 60),
            knowledge: None,
        }
    }
}

impl EscalationSettings {
    /// Checks the templates' placeholders and lengths.
    ///
    /// # Errors
    /// A message naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        for (key, template, placeholder) in [
            ("link_template", &self.link_template, "{link}"),
            ("code_template", &self.code_template, "{code}"),
            (
                "notification_template",
                &self.notification_template,
                "{link}",
            ),
        ] {
            if template.matches(placeholder).count() != 1 {
                return Err(format!(
                    "escalation.{key}: must hold {placeholder} exactly once"
                ));
            }
            if template.chars().count() > 300 {
                return Err(format!("escalation.{key}: at most 300 characters"));
            }
        }
        if self.code_attempts == 0 || self.codes_per_hour == 0 || self.link_failed_codes == 0 {
            return Err(
                "escalation: code_attempts, codes_per_hour and link_failed_codes must be at least 1"
                    .to_owned(),
            );
        }
        if self.link_failed_codes < self.code_attempts {
            return Err(
                "escalation.link_failed_codes: at least code_attempts, or one code would lock the link"
                    .to_owned(),
            );
        }
        Ok(())
    }
}

/// Checks the configured templates with the outbound DLP, as the messages will be sent (a
/// template that would leak, say, a card number refuses to start the service).
///
/// # Errors
/// A message naming the template and the types found.
pub fn check_templates(
    settings: &EscalationSettings,
    engine: &crate::redact::Engine,
) -> anyhow::Result<()> {
    settings.validate().map_err(|e| anyhow::anyhow!(e))?;
    let link = "https://drawbridge.example/s/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCd";
    for (key, text) in [
        (
            "link_template",
            settings.link_template.replace("{link}", link),
        ),
        (
            "code_template",
            settings
                .code_template
                .replace("{code}", "482913")
                .replace("{business}", "Example"),
        ),
        (
            "notification_template",
            settings.notification_template.replace("{link}", link),
        ),
    ] {
        if let Err(refusal) = crate::compliance::dlp::check(engine, &text) {
            let types: Vec<&str> = refusal.types.into_iter().collect();
            anyhow::bail!(
                "escalation.{key}: the outbound DLP refuses it ({})",
                types.join(", ")
            );
        }
    }
    Ok(())
}

/// The secure page's running state: its settings and the per-link code limiter.
#[derive(Debug)]
pub struct Escalation {
    pub settings: EscalationSettings,
    /// Codes texted per link per hour (kept per instance, like the other limits).
    codes: DefaultKeyedRateLimiter<String>,
}

impl Escalation {
    #[must_use]
    pub fn new(settings: EscalationSettings) -> Self {
        let per_hour = NonZeroU32::new(settings.codes_per_hour).unwrap_or(NonZeroU32::MIN);
        Self {
            codes: RateLimiter::keyed(Quota::per_hour(per_hour).allow_burst(per_hour)),
            settings,
        }
    }

    /// Spends one of the link's codes for the hour; `Err` with the wait when none is left.
    fn spend_code(&self, secure_link_id: &str) -> Result<(), Duration> {
        use governor::clock::{Clock as _, DefaultClock};
        self.codes
            .check_key(&secure_link_id.to_owned())
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Forgets links whose code budget has fully recovered.
    pub fn prune(&self) {
        self.codes.retain_recent();
        self.codes.shrink_to_fit();
    }
}
