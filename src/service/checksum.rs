//! The migration checksum: SHA-256 over a conversation's ordered `"{index}:{md5}\n"` lines. A
//! migration records it, verifies it before commit, and `verify` / `repair` recompute it from the
//! main tables — all through this module.

use entity::messages;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::digest::hex;

/// Checksum over an ordered list of `(index, content md5)`.
pub fn checksum<'a>(hashes: impl IntoIterator<Item = (i64, &'a str)>) -> String {
    let mut sha = Sha256::new();
    for (index, hash) in hashes {
        sha.update(format!("{index}:{hash}\n").as_bytes());
    }
    hex(&sha.finalize())
}

/// How many account messages in `conversation_ids` came from a guest's cache, and their
/// checksum in conversation id, then `message_index` order (one conversation per migration
/// before guests had several: the same order).
pub async fn of_migrated<C: ConnectionTrait>(
    db: &C,
    conversation_ids: Vec<Uuid>,
) -> Result<(i64, String), DbErr> {
    let rows: Vec<(i64, String)> = messages::Entity::find()
        .select_only()
        .column(messages::Column::MessageIndex)
        .column(messages::Column::ContentHash)
        .filter(messages::Column::ConversationId.is_in(conversation_ids))
        .filter(messages::Column::OriginCacheMessageId.is_not_null())
        .order_by_asc(messages::Column::ConversationId)
        .order_by_asc(messages::Column::MessageIndex)
        .into_tuple()
        .all(db)
        .await?;
    let sum = checksum(rows.iter().map(|(i, h)| (*i, h.as_str())));
    Ok((rows.len() as i64, sum))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_depends_on_order_and_content() {
        let a = checksum([(1, "aa"), (2, "bb")]);
        assert_eq!(a, checksum([(1, "aa"), (2, "bb")]));
        assert_ne!(a, checksum([(1, "bb"), (2, "aa")]));
        assert_ne!(a, checksum([(1, "aa")]));
        assert_eq!(a.len(), 64);
    }
}
