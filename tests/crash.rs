//! Zero loss under SIGKILL, under load: many clients write unique messages to many guests and
//! account conversations and migrate some guests, retrying as a real client would (same
//! `Idempotency-Key`) until answered; the server is killed with SIGKILL at a random moment and
//! restarted, three times, the load going on. Then every acknowledged write is stored exactly
//! once, sequences and `message_index` are gapless, every migration is whole or absent, and
//! `genesis verify` passes. Prints acknowledged / present / lost.

mod common;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use common::{TestApp, spawn_app_with};
use reqwest::{Client, RequestBuilder, StatusCode};
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use uuid::Uuid;

const WORKERS: usize = 12;
const GUESTS: usize = 24;
const USERS: usize = 3;
const KILLS: usize = 3;

/// What every worker shares: where the server is now, and when to stop.
struct Load {
    base: RwLock<String>,
    stop: AtomicBool,
    client: Client,
    guests: Vec<(String, String)>,
    users: Vec<(String, String)>,
    conversations: Vec<(String, String)>,
    acked: Mutex<Acked>,
}

#[derive(Default)]
struct Acked {
    /// Guest message ids.
    guest: Vec<Uuid>,
    /// Account message ids.
    account: Vec<Uuid>,
    /// Guests whose migration was acknowledged having moved messages.
    migrated: Vec<String>,
    /// Migrations acknowledged with nothing to move (the guest had not written yet).
    migrated_empty: usize,
    /// Guest writes answered otherwise, by status (e.g. 409: the guest had moved).
    refused: HashMap<u16, usize>,
}

impl Load {
    /// Sends the request `build` makes until the server answers (not 5xx) or the load stops.
    async fn send(
        &self,
        build: impl Fn(&Client, &str) -> RequestBuilder,
    ) -> Option<(StatusCode, Value)> {
        for attempt in 0.. {
            if self.stop.load(Ordering::Relaxed) && attempt > 0 {
                return None;
            }
            let base = self.base.read().expect("base").clone();
            match build(&self.client, &base).send().await {
                Ok(resp) if !resp.status().is_server_error() => {
                    let status = resp.status();
                    return Some((status, resp.json().await.unwrap_or(Value::Null)));
                }
                // Down (killed), or 503 while starting: the same request again, as a client would.
                _ => tokio::time::sleep(Duration::from_millis(40)).await,
            }
        }
        None
    }

    async fn worker(self: Arc<Self>, w: usize) {
        let mut n = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            n += 1;
            let key = format!("crash-{w}-{n}");
            let roll: u32 = rand::random_range(0..100);
            if roll < 60 {
                let (guest, token) = &self.guests[rand::random_range(0..self.guests.len())];
                let body = json!({"role": "user", "content": format!("guest message {key}")});
                let answer = self
                    .send(|c, base| {
                        c.post(format!("{base}/v1/guest/chat/{guest}"))
                            .header("X-Guest-Token", token)
                            .header("Idempotency-Key", &key)
                            .json(&body)
                    })
                    .await;
                let mut acked = self.acked.lock().expect("acked");
                match answer {
                    Some((StatusCode::CREATED | StatusCode::OK, ack)) => {
                        let id = ack["message_id"]
                            .as_str()
                            .and_then(|s| s.parse::<Uuid>().ok());
                        acked.guest.extend(id);
                    }
                    Some((status, _)) => *acked.refused.entry(status.as_u16()).or_default() += 1,
                    None => {}
                }
            } else if roll < 92 {
                let (conversation, access) =
                    &self.conversations[rand::random_range(0..self.conversations.len())];
                let body = json!({"role": "user", "content": format!("account message {key}")});
                let answer = self
                    .send(|c, base| {
                        c.post(format!("{base}/v1/conversations/{conversation}/messages"))
                            .bearer_auth(access)
                            .header("Idempotency-Key", &key)
                            .json(&body)
                    })
                    .await;
                if let Some((StatusCode::CREATED | StatusCode::OK, ack)) = answer {
                    let id = ack["id"].as_str().and_then(|s| s.parse::<Uuid>().ok());
                    self.acked.lock().expect("acked").account.extend(id);
                }
            } else {
                // A third of the guests may move into an account; the rest stay guests.
                let (guest, token) = &self.guests[rand::random_range(0..self.guests.len() / 3)];
                let (_, access) = &self.users[rand::random_range(0..self.users.len())];
                let answer = self
                    .send(|c, base| {
                        c.post(format!("{base}/v1/guest/migrate/{guest}"))
                            .bearer_auth(access)
                            .header("X-Guest-Token", token)
                    })
                    .await;
                // A guest that has not written yet has nothing to move: 200, and it stays a
                // guest (taken along by a later migration once it wrote).
                if let Some((StatusCode::OK, report)) = answer {
                    let mut acked = self.acked.lock().expect("acked");
                    if report["messages_migrated"].as_i64().unwrap_or(0) > 0 {
                        acked.migrated.push(guest.clone());
                    } else {
                        acked.migrated_empty += 1;
                    }
                }
            }
        }
    }
}

