//! `kms-server`: the HYGO KMS binary. Parses arguments and hands off to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kms_server::config::{Config, LogFormat};
use kms_server::root::{RootKey, RootKeyId, write_new_key_file};
use kms_server::store::migrate_postgres;

/// HYGO KMS server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Development mode: SQLite, generated root key, dev credential and dev identity
    /// provider under --dev-dir, loopback only. Never for production.
    #[arg(long)]
    dev: bool,
    /// The dev mode directory (kept across restarts).
    #[arg(long, default_value = ".kms-dev")]
    dev_dir: PathBuf,
    /// Dev mode listen address (loopback).
    #[arg(long, default_value = "127.0.0.1:7650")]
    dev_listen: std::net::SocketAddr,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the KMS with a configuration file (docs/CONFIG.md).
    Serve {
        /// The TOML configuration file.
        #[arg(long, env = "HYGO_KMS_CONFIG")]
        config: PathBuf,
    },
    /// Root key namespace tools.
    #[command(subcommand)]
    RootKey(RootKeyCommand),
    /// Apply the PostgreSQL migrations as the owner role (whoever the URL names), then
    /// grant the runtime role exactly what the server needs (docs/STORAGE.md).
    Migrate {
        /// PostgreSQL URL of the OWNER role.
        #[arg(long, env = "HYGO_KMS_DATABASE_URL", hide_env_values = true)]
        database_url: String,
        /// The runtime role the server connects as (NOSUPERUSER, NOBYPASSRLS).
        #[arg(long)]
        runtime_role: String,
    },
}

#[derive(Debug, Subcommand)]
enum RootKeyCommand {
    /// Generate a root key from the OS CSPRNG into `<dir>/<id>.key` (mode 0600).
    /// Prints the id and the key's check value, never the key.
    Generate {
        /// The key directory (the namespace).
        #[arg(long)]
        dir: PathBuf,
        /// The new key's id: 1..=32 characters of [a-z0-9-].
        #[arg(long)]
        id: String,
    },
}

/// Runs `kms-server migrate` on a small tokio runtime.
fn migrate(database_url: &str, runtime_role: &str) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(migrate_postgres(database_url, runtime_role)) {
        Ok(()) => {
            println!("schema is current; runtime role {runtime_role} granted");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Waits for SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {},
        _ = tokio::signal::ctrl_c() => {},
    }
    tracing::info!("shutdown requested: finishing in-flight calls");
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

async fn serve(config: Config, dev_dir: Option<PathBuf>) -> Result<(), String> {
    let hardening = kms_server::hardening::harden_process().map_err(|e| e.to_string())?;
    tracing::info!(
        memory_locked = hardening.memory_locked,
        "core dumps off, process not dumpable"
    );
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let app = kms_server::server::build(&config)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(dir) = dev_dir {
        kms_server::dev::write_endpoint(&dir, addr).map_err(|e| e.to_string())?;
        let d = dir.display();
        eprintln!(
            "\n\
             ******************************************************************\n\
             *  HYGO KMS DEV MODE: generated keys, no TLS, NOT FOR PRODUCTION  *\n\
             ******************************************************************\n\
             listening on      http://{addr}\n\
             data directory    {d}\n\
             service credential {d}/service-credential (mode 0600)\n\
             try:\n\
             \x20 echo -n shpat_secret | kms-cli --dev={d} wrap --tenant acme --context vendor=shopify > ct.b64\n\
             \x20 kms-cli --dev={d} unwrap --tenant acme --context vendor=shopify --in ct.b64\n\
             \x20 kms-cli --dev={d} tenant-info --tenant acme\n"
        );
    }
    tracing::info!(%addr, "kms-server listening");
    kms_server::server::serve(app, listener, shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}

fn run_async(f: impl std::future::Future<Output = Result<(), String>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(f) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.dev {
        if !cli.dev_listen.ip().is_loopback() {
            eprintln!("error: dev mode listens on loopback only");
            return ExitCode::from(2);
        }
        init_tracing(LogFormat::Text);
        return match kms_server::dev::prepare(&cli.dev_dir, cli.dev_listen) {
            Ok(config) => run_async(serve(config, Some(cli.dev_dir))),
            Err(e) => {
                eprintln!("error: dev mode: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let Some(command) = cli.command else {
        eprintln!("error: give a subcommand (serve, migrate, root-key) or --dev; see --help");
        return ExitCode::from(2);
    };
    match command {
        Command::Serve { config } => match Config::load(&config) {
            Ok(config) => {
                init_tracing(config.log_format);
                run_async(serve(config, None))
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Migrate {
            database_url,
            runtime_role,
        } => migrate(&database_url, &runtime_role),
        Command::RootKey(RootKeyCommand::Generate { dir, id }) => {
            let result = RootKeyId::new(id).and_then(|id| {
                let key = RootKey::generate(id);
                let path = write_new_key_file(&dir, &key)?;
                Ok((path, key))
            });
            match result {
                Ok((path, key)) => {
                    println!(
                        "wrote root key {} to {} (check value {})",
                        key.id(),
                        path.display(),
                        base16ct::lower::encode_string(&key.check_value())
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
