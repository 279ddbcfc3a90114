//! Blind indexes and their key generations.
//!
//! A blind index is a keyed hash (HMAC-SHA256) of a value a look-up starts from: a customer's
//! phone number, a staff e-mail address, a single-sign-on identity. Generation 1's keys are
//! purpose keys derived with the database (see [`super::PurposeKeys`]); `drawbridge keys reindex`
//! (`crate::keys::reindex`) adds a generation of fresh random keys and re-keys every stored index.
//!
//! # Re-keying without the values
//!
//! An index of generation `g > 1` is generation `g - 1`'s index hashed again under generation
//! `g`'s key:
//!
//! ```text
//! index₁(x) = HMAC(k₁, x)
//! index_g(x) = HMAC(k_g, "drawbridge/re-index\0" ‖ index_{g-1}(x))
//! ```
//!
//! So a stored index moves to the next generation without the value it came from. That matters:
//! an erased contact keeps only its index (so that its opt-out still holds when the number texts
//! again) and its number is gone, so an index recomputed from the value could not carry it over.
//! What a rotation protects against is the disclosure of an index key: with the stored indexes
//! and one leaked key, phone numbers fall to a dictionary search (there are only some 10¹⁰ of
//! them). After a re-index, every stored index is under the newest key as its outermost layer, so
//! an older key, leaked or not, opens nothing on its own; the older keys stay in the keyring only
//! because computing a current index passes through them.
//!
//! # Look-ups during a re-index
//!
//! Rows move to the new generation in batches while the service runs, so a look-up matches
//! [`BlindIndex::lookup`]: the current generation's index and the one before it. New rows are
//! written only under the newest generation (see `crate::keys::index`).

use super::{hmac_with as hmac, SecretKey};
use hmac::Mac;
use std::fmt;

/// The label that separates a re-keying layer from a generation-1 index.
const LAYER: &[u8] = b"drawbridge/re-index\0";

/// What an index is of. Each kind has its own key in every generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    /// A contact's E.164 number (`contact.phone_index`).
    Phone,
    /// A staff user's lower-cased e-mail address (`app_user.email_index`).
    Email,
    /// A single-sign-on identity, issuer and subject (`app_user.oidc_subject_index`).
    Subject,
}

/// One generation's index keys.
#[derive(Clone)]
pub struct IndexGeneration {
    pub(super) generation: u32,
    pub(super) phone: SecretKey,
    pub(super) email: SecretKey,
    pub(super) subject: SecretKey,
}

impl fmt::Debug for IndexGeneration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IndexGeneration({}, ••••)", self.generation)
    }
}

impl IndexGeneration {
    /// Fresh random keys for `generation`.
    #[must_use]
    pub fn random(generation: u32) -> Self {
        Self {
            generation,
            phone: SecretKey::random(generation),
            email: SecretKey::random(generation),
            subject: SecretKey::random(generation),
        }
    }

    /// The generation number.
    #[must_use]
    pub fn generation(&self) -> u32 {
        self.generation
    }

    fn key(&self, kind: IndexKind) -> &SecretKey {
        match kind {
            IndexKind::Phone => &self.phone,
            IndexKind::Email => &self.email,
            IndexKind::Subject => &self.subject,
        }
    }

    pub(super) fn keys(&self) -> [&SecretKey; 3] {
        [&self.phone, &self.email, &self.subject]
    }

    /// This generation's layer over the previous generation's index.
    fn layer(&self, kind: IndexKind, previous: &[u8]) -> Vec<u8> {
        let mut mac = hmac(self.key(kind));
        mac.update(LAYER);
        mac.update(previous);
        mac.finalize().into_bytes().to_vec()
    }

    fn same_as(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.generation == other.generation
            && self
                .keys()
                .iter()
                .zip(other.keys())
                .all(|(a, b)| bool::from(a.bytes.ct_eq(&b.bytes)))
    }
}

/// Every index generation a process holds, oldest (generation 1) first, without gaps.
#[derive(Clone, Debug)]
pub struct IndexKeys {
    generations: Vec<IndexGeneration>,
}

impl IndexKeys {
    /// Generation 1 (the purpose keys) and the later generations, which must follow on from it.
    pub(super) fn new(first: IndexGeneration, later: &[IndexGeneration]) -> Self {
        let mut generations = vec![first];
        generations.extend(later.iter().cloned());
        Self { generations }
    }

    /// The newest generation: what new rows are indexed under.
    #[must_use]
    pub fn current(&self) -> u32 {
        self.generations.last().map_or(1, |g| g.generation)
    }

    /// The index of `value` (already in the canonical form its kind hashes) under every
    /// generation up to the current one.
    pub(super) fn index(&self, kind: IndexKind, value: &[&[u8]]) -> BlindIndex {
        let mut layers = self.generations.iter();
        let mut current = match layers.next() {
            Some(first) => {
                let mut mac = hmac(first.key(kind));
                for (i, part) in value.iter().enumerate() {
                    if i > 0 {
                        mac.update(&[0]);
                    }
                    mac.update(part);
                }
                mac.finalize().into_bytes().to_vec()
            }
            None => Vec::new(),
        };
        let mut previous = None;
        for generation in layers {
            let next = generation.layer(kind, &current);
            previous = Some(std::mem::replace(&mut current, next));
        }
        BlindIndex {
            generation: self.current(),
            current,
            previous,
        }
    }

