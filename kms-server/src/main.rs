//! `kms-server`: the HYGO KMS binary. Parses arguments and hands off to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kms_server::root::{RootKey, RootKeyId, write_new_key_file};
use kms_server::store::migrate_postgres;

/// HYGO KMS server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
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
