//! The `pulse` binary: `pulse` serves, `pulse migrate` migrates, `pulse keygen` prints a root key.

use std::process::ExitCode;

use pulse_server::auth::Keys;
use pulse_server::config::Settings;
use pulse_server::startup::{open_database, Application};
use pulse_server::telemetry::init_logging;

/// mimalloc instead of the system allocator: tens of thousands of long-lived sockets each hold
/// many small allocations, and glibc's per-thread arenas keep far more resident memory for
/// that pattern (measured in load-tests/RESULTS.md, "idle sockets"). Built with `no_thp`
/// (server/Cargo.toml): mimalloc otherwise asks for transparent huge pages, and 2 MiB pages
/// faulted and zeroed whole doubled the instances' memory under 100k sockets and cost them
/// 37-52% more CPU per socket opened (RESULTS.md, fix 23). On a host whose THP setting is `always`
/// rather than `madvise`, also set `MIMALLOC_ALLOW_THP=0`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let command = std::env::args().nth(1).unwrap_or_default();
    match command.as_str() {
        "-h" | "--help" | "help" => {
            print!("{}", Settings::help_text());
            return ExitCode::SUCCESS;
        }
        "keygen" => {
            println!("{}", Keys::generate_hex());
            return ExitCode::SUCCESS;
        }
        "" | "serve" | "migrate" => {}
        other => {
            eprintln!("unknown command {other:?}\n\n{}", Settings::help_text());
            return ExitCode::from(2);
        }
    }
    init_logging();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("configuration error: {message}");
            return ExitCode::from(2);
        }
    };
    let outcome = if command == "migrate" {
        migrate(&settings).await
    } else {
        serve(settings).await
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("pulse: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    open_database(settings).await?;
    tracing::info!("migrations applied");
    Ok(())
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    tracing::info!(?settings, "starting");
    let app = Application::build(settings).await?;
    tracing::info!(
        port = app.port(),
        "listening on http://{}",
        app.state().settings.addr.ip().to_string() + ":" + &app.port().to_string()
    );
    app.run_until_signalled().await?;
    Ok(())
}