    /// Moves a stored index of generation `from` to the current generation. `None` when `from`
    /// is not a generation this process holds.
    #[must_use]
    pub fn rekey(&self, kind: IndexKind, stored: &[u8], from: u32) -> Option<Vec<u8>> {
        if from == 0 || from > self.current() {
            return None;
        }
        let mut value = stored.to_vec();
        for generation in self.generations.iter().filter(|g| g.generation > from) {
            value = generation.layer(kind, &value);
        }
        Some(value)
    }

    /// Whether two sets hold the same generations with the same keys (constant time per key).
    pub(super) fn same_as(&self, other: &Self) -> bool {
        self.generations.len() == other.generations.len()
            && self
                .generations
                .iter()
                .zip(&other.generations)
                .all(|(a, b)| a.same_as(b))
    }
}

/// A value's blind index under the current generation, and under the previous one for look-ups
/// made while a re-index is moving rows. Compares equal when the current indexes are equal.
#[derive(Clone)]
pub struct BlindIndex {
    generation: u32,
    current: Vec<u8>,
    previous: Option<Vec<u8>>,
}

impl BlindIndex {
    /// The index under the current generation: what a new row stores.
    #[must_use]
    pub fn current(&self) -> &[u8] {
        &self.current
    }

    /// The generation [`BlindIndex::current`] is of.
    #[must_use]
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The two values a look-up matches (`… IN ($1, $2)`): the current generation's index and
    /// the previous generation's (the current one again when there is none).
    #[must_use]
    pub fn lookup(&self) -> [Vec<u8>; 2] {
        [
            self.current.clone(),
            self.previous
                .clone()
                .unwrap_or_else(|| self.current.clone()),
        ]
    }
}

impl PartialEq for BlindIndex {
    fn eq(&self, other: &Self) -> bool {
        self.generation == other.generation && self.current == other.current
    }
}

impl Eq for BlindIndex {}

impl fmt::Debug for BlindIndex {
    /// The generation only: an index is pseudonymous personal data and stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlindIndex(generation {}, ••••)", self.generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first() -> IndexGeneration {
        IndexGeneration {
            generation: 1,
            phone: SecretKey {
                version: 1,
                bytes: [1; 32],
            },
            email: SecretKey {
                version: 1,
                bytes: [2; 32],
            },
            subject: SecretKey {
                version: 1,
                bytes: [3; 32],
            },
        }
    }

    #[test]
    fn a_stored_index_is_rekeyed_to_what_the_new_generation_computes() {
        let one = IndexKeys::new(first(), &[]);
        let two = IndexKeys::new(first(), &[IndexGeneration::random(2)]);
        let three = IndexKeys::new(
            first(),
            &[two.generations[1].clone(), IndexGeneration::random(3)],
        );
        let number: &[&[u8]] = &[b"+15551234567"];
        let at_one = one.index(IndexKind::Phone, number);
        let at_two = two.index(IndexKind::Phone, number);
        let at_three = three.index(IndexKind::Phone, number);
        assert_eq!(at_one.generation(), 1);
        assert_eq!(at_three.generation(), 3);
        assert_ne!(at_one.current(), at_two.current());
        assert_ne!(at_two.current(), at_three.current());
        // Re-keying the stored value reaches what the new generation computes from the number.
        assert_eq!(
            two.rekey(IndexKind::Phone, at_one.current(), 1).as_deref(),
            Some(at_two.current())
        );
        assert_eq!(
            three
                .rekey(IndexKind::Phone, at_one.current(), 1)
                .as_deref(),
            Some(at_three.current())
        );
        assert_eq!(
            three
                .rekey(IndexKind::Phone, at_two.current(), 2)
                .as_deref(),
            Some(at_three.current())
        );
        assert_eq!(three.rekey(IndexKind::Phone, at_one.current(), 4), None);
        // A look-up during the move matches rows of either generation.
        let [current, previous] = at_two.lookup();
        assert_eq!(current, at_two.current());
        assert_eq!(previous, at_one.current());
        let [a, b] = at_one.lookup();
        assert_eq!(a, b);
        // Each kind has its own key in every generation.
        assert_ne!(
            two.index(IndexKind::Email, number).current(),
            at_two.current()
        );
        assert_ne!(
            two.rekey(IndexKind::Email, at_one.current(), 1).as_deref(),
            Some(at_two.current())
        );
        // Generation 1 is HMAC of the parts joined by NUL, as it always was.
        let mut mac = hmac(&first().subject);
        mac.update(b"https://issuer");
        mac.update(&[0]);
        mac.update(b"sub");
        assert_eq!(
            one.index(IndexKind::Subject, &[b"https://issuer", b"sub"])
                .current(),
            mac.finalize().into_bytes().as_slice()
        );
        assert!(format!("{at_two:?}").contains("generation 2"));
    }
}
