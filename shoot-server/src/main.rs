//! `shoot-server`: reads the configuration, starts the stack, serves until SIGINT/SIGTERM.
//!
//! Exit codes: 0 after a clean shutdown, 2 for invalid configuration, 1 when a backend
//! cannot be opened or the server fails.

use std::process::ExitCode;

use shoot_server::config::{Config, LogFormat, Mode, help_text};
use tracing_subscriber::EnvFilter;

fn init_tracing(config: &Config) {
    let filter = EnvFilter::try_new(&config.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Pretty => builder.init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

fn main() -> ExitCode {
    if std::env::args().skip(1).any(|a| a == "--help" || a == "-h") {
        print!("{}", help_text());
        return ExitCode::SUCCESS;
    }
    if let Some(arg) = std::env::args().nth(1) {
        eprintln!(
            "shoot-server: unexpected argument {arg:?} (configuration is by environment; see --help)"
        );
        return ExitCode::from(2);
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shoot-server: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&config);
    if config.jwt_key().1 && config.mode == Mode::Dev {
        tracing::warn!(
            "USING THE DEVELOPMENT JWT KEY: tokens can be forged by anyone; set SHOOT_JWT_SECRET"
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("shoot-server: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever the backend's error text holds.
            let reason = format!("{e:#}").replace(['\n', '\r'], " ");
            eprintln!("shoot-server: {reason}");
            ExitCode::from(1)
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let listener = shoot_server::listen(config.http_addr)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.http_addr))?;
    tracing::info!(
        instance = %config.instance_id,
        storage = ?config.storage,
        log = ?config.log,
        bus = ?config.bus,
        data_dir = %config.data_dir.display(),
        "starting shoot-server"
    );
    let server = shoot_server::serve(config, listener).await?;
    let token = server.shutdown_token();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested: closing sessions and draining the engine");
        token.cancel();
    });
    server.wait().await?;
    tracing::info!("stopped");
    Ok(())
}
