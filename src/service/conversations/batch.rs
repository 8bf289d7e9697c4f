//! Account appends merged by the group-commit writer: the appends waiting in a batch are stored
//! with one read of their conversations (locked on PostgreSQL), one read of the messages those
//! with a retry key (or client timestamp) may repeat, one `UPDATE` of the counters and one
//! multi-row `INSERT` of the messages. An append naming a parent, or needing a recount with the
//! conversation's model, goes one at a time ([`add_message_in`]), as does everything when the
//! merge fails.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{conversations, messages};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QueryTrait, UpdateMany,
    sea_query::{CaseStatement, Expr, ExprTrait},
};
use uuid::Uuid;

use super::{
    NewAccountMessage,
    messages::{add_message_in, message_row, retry_probe},
};
use crate::{
    service::{ServiceError, clock::now, guest::rules, tokenize::Encoding},
    store::{Backend, BoxFuture, Decided, Merge, Write},
};

/// The merged kind of account appends.
pub struct AccountAppends {
    pub(super) backend: Backend,
}

/// One account append waiting for the writer.
pub struct AccountItem {
    pub(super) user_id: Uuid,
    pub(super) conversation_id: Uuid,
    pub(super) msg: NewAccountMessage,
    /// The encoding its tokens were counted with (none: the client gave them).
    pub(super) counted_with: Option<Encoding>,
}

impl Merge for AccountAppends {
    type Item = AccountItem;
    type Output = (messages::Model, bool);
    type Error = ServiceError;

    fn together<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        items: &'a [AccountItem],
    ) -> BoxFuture<'a, Decided<Self::Output, ServiceError>> {
        Box::pin(append_many(txn, self.backend, items))
    }

    fn alone<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        item: AccountItem,
    ) -> BoxFuture<'a, Result<Write<Self::Output>, ServiceError>> {
        Box::pin(add_message_in(
            txn,
            item.user_id,
            item.conversation_id,
            item.msg,
            item.counted_with,
        ))
    }
}

/// True when `item` is its user's and can be stored without finding a parent or counting again.
fn plain(item: &AccountItem, conversation: &conversations::Model) -> bool {
    let msg = &item.msg;
    let recount = item.counted_with.is_some_and(|used| {
        msg.model_used.is_none() && used != Encoding::for_model(conversation.model_used.as_deref())
    });
    conversation.user_id == item.user_id && msg.parent_message_id.is_none() && !recount
}

async fn append_many(
    txn: &DatabaseTransaction,
    backend: Backend,
    items: &[AccountItem],
) -> Decided<(messages::Model, bool), ServiceError> {
    let at = now();
    let mut ids: Vec<Uuid> = items.iter().map(|i| i.conversation_id).collect();
    ids.sort_unstable();
    ids.dedup();
    // Read in id order, the order every batch locks them in.
    let found = conversations::Entity::find()
        .filter(conversations::Column::Id.is_in(ids))
        .filter(conversations::Column::Status.ne("deleted"))
        .order_by_asc(conversations::Column::Id);
    let mut held: HashMap<Uuid, conversations::Model> = backend
        .lock_rows(found)
        .all(txn)
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    // What the items may repeat: asked only for the user's own conversations.
    let probes: Vec<Condition> = items
        .iter()
        .filter(|i| held.get(&i.conversation_id).is_some_and(|c| plain(i, c)))
        .filter_map(|i| retry_probe(i.conversation_id, &i.msg.message))
        .collect();
    let mut earlier = if probes.is_empty() {
        Vec::new()
    } else {
        let any = probes.into_iter().fold(Condition::any(), Condition::add);
        messages::Entity::find().filter(any).all(txn).await?
    };
    let mut written: Vec<Uuid> = Vec::new();
    let mut rows = Vec::new();
    let mut done = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(conversation) = held.get_mut(&item.conversation_id) else {
            continue; // not found (or not live): the one-at-a-time path says so
        };
        if !plain(item, conversation) {
            continue;
        }
        let mine = earlier
            .iter()
            .filter(|m| m.conversation_id == item.conversation_id);
        match rules::repeated(mine, &item.msg.message) {
            Some(Ok(original)) => {
                done.push((i, Ok((original.clone(), true))));
                continue;
            }
            Some(Err(err)) => {
                done.push((i, Err(err)));
                continue;
            }
            None => {}
        }
        let tokens = i64::from(item.msg.message.tokens.unwrap_or(0));
        conversation.message_count += 1;
        conversation.last_index += 1;
        conversation.token_count += tokens;
        conversation.last_message_at = Some(later(conversation.last_message_at, at));
        if !written.contains(&conversation.id) {
            written.push(conversation.id);
        }
        let row = message_row(
            item.user_id,
            conversation.id,
            conversation.last_index,
            item.msg.clone(),
            at,
        );
        done.push((i, Ok((row.clone(), false))));
        if row.idempotency_key.is_some() || row.client_timestamp.is_some() {
            earlier.push(row.clone()); // a retry later in this batch finds it
        }
        rows.push(row.into_active_model());
    }
    if rows.is_empty() {
        return Ok(done);
    }
    let changed: Vec<&conversations::Model> = written.iter().map(|id| &held[id]).collect();
    let db = txn.get_database_backend();
    let statements = vec![
        update_counters(&changed, at).build(db),
        messages::Entity::insert_many(rows).build(db),
    ];
    backend.execute_atomically(txn, statements).await?;
    Ok(done)
}

/// A conversation's last activity after a message written `at`: never backwards, the rule of the
/// one-at-a-time path's `CASE`.
fn later(last: Option<DateTime<Utc>>, at: DateTime<Utc>) -> DateTime<Utc> {
    last.map_or(at, |last| Ord::max(last, at))
}

/// One `UPDATE` setting each written conversation's counters to what the batch made them.
fn update_counters(
    changed: &[&conversations::Model],
    at: DateTime<Utc>,
) -> UpdateMany<conversations::Entity> {
    use conversations::Column;
    type Value = fn(&conversations::Model) -> Expr;
    let counters: [(Column, Value); 4] = [
        (Column::MessageCount, |c| Expr::value(c.message_count)),
        (Column::LastIndex, |c| Expr::value(c.last_index)),
        (Column::TokenCount, |c| Expr::value(c.token_count)),
        (Column::LastMessageAt, |c| Expr::value(c.last_message_at)),
    ];
    let mut update = conversations::Entity::update_many();
    for (column, value) in counters {
        let case = changed
            .iter()
            .fold(CaseStatement::new(), |case, c| {
                case.case(Expr::col(Column::Id).eq(c.id), value(c))
            })
            .finally(Expr::col(column));
        update = update.col_expr(column, case.into());
    }
    update
        .col_expr(Column::UpdatedAt, Expr::value(at))
        .filter(conversations::Column::Id.is_in(changed.iter().map(|c| c.id)))
}
