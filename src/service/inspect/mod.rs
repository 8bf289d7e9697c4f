//! Looking inside: row counts of every table (`GET /v1/admin/stats`) and where one guest's data
//! is right now, layer by layer (`GET /v1/admin/guests/{guest_id}/layers`) — the answer to "why is
//! this table empty?" for one guest.

use chrono::{DateTime, Utc};
use entity::{
    cache_content_mapping, cache_embeddings, cache_migrations, conversation_cache, message_cache,
    usage_metrics,
};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement,
    sea_query::{Expr, ExprTrait, Query},
};
use uuid::Uuid;

mod guests;

pub use guests::{GuestQuery, GuestState, GuestSummary};

use super::{ServiceError, guest::rules::validate_guest_id};
use crate::{hot::HotCache, store::Store};

/// Every table, in the order `GET /v1/admin/stats` lists them.
pub const TABLES: [&str; 10] = [
    "users",
    "conversations",
    "messages",
    "usage_metrics",
    "conversation_cache",
    "message_cache",
    "cache_content_mapping",
    "cache_migrations",
    "cache_metrics",
    "cache_embeddings",
];

/// How many of a guest's newest messages the layer view shows.
const INSPECTED_MESSAGES: u64 = 50;

/// Where one guest's data is.
#[derive(Clone, Debug)]
pub struct GuestLayers {
    pub l1: L1Entry,
    pub l2: Option<L2Entry>,
    pub mapping_rows: u64,
    pub mapping_synced: u64,
    pub embeddings: u64,
    pub usage: Option<usage_metrics::Model>,
    pub migration: Option<cache_migrations::Model>,
    /// The newest messages in the cache tables, of all the guest's conversations, oldest first.
    pub messages: Vec<message_cache::Model>,
}

#[derive(Clone, Debug)]
pub struct L1Entry {
    pub present: bool,
    pub messages: u64,
    /// Seconds left, where the backend can tell.
    pub ttl_secs: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct L2Entry {
    pub conversation_id: Uuid,
    pub messages: u64,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Clone)]
pub struct InspectService {
    store: Store,
    hot: HotCache,
}

impl InspectService {
    pub fn new(store: Store, hot: HotCache) -> Self {
        Self { store, hot }
    }

    /// `(table, rows)` for every table.
    pub async fn table_counts(&self) -> Result<Vec<(&'static str, i64)>, ServiceError> {
        let db = self.store.conn();
        let mut counts = Vec::with_capacity(TABLES.len());
        for table in TABLES {
            let sql = format!("SELECT COUNT(*) FROM {table}");
            let row = db
                .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
                .await?;
            let n = row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?;
            counts.push((table, n.unwrap_or(0)));
        }
        Ok(counts)
    }

    /// Where `guest_id`'s data is in every layer; `GuestNotFound` when no layer knows it.
    pub async fn guest_layers(&self, guest_id: &str) -> Result<GuestLayers, ServiceError> {
        validate_guest_id(guest_id)?;
        let db = self.store.conn();
        let cached = self.hot.guest_messages(guest_id).await.ok().flatten();
        let l1 = L1Entry {
            present: cached.is_some(),
            messages: cached.map_or(0, |list| list.len() as u64),
            ttl_secs: self.hot.ttl_secs(guest_id).await.ok().flatten(),
        };
        let conversation = conversation_cache::Entity::find()
            .filter(conversation_cache::Column::GuestId.eq(guest_id))
            .one(db)
            .await?;
        let migration = cache_migrations::Entity::find()
            .filter(cache_migrations::Column::GuestId.eq(guest_id))
            .order_by_desc(cache_migrations::Column::StartedAt)
            .one(db)
            .await?;
        if conversation.is_none() && migration.is_none() && !l1.present {
            return Err(ServiceError::GuestNotFound);
        }
        let mut layers = GuestLayers {
            l1,
            l2: None,
            mapping_rows: 0,
            mapping_synced: 0,
            embeddings: 0,
            usage: usage_metrics::Entity::find()
                .filter(usage_metrics::Column::UserId.eq(guest_id))
                .one(db)
                .await?,
            migration,
            messages: Vec::new(),
        };
        let Some(conversation) = conversation else {
            return Ok(layers);
        };
        let messages = message_cache::Entity::find()
            .filter(message_cache::Column::ConversationId.eq(conversation.id))
            .count(db)
            .await?;
        let conversations = Query::select()
            .column(conversation_cache::Column::Id)
            .from(conversation_cache::Entity)
            .cond_where(
                Condition::any()
                    .add(Expr::col(conversation_cache::Column::Id).eq(conversation.id))
                    .add(Expr::col(conversation_cache::Column::GuestRoot).eq(guest_id)),
            )
            .to_owned();
        let mut newest = message_cache::Entity::find()
            .filter(message_cache::Column::ConversationId.in_subquery(conversations))
            .order_by_desc(message_cache::Column::CreatedAt)
            .order_by_desc(message_cache::Column::Sequence)
            .limit(INSPECTED_MESSAGES)
            .all(db)
            .await?;
        newest.reverse();
        layers.messages = newest;
        layers.l2 = Some(L2Entry {
            conversation_id: conversation.id,
            messages,
            expires_at: conversation.expires_at,
        });
        let message_ids = || {
            Query::select()
                .column(message_cache::Column::Id)
                .from(message_cache::Entity)
                .and_where(Expr::col(message_cache::Column::ConversationId).eq(conversation.id))
                .to_owned()
        };
        let mapping = || {
            cache_content_mapping::Entity::find()
                .filter(cache_content_mapping::Column::CacheType.eq("message"))
                .filter(cache_content_mapping::Column::CacheId.in_subquery(message_ids()))
        };
        layers.mapping_rows = mapping().count(db).await?;
        layers.mapping_synced = mapping()
            .filter(cache_content_mapping::Column::IsSynced.eq(true))
            .count(db)
            .await?;
        let hashes = Query::select()
            .column(message_cache::Column::MessageHash)
            .from(message_cache::Entity)
            .and_where(Expr::col(message_cache::Column::ConversationId).eq(conversation.id))
            .to_owned();
        layers.embeddings = cache_embeddings::Entity::find()
            .filter(cache_embeddings::Column::ContentHash.in_subquery(hashes))
            .count(db)
            .await?;
        Ok(layers)
    }
}

/// Why `table` may hold no rows yet, in the words the dashboard shows beside a 0. `provider` is
/// the configured embeddings provider; `flush_secs` how often counters are written.
pub fn why_empty(table: &str, provider: &str, flush_secs: u64) -> Option<String> {
    let reason = match table {
        "users" => "nobody has signed up yet".to_string(),
        "conversations" | "messages" => {
            "no account has a conversation yet (a guest's arrives here at sign-up)".to_string()
        }
        "usage_metrics" | "cache_metrics" => {
            format!("counters are kept in memory and written every {flush_secs} s")
        }
        "conversation_cache" | "message_cache" | "cache_content_mapping" => {
            "no guest has chatted yet".to_string()
        }
        "cache_migrations" => "no guest has signed up or logged in yet".to_string(),
        "cache_embeddings" if provider == "none" => {
            "embeddings provider is none (GENESIS__EMBEDDINGS__PROVIDER)".to_string()
        }
        "cache_embeddings" => {
            "vectors are written in the background after each message".to_string()
        }
        _ => return None,
    };
    Some(reason)
}
