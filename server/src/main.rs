//! The `pulse` binary: `pulse` serves, `pulse migrate` migrates, `pulse keygen` prints a root
//! key; `--help` lists every setting and limit, `--version` the version.

use std::process::ExitCode;

use pulse_server::auth::Keys;
use pulse_server::cli::{self, Command};
use pulse_server::config::Settings;
use pulse_server::startup::{open_database, Application};
use pulse_server::telemetry::init_logging;

/// mimalloc instead of the system allocator: tens of thousands of long-lived sockets each hold
/// many small allocations, and glibc's per-thread arenas keep far more resident memory for
/// that pattern. Built with `no_thp` (server/Cargo.toml): with transparent huge pages, 2 MiB
/// pages faulted and zeroed whole doubled the instances' memory under 100k sockets and cost
/// them 37-52% more CPU per socket opened. On a host whose THP setting is `always` rather than
/// `madvise`, also set `MIMALLOC_ALLOW_THP=0`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let command = match cli::parse(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(cli::Usage(message)) => {
            eprintln!("pulse: {message}\n\n{}", Settings::help_text());
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help => print!("{}", Settings::help_text()),
        Command::Version => println!("pulse {}", env!("CARGO_PKG_VERSION")),
        Command::Keygen => println!("{}", Keys::generate_hex()),
        Command::KeygenVapid => println!("{}", pulse_server::push::Push::generate_key()),
        Command::Serve | Command::Migrate => return run(command).await,
    }
    ExitCode::SUCCESS
}

/// Serves or migrates with the settings of the environment.
async fn run(command: Command) -> ExitCode {
    init_logging();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("configuration error: {message}");
            return ExitCode::from(2);
        }
    };
    let outcome = match command {
        Command::Migrate => migrate(&settings).await,
        _ => serve(settings).await,
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
    tracing::info!(
        "starting pulse {}: {}",
        env!("CARGO_PKG_VERSION"),
        settings.summary()
    );
    let app = Application::build(settings).await?;
    let addr = std::net::SocketAddr::new(app.state().settings.addr.ip(), app.port());
    tracing::info!(port = app.port(), "listening on http://{addr}");
    app.run_until_signalled().await?;
    Ok(())
}
