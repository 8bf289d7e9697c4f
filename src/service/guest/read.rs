//! Reading a guest's history: one page, from the hot cache when it holds the complete list and
//! the token's conversation, else from SQL (then the hot cache is refilled when the history is
//! short enough to be read whole). A read counts as access.

use std::{sync::Arc, time::Instant};

use entity::{conversation_cache, message_cache};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tracing::{instrument, warn};
use uuid::Uuid;

use super::{GuestService, rules, sql, threads::Target};
use crate::{
    hot::{CachedMessage, MessageList, is_complete},
    service::{
        ServiceError,
        cache_metrics::{Layer, Op, Outcome},
        clock::now,
        page::{Page, page_size},
        usage::GUEST_TIER,
    },
    store::Write,
};

/// Where a history was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    L1,
    L2,
}

/// One page of a guest's history.
#[derive(Clone, Debug)]
pub struct GuestHistory {
    pub conversation_id: Uuid,
    /// Shared with the hot cache on an L1 hit: no copy per read; the page is `range` of it.
    messages: MessageList,
    range: std::ops::Range<usize>,
    /// `messages` is the guest's complete history (an L1 hit, or a short history read whole).
    whole: bool,
    pub source: Source,
    /// The `sequence` to pass as `cursor` for the next page, when more follow.
    pub next_cursor: Option<i64>,
}

impl GuestHistory {
    /// The messages of this page, in sequence order.
    pub fn messages(&self) -> &[Arc<CachedMessage>] {
        &self.messages[self.range.clone()]
    }

    /// The guest's complete history, when this read had it (then no further page is needed).
    pub(super) fn whole_history(&self) -> Option<&MessageList> {
        self.whole.then_some(&self.messages)
    }

    /// Messages picked from a history, as they are.
    pub(super) fn picked(
        conversation_id: Uuid,
        picked: Vec<Arc<CachedMessage>>,
        source: Source,
        next_cursor: Option<i64>,
    ) -> Self {
        let len = picked.len();
        Self {
            conversation_id,
            messages: Arc::new(picked),
            range: 0..len,
            whole: false,
            source,
            next_cursor,
        }
    }

    /// The page of `messages` (a complete history, sequences 1..=n) after sequence `after`.
    fn page_of(
        conversation_id: Uuid,
        messages: MessageList,
        after: i64,
        limit: u64,
        source: Source,
    ) -> Self {
        let start = usize::try_from(after).unwrap_or(0).min(messages.len());
        let end = start.saturating_add(limit as usize).min(messages.len());
        let next_cursor = (end < messages.len()).then(|| messages[end - 1].sequence);
        Self {
            conversation_id,
            messages,
            range: start..end,
            whole: true,
            source,
            next_cursor,
        }
    }
}

/// Which page of a guest's history to read: messages after `sequence` `after`, at most `limit`
/// (default and bounds from `service::page`).
#[derive(Clone, Copy, Debug, Default)]
pub struct HistoryPage {
    pub after: i64,
    pub limit: Option<u64>,
}

/// A history longer than this is read from SQL one page at a time (and not put in L1 by a read).
const WHOLE_READ_MAX: i64 = crate::service::page::MAX_PAGE as i64;

