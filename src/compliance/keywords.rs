//! Consent keywords — STOP, START, HELP and their kin — recognised only as the whole message.
//!
//! Carriers and the CTIA principles act on a reply that *is* the keyword: Telnyx says "only
//! whole-message keywords count", Twilio handles "single-word" STOP (`shared/reference/
//! carriers.md` §2, §3, §11.1). Inside a sentence the same word is ordinary speech: "stop by the
//! branch tomorrow" is not an opt-out. Sentences that do revoke consent ("please stop texting me")
//! are the redaction engine's `opt_out_request` intent (`redaction-rules/revocation.toml`), since
//! FCC 24-24 requires revocation "in any reasonable manner" to be honoured (carriers.md §11.2).
//!
//! # Matching
//!
//! A message and every listed keyword are reduced to a key, and the message is a keyword when the
//! keys are equal:
//!
//! 1. Every character that is not a letter or a digit is dropped, wherever it is: white space of
//!    every kind (NBSP, line breaks, ideographic space), punctuation (`.`, `!!`, `¡`, `*`, quotes,
//!    hyphens), symbols and emoji (`🛑`, `™`), invisible characters (zero-width joiners, variation
//!    selectors). So `STOP!!`, `Stop.`, ` stop `, `*STOP*`, `STOP 🛑` and `¡ALTO!` are `STOP` and
//!    `ALTO`; `OPT-OUT`, `opt out`, `Opt_Out` and `optout` are one key, as are `STOP ALL` and
//!    `STOPALL`, and `S T O P` is `STOP`. A symbol is dropped before it could be decomposed into
//!    letters, so `STOP™` is `STOP`, not `STOPTM`.
//! 2. Letters and digits are decomposed (NFKD: full-width `ＳＴＯＰ` is `STOP`, `Ê` is `E` and a
//!    circumflex) and case-folded fully (`ß` and `ẞ` are `ss`, final `ς` is `σ`).
//! 3. Accents are kept in the exact key and dropped from the bare key. A list that ignores accents
//!    (every shipped list: people type `ARRET` for `ARRÊT` and phones add accents unasked) is
//!    matched by the bare key; a list that does not (for scripts whose marks tell words apart —
//!    Devanagari vowel signs, Japanese dakuten) only by the exact key.
//!
//! The message's key is built in one pass that stops as soon as it is longer than the longest
//! listed key, and looked up in one hash table (a second look-up only for a message with accents).
//!
//! What is therefore *not* a keyword: anything with another word in it. `stop stop`, `STOP
//! please`, `yes please`, `stopped`, `Stop by`, `end of month`, `STOP 2`. Repetitions and polite
//! forms of STOP are caught by the revocation phrase pack instead; `yes please` is not an opt-in
//! (a customer answering an agent's question is not re-subscribing).
//!
//! # Lists
//!
//! The shipped lists ([`shipped_lists`]) are the issue's: the carriers' English opt-out, opt-in and
//! help words (carriers.md §11.5), and Spanish and French ones. Operators add their own
//! ([`KeywordList`]). A word in two lists of the same kind is fine (`ARRET` is English carrier
//! practice and French); the match names the list given last, so the shipped French list, which
//! comes after the English one, answers `ARRET` with `ARRÊT` from `fr`, and an operator's list
//! given after the shipped ones names itself. A word in lists of two different kinds is refused.

use serde::{Deserialize, Serialize};
use std::collections::hash_map::Entry as MapEntry;
use std::collections::HashMap;
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// The longest key a keyword may have, in letters and digits. Keywords are a word or two;
/// sentences belong in the revocation phrase pack. The bound also bounds the work per message.
pub const MAX_KEYWORD_CHARS: usize = 40;

/// What a keyword asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeywordKind {
    /// Stop messaging this number (STOP, UNSUBSCRIBE, …).
    OptOut,
    /// Resume messaging after an opt-out (START, UNSTOP, …).
    OptIn,
    /// Send the help text (HELP, INFO, …).
    Help,
}

impl KeywordKind {
    /// The kind's name in configuration, the ledger and metrics labels.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OptOut => "opt_out",
            Self::OptIn => "opt_in",
            Self::Help => "help",
        }
    }
}

