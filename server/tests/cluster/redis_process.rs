//! A private `redis-server` on a free loopback port that a test can kill and restart (the
//! shared one must not be disturbed). `redis-server` must be installed; the test command
//! installs it.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::DEADLINE;

pub struct RedisProcess {
    port: u16,
    child: Option<Child>,
}

impl RedisProcess {
    pub async fn start() -> RedisProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = RedisProcess { port, child: None };
        redis.restart().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and waits until it accepts connections.
    pub async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (the test command installs it)");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Takes `PUBLISH` away from every client (`ACL SETUSER default -publish`), or gives it
    /// back: a publish then fails at once while subscribers stay connected and receiving.
    pub async fn allow_publish(&self, allowed: bool) {
        let mut connection = redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let rule = if allowed { "+publish" } else { "-publish" };
        let () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg("default")
            .arg(rule)
            .query_async(&mut connection)
            .await
            .unwrap();
    }

    /// SIGKILL, and wait until the port is closed.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
