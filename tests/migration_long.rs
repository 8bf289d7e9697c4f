//! A guest with a long history moves whole: its messages are copied in several multi-row
//! statements (200 rows each), sent to the database together with the conversation row and the
//! ledger update; every one arrives, in order, with its ledger row synced.

mod common;

use common::spawn_app_with;
use reqwest::StatusCode;

const MESSAGES: usize = 450;

#[tokio::test]
async fn a_guest_of_450_messages_moves_whole_and_in_order() {
    let app = spawn_app_with(&[("GENESIS__LIMITS__GUEST_MESSAGES_PER_DAY", "0")]).await;
    let (guest, guest_token) = app.new_guest().await;
    for i in 0..MESSAGES {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        app.say(&guest, &guest_token, role, &format!("m{i}")).await;
    }
    let (_, user) = app.signup("long@example.com").await;
    let (status, report) = app.migrate(&guest, &user, &guest_token).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["messages_migrated"], MESSAGES, "{report}");

    let (status, list) = app
        .authed(reqwest::Method::GET, "/v1/conversations", &user, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(
        list["conversations"][0]["message_count"], MESSAGES,
        "{list}"
    );
    // Message i of the guest is the account's message_index i + 1, with its content.
    let in_place = app
        .count("SELECT COUNT(*) FROM messages WHERE content = 'm' || (message_index - 1)")
        .await;
    assert_eq!(in_place, MESSAGES as i64);
    let synced = app
        .count("SELECT COUNT(*) FROM cache_content_mapping WHERE is_synced = TRUE AND main_id IS NOT NULL")
        .await;
    assert_eq!(synced, MESSAGES as i64);

    let out = app.cli(&["verify"]).await;
    assert!(
        out.status.success(),
        "genesis verify: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}
