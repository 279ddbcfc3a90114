//! Prometheus counters, served at `/metrics` in the OpenMetrics text format.
//!
//! Every label value comes from a closed set chosen in code (carrier names, finding types, reject
//! reasons, status words), never from request data, so no message content or number can reach a
//! label and label cardinality stays bounded.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    pub carrier: &'static str,
    /// `inbound` or `status`.
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    pub carrier: &'static str,
    pub kind: &'static str,
    /// `signature`, `malformed`, `unknown_number`, `too_large`, `unsupported_media_type`.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoredLabels {
    pub carrier: &'static str,
    pub direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabels {
    /// A finding type such as `CARD_NUMBER`.
    pub r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    /// A topic such as `fraud`.
    pub topic: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub carrier: &'static str,
    /// Our status word, or `unknown` for a carrier word we do not map.
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IgnoredLabels {
    pub carrier: &'static str,
    /// A fixed word: `typing`, `opt_out`, `opt_in`, `not_ours` …
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutboxLabels {
    pub carrier: &'static str,
    /// `accepted`, `retry`, `failed`, `uncertain`, `found` (an uncertain send found at the
    /// carrier), `resent`, `unconfirmed`.
    pub outcome: &'static str,
    /// Our error class for `retry` and `failed` (`throttled`, `opted_out` …), else `none`.
    pub class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsentLabels {
    /// `opt_out`, `opt_in`, `help`, `opt_out_request`.
    pub kind: &'static str,
    /// `keyword`, `free_text`, `carrier_report`, `agent`, `api`, `import`.
    pub source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SecureLinkLabels {
    /// `link_inbound`, `link_agent`, `code_sent`, `verified`, `locked`, `revoked`,
    /// `customer_message`, `agent_message`, `notified`.
    pub event: &'static str,
}

/// All counters, registered once at start-up.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub webhooks_received: Family<WebhookLabels, Counter>,
    pub webhooks_rejected: Family<RejectLabels, Counter>,
    pub webhooks_duplicate: Family<WebhookLabels, Counter>,
    pub webhooks_unavailable: Family<WebhookLabels, Counter>,
    pub messages_stored: Family<StoredLabels, Counter>,
    pub redactions: Family<TypeLabels, Counter>,
    pub topic_escalations: Family<TopicLabels, Counter>,
    pub status_updates: Family<StatusLabels, Counter>,
    pub webhooks_ignored: Family<IgnoredLabels, Counter>,
    pub outbox: Family<OutboxLabels, Counter>,
    pub inbound_flood: Counter,
    pub consent: Family<ConsentLabels, Counter>,
    pub secure_links: Family<SecureLinkLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Counts a consent event; call it once the event's transaction has committed.
    pub fn consent_recorded(
        &self,
        kind: crate::compliance::consent::Kind,
        source: crate::compliance::consent::Source,
    ) {
        self.consent
            .get_or_create(&ConsentLabels {
                kind: kind.as_str(),
                source: source.as_str(),
            })
            .inc();
    }

    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("drawbridge");
        let webhooks_received = Family::default();
        let webhooks_rejected = Family::default();
        let webhooks_duplicate = Family::default();
        let webhooks_unavailable = Family::default();
        let messages_stored = Family::default();
        let redactions = Family::default();
        let topic_escalations = Family::default();
        let status_updates = Family::default();
        let webhooks_ignored = Family::default();
        let outbox = Family::default();
        let inbound_flood = Counter::default();
        let consent = Family::default();
        let secure_links = Family::default();
        registry.register(
            "webhooks_received",
            "Carrier webhooks received",
            webhooks_received.clone(),
        );
        registry.register(
            "webhooks_rejected",
            "Carrier webhooks rejected (signature, malformed, unknown number, too large)",
            webhooks_rejected.clone(),
        );
        registry.register(
            "webhooks_duplicate",
            "Carrier webhook retries recognised as duplicates and not stored again",
            webhooks_duplicate.clone(),
        );
        registry.register(
            "webhooks_unavailable",
            "Carrier webhooks answered 503 because the database was unavailable",
            webhooks_unavailable.clone(),
        );
        registry.register(
            "messages_stored",
            "Messages stored",
            messages_stored.clone(),
        );
        registry.register(
            "redactions",
            "Sensitive values redacted, by type",
            redactions.clone(),
        );
        registry.register(
            "topic_escalations",
            "Inbound messages escalated for a sensitive topic, by topic",
            topic_escalations.clone(),
        );
        registry.register(
            "status_updates",
            "Delivery status callbacks recorded, by mapped status",
            status_updates.clone(),
        );
        registry.register(
            "webhooks_ignored",
            "Carrier webhook events acknowledged without a message or status (typing, consent reports)",
            webhooks_ignored.clone(),
        );
        registry.register(
            "outbox",
            "Outbox send attempts and their outcomes",
            outbox.clone(),
        );
        registry.register(
            "inbound_flood",
            "Inbound messages from a contact over the flood limit (stored; no automatic replies)",
            inbound_flood.clone(),
        );
        registry.register(
            "consent_events",
            "Consent events recorded, by kind and source",
            consent.clone(),
        );
        registry.register(
            "secure_link_events",
            "Secure-link events: links sent (by trigger), codes, verifications, locks, revocations, secure messages, notifications",
            secure_links.clone(),
        );
        Self {
            registry,
            webhooks_received,
            webhooks_rejected,
            webhooks_duplicate,
            webhooks_unavailable,
            messages_stored,
            redactions,
            topic_escalations,
            status_updates,
            webhooks_ignored,
            outbox,
            inbound_flood,
            consent,
            secure_links,
        }
    }

    /// Counts an outbox attempt's outcome.
    pub fn outbox(&self, carrier: &'static str, outcome: &'static str, class: &'static str) {
        self.outbox
            .get_or_create(&OutboxLabels {
                carrier,
                outcome,
                class,
            })
            .inc();
    }

    /// Counts a secure-link event; call it once its transaction has committed.
    pub fn secure_link(&self, event: &'static str) {
        self.secure_links
            .get_or_create(&SecureLinkLabels { event })
            .inc();
    }

    /// Counts a rejected webhook.
    pub fn reject(&self, carrier: &'static str, kind: &'static str, reason: &'static str) {
        self.webhooks_rejected
            .get_or_create(&RejectLabels {
                carrier,
                kind,
                reason,
            })
            .inc();
    }

    /// The OpenMetrics text exposition of every counter.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_labels() {
        let m = Metrics::new();
        m.reject("twilio", "inbound", "signature");
        m.redactions
            .get_or_create(&TypeLabels {
                r#type: "CARD_NUMBER",
            })
            .inc_by(2);
        let text = m.render();
        assert!(text.contains(r#"drawbridge_webhooks_rejected_total{carrier="twilio",kind="inbound",reason="signature"} 1"#), "{text}");
        assert!(
            text.contains(r#"drawbridge_redactions_total{type="CARD_NUMBER"} 2"#),
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"));
    }
}
