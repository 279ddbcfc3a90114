//! Rule packs: the TOML a compliance officer reads and edits (`redaction-rules/*.toml`).
//!
//! ```toml
//! pack = "cards"
//! description = "Payment card data"
//!
//! [[rules]]
//! id = "card-number"
//! description = "Card numbers of every major brand, any separators, Luhn-checked"
//! type = "CARD_NUMBER"                # one of the 16 types, a topic (health, payment, …) or an
//!                                     # intent (opt_out_request)
//! kind = "pattern"                    # pattern | keywords
//! pattern = '''\b\d(?:[ .-]{0,2}\d){12,18}\b'''
//! validator = "luhn"                  # luhn | aba | iban | ssn | itin | mbi | none
//! context = ["card", "visa"]          # optional: one must appear within context_window words
//! context_window = 6
//! case_sensitive = false
//! replacement = "[CARD •••• {last4}]" # {last4}: the value's last four digits
//! action = "redact_and_escalate"      # redact | redact_and_escalate | escalate | block_outbound
//!                                     # | detect (intents only: recorded, nothing else)
//! direction = "both"                  # inbound | outbound | both
//! enabled = true
//! priority = 10                       # breaks ties between equally long validated findings
//! examples.match = ["4111 1111 1111 1111"]
//! examples.no_match = ["order 4111111111111112"]
//! ```
//!
//! A pattern may name a group `value`: the finding is that group, and the rest of the match is
//! context that stays in the text (`cvv (?P<value>\d{3,4})` redacts the digits, not "cvv").
//! Keyword rules match whole words and phrases, case-insensitively unless `case_sensitive`.

use super::validators::Validator;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// The sensitive value types (DESIGN.md, Redaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EntityType {
    CardNumber,
    CardExpiry,
    CardCvv,
    UsSsn,
    UsItin,
    DateOfBirth,
    BankAccount,
    RoutingNumber,
    Iban,
    Email,
    Phone,
    StreetAddress,
    Passport,
    DriverLicense,
    Credential,
    MedicareId,
}

impl EntityType {
    pub const ALL: [Self; 16] = [
        Self::CardNumber,
        Self::CardExpiry,
        Self::CardCvv,
        Self::UsSsn,
        Self::UsItin,
        Self::DateOfBirth,
        Self::BankAccount,
        Self::RoutingNumber,
        Self::Iban,
        Self::Email,
        Self::Phone,
        Self::StreetAddress,
        Self::Passport,
        Self::DriverLicense,
        Self::Credential,
        Self::MedicareId,
    ];

    /// The type's name in rules, findings, metrics and corpora.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CardNumber => "CARD_NUMBER",
            Self::CardExpiry => "CARD_EXPIRY",
            Self::CardCvv => "CARD_CVV",
            Self::UsSsn => "US_SSN",
            Self::UsItin => "US_ITIN",
            Self::DateOfBirth => "DATE_OF_BIRTH",
            Self::BankAccount => "BANK_ACCOUNT",
            Self::RoutingNumber => "ROUTING_NUMBER",
            Self::Iban => "IBAN",
            Self::Email => "EMAIL",
            Self::Phone => "PHONE",
            Self::StreetAddress => "STREET_ADDRESS",
            Self::Passport => "PASSPORT",
            Self::DriverLicense => "DRIVER_LICENSE",
            Self::Credential => "CREDENTIAL",
            Self::MedicareId => "MEDICARE_ID",
        }
    }

    /// DESIGN.md's default escalation policy: every type escalates except these four, which are
    /// redacted but are not by themselves a reason to move the customer to a secure channel.
    #[must_use]
    pub fn escalates_by_default(self) -> bool {
        !matches!(
            self,
            Self::Email | Self::Phone | Self::StreetAddress | Self::CardExpiry
        )
    }
}

/// Sensitive subjects, detected by keyword and phrase lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    Health,
    AccountAccess,
    Fraud,
    Legal,
    Payment,
}

impl Topic {
    pub const ALL: [Self; 5] = [
        Self::Health,
        Self::AccountAccess,
        Self::Fraud,
        Self::Legal,
        Self::Payment,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Health => "health",
            Self::AccountAccess => "account_access",
            Self::Fraud => "fraud",
            Self::Legal => "legal",
            Self::Payment => "payment",
        }
    }
}

/// What a message asks for, as opposed to what it contains. An intent is only recorded: the text
/// is not changed and nothing escalates. Callers act on it (an opt-out request goes to the
/// consent ledger).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// The sender asks not to be messaged any more, in words rather than a keyword ("please stop
    /// texting me", "take me off your list"). FCC 24-24 requires revocation "in any reasonable
    /// manner" to be honoured (`shared/reference/carriers.md` §11.2).
    OptOutRequest,
}

