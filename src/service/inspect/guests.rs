//! The guest list of the admin dashboard (`GET /v1/admin/guests`): every guest (its record row in
//! `conversation_cache`, with its further conversations summed in), newest first, searchable by
//! id and by state, a page at a time.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::conversation_cache::{self, Column};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, FromQueryResult, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, Func, LikeExpr},
};
use uuid::Uuid;

use super::InspectService;
use crate::service::{Page, ServiceError, clock::now, page};

/// Where a guest stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestState {
    /// Chatting, or may come back before `expires_at`.
    Active,
    /// Signed up or logged in: the conversation moved into an account.
    Migrated,
    /// Past `expires_at` without migrating; retention deletes it.
    Expired,
}

/// What the list asks for.
#[derive(Clone, Debug, Default)]
pub struct GuestQuery {
    /// A part of the guest id (case-sensitive, as ids are).
    pub q: Option<String>,
    pub state: Option<GuestState>,
    pub limit: u64,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// One guest, its conversations taken together.
#[derive(Clone, Debug)]
pub struct GuestSummary {
    pub guest_id: String,
    /// The guest's first conversation (its record).
    pub conversation_id: Uuid,
    pub conversations: u64,
    pub messages: i64,
    pub created_at: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The user the guest became.
    pub migrated_to: Option<String>,
    pub state: GuestState,
}

#[derive(FromQueryResult)]
struct Further {
    guest_root: Option<String>,
    conversations: i64,
    messages: Option<i64>,
    last: Option<DateTime<Utc>>,
}

const MIGRATED: &str = "authenticated";

impl InspectService {
    /// One page of guests, newest first.
    pub async fn guests(&self, query: GuestQuery) -> Result<Page<GuestSummary>, ServiceError> {
        let db = self.store.conn();
        let at = now();
        let mut find = conversation_cache::Entity::find().filter(Column::GuestRoot.is_null());
        if let Some(q) = query.q.as_deref().filter(|q| !q.is_empty()) {
            let pattern = format!("%{}%", escape_like(q));
            find =
                find.filter(Expr::col(Column::GuestId).like(LikeExpr::new(pattern).escape('\\')));
        }
        find = match query.state {
            None => find,
            Some(GuestState::Migrated) => find.filter(Column::Platform.eq(MIGRATED)),
            Some(GuestState::Expired) => find
                .filter(Column::Platform.ne(MIGRATED))
                .filter(Column::ExpiresAt.lt(at)),
            Some(GuestState::Active) => find.filter(Column::Platform.ne(MIGRATED)).filter(
                Condition::any()
                    .add(Column::ExpiresAt.is_null())
                    .add(Column::ExpiresAt.gte(at)),
            ),
        };
        if let Some(cursor) = &query.cursor {
            let (created, id) = page::parse_time_cursor(cursor)?;
            find = find.filter(
                Condition::any().add(Column::CreatedAt.lt(created)).add(
                    Condition::all()
                        .add(Column::CreatedAt.eq(created))
                        .add(Column::Id.lt(id)),
                ),
            );
        }
        let rows = find
            .order_by_desc(Column::CreatedAt)
            .order_by_desc(Column::Id)
            .limit(query.limit + 1)
            .all(db)
            .await?;
        let page = Page::from_rows(rows, query.limit, |r| page::time_cursor(r.created_at, r.id));
        let roots: Vec<String> = page.items.iter().map(|r| r.guest_id.clone()).collect();
        let further: HashMap<String, Further> = if roots.is_empty() {
            HashMap::new()
        } else {
            conversation_cache::Entity::find()
                .select_only()
                .column(Column::GuestRoot)
                .column_as(Expr::col(Column::Id).count(), "conversations")
                // PostgreSQL's SUM of a bigint is numeric.
                .column_as(
                    Expr::expr(Func::cast_as(
                        Func::sum(Expr::col(Column::MessageCount)),
                        "BIGINT",
                    )),
                    "messages",
                )
                .column_as(Expr::col(Column::AccessedAt).max(), "last")
                .filter(Column::GuestRoot.is_in(roots))
                .group_by(Column::GuestRoot)
                .into_model::<Further>()
                .all(db)
                .await?
                .into_iter()
                .filter_map(|f| f.guest_root.clone().map(|g| (g, f)))
                .collect()
        };
        let items = page
            .items
            .into_iter()
            .map(|row| {
                let mut s = summary(row, at);
                if let Some(f) = further.get(&s.guest_id) {
                    s.conversations += u64::try_from(f.conversations).unwrap_or(0);
                    s.messages += f.messages.unwrap_or(0);
                    if let Some(last) = f.last.filter(|l| *l > s.last_activity_at) {
                        s.last_activity_at = last;
                    }
                }
                s
            })
            .collect();
        Ok(Page {
            items,
            next_cursor: page.next_cursor,
        })
    }
}

fn summary(row: conversation_cache::Model, at: DateTime<Utc>) -> GuestSummary {
    let migrated = row.platform == MIGRATED;
    let state = if migrated {
        GuestState::Migrated
    } else if row.expires_at.is_some_and(|e| e < at) {
        GuestState::Expired
    } else {
        GuestState::Active
    };
    GuestSummary {
        conversation_id: row.id,
        conversations: 1,
        messages: row.message_count,
        created_at: row.created_at,
        last_activity_at: row.accessed_at,
        expires_at: row.expires_at,
        migrated_to: migrated.then(|| row.user_id.clone()),
        guest_id: row.guest_id,
        state,
    }
}

/// `q` as a literal inside a LIKE pattern (escape character `\`).
fn escape_like(q: &str) -> String {
    let mut out = String::with_capacity(q.len());
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
