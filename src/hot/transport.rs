//! How the Redis backend reaches Redis: a TCP connection (`redis://`, `rediss://`) or Upstash's
//! REST API (`https://`). Both are redis-rs connections, so the backend's code is the same.

use redis::{Cmd, Pipeline, RedisFuture, Value, aio::ConnectionLike, aio::ConnectionManager};

use super::upstash::UpstashRest;

#[derive(Clone)]
pub enum Transport {
    Tcp(ConnectionManager),
    Rest(UpstashRest),
}

impl ConnectionLike for Transport {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Transport::Tcp(c) => c.req_packed_command(cmd),
            Transport::Rest(c) => c.req_packed_command(cmd),
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
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Transport::Tcp(c) => c.get_db(),
            Transport::Rest(c) => c.get_db(),
        }
    }
}
