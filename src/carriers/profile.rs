//! Carrier profiles: `carriers/<name>.toml`, one per carrier, compiled into the binary.
//!
//! A profile holds what is a fact about the carrier rather than code: its API base, how it signs
//! webhooks (documentation, shown by `webhook verify`), which HTTP methods its webhooks may use,
//! how a send whose outcome is unknown is resolved, default throughput per kind of sender, its
//! status vocabulary mapped to ours, and its error codes mapped to our error classes.
//!
//! ```toml
//! name = "twilio"
//! title = "Twilio Programmable Messaging"
//! api_base = "https://api.twilio.com"
//! signature = "X-Twilio-Signature: base64 HMAC-SHA1(auth token, URL + sorted parameters)"
//! webhook_methods = ["POST", "GET"]
//! channels = ["sms", "mms", "rcs"]
//! resend = "lookup"             # idempotent | lookup | none
//! lookup_match = "text"         # reference | text | unrecorded (how a lookup finds ours)
//!
//! [throughput]                  # messages per second per sender
//! long_code = 1.0
//! toll_free = 3.0
//! short_code = 30.0
//! rcs_agent = 10.0
//!
//! [status]                      # carrier word (any case) = ours
//! sending = "queued"
//!
//! [errors]                      # carrier error code = our class
//! "21610" = "opted_out"
//! ```
//!
//! Every profile is checked when the service starts ([`check_all`]) and by a unit test: a status
//! that maps to a word outside our vocabulary, an unknown error class or a missing profile refuses
//! to start. Lookups never panic: a carrier whose profile failed to load (which start-up refuses)
//! would get an empty one.

use super::{Carrier, ErrorClass};
use crate::pipeline::Channel;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// Our delivery statuses, in the order a message moves through them.
pub const STATUSES: &[&str] = &[
    "queued",
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "read",
];

/// How a send whose outcome is unknown (a timeout, a crash mid-call) is resolved before the
/// message may go out again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resend {
    /// The carrier deduplicates on a key we send (Telnyx `Idempotency-Key`, RBM `messageId`):
    /// sending again with the same key is safe.
    Idempotent,
    /// The carrier's API can list what was sent: look for the message before sending again.
    Lookup,
    /// Neither: the message is not sent again and is marked unconfirmed for a person to check.
    None,
}

/// How a lookup recognises our message among those the carrier lists (`resend = "lookup"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LookupMatch {
    /// Only by our outbox id, which every send carries (as a client reference): a listed message
    /// without ours is not ours (Telnyx, Vonage, Sinch).
    Reference,
    /// By our reference, else by our exact, non-empty text among messages we have not recorded
    /// (Twilio lists the text).
    Text,
    /// The listing carries neither: a message we have not recorded, from our sender to the
    /// recipient since the attempt began, is taken as ours (Bandwidth, Plivo). A message the
    /// carrier itself sent in that window (an automatic STOP reply) could be mistaken for it.
    Unrecorded,
}

/// Default messages per second for each kind of sender.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Throughput {
    pub long_code: f64,
    pub toll_free: f64,
    pub short_code: f64,
    pub rcs_agent: f64,
}

fn default_lookup_match() -> LookupMatch {
    LookupMatch::Reference
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    name: String,
    title: String,
    api_base: String,
    signature: String,
    webhook_methods: Vec<String>,
    channels: Vec<String>,
    resend: Resend,
    #[serde(default = "default_lookup_match")]
    lookup_match: LookupMatch,
    throughput: Throughput,
    #[serde(default)]
    status: BTreeMap<String, String>,
    #[serde(default)]
    errors: BTreeMap<String, String>,
}

/// A carrier's profile, validated.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub title: String,
    /// The production API base; accounts may override it (tests point it at the carrier fake).
    pub api_base: url::Url,
    /// How the carrier authenticates its webhooks, in words.
    pub signature: String,
    /// `POST`, and `GET` where the carrier can be configured to use it.
    pub webhook_methods: Vec<super::Method>,
    pub channels: Vec<Channel>,
    pub resend: Resend,
    pub lookup_match: LookupMatch,
    pub throughput: Throughput,
    /// Lower-cased carrier word → ours (one of [`STATUSES`]).
    status: BTreeMap<String, &'static str>,
    errors: BTreeMap<String, ErrorClass>,
}