/// One list of keywords of one kind, named after its language or its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeywordList {
    /// Names the list in a [`Match`]: `en`, `es`, `fr` for the shipped lists; any name for an
    /// operator's own (a language code lets the caller answer in that language).
    pub name: String,
    pub kind: KeywordKind,
    /// The keywords as written; the first spelling of a key is the one a [`Match`] reports.
    pub words: Vec<String>,
    /// Whether accents may be missing or extra in the message (`ARRET` matches `ARRÊT`, `STÖP`
    /// matches `STOP`). True for Latin-script lists; false where marks tell words apart.
    pub ignore_accents: bool,
}

impl KeywordList {
    /// A list that ignores accents.
    #[must_use]
    pub fn new<W: Into<String>>(
        name: impl Into<String>,
        kind: KeywordKind,
        words: impl IntoIterator<Item = W>,
    ) -> Self {
        Self {
            name: name.into(),
            kind,
            words: words.into_iter().map(Into::into).collect(),
            ignore_accents: true,
        }
    }

    /// The same list, matched only with the accents as written.
    #[must_use]
    pub fn with_exact_accents(mut self) -> Self {
        self.ignore_accents = false;
        self
    }
}

/// The carriers' English opt-out words (Twilio, Telnyx, Plivo, AWS: carriers.md §11.5,
/// features.md §5), as the issue lists them. Spaced spellings come first: they are the ones
/// a match reports.
pub const ENGLISH_OPT_OUT: &[&str] = &[
    "STOP",
    "STOP ALL",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPT OUT",
    "OPT-OUT",
    "OPTOUT",
    "REMOVE",
    "ARRET",
];
/// The carriers' English opt-in words.
pub const ENGLISH_OPT_IN: &[&str] = &["START", "YES", "UNSTOP", "RESUME"];
/// The carriers' English help words.
pub const ENGLISH_HELP: &[&str] = &["HELP", "INFO"];
pub const SPANISH_OPT_OUT: &[&str] = &["ALTO", "PARAR", "CANCELAR"];
pub const SPANISH_HELP: &[&str] = &["AYUDA"];
pub const FRENCH_OPT_OUT: &[&str] = &["ARRÊT", "ARRET"];
pub const FRENCH_HELP: &[&str] = &["AIDE"];

/// The shipped lists, English first, then Spanish (`es`) and French (`fr`).
#[must_use]
pub fn shipped_lists() -> Vec<KeywordList> {
    vec![
        KeywordList::new("en", KeywordKind::OptOut, ENGLISH_OPT_OUT.iter().copied()),
        KeywordList::new("en", KeywordKind::OptIn, ENGLISH_OPT_IN.iter().copied()),
        KeywordList::new("en", KeywordKind::Help, ENGLISH_HELP.iter().copied()),
        KeywordList::new("es", KeywordKind::OptOut, SPANISH_OPT_OUT.iter().copied()),
        KeywordList::new("es", KeywordKind::Help, SPANISH_HELP.iter().copied()),
        KeywordList::new("fr", KeywordKind::OptOut, FRENCH_OPT_OUT.iter().copied()),
        KeywordList::new("fr", KeywordKind::Help, FRENCH_HELP.iter().copied()),
    ]
}

/// A message that is a keyword. Borrowed from the [`Keywords`] set: the keyword is the list's
/// spelling, never the message's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match<'a> {
    pub kind: KeywordKind,
    /// The listed spelling, e.g. `STOP ALL` for `stop-all!`.
    pub keyword: &'a str,
    /// The list's [`KeywordList::name`], e.g. `fr`.
    pub list: &'a str,
}

/// A list that cannot be used. Names the list and the word (configuration, not message content).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeywordError {
    #[error("a keyword list needs a name")]
    UnnamedList,
    #[error("keyword list `{list}`: {word:?} has no letters or digits")]
    Empty { list: String, word: String },
    #[error("keyword list `{list}`: {word:?} is longer than {MAX_KEYWORD_CHARS} letters and digits; sentences belong in the revocation phrase pack")]
    TooLong { list: String, word: String },
    #[error("keyword {word:?} is {} in list `{list}` but {} in list `{other_list}` ({other_word:?})", kind.as_str(), other_kind.as_str())]
    Conflict {
        list: String,
        word: String,
        kind: KeywordKind,
        other_list: String,
        other_word: String,
        other_kind: KeywordKind,
    },
}

