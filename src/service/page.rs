//! One page of a list and the rules for page sizes and cursors, for every list the API serves;
//! and what a message list asks for (`MessageQuery`), read from SQL for accounts and from the
//! whole history for guests, by the same rules.

use chrono::{DateTime, Utc};

use super::{ErrorCode, ServiceError};

pub const DEFAULT_PAGE: u64 = 100;
pub const MAX_PAGE: u64 = 1000;

/// Items and, when more follow, the cursor that fetches the next page.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from up to `limit + 1` rows (one more than asked shows that more follow): the first
    /// `limit`, and then `cursor_of` the last one kept.
    pub fn from_rows(mut rows: Vec<T>, limit: u64, cursor_of: impl Fn(&T) -> String) -> Self {
        let more = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().map(cursor_of)
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }
}

/// `limit` checked against 1..=MAX_PAGE (default DEFAULT_PAGE).
pub fn page_size(limit: Option<u64>) -> Result<u64, ServiceError> {
    match limit.unwrap_or(DEFAULT_PAGE) {
        n @ 1..=MAX_PAGE => Ok(n),
        _ => Err(ServiceError::invalid(
            ErrorCode::InvalidLimit,
            format!("limit must be between 1 and {MAX_PAGE}"),
        )),
    }
}

/// What the cursor of a list ordered by a time and an id looks like: `{micros}-{32 hex digits}`
/// (microseconds since 1970, then the id). Every string of that shape is a cursor.
pub const TIME_CURSOR_PATTERN: &str = "^[0-9]{1,16}-[0-9a-fA-F]{32}$";

/// The cursor after a row at `at` with `id`, for lists ordered by (time, id).
pub fn time_cursor(at: DateTime<Utc>, id: uuid::Uuid) -> String {
    format!("{}-{}", at.timestamp_micros(), id.simple())
}

/// A `time_cursor` read back; `InvalidCursor` for anything else.
pub fn parse_time_cursor(cursor: &str) -> Result<(DateTime<Utc>, uuid::Uuid), ServiceError> {
    let bad = || ServiceError::invalid(ErrorCode::InvalidCursor, "cursor is not a next_cursor");
    let (at, id) = cursor.split_once('-').ok_or_else(bad)?;
    let digits = (1..=16).contains(&at.len()) && at.bytes().all(|b| b.is_ascii_digit());
    if !digits || id.len() != 32 {
        return Err(bad());
    }
    let at = at
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros);
    Ok((
        at.ok_or_else(bad)?,
        uuid::Uuid::try_parse(id).map_err(|_| bad())?,
    ))
}

/// Which messages a list shows, in which order (account messages by `message_index`, a guest's
/// by `sequence`).
#[derive(Clone, Debug, Default)]
pub struct MessageQuery {
    /// Page size (default 100, at most 1000).
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page: the last index it held.
    pub cursor: Option<i64>,
    /// Only the N most recent messages (within the other bounds), oldest first unless
    /// `descending`; no further page.
    pub last: Option<u64>,
    /// Newest first.
    pub descending: bool,
    /// Only messages before / after these indexes (exclusive).
    pub before_index: Option<i64>,
    pub after_index: Option<i64>,
    /// Only messages written at or after `since` and before `until` (the time a list shows:
    /// the client's timestamp, else when it was stored).
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Also the messages a regeneration replaced (left out by default; account messages only).
    pub include_superseded: bool,
}

/// What a `MessageQuery` comes to: rows to read, their order, and the index bounds (a cursor
/// continues in the list's direction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListShape {
    pub limit: u64,
    pub newest_first: bool,
    pub before: Option<i64>,
    pub after: Option<i64>,
}

impl MessageQuery {
    /// A page in index order after a cursor, nothing else.
    pub fn is_plain(&self) -> bool {
        self.last.is_none()
            && !self.descending
            && self.before_index.is_none()
            && self.after_index.is_none()
            && self.since.is_none()
            && self.until.is_none()
    }

    pub fn shape(&self) -> Result<ListShape, ServiceError> {
        let (limit, newest_first) = match self.last {
            Some(n) => (page_size(Some(n))?, true),
            None => (page_size(self.limit)?, self.descending),
        };
        let (mut before, mut after) = (self.before_index, self.after_index);
        if let Some(cursor) = self.cursor {
            if newest_first {
                before = Some(before.map_or(cursor, |b| b.min(cursor)));
            } else {
                after = Some(after.map_or(cursor, |a| a.max(cursor)));
            }
        }
        Ok(ListShape {
            limit,
            newest_first,
            before,
            after,
        })
    }

    /// The page of up to `limit + 1` rows read in the shape's order: `last` has no next page
    /// and is shown oldest first unless `descending`.
    pub fn page<T>(&self, rows: Vec<T>, limit: u64, index_of: impl Fn(&T) -> i64) -> Page<T> {
        let mut page = Page::from_rows(rows, limit, |m| index_of(m).to_string());
        if self.last.is_some() {
            page.next_cursor = None;
            if !self.descending {
                page.items.reverse();
            }
        }
        page
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_keeps_limit_rows_and_points_past_the_last() {
        let page = Page::from_rows(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!(page.items, vec![1, 2]);
        assert_eq!(page.next_cursor.as_deref(), Some("2"));
        let last = Page::from_rows(vec![1, 2], 2, |n| n.to_string());
        assert_eq!(last.next_cursor, None);
        assert!(page_size(Some(0)).is_err());
        assert!(page_size(Some(MAX_PAGE + 1)).is_err());
    }

    #[test]
    fn a_cursor_continues_in_the_lists_direction() {
        let query = |last, descending, cursor| MessageQuery {
            last,
            descending,
            cursor,
            before_index: Some(9),
            ..Default::default()
        };
        let shape = query(None, true, Some(5)).shape().expect("shape");
        assert_eq!(
            (shape.newest_first, shape.before, shape.after),
            (true, Some(5), None)
        );
        let shape = query(None, false, Some(5)).shape().expect("shape");
        assert_eq!((shape.before, shape.after), (Some(9), Some(5)));
        let last = query(Some(3), false, None);
        assert!(last.shape().expect("shape").newest_first);
        let page = last.page(vec![9, 8, 7, 6], 3, |n| *n);
        assert_eq!((page.items, page.next_cursor), (vec![7, 8, 9], None));
    }
}