impl Profile {
    fn parse(carrier: Carrier, text: &str) -> Result<Self, String> {
        let raw: RawProfile = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        if raw.name != carrier.name() {
            return Err(format!(
                "`name` is `{}`, not `{}`",
                raw.name,
                carrier.name()
            ));
        }
        let api_base = url::Url::parse(&raw.api_base).map_err(|e| format!("`api_base`: {e}"))?;
        let webhook_methods = raw
            .webhook_methods
            .iter()
            .map(|m| super::Method::parse(m).ok_or_else(|| format!("webhook method `{m}`")))
            .collect::<Result<Vec<_>, _>>()?;
        let channels = raw
            .channels
            .iter()
            .map(|c| Channel::parse(c).ok_or_else(|| format!("channel `{c}`")))
            .collect::<Result<Vec<_>, _>>()?;
        let status = raw
            .status
            .iter()
            .map(|(word, ours)| {
                STATUSES
                    .iter()
                    .find(|s| **s == ours.as_str())
                    .map(|s| (word.to_ascii_lowercase(), *s))
                    .ok_or_else(|| {
                        format!(
                            "[status] `{word}` maps to `{ours}`, which is not one of ours ({})",
                            STATUSES.join(", ")
                        )
                    })
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        let errors = raw
            .errors
            .iter()
            .map(|(code, class)| {
                ErrorClass::parse(class)
                    .map(|c| (code.clone(), c))
                    .ok_or_else(|| format!("[errors] `{code}`: unknown class `{class}`"))
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        for rate in [
            raw.throughput.long_code,
            raw.throughput.toll_free,
            raw.throughput.short_code,
            raw.throughput.rcs_agent,
        ] {
            if !(rate.is_finite() && rate > 0.0) {
                return Err("[throughput]: every rate must be a positive number".to_owned());
            }
        }
        Ok(Self {
            name: raw.name,
            title: raw.title,
            api_base,
            signature: raw.signature,
            webhook_methods,
            channels,
            resend: raw.resend,
            lookup_match: raw.lookup_match,
            throughput: raw.throughput,
            status,
            errors,
        })
    }

    /// A profile that maps nothing (only for a carrier whose profile failed to load, which
    /// start-up refuses).
    fn empty(carrier: Carrier) -> Self {
        Self {
            name: carrier.name().to_owned(),
            title: carrier.name().to_owned(),
            api_base: url::Url::parse("https://invalid.invalid/")
                .unwrap_or_else(|_| unreachable!("a constant URL parses")),
            signature: String::new(),
            webhook_methods: vec![super::Method::Post],
            channels: vec![Channel::Sms],
            resend: Resend::None,
            lookup_match: LookupMatch::Reference,
            throughput: Throughput {
                long_code: 1.0,
                toll_free: 1.0,
                short_code: 1.0,
                rcs_agent: 1.0,
            },
            status: BTreeMap::new(),
            errors: BTreeMap::new(),
        }
    }

    /// Our status for a carrier's word (compared case-insensitively), or `None` when the word has
    /// no place in our vocabulary (it is then kept as `unknown` and not applied).
    #[must_use]
    pub fn map_status(&self, word: &str) -> Option<&'static str> {
        self.status.get(&word.to_ascii_lowercase()).copied()
    }

    /// Every carrier word the profile maps (tests).
    pub fn status_words(&self) -> impl Iterator<Item = (&str, &'static str)> {
        self.status.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// The class of a failed send: the carrier's error code when the profile names it, else the
    /// HTTP status (429 throttled; 408 and 5xx transient; anything else permanent).
    #[must_use]
    pub fn classify(&self, http_status: Option<u16>, code: Option<&str>) -> ErrorClass {
        if let Some(class) = code.and_then(|c| self.errors.get(c)) {
            return *class;
        }
        match http_status {
            Some(429) => ErrorClass::Throttled,
            Some(408 | 500..=599) | None => ErrorClass::Transient,
            Some(_) => ErrorClass::Permanent,
        }
    }

    /// The class the profile gives an error code, if it names it.
    #[must_use]
    pub fn error_class(&self, code: &str) -> Option<ErrorClass> {
        self.errors.get(code).copied()
    }

    /// Whether this carrier's webhooks may arrive with `method`.
    #[must_use]
    pub fn accepts_method(&self, method: super::Method) -> bool {
        self.webhook_methods.contains(&method)
    }
}

fn source(carrier: Carrier) -> &'static str {
    match carrier {
        Carrier::Twilio => include_str!("../../carriers/twilio.toml"),
        Carrier::Telnyx => include_str!("../../carriers/telnyx.toml"),
        Carrier::Vonage => include_str!("../../carriers/vonage.toml"),
        Carrier::Bandwidth => include_str!("../../carriers/bandwidth.toml"),
        Carrier::Plivo => include_str!("../../carriers/plivo.toml"),
        Carrier::Sinch => include_str!("../../carriers/sinch.toml"),
        Carrier::Rbm => include_str!("../../carriers/rbm.toml"),
    }
}

struct Profiles {
    loaded: Vec<(Carrier, Profile)>,
    errors: Vec<String>,
}

static PROFILES: LazyLock<Profiles> = LazyLock::new(|| {
    let mut loaded = Vec::new();
    let mut errors = Vec::new();
    for carrier in Carrier::ALL {
        match Profile::parse(carrier, source(carrier)) {
            Ok(profile) => loaded.push((carrier, profile)),
            Err(e) => {
                errors.push(format!("carriers/{}.toml: {e}", carrier.name()));
                loaded.push((carrier, Profile::empty(carrier)));
            }
        }
    }
    Profiles { loaded, errors }
});

/// The profile of `carrier`.
#[must_use]
pub fn get(carrier: Carrier) -> &'static Profile {
    static EMPTY: LazyLock<Profile> = LazyLock::new(|| Profile::empty(Carrier::Twilio));
    PROFILES
        .loaded
        .iter()
        .find(|(c, _)| *c == carrier)
        .map_or(&EMPTY, |(_, p)| p)
}

/// Checks that every built-in profile loaded.
///
/// # Errors
/// One line per broken profile.
pub fn check_all() -> anyhow::Result<()> {
    if PROFILES.errors.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "carrier profiles refused:\n  {}",
            PROFILES.errors.join("\n  ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_loads() {
        check_all().unwrap_or_else(|e| panic!("{e:#}"));
        for carrier in Carrier::ALL {
            let profile = get(carrier);
            assert_eq!(profile.name, carrier.name());
            assert!(profile.accepts_method(super::super::Method::Post));
            assert!(
                profile.status_words().count() >= 3,
                "{}: too few statuses mapped",
                carrier.name()
            );
        }
    }

    #[test]
    fn bad_profiles_are_refused_with_a_reason() {
        let good = source(Carrier::Twilio);
        let wrong_status = good.replacen("= \"delivered\"", "= \"arrived\"", 1);
        assert!(Profile::parse(Carrier::Twilio, &wrong_status)
            .err()
            .is_some_and(|e| e.contains("arrived")));
        assert!(Profile::parse(Carrier::Telnyx, good)
            .err()
            .is_some_and(|e| e.contains("not `telnyx`")));
    }

    #[test]
    fn classification_falls_back_to_the_http_status() {
        let twilio = get(Carrier::Twilio);
        assert_eq!(
            twilio.classify(Some(400), Some("21610")),
            ErrorClass::OptedOut
        );
        assert_eq!(twilio.classify(Some(429), None), ErrorClass::Throttled);
        assert_eq!(
            twilio.classify(Some(503), Some("nope")),
            ErrorClass::Transient
        );
        assert_eq!(twilio.classify(Some(401), None), ErrorClass::Permanent);
        assert_eq!(twilio.map_status("DELIVERED"), Some("delivered"));
        assert_eq!(twilio.map_status("received"), None);
    }
}