#[derive(Debug)]
struct Entry {
    kind: KeywordKind,
    keyword: String,
    list: String,
    ignore_accents: bool,
}

/// A compiled set of keyword lists: immutable, cheap to share. Its `Debug` output lists the
/// entries sorted, so equal sets print equally (the configuration's audit fingerprint relies on
/// it; a `HashMap` iterates in a different order in every process).
pub struct Keywords {
    /// Key → keyword. Lists that ignore accents are stored under the bare key, others under the
    /// exact key.
    entries: HashMap<String, Entry>,
    /// The longest stored key, in bytes: a longer message key cannot match.
    longest: usize,
}

impl std::fmt::Debug for Keywords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sorted: std::collections::BTreeMap<&String, &Entry> = self.entries.iter().collect();
        f.debug_struct("Keywords")
            .field("entries", &sorted)
            .field("longest", &self.longest)
            .finish()
    }
}

impl Keywords {
    /// Compiles `lists`, in order (see the module documentation for words in several lists).
    ///
    /// # Errors
    /// A list without a name, a word without letters or digits or longer than
    /// [`MAX_KEYWORD_CHARS`], or a word listed under two kinds.
    pub fn new(lists: impl IntoIterator<Item = KeywordList>) -> Result<Self, KeywordError> {
        let mut entries: HashMap<String, Entry> = HashMap::new();
        let mut longest = 0;
        for list in lists {
            let name = list.name.trim();
            if name.is_empty() {
                return Err(KeywordError::UnnamedList);
            }
            for word in &list.words {
                let word = word.trim();
                let Some(key) = Key::of(word, usize::MAX) else {
                    return Err(KeywordError::Empty {
                        list: name.to_owned(),
                        word: word.to_owned(),
                    });
                };
                if key.bare.chars().count() > MAX_KEYWORD_CHARS {
                    return Err(KeywordError::TooLong {
                        list: name.to_owned(),
                        word: word.to_owned(),
                    });
                }
                let stored = if list.ignore_accents {
                    key.bare
                } else {
                    key.exact.unwrap_or(key.bare)
                };
                longest = longest.max(stored.len());
                match entries.entry(stored) {
                    MapEntry::Vacant(slot) => {
                        slot.insert(Entry {
                            kind: list.kind,
                            keyword: word.to_owned(),
                            list: name.to_owned(),
                            ignore_accents: list.ignore_accents,
                        });
                    }
                    MapEntry::Occupied(mut slot) => {
                        let entry = slot.get_mut();
                        if entry.kind != list.kind {
                            return Err(KeywordError::Conflict {
                                list: name.to_owned(),
                                word: word.to_owned(),
                                kind: list.kind,
                                other_list: entry.list.clone(),
                                other_word: entry.keyword.clone(),
                                other_kind: entry.kind,
                            });
                        }
                        entry.ignore_accents |= list.ignore_accents;
                        // Within a list the first spelling is canonical; a later list takes over.
                        if entry.list != name {
                            name.clone_into(&mut entry.list);
                            word.clone_into(&mut entry.keyword);
                        }
                    }
                }
            }
        }
        Ok(Self { entries, longest })
    }

    /// The shipped lists ([`shipped_lists`]) followed by `extra`.
    ///
    /// # Errors
    /// As [`Keywords::new`]: an extra list that is malformed or gives a shipped word another kind.
    pub fn with_shipped(
        extra: impl IntoIterator<Item = KeywordList>,
    ) -> Result<Self, KeywordError> {
        Self::new(shipped_lists().into_iter().chain(extra))
    }

    /// A set that recognises nothing (the fallback if the shipped lists ever failed to compile,
    /// which a test rules out).
    #[must_use]
    pub fn empty() -> Self {
        Self {
            entries: HashMap::new(),
            longest: 0,
        }
    }

    /// How many distinct keys the set holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The keyword that `text` is, if the whole message is one.
    #[must_use]
    pub fn classify(&self, text: &str) -> Option<Match<'_>> {
        let key = Key::of(text, self.longest)?;
        let found = if key.accented {
            key.exact
                .as_ref()
                .and_then(|exact| self.entries.get(exact))
                .or_else(|| self.entries.get(&key.bare).filter(|e| e.ignore_accents))
        } else {
            // No accents: the exact key is the bare key.
            self.entries.get(&key.bare)
        }?;
        Some(Match {
            kind: found.kind,
            keyword: &found.keyword,
            list: &found.list,
        })
    }
}

