//! Building and running the server: settings → store (migrated) → hot cache → state → routes,
//! bound to a listener, until SIGTERM / Ctrl-C. Background jobs (counter flushes, cleanup of
//! expired guests) run alongside.

use std::{net::IpAddr, sync::Arc, time::Duration};

use poem::{
    Server,
    listener::{Acceptor, Listener, TcpListener},
};
use tracing::{info, warn};

use crate::{
    api,
    config::{HotChoice, Settings},
    embed::Embedder,
    hot::HotCache,
    service::{
        admin::AdminService,
        auth::AuthService,
        cache_metrics::CacheMetrics,
        conversations::ConversationService,
        embeddings::Embeddings,
        erasure::ErasureService,
        guest::{GuestLifetimes, GuestLimits, GuestService},
        import::ImportService,
        inspect::InspectService,
        limits::RateLimiter,
        migration::MigrationService,
        retention::RetentionService,
        search::SearchService,
        tokens::{GuestTokens, load_server_secret},
        usage::UsageCounters,
    },
    state::AppState,
    store::Store,
};

/// Anything that stops start-up.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("server secret: {0}")]
    Secret(std::io::Error),
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Serve(std::io::Error),
    #[error("embeddings: {0}")]
    Embeddings(#[from] crate::embed::EmbedError),
    #[error("{0}")]
    Missing(String),
}

/// Whether `build_state` starts the background work of a serving process (the embedding
/// pipeline); one-shot commands (`genesis cleanup`) do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Serve,
    Command,
}

/// Creates the data directory if it is missing.
pub fn ensure_data_dir(settings: &Settings) -> Result<(), StartupError> {
    std::fs::create_dir_all(&settings.data_dir).map_err(|source| StartupError::DataDir {
        path: settings.data_dir.display().to_string(),
        source,
    })
}

/// For commands that inspect data (`verify`, `repair`, `db status`, `cleanup`): the SQLite file
/// must exist already — opening would create an empty one and report on nothing. (A PostgreSQL
/// database is never created by connecting; a missing one fails with its name.)
pub fn require_existing_database(settings: &Settings) -> Result<(), StartupError> {
    let url = settings.database_url();
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return Ok(());
    };
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path.starts_with(":memory:") {
        return Ok(());
    }
    if std::path::Path::new(path).is_file() {
        return Ok(());
    }
    let dir = std::path::Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty());
    Err(StartupError::Missing(match dir {
        Some(dir) if !dir.is_dir() => format!(
            "the data directory {} does not exist (no database at {path}); check \
             GENESIS__DATA_DIR / DATABASE_URL, or run `genesis db up` to create one",
            dir.display()
        ),
        _ => format!(
            "the database {path} does not exist; check GENESIS__DATA_DIR / DATABASE_URL, or run \
             `genesis db up` to create one"
        ),
    }))
}

/// Connects to SQL and applies every pending migration.
pub async fn open_store(settings: &Settings) -> Result<Store, StartupError> {
    ensure_data_dir(settings)?;
    let store = Store::connect(settings).await?;
    store.migrate_up().await?;
    Ok(store)
}

