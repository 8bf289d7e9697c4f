//! Which hot cache (L1) serves, and why: the in-process cache, Redis over TCP, or Upstash (its
//! REST API over HTTPS, or its TCP endpoint). `l1.backend` (`GENESIS__L1__BACKEND`) chooses
//! explicitly; otherwise the seeds' variables do, and two of them naming different caches stop
//! start-up instead of one being picked silently.

use super::{ConfigError, Secret, Settings, env_name};

/// The chosen hot cache.
#[derive(Clone, Debug, Default)]
pub enum HotChoice {
    #[default]
    Memory,
    /// `redis://` or `rediss://`.
    Redis { url: Secret },
    /// A Redis Cluster: some of its nodes.
    RedisCluster { nodes: Vec<Secret> },
    /// Upstash's REST API (`https://`, or `http://` for a local stand-in) with its token.
    UpstashRest { url: Secret, token: Secret },
}

/// The choice and the variable that made it, for the start-up line.
#[derive(Clone, Debug, Default)]
pub struct Chosen {
    pub choice: HotChoice,
    pub why: String,
}

/// The seeds' variables for the hot cache: `(variable, config key)`. `UPSTASH_REDIS_URL` goes to
/// `upstash.url` whatever its scheme (an Upstash TCP endpoint is `rediss://`).
pub(super) const SEEDS: [(&str, &str); 5] = [
    ("REDIS_URL", "redis.url"),
    ("UPSTASH_REDIS_URL", "upstash.url"),
    ("UPSTASH_REDIS_REST_URL", "upstash.url"),
    ("UPSTASH_REDIS_TOKEN", "upstash.token"),
    ("UPSTASH_REDIS_REST_TOKEN", "upstash.token"),
];

fn tcp(url: &str) -> bool {
    url.starts_with("redis://") || url.starts_with("rediss://")
}

fn rest(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

/// Decides the hot cache; `var` reads the process environment (to name what chose).
pub(super) fn choose(
    s: &Settings,
    var: &impl Fn(&str) -> Option<String>,
) -> Result<Chosen, ConfigError> {
    let set = |name: &str| var(name).is_some_and(|v| !v.is_empty());
    let name_of = |seeds: &[&str], key: &str| {
        seeds.iter().find(|s| set(s)).map_or_else(
            || format!("{key} ({})", env_name(key)),
            |s| (*s).to_string(),
        )
    };
    let upstash_url = s.upstash.url.expose();
    let cluster = !s.redis.cluster_nodes.is_empty();
    if s.redis.cluster_nodes.iter().any(|n| !tcp(n.expose())) {
        return Err(ConfigError(
            "redis.cluster_nodes (GENESIS__REDIS__CLUSTER_NODES): every node must be a redis:// \
             or rediss:// URL"
                .into(),
        ));
    }
    if cluster && !s.redis.url.is_empty() {
        return Err(ConfigError(format!(
            "both {} and redis.cluster_nodes (GENESIS__REDIS__CLUSTER_NODES) are set: a Redis \
             Cluster is named by its nodes alone; unset one",
            name_of(&["REDIS_URL"], "redis.url")
        )));
    }
    let redis_url = s.redis.url.expose();
    // A Redis is named: by its URL, or a cluster by its nodes.
    let redis_named = cluster || !redis_url.is_empty();
    let redis_name = if cluster {
        "redis.cluster_nodes (GENESIS__REDIS__CLUSTER_NODES)".to_string()
    } else {
        name_of(&["REDIS_URL"], "redis.url")
    };
    let upstash_name = name_of(
        &["UPSTASH_REDIS_URL", "UPSTASH_REDIS_REST_URL"],
        "upstash.url",
    );
    if !redis_url.is_empty() && !tcp(redis_url) {
        return Err(ConfigError(format!(
            "{redis_name} has an unsupported scheme; supported: redis:// or rediss:// (an Upstash \
             https:// REST URL goes in UPSTASH_REDIS_URL with UPSTASH_REDIS_TOKEN)"
        )));
    }
    if !upstash_url.is_empty() && !tcp(upstash_url) && !rest(upstash_url) {
        return Err(ConfigError(format!(
            "{upstash_name} has an unsupported scheme; supported: https:// (the REST API, with \
             UPSTASH_REDIS_TOKEN) or rediss:// (the TCP endpoint)"
        )));
    }
    let redis = || Chosen {
        choice: if cluster {
            HotChoice::RedisCluster {
                nodes: s.redis.cluster_nodes.clone(),
            }
        } else {
            HotChoice::Redis {
                url: s.redis.url.clone(),
            }
        },
        why: String::new(),
    };
    let upstash = || -> Result<Chosen, ConfigError> {
        let choice = if tcp(upstash_url) {
            HotChoice::Redis {
                url: s.upstash.url.clone(),
            }
        } else if s.upstash.token.is_empty() {
            return Err(ConfigError(format!(
                "{upstash_name} is Upstash's REST URL: it needs its token in UPSTASH_REDIS_TOKEN \
                 (or UPSTASH_REDIS_REST_TOKEN, upstash.token)"
            )));
        } else {
            HotChoice::UpstashRest {
                url: s.upstash.url.clone(),
                token: s.upstash.token.clone(),
            }
        };
        Ok(Chosen {
            choice,
            why: String::new(),
        })
    };
    let backend = s.l1.backend.trim();
    let explicit = "GENESIS__L1__BACKEND";
    let mut chosen = match backend {
        "memory" => Chosen {
            choice: HotChoice::Memory,
            why: format!("{explicit}=memory"),
        },
        "redis" if !redis_named => {
            return Err(ConfigError(format!(
                "{explicit}=redis needs a Redis URL: REDIS_URL (or redis.url)"
            )));
        }
        "redis" => Chosen {
            why: format!("{explicit}=redis, {redis_name}"),
            ..redis()
        },
        "upstash" if upstash_url.is_empty() => {
            return Err(ConfigError(format!(
                "{explicit}=upstash needs UPSTASH_REDIS_URL (or upstash.url)"
            )));
        }
        "upstash" => Chosen {
            why: format!("{explicit}=upstash, {upstash_name}"),
            ..upstash()?
        },
        "" if s.redis.use_local => Chosen {
            choice: HotChoice::Memory,
            why: if !redis_named && upstash_url.is_empty() {
                "REDIS_USE_LOCAL=true".into()
            } else {
                "REDIS_USE_LOCAL=true, which Genesis reads as 'no Redis' (the Redis URL set \
                 is not used)"
                    .into()
            },
        },
        "" if redis_named && !upstash_url.is_empty() => {
            return Err(ConfigError(format!(
                "both {redis_name} and {upstash_name} are set: say which hot cache to use with \
                 {explicit}=redis or {explicit}=upstash, or unset one"
            )));
        }
        "" if redis_named => Chosen {
            why: redis_name.clone(),
            ..redis()
        },
        "" if !upstash_url.is_empty() => Chosen {
            why: upstash_name.clone(),
            ..upstash()?
        },
        "" => Chosen {
            choice: HotChoice::Memory,
            why: "no REDIS_URL or UPSTASH_REDIS_URL is set".into(),
        },
        other => {
            return Err(ConfigError(format!(
                "{explicit} (l1.backend) must be memory, redis or upstash, got {other:?}"
            )));
        }
    };
    if chosen.why.is_empty() {
        chosen.why = "the configuration".into();
    }
    Ok(chosen)
}
