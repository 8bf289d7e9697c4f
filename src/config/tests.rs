//! Loading and checking settings: defaults, the seeds' variables, secrets, retention forms.
use super::*;

fn load(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::load_from(move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
}

#[test]
fn defaults_serve_sqlite_and_moka_on_port_8000() {
    let s = load(&[]).expect("defaults load");
    assert_eq!(s.server.bind, "127.0.0.1:8000");
    assert_eq!(s.database_kind().expect("kind"), DatabaseKind::Sqlite);
    assert!(matches!(s.hot_cache.choice, HotChoice::Memory));
    assert_eq!(s.limits.max_message_bytes, 65536);
    assert_eq!(s.limits.guest_sessions_per_ip_per_hour, 60);
}

#[test]
fn mysql_database_url_names_the_variable_and_the_supported_schemes() {
    let err = load(&[("DATABASE_URL", "mysql://x")]).expect_err("must fail");
    assert!(err.0.contains("DATABASE_URL"), "{}", err.0);
    assert!(err.0.contains("postgres://"), "{}", err.0);
}

/// The chosen hot cache as `(kind, url, why)`.
fn hot(env: &[(&str, &str)]) -> Result<(&'static str, String, String), String> {
    let s = load(env).map_err(|e| e.0)?;
    let chosen = s.hot_cache;
    let (kind, url) = match chosen.choice {
        HotChoice::Memory => ("memory", String::new()),
        HotChoice::Redis { url } => ("redis", url.expose().to_string()),
        HotChoice::UpstashRest { url, .. } => ("upstash-rest", url.expose().to_string()),
        HotChoice::RedisCluster { nodes } => (
            "cluster",
            nodes
                .iter()
                .map(|n| n.expose())
                .collect::<Vec<_>>()
                .join(","),
        ),
    };
    Ok((kind, url, chosen.why))
}

#[test]
fn the_hot_cache_is_chosen_by_the_seed_variables_and_says_which() {
    let local = "redis://127.0.0.1:6379";
    let (kind, url, why) = hot(&[("REDIS_URL", local)]).expect("redis");
    assert_eq!(
        (kind, url.as_str(), why.as_str()),
        ("redis", local, "REDIS_URL")
    );
    let (kind, _, why) = hot(&[("REDIS_URL", local), ("REDIS_USE_LOCAL", "true")]).expect("local");
    assert_eq!(kind, "memory");
    assert!(why.contains("REDIS_USE_LOCAL=true"), "{why}");
    let (kind, _, why) = hot(&[]).expect("defaults");
    assert_eq!(kind, "memory");
    assert!(why.contains("no REDIS_URL"), "{why}");

    // Upstash: the REST URL with its token (either pair of names), or the TCP endpoint.
    let rest = "https://eu1-example.upstash.io";
    for (url_name, token_name) in [
        ("UPSTASH_REDIS_URL", "UPSTASH_REDIS_TOKEN"),
        ("UPSTASH_REDIS_REST_URL", "UPSTASH_REDIS_REST_TOKEN"),
    ] {
        let (kind, url, why) = hot(&[(url_name, rest), (token_name, "t0k3n")]).expect("rest");
        assert_eq!(
            (kind, url.as_str(), why.as_str()),
            ("upstash-rest", rest, url_name)
        );
    }
    let err = hot(&[("UPSTASH_REDIS_URL", rest)]).expect_err("no token");
    assert!(err.contains("UPSTASH_REDIS_TOKEN"), "{err}");
    let tcp = "rediss://default:pw@eu1-example.upstash.io:6379";
    let (kind, url, _) = hot(&[("UPSTASH_REDIS_URL", tcp)]).expect("tcp");
    assert_eq!((kind, url.as_str()), ("redis", tcp));
    let err = hot(&[("REDIS_URL", "https://x")]).expect_err("scheme");
    assert!(
        err.contains("REDIS_URL") && err.contains("redis://"),
        "{err}"
    );
}

#[test]
fn two_hot_caches_named_stop_start_up_unless_one_is_chosen() {
    let both = [
        ("REDIS_URL", "redis://127.0.0.1:6379"),
        ("UPSTASH_REDIS_URL", "https://eu1-example.upstash.io"),
        ("UPSTASH_REDIS_TOKEN", "t0k3n"),
    ];
    let err = hot(&both).expect_err("both");
    assert!(
        err.contains("REDIS_URL") && err.contains("UPSTASH_REDIS_URL"),
        "names both: {err}"
    );
    assert!(err.contains("GENESIS__L1__BACKEND"), "{err}");
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let shown = format!("{:?}", Secret::new("hunter2"));
    assert!(!shown.contains("hunter2"));
}

#[test]
fn retention_is_in_seconds_and_the_day_form_is_still_accepted() {
    let defaults = load(&[]).expect("defaults");
    assert_eq!(defaults.guest.retention().as_secs(), 30 * 86_400);
    let dir = tempfile::tempdir().expect("dir");
    let file = |body: &str| {
        let path = dir.path().join(format!("{}.toml", body.len()));
        std::fs::write(&path, body).expect("write");
        path.display().to_string()
    };
    let days = file("[guest]\nretention_days = 2\n");
    let s = load(&[("GENESIS_CONFIG", &days)]).expect("days");
    assert_eq!(s.guest.retention().as_secs(), 2 * 86_400);
    let both = file("[guest]\nretention_days = 2\nretention_secs = 3\n");
    let s = load(&[("GENESIS_CONFIG", &both)]).expect("both");
    assert_eq!(s.guest.retention().as_secs(), 3);
}

#[test]
fn a_redis_cluster_is_named_by_its_nodes_alone() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("cluster.toml");
    std::fs::write(
        &path,
        "[redis]\ncluster_nodes = [\"redis://127.0.0.1:7101\", \"redis://127.0.0.1:7102\"]\n",
    )
    .expect("write");
    let file = path.display().to_string();
    let (kind, nodes, why) = hot(&[("GENESIS_CONFIG", &file)]).expect("cluster");
    assert_eq!(kind, "cluster");
    assert_eq!(nodes, "redis://127.0.0.1:7101,redis://127.0.0.1:7102");
    assert!(why.contains("GENESIS__REDIS__CLUSTER_NODES"), "{why}");
    let err = hot(&[
        ("GENESIS_CONFIG", &file),
        ("REDIS_URL", "redis://127.0.0.1:6379"),
    ])
    .expect_err("both");
    assert!(
        err.contains("REDIS_URL") && err.contains("cluster_nodes"),
        "{err}"
    );
}
