//! The command line and start-up configuration, through the real binary.

mod common;

use std::{process::Output, time::Duration};

use common::command;

async fn run(args: &[&str], env: &[(&str, &str)], dir: &std::path::Path) -> Output {
    let mut cmd = command();
    cmd.args(args)
        .env("GENESIS__DATA_DIR", dir)
        .env("GENESIS__SERVER__BIND", "127.0.0.1:0")
        .envs(env.iter().copied());
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("finishes")
        .expect("runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn help_lists_every_command() {
    let dir = tempfile::tempdir().expect("dir");
    let out = run(&["--help"], &[], dir.path()).await;
    assert!(out.status.success());
    let help = text(&out.stdout);
    for word in ["serve", "openapi", "db up", "db status"] {
        assert!(help.contains(word), "help lacks {word}:\n{help}");
    }
    let out = run(&["frobnicate"], &[], dir.path()).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown command"));
}

#[tokio::test]
async fn db_up_then_status_shows_every_migration_applied() {
    let dir = tempfile::tempdir().expect("dir");
    let out = run(&["db", "up"], &[], dir.path()).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&["db", "status"], &[], dir.path()).await;
    let after = text(&out.stdout);
    assert!(after.lines().all(|l| l.starts_with("applied ")), "{after}");
    assert!(after.lines().count() >= 10, "{after}");
    assert!(after.contains("create_message_cache"));
    assert!(dir.path().join("genesis.db").exists());
}

#[tokio::test]
async fn inspecting_commands_refuse_a_database_that_does_not_exist() {
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("no-such-dir");
    for args in [
        &["verify"][..],
        &["db", "status"],
        &["repair"],
        &["cleanup"],
    ] {
        let mut cmd = command();
        cmd.args(args)
            .env("GENESIS__DATA_DIR", &missing)
            .env("GENESIS__SERVER__BIND", "127.0.0.1:0");
        let out = cmd.output().await.expect("runs");
        assert!(!out.status.success(), "{args:?} succeeded on nothing");
        let err = text(&out.stderr);
        assert!(
            err.contains(missing.to_str().expect("utf-8")) && err.contains("does not exist"),
            "{args:?}: {err}"
        );
        assert!(!text(&out.stdout).contains("ok"), "{args:?} printed ok");
        assert!(!missing.exists(), "{args:?} created the data directory");
    }
    // An existing directory without a database: the file is named, nothing is created.
    let out = run(&["verify"], &[], dir.path()).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("genesis.db"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join("genesis.db").exists());
}

#[tokio::test]
async fn a_short_admin_token_or_a_bad_proxy_range_stops_start_up() {
    let err = refused(&[("GENESIS__ADMIN__TOKEN", "too-short")]).await;
    assert!(err.contains("admin.token") && err.contains("32"), "{err}");
    assert!(
        !err.contains("too-short"),
        "the token itself is not printed: {err}"
    );
    let err = refused(&[("GENESIS__SERVER__TRUSTED_PROXIES", "10.0.0.0/40")]).await;
    assert!(
        err.contains("trusted_proxies") && err.contains("10.0.0.0/40"),
        "{err}"
    );
}

async fn refused(env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().expect("dir");
    let out = run(&["serve"], env, dir.path()).await;
    assert!(!out.status.success(), "started with {env:?}");
    assert!(out.stdout.is_empty(), "printed a listen line with {env:?}");
    text(&out.stderr)
}

#[tokio::test]
async fn an_unsupported_database_url_stops_start_up_naming_the_variable() {
    let err = refused(&[("DATABASE_URL", "mysql://x")]).await;
    assert!(err.contains("DATABASE_URL"), "{err}");
    assert!(err.contains("sqlite") && err.contains("postgres"), "{err}");
}

#[tokio::test]
async fn a_bad_value_stops_start_up_naming_the_key() {
    let err = refused(&[("GENESIS__LIMITS__MAX_MESSAGE_BYTES", "lots")]).await;
    assert!(err.contains("max_message_bytes"), "{err}");
    let err = refused(&[("GENESIS__SERVER__BIND", "nowhere")]).await;
    assert!(err.contains("GENESIS__SERVER__BIND"), "{err}");
    let err = refused(&[("GENESIS__LIMITS__MAX_MESSAGE_BYTES", "0")]).await;
    assert!(err.contains("GENESIS__LIMITS__MAX_MESSAGE_BYTES"), "{err}");
    let err = refused(&[("REDIS_USE_LOCAL", "maybe")]).await;
    assert!(err.contains("REDIS_USE_LOCAL"), "{err}");
}

#[tokio::test]
async fn an_unknown_key_stops_start_up_naming_it() {
    let err = refused(&[("GENESIS__SERVER__PORTT", "1")]).await;
    assert!(err.contains("portt"), "{err}");
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("genesis.toml");
    std::fs::write(&file, "[limits]\nmax_mesage_bytes = 10\n").expect("write");
    let err = refused(&[("GENESIS_CONFIG", file.to_str().expect("utf-8"))]).await;
    assert!(err.contains("max_mesage_bytes"), "{err}");
}

#[tokio::test]
async fn a_config_file_and_variables_override_the_defaults() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("genesis.toml");
    std::fs::write(&file, "[limits]\nmax_message_bytes = 10\n").expect("write");
    let app = common::spawn_app_with(&[("GENESIS_CONFIG", file.to_str().expect("utf-8"))]).await;
    let (guest, token) = app.new_guest().await;
    let (status, _) = app
        .post_message(
            &guest,
            Some(&token),
            serde_json::json!({"role":"user","content":"0123456789"}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED);
    let (status, _) = app
        .post_message(
            &guest,
            Some(&token),
            serde_json::json!({"role":"user","content":"0123456789a"}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::PAYLOAD_TOO_LARGE);

    let app = common::spawn_app_with(&[
        ("GENESIS_CONFIG", file.to_str().expect("utf-8")),
        ("GENESIS__LIMITS__MAX_MESSAGE_BYTES", "20"),
    ])
    .await;
    let (guest, token) = app.new_guest().await;
    let (status, _) = app
        .post_message(
            &guest,
            Some(&token),
            serde_json::json!({"role":"user","content":"0123456789a"}),
        )
        .await;
    assert_eq!(
        status,
        reqwest::StatusCode::CREATED,
        "the variable beats the file"
    );
}
