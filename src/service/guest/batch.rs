//! Guest appends merged by the group-commit writer (SQLite and PostgreSQL): every append waiting
//! in a batch goes to one [`append_many`] call, which stores them with a handful of statements
//! instead of three or four each. Same rules as the one-at-a-time path ([`super::single::append_in`]), from
//! [`super::rules`].

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use entity::{cache_content_mapping, conversation_cache, message_cache};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QueryTrait, UpdateMany,
    sea_query::{CaseStatement, Expr, ExprTrait},
};
use uuid::Uuid;

use super::{
    NewMessage, Stored, rules,
    single::append_in,
    sql::{mapping_row, message_row, moved_expiry, new_conversation, retry_probe, to_cached},
};
use crate::{
    service::{ServiceError, clock::now},
    store::{Backend, BoxFuture, Decided, Merge, Write},
};

/// The merged kind of guest appends.
pub struct GuestAppends {
    pub(super) retention: Duration,
    pub(super) limits: rules::GuestLimits,
    pub(super) backend: Backend,
}

/// One guest append waiting for the writer.
pub struct AppendItem {
    pub(super) guest_id: String,
    /// The conversation the request's token was verified for (none: it may only claim the id).
    pub(super) holder: Option<Uuid>,
    pub(super) msg: NewMessage,
}

impl Merge for GuestAppends {
    type Item = AppendItem;
    type Output = Stored;
    type Error = ServiceError;

    fn together<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        items: &'a [AppendItem],
    ) -> BoxFuture<'a, Decided<Stored, ServiceError>> {
        Box::pin(append_many(txn, items, self))
    }

    /// Writes to migrated guests, further conversations, and all after a failed merge.
    fn alone<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        item: AppendItem,
    ) -> BoxFuture<'a, Result<Write<Stored>, ServiceError>> {
        Box::pin(append_in(txn, item.guest_id, item.holder, item.msg, self))
    }
}

/// A guest conversation as a merged batch changes it.
struct Batched {
    /// The row with this batch's changes applied.
    row: conversation_cache::Model,
    /// Claimed in this batch: inserted rather than updated.
    is_new: bool,
    /// This batch stored messages in it.
    written: bool,
    /// This batch gave it its title.
    titled: bool,
}

impl Batched {
    fn new(row: conversation_cache::Model, is_new: bool) -> Self {
        Self {
            row,
            is_new,
            written: false,
            titled: false,
        }
    }
}

