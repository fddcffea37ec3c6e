//! A real `pulse` process on a free loopback port, sharing a store with others; it can be
//! killed (SIGKILL) or stopped (SIGTERM).

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::support::{Store, DEADLINE};

pub struct Instance {
    pub port: u16,
    pub base: String,
    child: Option<Child>,
}

impl Instance {
    pub async fn start(store: &Store) -> Instance {
        Instance::start_logging(store, Stdio::inherit()).await
    }

    /// Starts an instance whose log (stderr, `RUST_LOG=warn`) goes to `log`.
    pub async fn start_logging(store: &Store, log: impl Into<Stdio>) -> Instance {
        Instance::start_with(store, log, &[]).await
    }

    /// Starts an instance with settings of its own (`PULSE_*` variables) besides the store's.
    pub async fn start_with(
        store: &Store,
        log: impl Into<Stdio>,
        settings: &[(&str, &str)],
    ) -> Instance {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_pulse"));
        command
            .env_clear()
            .env("PULSE_ADDR", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", store.database_url.as_deref().unwrap())
            .env("REDIS_URL", store.redis_url.as_deref().unwrap())
            .env("PULSE_REDIS_PREFIX", &store.redis_prefix)
            .env("PULSE_ROOT_KEY", &store.root_key)
            .env("PULSE_DATA_DIR", &store.data_dir)
            .env("PULSE_WORKERS", "2")
            .env("PULSE_DRAIN_MS", "300")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log);
        for limit in [
            "PULSE_RATE_LIKES_PER_MIN",
            "PULSE_RATE_IP_WRITES_PER_MIN",
            "PULSE_RATE_REGISTRATIONS_PER_HOUR",
            "PULSE_RATE_POSTS_PER_MIN",
        ] {
            command.env(limit, "0");
        }
        // As in the in-process tests: the load here is a script's burst, not overload.
        command.env("PULSE_MAX_IN_FLIGHT", "4096");
        command.envs(settings.iter().copied());
        let child = command.spawn().expect("the pulse binary starts");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + DEADLINE * 3;
        loop {
            if let Ok(reply) = http.get(format!("{base}/readyz")).send().await {
                if reply.status().is_success() {
                    break;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "instance on {port} never became ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Instance {
            port,
            base,
            child: Some(child),
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn terminate(&mut self) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
    }

    pub async fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("still running");
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "instance did not exit after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}
