//! Contacts: people who text us, stored as a blind index and ciphertext only.

use crate::vault::BlindIndex;
use sqlx::{AnyConnection, Row};

/// A contact row about to be inserted: everything already sealed or indexed.
#[derive(Debug)]
pub struct NewContact<'a> {
    pub contact_id: &'a str,
    pub phone_index: &'a BlindIndex,
    pub phone_sealed: &'a [u8],
    pub data_key_wrapped: &'a [u8],
}

/// The fields needed to seal data for an existing contact.
#[derive(Debug)]
pub struct ContactKey {
    pub contact_id: String,
    pub data_key_wrapped: Vec<u8>,
    /// The contact was erased (`crate::subject`): its number must be sealed again under a fresh
    /// data key before it is used (`crate::pipeline::contact_for` does this).
    pub erased: bool,
}

/// The contact with this phone index, if one exists: indexed under the current generation, or
/// the previous one while a re-index moves rows (`crate::keys::index`).
///
/// # Errors
/// Database errors.
pub async fn find(
    conn: &mut AnyConnection,
    phone_index: &BlindIndex,
) -> Result<Option<ContactKey>, sqlx::Error> {
    let [current, previous] = phone_index.lookup();
    sqlx::query(
        "SELECT contact_id, data_key_wrapped, erased_at FROM contact WHERE phone_index IN ($1, $2)",
    )
    .bind(current)
    .bind(previous)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(key_of)
    .transpose()
}

/// Inserts the contact unless one with the same phone index exists, then returns whichever row
/// now holds that index, locked (see [`lock`]). Safe against concurrent first messages from the
/// same number.
///
/// The row is written only if its index is of the database's newest blind-index generation: a
/// process that has not yet learnt of a re-index (`crate::keys::index`) cannot add a row that
/// look-ups under the new generation would miss. `Ok(None)` then: the caller refreshes its index
/// keys (`crate::keys::index::refresh`) and tries again.
///
/// # Errors
/// Database errors.
pub async fn upsert(
    conn: &mut AnyConnection,
    contact: &NewContact<'_>,
) -> Result<Option<ContactKey>, sqlx::Error> {
    sqlx::query(
        "INSERT INTO contact (contact_id, phone_index, phone_sealed, data_key_wrapped, created_at, index_generation) \
         SELECT $1, $2, $3, $4, $5, $6 \
         WHERE $6 = (SELECT COALESCE(MAX(generation), 1) FROM blind_index_generation) \
         ON CONFLICT (phone_index) DO NOTHING",
    )
    .bind(contact.contact_id)
    .bind(contact.phone_index.current().to_vec())
    .bind(contact.phone_sealed.to_vec())
    .bind(contact.data_key_wrapped.to_vec())
    .bind(super::now())
    .bind(i64::from(contact.phone_index.generation()))
    .execute(&mut *conn)
    .await?;
    match find(&mut *conn, contact.phone_index).await? {
        Some(found) => lock(conn, &found.contact_id).await,
        None => Ok(None),
    }
}

fn key_of(row: &sqlx::any::AnyRow) -> Result<ContactKey, sqlx::Error> {
    Ok(ContactKey {
        contact_id: row.try_get(0)?,
        data_key_wrapped: row.try_get(1)?,
        erased: row.try_get::<Option<String>, _>(2)?.is_some(),
    })
}

