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
    assert!(s.redis_url().is_none());
    assert_eq!(s.limits.max_message_bytes, 65536);
    assert_eq!(s.limits.guest_sessions_per_ip_per_hour, 60);
}

#[test]
fn mysql_database_url_names_the_variable_and_the_supported_schemes() {
    let err = load(&[("DATABASE_URL", "mysql://x")]).expect_err("must fail");
    assert!(err.0.contains("DATABASE_URL"), "{}", err.0);
    assert!(err.0.contains("postgres://"), "{}", err.0);
}

#[test]
fn redis_selection_follows_the_seed_variables() {
    let s = load(&[("REDIS_URL", "redis://127.0.0.1:6379")]).expect("load");
    assert_eq!(s.redis_url(), Some("redis://127.0.0.1:6379"));
    let s = load(&[
        ("REDIS_URL", "redis://127.0.0.1:6379"),
        ("REDIS_USE_LOCAL", "true"),
    ])
    .expect("load");
    assert_eq!(s.redis_url(), None);
    let err = load(&[("UPSTASH_REDIS_URL", "https://x.upstash.io")]).expect_err("https");
    assert!(err.0.contains("UPSTASH_REDIS_URL"), "{}", err.0);
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