impl GuestService {
    /// One page of the guest's history in sequence order: L1 when it holds the complete list,
    /// else SQL (then L1 is refilled). A migrated guest's messages belong to the account: 409.
    #[instrument(skip_all, fields(guest_id = %guest_id))]
    pub async fn history(
        &self,
        guest_id: &str,
        token: Option<&str>,
        conversation: Option<Uuid>,
        page: HistoryPage,
    ) -> Result<GuestHistory, ServiceError> {
        rules::validate_guest_id(guest_id)?;
        let limit = page_size(page.limit)?;
        let key = self.access.check(guest_id, token).await;
        let key = key.inspect_err(|e| self.note(e))?;
        if let Some(conversation_id) = key.migrated_to {
            return Err(ServiceError::GuestMigrated { conversation_id });
        }
        let target = self.target(guest_id, &key, conversation).await?;
        let started = Instant::now();
        let cached = self.hot.guest_messages(&target.key).await;
        // A list of another conversation than the token's is not this token's to read.
        let cached = cached.map(|list| {
            list.filter(|m| is_complete(m) && m[0].conversation_id == target.conversation_id)
        });
        let outcome = match &cached {
            Ok(Some(_)) => Outcome::Hit,
            Ok(None) => Outcome::Miss,
            Err(_) => Outcome::Error,
        };
        self.metrics
            .record(Layer::L1, Op::Read, outcome, started.elapsed());
        match cached {
            Ok(Some(messages)) => {
                self.usage
                    .record(guest_id, GUEST_TIER, |d| d.cache_hits += 1);
                self.record_read(guest_id).await;
                let id = target.conversation_id;
                return Ok(GuestHistory::page_of(
                    id,
                    messages,
                    page.after,
                    limit,
                    Source::L1,
                ));
            }
            Ok(None) => {}
            Err(err) => warn!(error = %err, "hot cache read failed; reading SQL"),
        }
        self.usage
            .record(guest_id, GUEST_TIER, |d| d.cache_misses += 1);
        let started = Instant::now();
        let read = self
            .read_from_sql(guest_id, token, &target, page.after, limit)
            .await;
        self.metrics.timed(Layer::L2, Op::Read, started, &read);
        let (conversation, rows) = read.inspect_err(|e| self.note(e))?;
        self.record_read(guest_id).await;
        let messages: Vec<Arc<CachedMessage>> =
            rows.iter().map(|r| Arc::new(sql::to_cached(r))).collect();
        if conversation.message_count > WHOLE_READ_MAX {
            let page = Page::from_rows(messages, limit, |m| m.sequence.to_string());
            let next_cursor = page.next_cursor.and_then(|c| c.parse().ok());
            let len = page.items.len();
            return Ok(GuestHistory {
                conversation_id: conversation.id,
                messages: Arc::new(page.items),
                range: 0..len,
                whole: false,
                source: Source::L2,
                next_cursor,
            });
        }
        if !messages.is_empty() {
            let started = Instant::now();
            let filled = self.hot.fill_guest(&target.key, &messages).await;
            self.metrics.timed(Layer::L1, Op::Fill, started, &filled);
            if let Err(err) = filled {
                warn!(error = %err, "hot cache refill failed");
            }
        }
        let messages = Arc::new(messages);
        let id = conversation.id;
        Ok(GuestHistory::page_of(
            id,
            messages,
            page.after,
            limit,
            Source::L2,
        ))
    }

    /// A read counts as access: `accessed_at` and the expiry move, at most once per
    /// [`rules::expiry_slack`] per guest, in a write of its own that the read does not wait for.
    async fn record_read(&self, guest_id: &str) {
        if self.recently_read.contains_key(guest_id) {
            return;
        }
        self.recently_read.insert(guest_id.to_string(), ()).await;
        let (store, id, retention) = (self.store.clone(), guest_id.to_string(), self.retention);
        tokio::spawn(async move {
            let touched = store
                .write(move |txn| {
                    Box::pin(async move {
                        sql::touch(txn, &id, now(), retention).await?;
                        Ok::<_, ServiceError>(Write::Commit(()))
                    })
                })
                .await;
            if let Err(err) = touched {
                warn!(error = %err, "could not record a guest read");
            }
        });
    }

    /// The guest's conversation, checked against `token` afresh, and its messages after
    /// `after`: all of them when it is short enough to be read whole (and put in L1), else one
    /// page (`limit` + 1 rows, to tell whether more follow).
    async fn read_from_sql(
        &self,
        guest_id: &str,
        token: Option<&str>,
        target: &Target,
        after: i64,
        limit: u64,
    ) -> Result<(conversation_cache::Model, Vec<message_cache::Model>), ServiceError> {
        self.store.check_available()?;
        let db = self.store.conn();
        let conversation = sql::find_conversation(db, guest_id)
            .await?
            .ok_or(ServiceError::GuestNotFound)?;
        if !token.is_some_and(|t| self.access.opens(guest_id, &conversation, t)) {
            self.access.forget_here(guest_id);
            return Err(ServiceError::GuestTokenInvalid);
        }
        self.access.remember(guest_id, &conversation);
        if let Some(conversation_id) = conversation.main_conversation_id {
            return Err(ServiceError::GuestMigrated { conversation_id });
        }
        let conversation = if target.is_further() {
            let row = conversation_cache::Entity::find_by_id(target.conversation_id)
                .filter(conversation_cache::Column::GuestRoot.eq(guest_id))
                .one(db)
                .await?;
            row.ok_or(ServiceError::ConversationNotFound)?
        } else {
            conversation
        };
        let mut query = message_cache::Entity::find()
            .filter(message_cache::Column::ConversationId.eq(conversation.id))
            .order_by_asc(message_cache::Column::Sequence);
        if conversation.message_count > WHOLE_READ_MAX {
            query = query
                .filter(message_cache::Column::Sequence.gt(after))
                .limit(limit + 1);
        }
        let rows = query.all(db).await?;
        Ok((conversation, rows))
    }
}