/// Locks the contact row for the rest of the transaction and returns its key as it is now, or
/// `None` when the contact is gone. The inbound pipeline reads the key this way, and erasure
/// (`crate::subject::erase_contact`) locks the row the same way before it deletes anything: so a
/// message arriving while its number is being erased is either stored before the erasure (which
/// then deletes it) or after it (under a fresh key), never sealed under the destroyed key. (Staff
/// writes go into an existing conversation, which erasure deletes: when one races an erasure, the
/// conversation's foreign key makes one of the two fail, and nothing stays sealed under a
/// destroyed key.) See [`super::lock_row`] for the lock each engine takes.
///
/// # Errors
/// Database errors.
pub async fn lock(
    conn: &mut AnyConnection,
    contact_id: &str,
) -> Result<Option<ContactKey>, sqlx::Error> {
    super::lock_row(conn, "contact", "contact_id", contact_id).await?;
    sqlx::query("SELECT contact_id, data_key_wrapped, erased_at FROM contact WHERE contact_id = $1")
        .bind(contact_id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(key_of)
        .transpose()
}

/// Gives an erased contact its number back, sealed under a fresh data key (`wrapped`), when its
/// number texts again. Returns false when the contact was not erased (another request revived it
/// first).
///
/// # Errors
/// Database errors.
pub async fn revive(
    conn: &mut AnyConnection,
    contact_id: &str,
    phone_sealed: &[u8],
    data_key_wrapped: &[u8],
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE contact SET phone_sealed = $1, data_key_wrapped = $2, erased_at = NULL \
         WHERE contact_id = $3 AND erased_at IS NOT NULL",
    )
    .bind(phone_sealed.to_vec())
    .bind(data_key_wrapped.to_vec())
    .bind(contact_id)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// The contact's wrapped data key, by id.
///
/// # Errors
/// Database errors ([`sqlx::Error::RowNotFound`] for an unknown id).
pub async fn data_key_of(
    conn: &mut AnyConnection,
    contact_id: &str,
) -> Result<Vec<u8>, sqlx::Error> {
    sqlx::query("SELECT data_key_wrapped FROM contact WHERE contact_id = $1")
        .bind(contact_id)
        .fetch_one(conn)
        .await?
        .try_get(0)
}

/// A contact's wrapped data key, or `None` once it has been destroyed (erasure).
#[derive(Debug)]
pub struct WrappedKey {
    pub contact_id: String,
    pub data_key_wrapped: Option<Vec<u8>>,
}

/// Up to `limit` contacts after `after` (by id), with their wrapped data keys: the key jobs walk
/// the table in id order so that they can resume where a committed batch stopped.
///
/// # Errors
/// Database errors.
pub async fn wrapped_keys_after(
    conn: &mut AnyConnection,
    after: &str,
    limit: i64,
) -> Result<Vec<WrappedKey>, sqlx::Error> {
    sqlx::query(
        "SELECT contact_id, data_key_wrapped FROM contact WHERE contact_id > $1 \
         ORDER BY contact_id LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await?
    .iter()
    .map(|row| {
        Ok(WrappedKey {
            contact_id: row.try_get(0)?,
            data_key_wrapped: row.try_get(1)?,
        })
    })
    .collect()
}

/// Replaces a contact's wrapped data key if it is still `old`; returns whether it was replaced
/// (a key erased or re-wrapped meanwhile is left alone).
///
/// # Errors
/// Database errors.
pub async fn replace_wrapped_key(
    conn: &mut AnyConnection,
    contact_id: &str,
    old: &[u8],
    new: &[u8],
) -> Result<bool, sqlx::Error> {
    sqlx::query(
        "UPDATE contact SET data_key_wrapped = $1 WHERE contact_id = $2 AND data_key_wrapped = $3",
    )
    .bind(new.to_vec())
    .bind(contact_id)
    .bind(old.to_vec())
    .execute(conn)
    .await
    .map(|done| done.rows_affected() == 1)
}

/// How many contacts' data keys are wrapped under each master key version (the version is the
/// first four bytes of the wrapped key), and how many contacts have no data key (destroyed: NULL
/// or empty).
///
/// # Errors
/// Database errors.
pub async fn wrapped_key_versions(
    conn: &mut AnyConnection,
) -> Result<(Vec<(Vec<u8>, i64)>, i64), sqlx::Error> {
    let rows = sqlx::query(
        "SELECT substr(data_key_wrapped, 1, 4), count(*) FROM contact \
         WHERE data_key_wrapped IS NOT NULL AND length(data_key_wrapped) > 0 \
         GROUP BY substr(data_key_wrapped, 1, 4)",
    )
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|row| Ok((row.try_get::<Vec<u8>, _>(0)?, row.try_get::<i64, _>(1)?)))
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let destroyed: i64 =
        sqlx::query(
            "SELECT count(*) FROM contact WHERE data_key_wrapped IS NULL OR length(data_key_wrapped) = 0",
        )
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
    Ok((rows, destroyed))
}
