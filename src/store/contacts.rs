//! Contacts: people who text us, stored as a blind index and ciphertext only.

use sqlx::{AnyConnection, Row};

/// A contact row about to be inserted: everything already sealed or indexed.
#[derive(Debug)]
pub struct NewContact<'a> {
    pub contact_id: &'a str,
    pub phone_index: &'a [u8],
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

/// The contact with this phone index, if one exists.
///
/// # Errors
/// Database errors.
pub async fn find(
    conn: &mut AnyConnection,
    phone_index: &[u8],
) -> Result<Option<ContactKey>, sqlx::Error> {
    sqlx::query(
        "SELECT contact_id, data_key_wrapped, erased_at FROM contact WHERE phone_index = $1",
    )
    .bind(phone_index.to_vec())
    .fetch_optional(conn)
    .await?
    .map(|row| {
        Ok(ContactKey {
            contact_id: row.try_get(0)?,
            data_key_wrapped: row.try_get(1)?,
            erased: row.try_get::<Option<String>, _>(2)?.is_some(),
        })
    })
    .transpose()
}

/// Inserts the contact unless one with the same phone index exists, then returns whichever row
/// now holds that index. Safe against concurrent first messages from the same number.
///
/// # Errors
/// Database errors.
pub async fn upsert(
    conn: &mut AnyConnection,
    contact: &NewContact<'_>,
) -> Result<ContactKey, sqlx::Error> {
    sqlx::query(
        "INSERT INTO contact (contact_id, phone_index, phone_sealed, data_key_wrapped, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (phone_index) DO NOTHING",
    )
    .bind(contact.contact_id)
    .bind(contact.phone_index.to_vec())
    .bind(contact.phone_sealed.to_vec())
    .bind(contact.data_key_wrapped.to_vec())
    .bind(super::now())
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query(
        "SELECT contact_id, data_key_wrapped, erased_at FROM contact WHERE phone_index = $1",
    )
    .bind(contact.phone_index.to_vec())
    .fetch_one(&mut *conn)
    .await?;
    Ok(ContactKey {
        contact_id: row.try_get(0)?,
        data_key_wrapped: row.try_get(1)?,
        erased: row.try_get::<Option<String>, _>(2)?.is_some(),
    })
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
