//! Rate limits: keyed `governor` limiters held in the application state (not statics, so each
//! test and each instance has its own) and pruned periodically so their memory stays bounded.
//!
//! | limit | key | default | over the limit |
//! |---|---|---|---|
//! | refused webhook requests | source IP | 120 a minute | every webhook request from the address gets 429 with `Retry-After` until the budget recovers |
//! | API calls | API token | 600 a minute | 429 with `Retry-After` |
//! | inbound flood | contact | 30 messages a minute | stored, but no automatic replies but one opt-out confirmation; counted; the conversation is flagged |
//! | HELP replies | contact and business number | one per 5 minutes | the help text is not sent again |
//! | automatic replies while flooding | contact and business number | one per 5 minutes | the opt-out confirmation of a flooding contact waits for the budget |
//!
//! The per-sender outbound limit is the outbox's (one limiter per sender, see
//! [`crate::outbox::worker`]).
//!
//! Limits are kept per instance. Behind a load balancer with N instances a client spread over
//! them gets up to N times the limit; the webhook and API limits are guards against floods, not
//! quotas, so that is acceptable, and the contact flood limit counts what each instance sees.
//!
//! **The webhook limit counts refusals, not requests.** Twilio does not retry an inbound webhook
//! that is answered with an error, so a limit on a carrier's genuine, signed traffic would lose
//! messages — a STOP among them. Only requests that are refused (a bad signature, a malformed
//! body, an unknown number …) spend an address's budget; once it is spent, every webhook request
//! from the address is answered 429 with `Retry-After` without being read, until the budget
//! recovers. A scanner or a forger is throttled; a carrier with a wrong secret gets 429 instead
//! of 403 and retries later. Behind a reverse proxy every request comes from the proxy, so set
//! `client_ip_header` to the header the proxy writes (its last address is taken: the one the
//! proxy itself saw).

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Limit settings (`[limits]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSettings {
    pub webhook_refusals_per_ip_per_minute: u32,
    pub api_per_token_per_minute: u32,
    /// Inbound messages a minute from one contact above which it is flooding.
    pub flood_per_minute: u32,
    /// At most one HELP reply to a contact on a number per this long.
    pub help_reply_interval: Duration,
    /// A header whose last address is the client's (set behind a reverse proxy).
    pub client_ip_header: Option<String>,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            webhook_refusals_per_ip_per_minute: 120,
            api_per_token_per_minute: 600,
            flood_per_minute: 30,
            help_reply_interval: Duration::from_secs(300),
            client_ip_header: None,
        }
    }
}

/// The limiters.
#[derive(Debug)]
pub struct Limits {
    settings: LimitSettings,
    /// Refused webhook requests per address.
    webhook: DefaultKeyedRateLimiter<IpAddr>,
    /// Addresses whose refusal budget is spent, and until when.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    api: DefaultKeyedRateLimiter<String>,
    flood: DefaultKeyedRateLimiter<String>,
    help: DefaultKeyedRateLimiter<String>,
    automatic: DefaultKeyedRateLimiter<String>,
}

/// How long after a flooding contact's last automatic reply the next may go.
pub const FLOOD_REPLY_INTERVAL: Duration = Duration::from_secs(300);

/// A refusal: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds for a `Retry-After` header, at least 1.
    #[must_use]
    pub fn seconds(self) -> u64 {
        self.0.as_secs().max(1) + u64::from(self.0.subsec_nanos() > 0)
    }
}

fn per_minute(n: u32) -> Quota {
    let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(n).allow_burst(n)
}

impl Limits {
    #[must_use]
    pub fn new(settings: LimitSettings) -> Self {
        let help_period = settings.help_reply_interval.max(Duration::from_millis(1));
        let help = Quota::with_period(help_period)
            .unwrap_or_else(|| Quota::per_minute(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::MIN);
        let automatic = Quota::with_period(FLOOD_REPLY_INTERVAL)
            .unwrap_or_else(|| Quota::per_minute(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::MIN);
        Self {
            webhook: RateLimiter::keyed(per_minute(settings.webhook_refusals_per_ip_per_minute)),
            blocked: Mutex::new(HashMap::new()),
            api: RateLimiter::keyed(per_minute(settings.api_per_token_per_minute)),
            flood: RateLimiter::keyed(per_minute(settings.flood_per_minute)),
            help: RateLimiter::keyed(help),
            automatic: RateLimiter::keyed(automatic),
            settings,
        }
    }

    fn check<K: std::hash::Hash + Eq + Clone>(
        limiter: &DefaultKeyedRateLimiter<K>,
        key: &K,
    ) -> Result<(), RetryAfter> {
        limiter.check_key(key).map_err(|not_until| {
            RetryAfter(not_until.wait_time_from(DefaultClock::default().now()))
        })
    }

    /// Whether webhook requests from `ip` are refused for now (its refusal budget is spent).
    ///
    /// # Errors
    /// [`RetryAfter`] while the address is blocked.
    pub fn webhook(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        let mut blocked = self
            .blocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match blocked.get(&ip) {
            Some(until) => {
                let now = Instant::now();
                if *until > now {
                    Err(RetryAfter(*until - now))
                } else {
                    blocked.remove(&ip);
                    Ok(())
                }
            }
            None => Ok(()),
        }
    }

    /// Counts a refused webhook request from `ip`; the one that spends its budget blocks it.
    pub fn webhook_refused(&self, ip: IpAddr) {
        if let Err(retry) = Self::check(&self.webhook, &ip) {
            self.blocked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(ip, Instant::now() + retry.0);
        }
    }

    /// An API call with the token `token_id`.
    ///
    /// # Errors
    /// [`RetryAfter`] when the token is over its limit.
    pub fn api(&self, token_id: &str) -> Result<(), RetryAfter> {
        Self::check(&self.api, &token_id.to_owned())
    }

    /// Counts an inbound message from a contact; `true` when the contact is flooding (over
    /// `flood_per_minute` in the last minute).
    #[must_use]
    pub fn flooding(&self, contact_id: &str) -> bool {
        Self::check(&self.flood, &contact_id.to_owned()).is_err()
    }

    /// Whether a HELP reply to this contact on this number may go now (and counts it if so).
    #[must_use]
    pub fn help_reply(&self, contact_id: &str, business_number: &str) -> bool {
        Self::check(&self.help, &format!("{contact_id}\u{0}{business_number}")).is_ok()
    }

    /// Whether an automatic reply to a flooding contact on this number may go now: at most one
    /// per [`FLOOD_REPLY_INTERVAL`], counting the replies sent before the flood began (see
    /// [`Self::automatic_reply_sent`]).
    #[must_use]
    pub fn flood_reply(&self, contact_id: &str, business_number: &str) -> bool {
        Self::check(
            &self.automatic,
            &format!("{contact_id}\u{0}{business_number}"),
        )
        .is_ok()
    }

    /// Notes an automatic reply to a contact who is not flooding, so that a flood starting now
    /// does not get another at once.
    pub fn automatic_reply_sent(&self, contact_id: &str, business_number: &str) {
        let _spent = self.flood_reply(contact_id, business_number);
    }

    /// Forgets keys whose limits have fully recovered, so the maps hold only active keys.
    pub fn prune(&self) {
        let now = Instant::now();
        self.blocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, until| *until > now);
        self.automatic.retain_recent();
        self.automatic.shrink_to_fit();
        self.webhook.retain_recent();
        self.api.retain_recent();
        self.flood.retain_recent();
        self.help.retain_recent();
        self.webhook.shrink_to_fit();
        self.api.shrink_to_fit();
        self.flood.shrink_to_fit();
        self.help.shrink_to_fit();
    }

    /// How many keys the limiters hold (tests, metrics).
    #[must_use]
    pub fn keys(&self) -> usize {
        self.webhook.len()
            + self.api.len()
            + self.flood.len()
            + self.help.len()
            + self.automatic.len()
    }

    /// The client address of a request: the last address in `client_ip_header` when configured
    /// and present, else the peer address.
    #[must_use]
    pub fn client_ip(
        &self,
        peer: Option<IpAddr>,
        header: impl Fn(&str) -> Option<String>,
    ) -> Option<IpAddr> {
        if let Some(name) = &self.settings.client_ip_header {
            if let Some(value) = header(name) {
                if let Some(ip) = value
                    .rsplit(',')
                    .next()
                    .and_then(|last| last.trim().parse::<IpAddr>().ok())
                {
                    return Some(ip);
                }
            }
        }
        peer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contact_floods_past_its_limit() {
        let limits = Limits::new(LimitSettings {
            flood_per_minute: 30,
            ..LimitSettings::default()
        });
        let flooding: Vec<bool> = (0..32).map(|_| limits.flooding("c1")).collect();
        assert!(
            flooding.iter().take(30).all(|f| !f),
            "30 a minute are allowed"
        );
        assert!(flooding[30] && flooding[31], "the 31st is a flood");
        assert!(!limits.flooding("c2"), "per contact");
    }

    #[test]
    fn help_replies_are_spaced() {
        let limits = Limits::new(LimitSettings::default());
        assert!(limits.help_reply("c1", "+15550001111"));
        assert!(!limits.help_reply("c1", "+15550001111"));
        assert!(limits.help_reply("c1", "+15550002222"));
    }

    #[test]
    fn refused_webhooks_block_their_address_and_say_when_to_retry() {
        let limits = Limits::new(LimitSettings {
            webhook_refusals_per_ip_per_minute: 2,
            ..LimitSettings::default()
        });
        let ip: IpAddr = "203.0.113.7".parse().unwrap_or_else(|e| panic!("{e}"));
        let other: IpAddr = "203.0.113.8".parse().unwrap_or_else(|e| panic!("{e}"));
        // Accepted requests spend nothing.
        for _ in 0..100 {
            assert!(limits.webhook(ip).is_ok());
        }
        limits.webhook_refused(ip);
        limits.webhook_refused(ip);
        assert!(
            limits.webhook(ip).is_ok(),
            "two refusals are within the budget"
        );
        limits.webhook_refused(ip);
        let retry = limits
            .webhook(ip)
            .err()
            .unwrap_or_else(|| panic!("limited"));
        assert!(retry.seconds() >= 1 && retry.seconds() <= 30, "{retry:?}");
        assert!(limits.webhook(other).is_ok(), "per address");
        assert_eq!(limits.keys(), 1);
    }

    #[test]
    fn a_flooding_contact_gets_one_automatic_reply_per_interval() {
        let limits = Limits::new(LimitSettings::default());
        limits.automatic_reply_sent("c1", "+15550001111");
        assert!(
            !limits.flood_reply("c1", "+15550001111"),
            "one was just sent"
        );
        assert!(limits.flood_reply("c2", "+15550001111"));
        assert!(!limits.flood_reply("c2", "+15550001111"));
    }

    #[test]
    fn the_client_address_comes_from_the_proxy_header_when_configured() {
        let peer: IpAddr = "10.0.0.1".parse().unwrap_or_else(|e| panic!("{e}"));
        let plain = Limits::new(LimitSettings::default());
        assert_eq!(
            plain.client_ip(Some(peer), |_| Some("198.51.100.9".to_owned())),
            Some(peer)
        );
        let proxied = Limits::new(LimitSettings {
            client_ip_header: Some("x-forwarded-for".to_owned()),
            ..LimitSettings::default()
        });
        let header =
            |name: &str| (name == "x-forwarded-for").then(|| "1.2.3.4, 198.51.100.9".to_owned());
        assert_eq!(
            proxied.client_ip(Some(peer), header),
            "198.51.100.9".parse().ok()
        );
        assert_eq!(proxied.client_ip(Some(peer), |_| None), Some(peer));
    }
}
