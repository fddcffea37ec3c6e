//! The connection behind shared counters: one Redis (`REDIS_URL`) or a Redis Cluster
//! (`REDIS_CLUSTER_URLS`), behind one type that runs commands and pipelines on either.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::config::{FanOut, Settings};

/// How long connecting, or one command, may take.
const TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub(crate) enum SharedRedis {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl SharedRedis {
    /// Connects to what the settings name; `None` in-process.
    pub(crate) async fn open(settings: &Settings) -> anyhow::Result<Option<SharedRedis>> {
        match settings.fan_out().map_err(anyhow::Error::msg)? {
            FanOut::InProcess => Ok(None),
            FanOut::Redis(url) => {
                let config = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(TIMEOUT))
                    .set_connection_timeout(Some(TIMEOUT));
                let connection = redis::Client::open(url)?
                    .get_connection_manager_with_config(config)
                    .await?;
                Ok(Some(SharedRedis::Single(connection)))
            }
            FanOut::Cluster(urls) => {
                let connection = ClusterClientBuilder::new(urls.iter().map(String::as_str))
                    .connection_timeout(TIMEOUT)
                    .response_timeout(TIMEOUT)
                    .min_retry_wait(10)
                    .max_retry_wait(200)
                    .build()?
                    .get_async_connection()
                    .await?;
                Ok(Some(SharedRedis::Cluster(connection)))
            }
        }
    }
}

impl ConnectionLike for SharedRedis {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            SharedRedis::Single(connection) => connection.req_packed_command(cmd),
            SharedRedis::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            SharedRedis::Single(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            SharedRedis::Cluster(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            SharedRedis::Single(connection) => connection.get_db(),
            SharedRedis::Cluster(connection) => connection.get_db(),
        }
    }
}
