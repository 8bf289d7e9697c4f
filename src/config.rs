//! Settings: embedded `config/default.toml` → the file in `GENESIS_CONFIG` → `GENESIS__SECTION__KEY`
//! environment variables → the seeds' `DATABASE_URL`, `REDIS_URL`, `UPSTASH_REDIS_URL` (and
//! Upstash's other names, `config/hot.rs`) and `REDIS_USE_LOCAL`. Unknown keys and bad values are
//! errors that name the key.

mod embeddings;
mod hot;
mod net;

use std::{fmt, net::SocketAddr, path::PathBuf};

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

pub use embeddings::{EmbeddingSettings, Provider};
pub use hot::{Chosen, HotChoice};
pub use net::Cidr;

/// The defaults, compiled into the binary so it runs with no files beside it.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// The shortest admin token start-up accepts.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// A configuration problem; the message names the key and, where it helps, its environment name.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

/// A value that must never reach logs or `Debug` output.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "[redacted]"
        })
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub upstash: UpstashSettings,
    pub l1: L1Settings,
    pub admin: AdminSettings,
    pub auth: AuthSettings,
    pub limits: LimitSettings,
    pub guest: GuestSettings,
    pub metrics: MetricsSettings,
    pub log: LogSettings,
    pub embeddings: EmbeddingSettings,
    /// The hot cache chosen from the above, and why (decided once, at load).
    #[serde(skip)]
    pub hot_cache: Chosen,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `text` (human-readable; colours only on a terminal) or `json` (one object per line).
    pub format: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub bind: String,
    pub shutdown_grace_secs: u64,
    /// CIDR ranges whose `X-Forwarded-For` / `Forwarded` headers name the client.
    pub trusted_proxies: Vec<String>,
    /// Browser origins allowed to call the API (`https://app.example.com`; `*` for any, for
    /// development). Empty: no CORS headers at all.
    pub cors_origins: Vec<String>,
}