async fn setup(app: &TestApp) -> Load {
    let mut guests = Vec::new();
    for _ in 0..GUESTS {
        guests.push(app.new_guest().await);
    }
    let (mut users, mut conversations) = (Vec::new(), Vec::new());
    for u in 0..USERS {
        let (user, access) = app.signup(&format!("crash-{u}@example.com")).await;
        for c in 0..2 {
            let (status, conversation) = app
                .authed(
                    reqwest::Method::POST,
                    "/v1/conversations",
                    &access,
                    Some(&json!({"title": format!("chat {u}-{c}")})),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{conversation}");
            let id = conversation["id"].as_str().expect("id").to_string();
            conversations.push((id, access.clone()));
        }
        users.push((user, access));
    }
    Load {
        base: RwLock::new(app.base.clone()),
        stop: AtomicBool::new(false),
        client: Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client"),
        guests,
        users,
        conversations,
        acked: Mutex::new(Acked::default()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_sigkills_under_load_lose_no_acknowledged_write() {
    let mut app = spawn_app_with(&[
        ("GENESIS__LIMITS__GUEST_MESSAGES_PER_DAY", "0"),
        ("RUST_LOG", "warn"),
    ])
    .await;
    let load = Arc::new(setup(&app).await);
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| tokio::spawn(load.clone().worker(w)))
        .collect();
    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(rand::random_range(600..2000))).await;
        app.kill().await;
        tokio::time::sleep(Duration::from_millis(rand::random_range(50..400))).await;
        app.start().await;
        *load.base.write().expect("base") = app.base.clone();
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    load.stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("worker");
    }

    let db = app.db().await;
    let cached = entity::message_cache::Entity::find()
        .all(&db)
        .await
        .expect("message_cache");
    let moved = entity::messages::Entity::find()
        .all(&db)
        .await
        .expect("messages");
    let guests = entity::conversation_cache::Entity::find()
        .all(&db)
        .await
        .expect("conversation_cache");
    let acked = std::mem::take(&mut *load.acked.lock().expect("acked"));

    // Every acknowledged write, exactly once: a guest message in the guest's conversation (and,
    // once migrated, once in the account too: checked below), an account message in its own.
    let times = |ids: &mut dyn Iterator<Item = Uuid>| {
        let mut count: HashMap<Uuid, usize> = HashMap::new();
        ids.for_each(|id| *count.entry(id).or_default() += 1);
        count
    };
    let in_cache = times(&mut cached.iter().map(|m| m.id));
    let in_main = times(&mut moved.iter().map(|m| m.id));
    let acknowledged = acked.guest.len() + acked.account.len();
    let present = acked
        .guest
        .iter()
        .filter(|id| in_cache.get(id) == Some(&1))
        .count()
        + acked
            .account
            .iter()
            .filter(|id| in_main.get(id) == Some(&1))
            .count();
    println!(
        "crash test ({}): {KILLS} SIGKILLs, acknowledged {acknowledged} (guest {}, account {}), \
         present {present}, lost {}, migrations acknowledged {} (and {} of guests with nothing \
         to move yet), guest writes refused {:?}",
        common::backends(),
        acked.guest.len(),
        acked.account.len(),
        acknowledged - present,
        acked.migrated.len(),
        acked.migrated_empty,
        acked.refused
    );
    assert!(
        acked.guest.len() > 50 && acked.account.len() > 20,
        "the load ran"
    );
    assert_eq!(
        present, acknowledged,
        "acknowledged writes lost or stored twice"
    );

    // Guest sequences: 1..=n with n the conversation's count.
    let mut by_conversation: HashMap<Uuid, Vec<i64>> = HashMap::new();
    for m in &cached {
        by_conversation
            .entry(m.conversation_id)
            .or_default()
            .push(m.sequence);
    }
    for guest in &guests {
        let mut seq = by_conversation.remove(&guest.id).unwrap_or_default();
        seq.sort_unstable();
        let expected: Vec<i64> = (1..=guest.message_count).collect();
        assert_eq!(seq, expected, "guest {} sequences", guest.guest_id);
    }
    // Account message_index: 1..=n in every conversation.
    let mut by_account: HashMap<Uuid, Vec<i64>> = HashMap::new();
    for m in &moved {
        by_account
            .entry(m.conversation_id)
            .or_default()
            .push(m.message_index);
    }
    for (conversation, mut indexes) in by_account {
        indexes.sort_unstable();
        let expected: Vec<i64> = (1..=indexes.len() as i64).collect();
        assert_eq!(
            indexes, expected,
            "conversation {conversation} message_index"
        );
    }
    // Every migration whole or absent: a migrated guest's messages are all in its account
    // conversation, once each; an unmigrated guest's are in none.
    let mut origins: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for m in &moved {
        if let Some(origin) = m.origin_cache_message_id {
            origins.entry(origin).or_default().push(m.conversation_id);
        }
    }
    for guest in &guests {
        for m in cached.iter().filter(|m| m.conversation_id == guest.id) {
            let copies = origins.get(&m.id).map(Vec::as_slice).unwrap_or_default();
            match guest.main_conversation_id {
                Some(main) => assert_eq!(copies, [main], "guest {} half migrated", guest.guest_id),
                None => assert!(
                    copies.is_empty(),
                    "guest {} copied unmigrated",
                    guest.guest_id
                ),
            }
        }
    }
    for guest in &acked.migrated {
        let row = guests
            .iter()
            .find(|g| &g.guest_id == guest)
            .expect("guest row");
        assert!(
            row.main_conversation_id.is_some(),
            "acknowledged migration of {guest} absent"
        );
    }
    let out = app.cli(&["verify"]).await;
    assert!(
        out.status.success(),
        "genesis verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