impl Intent {
    pub const ALL: [Self; 1] = [Self::OptOutRequest];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OptOutRequest => "opt_out_request",
        }
    }
}

/// What a rule detects: a value type, a topic, or an intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Category {
    Entity(EntityType),
    Topic(Topic),
    Intent(Intent),
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Entity(e) => e.as_str(),
            Self::Topic(t) => t.as_str(),
            Self::Intent(i) => i.as_str(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    Pattern,
    Keywords,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Replace the value; no escalation on its own account.
    Redact,
    /// Replace the value and move the conversation to a secure link.
    RedactAndEscalate,
    /// Leave the text; move the conversation to a secure link (topics).
    Escalate,
    /// Outbound only: refuse to send a message containing this.
    BlockOutbound,
    /// Record the intent; change nothing and escalate nothing (intents, and only intents).
    Detect,
}

/// Which messages a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
    #[default]
    Both,
}

impl Direction {
    /// Whether a rule with this direction applies to a message travelling `way`.
    #[must_use]
    pub fn covers(self, way: Direction) -> bool {
        self == Self::Both || self == way
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Examples {
    #[serde(rename = "match", default)]
    pub matches: Vec<String>,
    #[serde(default)]
    pub no_match: Vec<String>,
}

fn default_window() -> usize {
    5
}
fn default_true() -> bool {
    true
}

/// One rule, as written in a pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    pub description: String,
    #[serde(rename = "type")]
    pub category: Category,
    pub kind: RuleKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub terms: Vec<String>,
    #[serde(default)]
    pub validator: Validator,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<String>,
    #[serde(default = "default_window")]
    pub context_window: usize,
    #[serde(default)]
    pub case_sensitive: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    pub action: Action,
    #[serde(default)]
    pub direction: Direction,
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default)]
    pub priority: i32,
    #[serde(default)]
    pub examples: Examples,
}

/// A pack file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pack {
    /// The pack's name; the file is `<pack>.toml`.
    pub pack: String,
    pub description: String,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// A pack that failed to load, naming the file, the rule and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {reason}", rule.as_ref().map(|r| format!(", rule `{r}`")).unwrap_or_default())]
pub struct RuleError {
    pub file: String,
    pub rule: Option<String>,
    pub reason: String,
}

impl Pack {
    /// Parses a pack's TOML. `file` names it in errors.
    ///
    /// # Errors
    /// [`RuleError`] for TOML that does not fit the format.
    pub fn parse(file: &str, text: &str) -> Result<Self, RuleError> {
        toml::from_str(text).map_err(|e| {
            let line = crate::config::toml_error_line(text, &e);
            RuleError {
                file: line.map_or_else(|| file.to_owned(), |l| format!("{file}:{l}")),
                rule: None,
                reason: e.message().trim().to_owned(),
            }
        })
    }
}

/// The default packs, compiled into the binary so that `serve` works from any directory. A test
/// checks this list against the files in `redaction-rules/`.
pub const DEFAULT_PACKS: &[(&str, &str)] = &[
    (
        "cards.toml",
        include_str!("../../redaction-rules/cards.toml"),
    ),
    (
        "government-ids.toml",
        include_str!("../../redaction-rules/government-ids.toml"),
    ),
    (
        "banking.toml",
        include_str!("../../redaction-rules/banking.toml"),
    ),
    (
        "contact.toml",
        include_str!("../../redaction-rules/contact.toml"),
    ),
    (
        "personal.toml",
        include_str!("../../redaction-rules/personal.toml"),
    ),
    (
        "topics.toml",
        include_str!("../../redaction-rules/topics.toml"),
    ),
    (
        "revocation.toml",
        include_str!("../../redaction-rules/revocation.toml"),
    ),
];

/// Parses the default packs.
///
/// # Errors
/// [`RuleError`] if a built-in pack does not parse (a build defect; tests catch it).
pub fn default_packs() -> Result<Vec<(String, Pack)>, RuleError> {
    DEFAULT_PACKS
        .iter()
        .map(|(file, text)| Pack::parse(file, text).map(|p| ((*file).to_owned(), p)))
        .collect()
}

/// Reads every `*.toml` pack in `dir`, in file-name order.
///
/// # Errors
/// [`RuleError`] naming the unreadable or malformed file.
pub fn load_dir(dir: &Path) -> Result<Vec<(String, Pack)>, RuleError> {
    let err = |reason: String| RuleError {
        file: dir.display().to_string(),
        rule: None,
        reason,
    };
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| err(format!("cannot read the directory: {e}")))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(err("holds no *.toml rule packs".to_owned()));
    }
    files
        .iter()
        .map(|path| {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| RuleError {
                file: name.clone(),
                rule: None,
                reason: format!("cannot read: {e}"),
            })?;
            Pack::parse(&name, &text).map(|pack| (name, pack))
        })
        .collect()
}
