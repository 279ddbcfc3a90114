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
}

/// The contact with this phone index, if one exists.
///
/// # Errors
/// Database errors.
pub async fn find(
    conn: &mut AnyConnection,
    phone_index: &[u8],
) -> Result<Option<ContactKey>, sqlx::Error> {
    sqlx::query("SELECT contact_id, data_key_wrapped FROM contact WHERE phone_index = $1")
        .bind(phone_index.to_vec())
        .fetch_optional(conn)
        .await?
        .map(|row| {
            Ok(ContactKey {
                contact_id: row.try_get(0)?,
                data_key_wrapped: row.try_get(1)?,
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
    let row =
        sqlx::query("SELECT contact_id, data_key_wrapped FROM contact WHERE phone_index = $1")
            .bind(contact.phone_index.to_vec())
            .fetch_one(&mut *conn)
            .await?;
    Ok(ContactKey {
        contact_id: row.try_get(0)?,
        data_key_wrapped: row.try_get(1)?,
    })
}