impl ServerSettings {
    /// The parsed `trusted_proxies` (checked at load).
    pub fn trusted_proxies(&self) -> Vec<Cidr> {
        self.trusted_proxies
            .iter()
            .filter_map(|c| Cidr::parse(c))
            .collect()
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: Secret,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
    pub busy_timeout_ms: u64,
    pub statement_timeout_ms: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    pub url: Secret,
    /// A Redis Cluster: some of its nodes' `redis://` URLs (instead of `url`).
    pub cluster_nodes: Vec<Secret>,
    pub use_local: bool,
    pub key_prefix: String,
    pub timeout_ms: u64,
}

/// Upstash: its REST URL (`https://…`) and token, or its TCP endpoint (`rediss://…`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstashSettings {
    pub url: Secret,
    pub token: Secret,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct L1Settings {
    /// `memory`, `redis`, `upstash`, or empty: chosen by which URL is set.
    pub backend: String,
    pub ttl_secs: u64,
    pub capacity_mb: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    pub token: Secret,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub secret: Secret,
    pub token_ttl_secs: u64,
    pub refresh_ttl_secs: u64,
    pub audience: String,
    pub external_algorithm: String,
    pub external_secret: Secret,
    pub external_public_key: String,
    pub external_audience: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    pub guest_sessions_per_ip_per_hour: u32,
    pub guest_messages_per_day: u32,
    pub guest_max_messages: u32,
    pub max_message_bytes: usize,
    /// The largest file `POST /v1/conversations/import` takes, in bytes.
    pub max_import_bytes: usize,
    pub login_attempts_per_ip_per_hour: u32,
    pub login_attempts_per_email_per_hour: u32,
    pub signups_per_ip_per_hour: u32,
    pub admin_failures_per_ip_per_hour: u32,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestSettings {
    /// Seconds an unmigrated guest is kept after its last write or read; wins over
    /// `retention_days` when both are set.
    pub retention_secs: Option<u64>,
    /// The older form of `retention_secs`, still accepted.
    pub retention_days: Option<u32>,
    /// Seconds a guest session that is never written to is kept.
    pub session_ttl_secs: u64,
    /// Seconds between runs of the background cleanup of expired guests.
    pub cleanup_interval_secs: u64,
}

impl GuestSettings {
    /// How long an unmigrated guest is kept after its last access (default 30 days).
    pub fn retention(&self) -> std::time::Duration {
        let secs = match (self.retention_secs, self.retention_days) {
            (Some(secs), _) => secs,
            (None, Some(days)) => u64::from(days) * 86_400,
            (None, None) => 30 * 86_400,
        };
        std::time::Duration::from_secs(secs)
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    pub flush_interval_secs: u64,
    /// When set, `GET /metrics` needs `Authorization: Bearer <token>`.
    pub token: Secret,
}

/// Which database a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

impl Settings {
    /// Loads the layered configuration from the process environment.
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_from(|name| std::env::var(name).ok())
    }

    /// Loads the layered configuration, reading the seeds' variables and `GENESIS_CONFIG` through
    /// `var` (the `GENESIS__…` variables always come from the process environment).
    pub fn load_from(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut builder =
            Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        if let Some(path) = var("GENESIS_CONFIG").filter(|p| !p.is_empty()) {
            if !std::path::Path::new(&path).is_file() {
                return Err(ConfigError(format!(
                    "GENESIS_CONFIG names {path}, which is not a readable file"
                )));
            }
            builder = builder.add_source(File::new(&path, FileFormat::Toml).required(true));
        }
        builder = builder.add_source(
            Environment::with_prefix("GENESIS")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("server.trusted_proxies")
                .with_list_parse_key("server.cors_origins")
                .with_list_parse_key("redis.cluster_nodes"),
        );
        let seeds = std::iter::once(("DATABASE_URL", "database.url")).chain(hot::SEEDS);
        for (name, key) in seeds {
            if let Some(value) = var(name).filter(|v| !v.is_empty()) {
                builder = builder
                    .set_override(key, value)
                    .map_err(|e| ConfigError(format!("{name}: {e}")))?;
            }
        }
        if let Some(value) = var("REDIS_USE_LOCAL").filter(|v| !v.is_empty()) {
            let parsed = parse_bool(&value).ok_or_else(|| {
                ConfigError(format!(
                    "REDIS_USE_LOCAL must be true or false, got {value:?}"
                ))
            })?;
            builder = builder
                .set_override("redis.use_local", parsed)
                .map_err(|e| ConfigError(format!("REDIS_USE_LOCAL: {e}")))?;
        }
        let mut settings: Settings = builder
            .build()
            .and_then(Config::try_deserialize)
            .map_err(|e| ConfigError(describe(&e)))?;
        // The name OpenAI's own SDKs read, when the config sets no key.
        if settings.embeddings.api_key.is_empty()
            && let Some(key) = var("OPENAI_API_KEY").filter(|v| !v.is_empty())
        {
            settings.embeddings.api_key = Secret::new(key);
        }
        settings.validate(&var)?;
        settings.hot_cache = hot::choose(&settings, &var)?;
        Ok(settings)
    }

    fn validate(&self, var: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let named = |seed: &str, key: &str| {
            if var(seed).is_some_and(|v| !v.is_empty()) {
                seed.to_string()
            } else {
                format!("{key} ({})", env_name(key))
            }
        };
        self.bind_addr()?;
        self.embeddings.validate()?;
        if let Some(bad) = self
            .server
            .trusted_proxies
            .iter()
            .find(|c| Cidr::parse(c).is_none())
        {
            return Err(ConfigError(format!(
                "server.trusted_proxies: `{bad}` is not an address or CIDR range (e.g. 10.0.0.0/8)"
            )));
        }
        if let Some(bad) = self
            .server
            .cors_origins
            .iter()
            .find(|o| !crate::config::net::is_origin(o))
        {
            return Err(ConfigError(format!(
                "server.cors_origins: `{bad}` is not an origin (scheme://host[:port], e.g. \
                 https://app.example.com) or `*`"
            )));
        }
        let admin = self.admin.token.expose();
        if !admin.is_empty() && admin.chars().count() < MIN_ADMIN_TOKEN_CHARS {
            return Err(ConfigError(format!(
                "admin.token (GENESIS__ADMIN__TOKEN) must be at least {MIN_ADMIN_TOKEN_CHARS} \
                 characters (it guards every guest's and user's data); it has {}",
                admin.chars().count()
            )));
        }
        if !self.database.url.is_empty() {
            self.database_kind().map_err(|_| {
                ConfigError(format!(
                    "{} has an unsupported scheme; supported: sqlite://path, postgres:// or postgresql://",
                    named("DATABASE_URL", "database.url")
                ))
            })?;
        }
        let positive = [
            (
                "database.max_connections",
                u64::from(self.database.max_connections),
            ),
            ("redis.timeout_ms", self.redis.timeout_ms),
            ("l1.ttl_secs", self.l1.ttl_secs),
            ("l1.capacity_mb", self.l1.capacity_mb),
            (
                "limits.max_message_bytes",
                self.limits.max_message_bytes as u64,
            ),
            (
                "limits.max_import_bytes",
                self.limits.max_import_bytes as u64,
            ),
            ("guest.retention_secs", self.guest.retention().as_secs()),
            ("guest.session_ttl_secs", self.guest.session_ttl_secs),
            (
                "guest.cleanup_interval_secs",
                self.guest.cleanup_interval_secs,
            ),
            (
                "metrics.flush_interval_secs",
                self.metrics.flush_interval_secs,
            ),
        ];
        if !["text", "json"].contains(&self.log.format.as_str()) {
            return Err(ConfigError(format!(
                "log.format ({}) must be text or json, not {:?}",
                env_name("log.format"),
                self.log.format
            )));
        }
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError(format!(
                    "{key} ({}) must be greater than 0",
                    env_name(key)
                )));
            }
        }
        if self.limits.max_message_bytes > 16 * 1024 * 1024 {
            return Err(ConfigError(
                "limits.max_message_bytes (GENESIS__LIMITS__MAX_MESSAGE_BYTES) must be at most 16777216"
                    .into(),
            ));
        }
        let secret = self.auth.secret.expose();
        if !secret.is_empty() && secret.len() < 32 {
            return Err(ConfigError(
                "auth.secret (GENESIS__AUTH__SECRET) must be at least 32 characters".into(),
            ));
        }
        match self.auth.external_algorithm.as_str() {
            "" => {}
            "HS256" if self.auth.external_secret.is_empty() => {
                return Err(ConfigError(
                    "auth.external_algorithm = HS256 needs auth.external_secret (GENESIS__AUTH__EXTERNAL_SECRET)".into(),
                ));
            }
            "RS256" | "ES256" if self.auth.external_public_key.trim().is_empty() => {
                return Err(ConfigError(format!(
                    "auth.external_algorithm = {} needs auth.external_public_key (GENESIS__AUTH__EXTERNAL_PUBLIC_KEY), a PEM public key",
                    self.auth.external_algorithm
                )));
            }
            "HS256" | "RS256" | "ES256" => {}
            other => {
                return Err(ConfigError(format!(
                    "auth.external_algorithm (GENESIS__AUTH__EXTERNAL_ALGORITHM) must be empty, HS256, RS256 or ES256, got {other:?}"
                )));
            }
        }
        Ok(())
    }

    /// The listen address.
    pub fn bind_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server.bind.parse().map_err(|_| {
            ConfigError(format!(
                "server.bind (GENESIS__SERVER__BIND) must be ip:port such as 127.0.0.1:8000, got {:?}",
                self.server.bind
            ))
        })
    }

    /// The database URL to connect to: the configured one, or the SQLite file in the data dir.
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("genesis.db").display()
            )
        } else {
            self.database.url.expose().to_string()
        }
    }

    pub fn database_kind(&self) -> Result<DatabaseKind, ConfigError> {
        let url = self.database_url();
        if url.starts_with("sqlite:") {
            Ok(DatabaseKind::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DatabaseKind::Postgres)
        } else {
            Err(ConfigError("unsupported database URL scheme".into()))
        }
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// `limits.max_message_bytes` → `GENESIS__LIMITS__MAX_MESSAGE_BYTES`.
pub fn env_name(key: &str) -> String {
    format!("GENESIS__{}", key.replace('.', "__").to_ascii_uppercase())
}

fn describe(err: &config::ConfigError) -> String {
    let text = err.to_string();
    // config names keys in dotted form; add the environment spelling so either can be found.
    match text.split('`').nth(1) {
        Some(key) if text.contains("for key") && key.contains('.') || key_is_top(key) => {
            format!("{text} (environment: {})", env_name(key))
        }
        _ => text,
    }
}

fn key_is_top(key: &str) -> bool {
    key == "data_dir"
}

#[cfg(test)]
mod tests;