/// Stores the items: one query for the conversations, one for what the items could repeat, one
/// multi-row `INSERT` for conversations claimed here, one `UPDATE` for every other counter, and
/// one multi-row `INSERT` each for the messages and their ledger rows. Rows read here cannot
/// change underneath: on SQLite the writer holds the one write lock, on PostgreSQL they are read
/// `FOR UPDATE`, in guest-id order (the order every batch locks them in). Two claims of one new
/// id race on its unique index: the loser's merge fails and its items go one by one. Returns
/// `(index, result)` for the items it decided; writes to migrated guests are left to
/// [`append_in`].
async fn append_many(
    txn: &DatabaseTransaction,
    items: &[AppendItem],
    rules: &GuestAppends,
) -> Decided<Stored, ServiceError> {
    let (retention, limits) = (rules.retention, rules.limits);
    let now = now();
    let mut guest_ids: Vec<&str> = items.iter().map(|i| i.guest_id.as_str()).collect();
    guest_ids.sort_unstable();
    guest_ids.dedup();
    if guest_ids.is_empty() {
        return Ok(Vec::new());
    }
    let held = conversation_cache::Entity::find()
        .filter(conversation_cache::Column::GuestId.is_in(guest_ids))
        .order_by_asc(conversation_cache::Column::GuestId);
    let mut guests: HashMap<String, Batched> = rules
        .backend
        .lock_rows(held)
        .all(txn)
        .await?
        .into_iter()
        .map(|row| (row.guest_id.clone(), Batched::new(row, false)))
        .collect();
    let probes: Vec<Condition> = items
        .iter()
        .filter(|i| i.holder.is_some())
        .filter_map(|i| retry_probe(guests.get(&i.guest_id)?.row.id, &i.msg))
        .collect();
    let mut earlier = if probes.is_empty() {
        Vec::new()
    } else {
        let any = probes.into_iter().fold(Condition::any(), Condition::add);
        message_cache::Entity::find().filter(any).all(txn).await?
    };
    let mut done = Vec::with_capacity(items.len());
    let mut rows = Vec::with_capacity(items.len());
    let mut ledger = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if super::threads::guest_of_key(&item.guest_id).is_some() {
            continue; // a guest's further conversation: its quota is the guest's (one at a time)
        }
        let held = guests.get(&item.guest_id).map(|g| g.row.id);
        if rules::check_write_access(held, item.holder).is_err() {
            // Refused, unless it repeats the claiming write: the one-at-a-time path decides.
            continue;
        }
        let guest = guests.entry(item.guest_id.clone()).or_insert_with(|| {
            // Nobody holds this id: this write claims it, as the one-at-a-time path would.
            let expires_at = rules::expiry(now, retention);
            Batched::new(
                new_conversation(&item.guest_id, now, expires_at, 0, None),
                true,
            )
        });
        if guest.row.main_conversation_id.is_some() {
            continue; // read-only: the one-at-a-time path gives the answer (409)
        }
        let mine = earlier.iter().filter(|m| m.conversation_id == guest.row.id);
        match rules::repeated(mine, &item.msg) {
            Some(Ok(original)) => {
                let stored = Stored {
                    message: to_cached(original),
                    claimed: false,
                    duplicate: true,
                    salt: None,
                };
                done.push((i, Ok(stored)));
                continue;
            }
            Some(Err(err)) => {
                done.push((i, Err(err)));
                continue;
            }
            None => {}
        }
        let day = (guest.row.day_started_at, guest.row.day_messages);
        match rules::count_message(limits, guest.row.message_count, day, now) {
            Ok((started, in_day)) => {
                guest.row.day_started_at = Some(started);
                guest.row.day_messages = in_day;
            }
            Err(err) => {
                done.push((i, Err(err)));
                continue;
            }
        }
        guest.row.message_count += 1;
        guest.written = true;
        if guest.row.title.is_none()
            && let Some(title) = rules::first_title(&item.msg)
        {
            guest.row.title = Some(title);
            guest.titled = true;
        }
        let row = message_row(guest.row.id, guest.row.message_count, item.msg.clone(), now);
        ledger.push(mapping_row(&row, item.guest_id.clone(), now));
        let stored = Stored {
            message: to_cached(&row),
            claimed: held.is_none(),
            duplicate: false,
            salt: held
                .is_none()
                .then(|| guest.row.token_salt.clone())
                .flatten(),
        };
        done.push((i, Ok(stored)));
        if row.idempotency_key.is_some() || row.client_timestamp.is_some() {
            earlier.push(row.clone());
        }
        rows.push(row.into_active_model());
    }
    if rows.is_empty() {
        return Ok(done);
    }
    // Batches are at most the writer's MAX_BATCH items: well under SQLite's variable limit.
    let (new, known): (Vec<&Batched>, Vec<&Batched>) = guests
        .values()
        .filter(|g| g.written)
        .partition(|g| g.is_new);
    let db = txn.get_database_backend();
    let mut statements = Vec::with_capacity(4);
    if !new.is_empty() {
        // Inserted with their final count and title; before their messages (foreign key).
        let claimed = new.iter().map(|g| g.row.clone().into_active_model());
        statements.push(conversation_cache::Entity::insert_many(claimed).build(db));
    }
    if !known.is_empty() {
        statements.push(update_counters(&known, now, retention).build(db));
    }
    statements.push(message_cache::Entity::insert_many(rows).build(db));
    statements.push(cache_content_mapping::Entity::insert_many(ledger).build(db));
    rules.backend.execute_atomically(txn, statements).await?;
    Ok(done)
}

/// The one `UPDATE` for the counters, access times, expiries (moved only when they lag, the same
/// rule as a single append) and first titles of the stored conversations a batch wrote to.
fn update_counters(
    written: &[&Batched],
    now: DateTime<Utc>,
    retention: Duration,
) -> UpdateMany<conversation_cache::Entity> {
    let id = || Expr::col(conversation_cache::Column::Id);
    let counts = written
        .iter()
        .fold(CaseStatement::new(), |case, g| {
            case.case(id().eq(g.row.id), g.row.message_count)
        })
        .finally(Expr::col(conversation_cache::Column::MessageCount));
    let day_messages = written
        .iter()
        .fold(CaseStatement::new(), |case, g| {
            case.case(id().eq(g.row.id), g.row.day_messages)
        })
        .finally(Expr::col(conversation_cache::Column::DayMessages));
    let day_started = written
        .iter()
        .fold(CaseStatement::new(), |case, g| {
            case.case(id().eq(g.row.id), g.row.day_started_at)
        })
        .finally(Expr::col(conversation_cache::Column::DayStartedAt));
    let mut update = conversation_cache::Entity::update_many()
        .col_expr(conversation_cache::Column::MessageCount, counts.into())
        .col_expr(conversation_cache::Column::DayMessages, day_messages.into())
        .col_expr(conversation_cache::Column::DayStartedAt, day_started.into())
        .col_expr(conversation_cache::Column::AccessedAt, Expr::value(now));
    if written
        .iter()
        .any(|g| rules::expiry_is_stale(g.row.expires_at, now, retention))
    {
        update = update.col_expr(
            conversation_cache::Column::ExpiresAt,
            moved_expiry(now, retention),
        );
    }
    let titled: Vec<&&Batched> = written.iter().filter(|g| g.titled).collect();
    if !titled.is_empty() {
        let case = titled
            .into_iter()
            .fold(CaseStatement::new(), |case, g| {
                case.case(id().eq(g.row.id), g.row.title.clone())
            })
            .finally(Expr::col(conversation_cache::Column::Title));
        update = update.col_expr(conversation_cache::Column::Title, case.into());
    }
    update.filter(conversation_cache::Column::Id.is_in(written.iter().map(|g| g.row.id)))
}
