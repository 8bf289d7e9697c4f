//! `AppState`: everything a request handler may reach, shared by reference.

use std::{net::IpAddr, sync::Arc};

use crate::{
    config::Settings,
    hot::HotCache,
    service::{
        ServiceError,
        admin::AdminService,
        auth::AuthService,
        cache_metrics::CacheMetrics,
        conversations::ConversationService,
        embeddings::Embeddings,
        erasure::ErasureService,
        guest::GuestService,
        import::ImportService,
        inspect::InspectService,
        limits::RateLimiter,
        migration::MigrationService,
        retention::RetentionService,
        search::SearchService,
        usage::{UsageCounters, UsageDelta},
    },
    store::Store,
};

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub hot: HotCache,
    pub guests: GuestService,
    pub auth: AuthService,
    pub migrations: Arc<MigrationService>,
    pub conversations: ConversationService,
    pub erasure: ErasureService,
    pub imports: ImportService,
    pub admin: AdminService,
    pub retention: RetentionService,
    pub inspect: InspectService,
    pub embeddings: Embeddings,
    pub search: SearchService,
    /// The dashboard's live samples (taken while the admin API is on).
    pub live: crate::service::live::Live,
    /// When the server started, for uptime.
    pub started: std::time::Instant,
    pub usage: Arc<UsageCounters>,
    pub cache_metrics: Arc<CacheMetrics>,
    pub guest_session_limiter: Arc<RateLimiter<IpAddr>>,
    pub signup_limiter: Arc<RateLimiter<IpAddr>>,
    /// Wrong admin tokens per client address.
    pub admin_failures: Arc<RateLimiter<IpAddr>>,
    /// `server.trusted_proxies`, parsed.
    pub trusted_proxies: Arc<[crate::config::Cidr]>,
}

impl AppState {
    /// The client's address for rate limits (see `api::client_ip`).
    pub fn client_ip(&self, req: &poem::Request) -> Option<IpAddr> {
        crate::api::client_ip::client_ip(req, &self.trusted_proxies)
    }
}

impl AppState {
    /// Stored usage of a user or guest plus what is still pending in memory.
    pub async fn usage_of(&self, subject: &str) -> Result<UsageDelta, ServiceError> {
        let mut usage = self.usage.pending_for(subject);
        if let Some(row) = self.usage.stored(self.store.conn(), subject).await? {
            usage.requests += row.total_requests;
            usage.cache_hits += row.cache_hits;
            usage.cache_misses += row.cache_misses;
            usage.messages_stored += row.messages_stored;
            usage.tokens += row.tokens_total;
            usage.last_request_at = usage.last_request_at.max(row.last_request_at);
        }
        Ok(usage)
    }
}
