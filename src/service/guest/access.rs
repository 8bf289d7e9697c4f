//! Who may use a guest id: its token must be the one issued for the guest's current
//! conversation. A token is bound to the conversation's salt ([`GuestTokens`]), so erasing the
//! guest ends it and a re-claimed id gets new ones. Each guest's key (conversation id, salt,
//! migration) is kept in memory for a while so that a read served from the hot cache needs no SQL;
//! a key found stale (the conversation changed under it) is read again, and every write checks
//! the conversation id once more inside its transaction. With several instances on one Redis, a
//! change on one (erase, migration, a new conversation) is announced to all (`hot::changes`);
//! kept keys are trusted only while this instance hears those announcements, and are read again
//! after 10 s while SQL answers.

use std::time::Duration;

use entity::conversation_cache;
use uuid::Uuid;

use super::sql;
use crate::{
    hot::HotCache,
    service::{ServiceError, tokens::GuestTokens},
    store::Store,
};

/// How long a guest's key is kept in memory before it is read again.
const KEY_TTL: Duration = Duration::from_secs(600);
/// With a shared hot cache, a kept key older than this is read again from SQL when SQL answers
/// (how stale a key can get if an announcement is lost); while SQL is down it still serves, so
/// a cached guest stays readable from L1.
const RECHECK_SHARED: Duration = Duration::from_secs(10);
const KEYS_CACHED: u64 = 100_000;

/// What a token is checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct GuestKey {
    pub conversation_id: Uuid,
    salt: Option<String>,
    /// The account conversation this guest moved into, if migrated.
    pub migrated_to: Option<Uuid>,
    /// The guest's newest conversation, when it started more than one.
    pub latest: Option<Uuid>,
}

impl From<&conversation_cache::Model> for GuestKey {
    fn from(row: &conversation_cache::Model) -> Self {
        Self {
            conversation_id: row.id,
            salt: row.token_salt.clone(),
            migrated_to: row.main_conversation_id,
            latest: row.latest_conversation_id,
        }
    }
}

/// Issues and checks guest tokens against each guest's current conversation.
#[derive(Clone)]
pub(super) struct Access {
    tokens: GuestTokens,
    store: Store,
    hot: HotCache,
    keys: moka::sync::Cache<String, Kept>,
    /// `RECHECK_SHARED` with a shared hot cache; none in process.
    recheck: Option<Duration>,
}

/// A key and when it was read.
#[derive(Clone)]
struct Kept {
    key: GuestKey,
    at: std::time::Instant,
}

impl Kept {
    fn new(key: GuestKey) -> Self {
        Self {
            key,
            at: std::time::Instant::now(),
        }
    }
}

impl Access {
    pub fn new(tokens: GuestTokens, store: Store, hot: HotCache) -> Self {
        let recheck = hot.shared().then_some(RECHECK_SHARED);
        Self {
            tokens,
            store,
            hot,
            keys: moka::sync::Cache::builder()
                .max_capacity(KEYS_CACHED)
                .time_to_live(KEY_TTL)
                .build(),
            recheck,
        }
    }

    /// Follows the other instances' key changes (with Redis), forgetting what they change.
    pub fn follow_changes(&self) -> Option<tokio::task::JoinHandle<()>> {
        let keys = self.keys.clone();
        self.hot.follow_key_changes(std::sync::Arc::new(
            move |guest: Option<&str>| match guest {
                Some(guest) => keys.invalidate(guest),
                None => keys.invalidate_all(),
            },
        ))
    }

    /// The key kept for `guest_id`, when kept keys can be trusted, and whether it is due to be
    /// read again.
    fn kept(&self, guest_id: &str) -> Option<(GuestKey, bool)> {
        if !self.hot.keys_trustworthy() {
            return None;
        }
        let kept = self.keys.get(guest_id)?;
        let due = self.recheck.is_some_and(|every| kept.at.elapsed() >= every);
        Some((kept.key, due))
    }

    /// The token for the guest whose conversation has `salt`.
    pub fn issue(&self, guest_id: &str, salt: Option<&str>) -> String {
        self.tokens.issue(guest_id, salt)
    }

    /// True when `token` opens `row` (the guest's conversation as just read).
    pub fn opens(&self, guest_id: &str, row: &conversation_cache::Model, token: &str) -> bool {
        self.tokens
            .verify(guest_id, row.token_salt.as_deref(), token)
    }

    /// Keeps the key of a conversation just read, claimed or created.
    pub fn remember(&self, guest_id: &str, row: &conversation_cache::Model) {
        self.keys
            .insert(guest_id.to_string(), Kept::new(GuestKey::from(row)));
    }

    /// Keeps the key of a conversation a write just claimed.
    pub fn remember_claim(&self, guest_id: &str, conversation_id: Uuid, salt: Option<String>) {
        let key = GuestKey {
            conversation_id,
            salt,
            migrated_to: None,
            latest: None,
        };
        self.keys.insert(guest_id.to_string(), Kept::new(key));
    }

    /// Forgets the key of a guest that was erased, migrated or started a conversation, here and
    /// (announced) on every other instance.
    pub async fn forget(&self, guest_id: &str) {
        self.keys.invalidate(guest_id);
        self.hot.announce_key_change(guest_id).await;
    }

    /// Forgets a key found not to fit SQL here (the others read SQL for themselves).
    pub fn forget_here(&self, guest_id: &str) {
        self.keys.invalidate(guest_id);
    }

    /// The guest's key, read from SQL (and kept).
    async fn load(&self, guest_id: &str) -> Result<Option<GuestKey>, ServiceError> {
        self.store.check_available()?;
        let row = sql::find_conversation(self.store.conn(), guest_id).await?;
        Ok(row.map(|row| {
            let key = GuestKey::from(&row);
            self.keys
                .insert(guest_id.to_string(), Kept::new(key.clone()));
            key
        }))
    }

    /// The guest's key when `token` opens it. No token: 404 `guest_not_found` for an id nobody
    /// holds, else 401 `guest_token_required`. A token whose guest is gone (erased, expired):
    /// 404 `guest_not_found`; one that does not open the guest there is: 401
    /// `guest_token_invalid`.
    pub async fn check(
        &self,
        guest_id: &str,
        token: Option<&str>,
    ) -> Result<GuestKey, ServiceError> {
        let Some(token) = token else {
            let known = match self.kept(guest_id) {
                Some((key, _)) => Some(key),
                None => self.load(guest_id).await?,
            };
            return Err(match known {
                Some(_) => ServiceError::GuestTokenRequired,
                None => ServiceError::GuestNotFound,
            });
        };
        if !GuestTokens::well_formed(token) {
            return Err(ServiceError::GuestTokenInvalid);
        }
        let opens = |key: &GuestKey| self.tokens.verify(guest_id, key.salt.as_deref(), token);
        let kept = self.kept(guest_id).filter(|(key, _)| opens(key));
        if let Some((key, false)) = kept {
            return Ok(key);
        }
        // Not known here, due to be read again, or the key kept here does not fit: ask SQL
        // before refusing. A key due again still serves while SQL is down.
        let loaded = match (self.load(guest_id).await, kept) {
            (Err(ServiceError::Unavailable(_)), Some((key, _))) => return Ok(key),
            (loaded, _) => loaded?,
        };
        match loaded {
            Some(key) if opens(&key) => Ok(key),
            Some(_) => Err(ServiceError::GuestTokenInvalid),
            None => Err(ServiceError::GuestNotFound),
        }
    }
}
