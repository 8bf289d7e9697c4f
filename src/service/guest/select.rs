//! A guest's history as a chat view asks for it: the newest N (`last`), newest first, between
//! sequences or times — picked from the whole history (at most `limits.guest_max_messages`
//! messages, usually already in the hot cache). Plain pages in order go through `read.rs`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{GuestHistory, GuestService, HistoryPage, Source};
use crate::{
    hot::CachedMessage,
    service::{
        ServiceError,
        page::{MAX_PAGE, page_size},
    },
};

/// Which messages of a guest's history, in which order (as `conversations::MessageQuery`, with
/// `sequence` for the index).
#[derive(Clone, Debug, Default)]
pub struct GuestQuery {
    pub limit: Option<u64>,
    /// The previous page's `next_cursor`: the last `sequence` it held.
    pub cursor: Option<i64>,
    /// Only the N most recent (within the other bounds); no further page.
    pub last: Option<u64>,
    pub descending: bool,
    pub before: Option<i64>,
    pub after: Option<i64>,
    /// At or after `since`, before `until` (on each message's `timestamp`).
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl GuestQuery {
    /// A page in sequence order after a cursor: what `history` reads directly.
    fn is_plain(&self) -> bool {
        self.last.is_none()
            && !self.descending
            && self.before.is_none()
            && self.after.is_none()
            && self.since.is_none()
            && self.until.is_none()
    }

    fn keeps(&self, m: &CachedMessage, before: Option<i64>, after: Option<i64>) -> bool {
        let time = || {
            DateTime::parse_from_rfc3339(&m.timestamp)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        };
        before.is_none_or(|b| m.sequence < b)
            && after.is_none_or(|a| m.sequence > a)
            && self.since.is_none_or(|s| time().is_some_and(|t| t >= s))
            && self.until.is_none_or(|u| time().is_some_and(|t| t < u))
    }
}

impl GuestService {
    /// The guest's messages as `query` asks.
    pub async fn read(
        &self,
        guest_id: &str,
        token: Option<&str>,
        query: GuestQuery,
    ) -> Result<GuestHistory, ServiceError> {
        if query.is_plain() {
            let page = HistoryPage {
                after: query.cursor.unwrap_or(0),
                limit: query.limit,
            };
            return self.history(guest_id, token, page).await;
        }
        let limit = page_size(query.last.or(query.limit))? as usize;
        let (conversation_id, all, source) = self.whole_history(guest_id, token).await?;
        let newest_first = query.last.is_some() || query.descending;
        let (mut before, mut after) = (query.before, query.after);
        if let Some(cursor) = query.cursor {
            if newest_first {
                before = Some(before.map_or(cursor, |b| b.min(cursor)));
            } else {
                after = Some(after.map_or(cursor, |a| a.max(cursor)));
            }
        }
        let kept = |m: &&Arc<CachedMessage>| query.keeps(m, before, after);
        let mut picked: Vec<Arc<CachedMessage>> = if newest_first {
            all.iter()
                .rev()
                .filter(kept)
                .take(limit + 1)
                .cloned()
                .collect()
        } else {
            all.iter().filter(kept).take(limit + 1).cloned().collect()
        };
        let more = picked.len() > limit;
        picked.truncate(limit);
        let next_cursor = match query.last {
            Some(_) => None,
            None => more.then(|| picked.last().map(|m| m.sequence)).flatten(),
        };
        if query.last.is_some() && !query.descending {
            picked.reverse();
        }
        Ok(GuestHistory::picked(
            conversation_id,
            picked,
            source,
            next_cursor,
        ))
    }

    /// Every message of the guest's history, in sequence order, and where the first page came
    /// from.
    pub async fn whole_history(
        &self,
        guest_id: &str,
        token: Option<&str>,
    ) -> Result<(Uuid, Vec<Arc<CachedMessage>>, Source), ServiceError> {
        let mut all = Vec::new();
        let mut page = HistoryPage {
            after: 0,
            limit: Some(MAX_PAGE),
        };
        let mut source = None;
        loop {
            let history = self.history(guest_id, token, page).await?;
            source.get_or_insert(history.source);
            all.extend(history.messages().iter().cloned());
            match history.next_cursor {
                Some(next) => page.after = next,
                None => {
                    let source = source.unwrap_or(history.source);
                    return Ok((history.conversation_id, all, source));
                }
            }
        }
    }
}
