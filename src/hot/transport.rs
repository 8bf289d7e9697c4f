//! How the Redis backend reaches Redis: one server over TCP (`redis://`, `rediss://`), a Redis
//! Cluster (its nodes' URLs; every command and script touches one hash slot), or Upstash's REST
//! API (`https://`). All are redis-rs connections, so the backend's code is the same on each.

use std::{sync::Arc, time::Duration};

use redis::{
    Cmd, Pipeline, RedisError, RedisFuture, Value,
    aio::{ConnectionLike, ConnectionManager},
    cluster::ClusterClient,
    cluster_async::ClusterConnection,
    cluster_routing::{RoutingInfo, SingleNodeRoutingInfo},
};
use tokio::sync::OnceCell;

use super::{HotError, upstash::UpstashRest};

#[derive(Clone)]
pub enum Transport {
    Tcp(ConnectionManager),
    Cluster(LazyCluster),
    Rest(UpstashRest),
}

/// A cluster connection made on first use (start-up never waits for Redis), and again after a
/// failed first attempt.
#[derive(Clone)]
pub struct LazyCluster {
    client: Arc<ClusterClient>,
    conn: Arc<OnceCell<ClusterConnection>>,
}

impl LazyCluster {
    pub fn new(nodes: &[String], timeout: Duration) -> Result<Self, HotError> {
        let client = ClusterClient::builder(nodes.to_vec())
            .connection_timeout(timeout.max(Duration::from_millis(500)))
            .response_timeout(timeout)
            .retries(1)
            .build()
            .map_err(|e| HotError(format!("Redis Cluster client: {e}")))?;
        Ok(Self {
            client: Arc::new(client),
            conn: Arc::new(OnceCell::new()),
        })
    }

    async fn get(&self) -> Result<ClusterConnection, RedisError> {
        let conn = self
            .conn
            .get_or_try_init(|| self.client.get_async_connection())
            .await?;
        Ok(conn.clone())
    }
}

impl Transport {
    /// Deletes every key matching `pattern`: SCAN on the server, or on every primary of a
    /// cluster, each batch found deleted by [`Transport::delete_keys`].
    pub async fn delete_matching(&self, pattern: &str, timeout: Duration) -> Result<(), HotError> {
        match self {
            Transport::Cluster(cluster) => {
                let mut conn = bounded(timeout, cluster.get()).await?;
                for (host, port) in primaries(&mut conn, timeout).await? {
                    let node =
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
                    let mut cursor = 0u64;
                    loop {
                        let answer = bounded(
                            timeout,
                            conn.route_command(scan(cursor, pattern), node.clone()),
                        )
                        .await?;
                        let (next, keys): (u64, Vec<String>) = redis::from_redis_value(answer)
                            .map_err(|e| HotError(format!("SCAN answer: {e}")))?;
                        self.delete_keys(&keys, timeout).await?;
                        cursor = next;
                        if cursor == 0 {
                            break;
                        }
                    }
                }
                Ok(())
            }
            single => {
                let mut conn = single.clone();
                let mut cursor = 0u64;
                loop {
                    let (next, keys): (u64, Vec<String>) =
                        bounded(timeout, scan(cursor, pattern).query_async(&mut conn)).await?;
                    self.delete_keys(&keys, timeout).await?;
                    cursor = next;
                    if cursor == 0 {
                        return Ok(());
                    }
                }
            }
        }
    }
}

impl Transport {
    /// Deletes `keys` (one command for a server; one per key on a cluster, where they are in
    /// different slots).
    pub async fn delete_keys(&self, keys: &[String], timeout: Duration) -> Result<(), HotError> {
        let mut conn = self.clone();
        let per_command = if matches!(self, Transport::Cluster(_)) {
            1
        } else {
            500
        };
        for chunk in keys.chunks(per_command) {
            let mut del = redis::cmd("DEL");
            del.arg(chunk);
            bounded(timeout, del.query_async::<()>(&mut conn)).await?;
        }
        Ok(())
    }
}

fn scan(cursor: u64, pattern: &str) -> Cmd {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(1000);
    cmd
}

/// The cluster's primaries, `(host, port)`, from `CLUSTER SLOTS`.
async fn primaries(
    conn: &mut ClusterConnection,
    timeout: Duration,
) -> Result<Vec<(String, u16)>, HotError> {
    let slots: Vec<Value> = bounded(
        timeout,
        redis::cmd("CLUSTER").arg("SLOTS").query_async(conn),
    )
    .await?;
    let mut nodes = Vec::new();
    for range in slots {
        let Value::Array(parts) = range else { continue };
        let Some(Value::Array(primary)) = parts.get(2) else {
            continue;
        };
        let host: Option<String> = primary
            .first()
            .and_then(|v| redis::from_redis_value(v.clone()).ok());
        let port: Option<u16> = primary
            .get(1)
            .and_then(|v| redis::from_redis_value(v.clone()).ok());
        if let (Some(host), Some(port)) = (host, port)
            && !nodes.contains(&(host.clone(), port))
        {
            nodes.push((host, port));
        }
    }
    Ok(nodes)
}

/// Awaits a Redis call for at most `timeout`.
pub async fn bounded<T>(
    timeout: Duration,
    f: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, HotError> {
    match tokio::time::timeout(timeout, f).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(HotError(e.to_string())),
        Err(_) => Err(HotError("Redis timed out".into())),
    }
}

impl ConnectionLike for Transport {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Transport::Tcp(c) => c.req_packed_command(cmd),
            Transport::Rest(c) => c.req_packed_command(cmd),
            Transport::Cluster(c) => Box::pin(async move {
                let mut conn = c.get().await?;
                conn.req_packed_command(cmd).await
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Transport::Tcp(c) => c.req_packed_commands(pipeline, offset, count),
            Transport::Rest(c) => c.req_packed_commands(pipeline, offset, count),
            Transport::Cluster(c) => Box::pin(async move {
                let mut conn = c.get().await?;
                conn.req_packed_commands(pipeline, offset, count).await
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Transport::Tcp(c) => c.get_db(),
            Transport::Rest(c) => c.get_db(),
            Transport::Cluster(_) => 0,
        }
    }
}
