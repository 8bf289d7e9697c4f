//! A guest's history as a chat view asks for it (`page::MessageQuery`: the newest N, newest
//! first, between sequences or times) — picked from the whole history (at most
//! `limits.guest_max_messages` messages, usually already in the hot cache) by the same rules as
//! account messages. Plain pages in order go through `read.rs`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{GuestHistory, GuestService, HistoryPage, Source};
use crate::{
    hot::CachedMessage,
    service::{
        ServiceError,
        page::{MAX_PAGE, MessageQuery},
    },
};

/// Whether `m` falls in the query's time window.
fn in_window(query: &MessageQuery, m: &CachedMessage) -> bool {
    if query.since.is_none() && query.until.is_none() {
        return true;
    }
    let Some(t) = DateTime::parse_from_rfc3339(&m.timestamp)
        .ok()
        .map(|t| t.with_timezone(&Utc))
    else {
        return false;
    };
    query.since.is_none_or(|s| t >= s) && query.until.is_none_or(|u| t < u)
}

impl GuestService {
    /// The guest's messages as `query` asks (`before_index` / `after_index` on `sequence`).
    pub async fn read(
        &self,
        guest_id: &str,
        token: Option<&str>,
        conversation: Option<Uuid>,
        query: MessageQuery,
    ) -> Result<GuestHistory, ServiceError> {
        if query.is_plain() {
            let page = HistoryPage {
                after: query.cursor.unwrap_or(0),
                limit: query.limit,
            };
            return self.history(guest_id, token, conversation, page).await;
        }
        let shape = query.shape()?;
        let (conversation_id, all, source) =
            self.whole_history(guest_id, token, conversation).await?;
        let kept = |m: &&Arc<CachedMessage>| {
            shape.before.is_none_or(|b| m.sequence < b)
                && shape.after.is_none_or(|a| m.sequence > a)
                && in_window(&query, m)
        };
        let take = shape.limit as usize + 1;
        let rows: Vec<Arc<CachedMessage>> = if shape.newest_first {
            all.iter().rev().filter(kept).take(take).cloned().collect()
        } else {
            all.iter().filter(kept).take(take).cloned().collect()
        };
        let page = query.page(rows, shape.limit, |m| m.sequence);
        let next_cursor = page.next_cursor.and_then(|c| c.parse().ok());
        Ok(GuestHistory::picked(
            conversation_id,
            page.items,
            source,
            next_cursor,
        ))
    }

    /// Every message of the guest's history, in sequence order, and where it came from: one
    /// read when the hot cache (or a short history read whole) has it all, else page by page.
    pub async fn whole_history(
        &self,
        guest_id: &str,
        token: Option<&str>,
        conversation: Option<Uuid>,
    ) -> Result<(Uuid, Vec<Arc<CachedMessage>>, Source), ServiceError> {
        let mut page = HistoryPage {
            after: 0,
            limit: Some(MAX_PAGE),
        };
        let first = self.history(guest_id, token, conversation, page).await?;
        let (conversation, source) = (first.conversation_id, first.source);
        if let Some(all) = first.whole_history() {
            return Ok((conversation, all.to_vec(), source));
        }
        let mut all = first.messages().to_vec();
        let mut next = first.next_cursor;
        while let Some(after) = next {
            page.after = after;
            // Later pages from the conversation the first one came from.
            let history = self
                .history(guest_id, token, Some(conversation), page)
                .await?;
            all.extend(history.messages().iter().cloned());
            next = history.next_cursor;
        }
        Ok((conversation, all, source))
    }
}