/// Builds the shared state: migrated store, hot cache, tokens, counters, limiters.
pub async fn build_state(settings: Settings, role: Role) -> Result<AppState, StartupError> {
    let store = open_store(&settings).await?;
    let embeddings = match (role, Embedder::from_settings(&settings.embeddings)?) {
        (Role::Serve, Some(embedder)) => {
            info!(
                provider = settings.embeddings.provider,
                model = embedder.model_id(),
                "embeddings on"
            );
            Embeddings::start(embedder, store.clone(), &settings.embeddings)
        }
        (Role::Serve, None) => {
            warn!(
                "embeddings off (embeddings.provider = none): search and the semantic cache answer 409"
            );
            Embeddings::disabled()
        }
        (Role::Command, _) => Embeddings::disabled(),
    };
    let secret = load_server_secret(&settings).map_err(StartupError::Secret)?;
    let ttl = Duration::from_secs(settings.l1.ttl_secs);
    let timeout = Duration::from_millis(settings.redis.timeout_ms);
    let prefix = &settings.redis.key_prefix;
    let chosen = &settings.hot_cache;
    let hot = match &chosen.choice {
        HotChoice::Redis { url } => HotCache::redis(url.expose(), prefix, timeout, ttl),
        HotChoice::RedisCluster { nodes } => {
            let nodes: Vec<String> = nodes.iter().map(|n| n.expose().to_string()).collect();
            HotCache::redis_cluster(&nodes, prefix, timeout, ttl)
        }
        HotChoice::UpstashRest { url, token } => {
            HotCache::upstash(url.expose(), token.expose(), prefix, timeout, ttl)
        }
        HotChoice::Memory => Ok(HotCache::memory(
            ttl,
            settings.l1.capacity_mb.saturating_mul(1024 * 1024),
        )),
    }
    .map_err(|e| StartupError::Config(crate::config::ConfigError(e.to_string())))?;
    if role == Role::Serve {
        let transport = match chosen.choice {
            HotChoice::Redis { .. } => "Redis over TCP",
            HotChoice::RedisCluster { .. } => "a Redis Cluster",
            HotChoice::UpstashRest { .. } => "Upstash over its REST API",
            HotChoice::Memory => "in-process memory",
        };
        info!(l1 = hot.backend(), chosen_by = %chosen.why, "hot cache: {transport}");
        if matches!(chosen.choice, HotChoice::Memory) {
            warn!(
                "hot cache: in-process memory — right for one instance; several instances \
                 behind a load balancer need Redis (REDIS_URL)"
            );
        }
    }
    hot.start().await;
    let usage = Arc::new(UsageCounters::default());
    let cache_metrics = Arc::new(CacheMetrics::default());
    let guests = GuestService::new(
        store.clone(),
        hot.clone(),
        GuestTokens::new(&secret),
        usage.clone(),
        cache_metrics.clone(),
        settings.limits.max_message_bytes,
        GuestLifetimes {
            retention: settings.guest.retention(),
            session_ttl: Duration::from_secs(settings.guest.session_ttl_secs),
            limits: GuestLimits {
                messages_per_day: settings.limits.guest_messages_per_day,
                max_messages: settings.limits.guest_max_messages,
            },
        },
    )
    .with_embeddings(embeddings.clone());
    let auth = AuthService::new(
        store.clone(),
        &secret,
        &settings.auth,
        settings.limits.login_attempts_per_ip_per_hour,
        settings.limits.login_attempts_per_email_per_hour,
    )
    .map_err(|e| StartupError::Config(crate::config::ConfigError(e)))?;
    let migrations = Arc::new(MigrationService::new(
        store.clone(),
        hot.clone(),
        guests.clone(),
        usage.clone(),
        cache_metrics.clone(),
    ));
    let conversations = ConversationService::new(
        store.clone(),
        usage.clone(),
        cache_metrics.clone(),
        embeddings.clone(),
        settings.limits.max_message_bytes,
    );
    let imports = ImportService::new(
        store.clone(),
        usage.clone(),
        embeddings.clone(),
        settings.limits.max_message_bytes,
    );
    let admin = AdminService::new(store.clone());
    let erasure = ErasureService::new(store.clone(), hot.clone(), guests.clone(), usage.clone());
    let retention = RetentionService::new(
        store.clone(),
        hot.clone(),
        usage.clone(),
        cache_metrics.clone(),
    );
    let inspect = InspectService::new(store.clone(), hot.clone());
    let search = SearchService::new(
        store.clone(),
        embeddings.clone(),
        usage.clone(),
        cache_metrics.clone(),
    );
    let limiter = RateLimiter::<IpAddr>::new(
        settings.limits.guest_sessions_per_ip_per_hour,
        Duration::from_secs(3600),
    );
    let hour = Duration::from_secs(3600);
    let signup_limiter = Arc::new(RateLimiter::new(
        settings.limits.signups_per_ip_per_hour,
        hour,
    ));
    let admin_failures = Arc::new(RateLimiter::new(
        settings.limits.admin_failures_per_ip_per_hour,
        hour,
    ));
    let trusted_proxies = settings.server.trusted_proxies().into();
    Ok(AppState {
        settings: Arc::new(settings),
        store,
        hot,
        guests,
        auth,
        migrations,
        conversations,
        erasure,
        imports,
        admin,
        retention,
        inspect,
        embeddings,
        search,
        live: Default::default(),
        started: std::time::Instant::now(),
        usage,
        cache_metrics,
        guest_session_limiter: Arc::new(limiter),
        signup_limiter,
        admin_failures,
        trusted_proxies,
    })
}

/// Serves until SIGTERM or Ctrl-C, then drains requests and flushes counters.
pub async fn serve(settings: Settings) -> Result<(), StartupError> {
    let addr = settings.bind_addr()?;
    let grace = Duration::from_secs(settings.server.shutdown_grace_secs);
    let flush_every = Duration::from_secs(settings.metrics.flush_interval_secs);
    let state = build_state(settings, Role::Serve).await?;
    // The token counter's tables load off the request path while the listener comes up.
    tokio::task::spawn_blocking(crate::service::tokenize::warm_up);
    let acceptor = TcpListener::bind(addr)
        .into_acceptor()
        .await
        .map_err(|source| StartupError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    let local = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .unwrap_or(addr);
    // The one line on stdout: scripts and tests read the bound port from it.
    println!("genesis listening on http://{local}");
    info!(%local, sql = state.store.backend().name(), l1 = state.hot.backend(), "listening");

    let flusher = tokio::spawn(flush_usage_forever(state.clone(), flush_every));
    let cleaner = tokio::spawn(clean_up_forever(
        state.clone(),
        Duration::from_secs(state.settings.guest.cleanup_interval_secs),
    ));
    let follower = state.guests.follow_key_changes();
    let sampler = (!state.settings.admin.token.expose().is_empty()).then(|| {
        state
            .live
            .spawn(state.store.clone(), state.embeddings.clone())
    });
    let result = Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(api::routes(state.clone()), shutdown_signal(), Some(grace))
        .await;
    flusher.abort();
    cleaner.abort();
    for task in [sampler, follower].into_iter().flatten() {
        task.abort();
    }
    flush_counters(&state).await;
    info!("stopped");
    state.store.close().await;
    result.map_err(StartupError::Serve)
}

async fn flush_usage_forever(state: AppState, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        flush_counters(&state).await;
    }
}

/// Writes the in-memory usage and cache-metric counters; on failure they wait for the next flush.
async fn flush_counters(state: &AppState) {
    if let Err(err) = state.usage.flush(&state.store).await {
        warn!(error = %err, "usage flush failed; counts kept for the next one");
    }
    if let Err(err) = state.cache_metrics.flush(&state.store).await {
        warn!(error = %err, "cache-metric flush failed; counts kept for the next one");
    }
}

/// Deletes expired guests every `every` (the first run one interval after start).
async fn clean_up_forever(state: AppState, every: Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(err) = state.retention.cleanup(false).await {
            warn!(error = %err, "cleanup of expired guests failed; it runs again next interval");
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    info!("shutdown requested; draining");
}
