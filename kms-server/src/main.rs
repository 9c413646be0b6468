//! `kms-server`: the HYGO KMS binary. Parses arguments and hands off to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kms_server::root::{RootKey, RootKeyId, write_new_key_file};

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
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