/// The look-up keys of a text: letters and digits only, decomposed and case-folded.
struct Key {
    /// Without accents.
    bare: String,
    /// Whether the text has accents (combining marks on its letters).
    accented: bool,
    /// With accents, in canonical order, when the text has some and the key is no longer than
    /// the limit (a longer exact key cannot match).
    exact: Option<String>,
}

impl Key {
    /// The keys of `text`, or `None` when it has no letters or digits or its bare key grows
    /// longer than `limit` bytes.
    fn of(text: &str, limit: usize) -> Option<Self> {
        let mut bare = String::with_capacity(16);
        let mut exact = String::with_capacity(16);
        // False once the exact key is longer than the limit: only marks make it longer than the
        // bare key (a "Zalgo" text), and the bare key may still match.
        let mut exact_fits = true;
        let mut accented = false;
        // Whether the previous character was a letter or digit: a combining mark after one is its
        // accent; after anything else it decorates a symbol or emoji and is dropped with it.
        let mut in_word = false;
        for c in text.chars() {
            if c.is_ascii() {
                in_word = c.is_ascii_alphanumeric();
                if in_word {
                    bare.push(c.to_ascii_lowercase());
                    if exact_fits {
                        exact.push(c.to_ascii_lowercase());
                    }
                }
            } else if is_combining_mark(c) {
                if in_word {
                    accented = true;
                    if exact_fits {
                        exact.push(c);
                    }
                }
            } else if c.is_alphanumeric() {
                in_word = true;
                for d in std::iter::once(c).nfkd() {
                    if is_combining_mark(d) {
                        accented = true;
                        if exact_fits {
                            exact.push(d);
                        }
                    } else if d.is_alphanumeric() {
                        fold(d, &mut bare);
                        if exact_fits {
                            fold(d, &mut exact);
                        }
                    }
                }
            } else {
                in_word = false;
            }
            if bare.len() > limit {
                return None;
            }
            if exact_fits && exact.len() > limit {
                exact_fits = false;
                exact = String::new();
            }
        }
        if bare.is_empty() {
            return None;
        }
        let exact = (accented && exact_fits).then(|| exact.nfd().collect::<String>());
        Some(Self {
            bare,
            accented,
            exact,
        })
    }
}

