//! Telling the other instances that a guest's key changed. Each instance keeps guests' keys
//! (conversation, salt, newest conversation) in memory; with several instances on one Redis, an
//! erase, a migration or a new conversation on one must reach the others at once. Redis pub/sub
//! carries the guest id on `{prefix}keys`; every instance follows it and forgets that key. Pub/sub
//! can drop a message while a connection is down, so keys are trusted only while the follower
//! is subscribed, and every (re)subscription forgets all of them.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures_util::StreamExt;
use redis::Client;
use tracing::{debug, info, warn};

/// What a follower does with a change: forget one guest's key, or (None) all of them.
pub type OnChange = Arc<dyn Fn(Option<&str>) + Send + Sync>;

const RETRY: Duration = Duration::from_millis(500);

/// The channel of one key prefix.
#[derive(Clone)]
pub struct KeyChanges {
    /// Where to subscribe, tried in turn (a cluster's nodes: a PUBLISH reaches every node).
    clients: Arc<[Client]>,
    channel: String,
    /// True while this instance is subscribed (it hears every change).
    live: Arc<AtomicBool>,
}

impl KeyChanges {
    pub fn new(clients: Vec<Client>, prefix: &str) -> Self {
        Self {
            clients: clients.into(),
            channel: format!("{prefix}keys"),
            live: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Whether keys kept in memory can be trusted: this instance hears every change.
    pub fn live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Follows the channel until the task is dropped, reconnecting after a loss.
    pub fn follow(&self, on_change: OnChange, timeout: Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut announced_loss = false;
            let mut attempt = 0usize;
            loop {
                attempt = attempt.wrapping_add(1);
                match this.subscribe(attempt, timeout).await {
                    Ok(pubsub) => {
                        // Whatever changed while nobody listened: forget everything once.
                        on_change(None);
                        this.live.store(true, Ordering::Release);
                        if announced_loss {
                            info!(channel = %this.channel, "key changes: following again");
                        }
                        announced_loss = false;
                        let mut messages = pubsub.into_on_message();
                        while let Some(msg) = messages.next().await {
                            match msg.get_payload::<String>() {
                                Ok(guest) => on_change(Some(&guest)),
                                Err(_) => on_change(None),
                            }
                        }
                        this.live.store(false, Ordering::Release);
                        on_change(None);
                    }
                    Err(e) => debug!(error = %e, "key changes: cannot subscribe yet"),
                }
                if !announced_loss {
                    warn!(
                        channel = %this.channel,
                        "key changes: not following; guests' keys are read from SQL until it is"
                    );
                    announced_loss = true;
                }
                tokio::time::sleep(RETRY).await;
            }
        })
    }

    async fn subscribe(
        &self,
        attempt: usize,
        timeout: Duration,
    ) -> Result<redis::aio::PubSub, String> {
        let Some(client) = self.clients.get(attempt % self.clients.len().max(1)) else {
            return Err("no node to subscribe to".into());
        };
        let connect = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&self.channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(timeout.max(Duration::from_millis(500)), connect).await {
            Ok(Ok(pubsub)) => Ok(pubsub),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".into()),
        }
    }
}