/// Full case folding of one character into `out`: lower, upper, lower again, so that `ß` and `ẞ`
/// become `ss` and a final sigma becomes `σ` (Unicode `CaseFolding.txt`, status F and C).
fn fold(c: char, out: &mut String) {
    if c.is_ascii() {
        out.push(c.to_ascii_lowercase());
        return;
    }
    for lower in c.to_lowercase() {
        for upper in lower.to_uppercase() {
            out.extend(upper.to_lowercase());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Keywords {
        Keywords::new(shipped_lists()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn kind_of(keywords: &Keywords, text: &str) -> Option<KeywordKind> {
        keywords.classify(text).map(|m| m.kind)
    }

    /// The forms the issue and the brief name, for one keyword as listed.
    fn forms(word: &str) -> Vec<String> {
        let lower = word.to_lowercase();
        let mut title = String::new();
        for (i, c) in lower.chars().enumerate() {
            if i == 0 {
                title.extend(c.to_uppercase());
            } else {
                title.push(c);
            }
        }
        vec![
            word.to_owned(),
            lower.clone(),
            format!("{title}."),
            format!(" {lower} "),
            format!("{word}!!"),
            format!("*{word}*"),
            format!("{word} 🛑"),
            format!("¡{word}!"),
            format!("\u{a0}{word}\u{a0}\n"),
            format!("\"{lower}\""),
            format!("{word}?"),
            format!("\u{3000}{word}\u{200b}"),
            format!("{word}\u{fe0f}"),
            format!("... {title} ..."),
        ]
    }

    #[test]
    fn every_listed_keyword_in_every_form() {
        let keywords = shipped();
        for list in shipped_lists() {
            for word in &list.words {
                for form in forms(word) {
                    let found = keywords.classify(&form);
                    assert_eq!(
                        found.map(|m| m.kind),
                        Some(list.kind),
                        "{form:?} (from {word} in {})",
                        list.name
                    );
                }
            }
        }
    }

    #[test]
    fn the_issues_acceptance_examples() {
        let keywords = shipped();
        for text in ["STOP", "Stop.", " stop ", "STOP!!"] {
            assert_eq!(
                keywords.classify(text),
                Some(Match {
                    kind: KeywordKind::OptOut,
                    keyword: "STOP",
                    list: "en"
                }),
                "{text:?}"
            );
        }
        assert_eq!(keywords.classify("stop by the branch tomorrow"), None);
        assert_eq!(kind_of(&keywords, "HELP"), Some(KeywordKind::Help));
        assert_eq!(
            keywords.classify("AYUDA"),
            Some(Match {
                kind: KeywordKind::Help,
                keyword: "AYUDA",
                list: "es"
            })
        );
    }

    #[test]
    fn spellings_of_one_keyword_share_a_key_and_report_the_listed_form() {
        let keywords = shipped();
        for text in [
            "OPT-OUT",
            "opt out",
            "optout",
            "Opt_Out",
            "opt–out",
            "OPT  OUT!",
        ] {
            let found = keywords.classify(text).map(|m| (m.kind, m.keyword));
            assert_eq!(found, Some((KeywordKind::OptOut, "OPT OUT")), "{text:?}");
        }
        for text in ["STOP ALL", "stopall", "Stop-All.", "stop\nall"] {
            let found = keywords.classify(text).map(|m| m.keyword);
            assert_eq!(found, Some("STOP ALL"), "{text:?}");
        }
        assert_eq!(kind_of(&keywords, "S T O P"), Some(KeywordKind::OptOut));
        assert_eq!(
            kind_of(&keywords, "un-subscribe"),
            Some(KeywordKind::OptOut)
        );
    }

    #[test]
    fn accents_are_optional_in_the_shipped_lists() {
        let keywords = shipped();
        for text in [
            "ARRÊT",
            "arrêt",
            "ARRET",
            "Arret !",
            "arrét",
            "ARRE\u{0302}T",
        ] {
            assert_eq!(
                keywords.classify(text),
                Some(Match {
                    kind: KeywordKind::OptOut,
                    keyword: "ARRÊT",
                    list: "fr"
                }),
                "{text:?}"
            );
        }
        assert_eq!(kind_of(&keywords, "¡Áltó!"), Some(KeywordKind::OptOut));
        assert_eq!(kind_of(&keywords, "Aidé"), Some(KeywordKind::Help));
        assert_eq!(kind_of(&keywords, "STÖP"), Some(KeywordKind::OptOut));
    }

    #[test]
    fn unicode_width_case_and_invisible_characters() {
        let keywords = shipped();
        for text in [
            "ＳＴＯＰ",
            "ｓｔｏｐ",
            "S\u{200b}TOP",
            "ST\u{00ad}OP",
            "\u{feff}STOP",
            "STOP™",
            "🛑🛑 STOP 🛑🛑",
            "STOP 🙅\u{200d}♀\u{fe0f}",
            "stop\u{20e3}",
            "\u{202e}STOP\u{202c}",
        ] {
            assert_eq!(
                kind_of(&keywords, text),
                Some(KeywordKind::OptOut),
                "{text:?}"
            );
        }
        // Full case folding: ß is ss both ways.
        let german = Keywords::new([KeywordList::new("de", KeywordKind::OptOut, ["SCHLUSS"])])
            .unwrap_or_else(|e| panic!("{e}"));
        for text in ["Schluß", "SCHLUẞ", "schluss"] {
            assert_eq!(kind_of(&german, text), Some(KeywordKind::OptOut), "{text}");
        }
    }

    #[test]
    fn near_misses_are_not_keywords() {
        let keywords = shipped();
        for text in [
            "stopped",
            "stops",
            "Stop by",
            "stop by the branch tomorrow",
            "end of month",
            "the end",
            "yes please",
            "Yes, Tuesday works",
            "stop stop",
            "STOP please",
            "please stop",
            "STOP 2",
            "STOP1",
            "cancel my appointment",
            "help me with my card",
            "information",
            "restart",
            "unstoppable",
            "starting",
            "removed",
            "quite",
            "endless",
            "",
            "   ",
            "!!!",
            "🛑",
            "12345",
        ] {
            assert_eq!(keywords.classify(text), None, "{text:?}");
        }
    }

    #[test]
    fn opt_in_and_help() {
        let keywords = shipped();
        for text in ["START", "yes", "Yes!", "UNSTOP", "resume."] {
            assert_eq!(kind_of(&keywords, text), Some(KeywordKind::OptIn), "{text}");
        }
        for text in ["help", "Help?", "INFO", "info!", "aide", "Ayuda."] {
            assert_eq!(kind_of(&keywords, text), Some(KeywordKind::Help), "{text}");
        }
    }

    #[test]
    fn operator_lists_extend_and_name_themselves() {
        let keywords = Keywords::with_shipped([
            KeywordList::new("de", KeywordKind::OptOut, ["HALT", "ABMELDEN"]),
            KeywordList::new("pt", KeywordKind::OptOut, ["PARE", "SAIR"]),
            KeywordList::new("pt", KeywordKind::Help, ["AJUDA"]),
            KeywordList::new("custom", KeywordKind::OptOut, ["STOP", "TD"]),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            keywords.classify("halt!"),
            Some(Match {
                kind: KeywordKind::OptOut,
                keyword: "HALT",
                list: "de"
            })
        );
        assert_eq!(kind_of(&keywords, "Ajuda"), Some(KeywordKind::Help));
        // A word given again by a later list is answered from that list.
        assert_eq!(keywords.classify("stop").map(|m| m.list), Some("custom"));
        assert_eq!(kind_of(&keywords, "td"), Some(KeywordKind::OptOut));
    }

    #[test]
    fn a_list_may_require_its_accents() {
        // Japanese: the dakuten tells ga from ka, so the marks must match.
        let keywords = Keywords::new([
            KeywordList::new("ja", KeywordKind::OptOut, ["ガ"]).with_exact_accents(),
            KeywordList::new("hi", KeywordKind::OptOut, ["बंद"]).with_exact_accents(),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(kind_of(&keywords, "ガ"), Some(KeywordKind::OptOut));
        assert_eq!(kind_of(&keywords, "カ"), None);
        assert_eq!(kind_of(&keywords, "बंद।"), Some(KeywordKind::OptOut));
        assert_eq!(kind_of(&keywords, "बद"), None);
    }

    #[test]
    fn malformed_lists_are_refused() {
        let conflict =
            Keywords::with_shipped([KeywordList::new("mine", KeywordKind::OptIn, ["GO", "Stop"])])
                .err();
        assert_eq!(
            conflict.map(|e| e.to_string()),
            Some(
                "keyword \"Stop\" is opt_in in list `mine` but opt_out in list `en` (\"STOP\")"
                    .to_owned()
            )
        );
        assert!(matches!(
            Keywords::new([KeywordList::new("x", KeywordKind::Help, ["?!"])]),
            Err(KeywordError::Empty { .. })
        ));
        assert!(matches!(
            Keywords::new([KeywordList::new(
                "x",
                KeywordKind::OptOut,
                ["please stop texting me about my account, I have asked many times"]
            )]),
            Err(KeywordError::TooLong { .. })
        ));
        assert_eq!(
            Keywords::new([KeywordList::new(" ", KeywordKind::Help, ["HELP"])]).err(),
            Some(KeywordError::UnnamedList)
        );
    }

    #[test]
    fn long_and_adversarial_messages_are_cheap_and_never_match() {
        let keywords = shipped();
        let long = "stop ".repeat(400);
        assert_eq!(keywords.classify(&long), None);
        // Many marks on a keyword: the bare key still matches; the exact key is abandoned.
        let zalgo: String = "STOP"
            .chars()
            .flat_map(|c| std::iter::once(c).chain(std::iter::repeat_n('\u{0336}', 300)))
            .collect();
        assert_eq!(kind_of(&keywords, &zalgo), Some(KeywordKind::OptOut));
        let padded = format!("{}STOP{}", "!".repeat(2000), "🛑".repeat(500));
        assert_eq!(kind_of(&keywords, &padded), Some(KeywordKind::OptOut));
    }

    #[test]
    fn the_shipped_set_has_every_listed_key() {
        let keywords = shipped();
        // STOP ALL/STOPALL, OPT OUT/OPT-OUT/OPTOUT and the two ARRETs share keys.
        let words: usize = shipped_lists().iter().map(|l| l.words.len()).sum();
        assert_eq!(keywords.len(), words - 1 - 2 - 2);
        assert!(!keywords.is_empty());
    }
}
