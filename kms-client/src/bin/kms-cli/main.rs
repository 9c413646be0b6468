//! `kms-cli`: the operator tool of HYGO KMS, a clap [`Command`] enum over `kms-client`.
//!
//! Exit codes: 0 ok; 2 usage or local error (bad arguments, unreadable input, refused
//! configuration); 3 UNAUTHENTICATED or PERMISSION_DENIED; 4 request refused
//! (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION, RESOURCE_EXHAUSTED, ALREADY_EXISTS);
//! 5 server or transport (UNAVAILABLE, INTERNAL, DEADLINE_EXCEEDED, connection errors,
//! anything else).

mod args;
mod output;

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::Parser as _;
use kms_client::dev::DevEnvironment;
use kms_client::{
    AdminClient, ClientConfig, ClientError, ClientIdentity, KmsClient, PutSecretOptions, TlsConfig,
};
use secrecy::SecretString;
use tonic::Code;
use zeroize::Zeroizing;

use crate::args::{Cli, Command, Global};

/// Why the command failed, and so its exit code.
#[derive(Debug)]
enum CliError {
    /// Bad arguments, unreadable input, refused configuration: exit 2.
    Usage(String),
    /// A call failed.
    Client(ClientError),
    /// Writing the output failed: exit 5.
    Output(String),
}

impl From<ClientError> for CliError {
    fn from(error: ClientError) -> Self {
        match error {
            ClientError::Config { message } => Self::Usage(message),
            other => Self::Client(other),
        }
    }
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::Client(error) => exit_code(error),
            Self::Output(_) => 5,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Usage(message) | Self::Output(message) => f.write_str(message),
            Self::Client(error) => error.fmt(f),
        }
    }
}

/// The exit code of a failed call.
fn exit_code(error: &ClientError) -> u8 {
    match error.code() {
        None => 2,
        Some(Code::Unauthenticated | Code::PermissionDenied) => 3,
        Some(
            Code::InvalidArgument
            | Code::NotFound
            | Code::FailedPrecondition
            | Code::ResourceExhausted
            | Code::AlreadyExists
            | Code::OutOfRange,
        ) => 4,
        Some(_) => 5,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kms-cli: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

fn usage(message: impl Into<String>) -> CliError {
    CliError::Usage(message.into())
}

/// Where to connect and with what, from the flags, the environment and `--dev`.
struct Setup {
    config: ClientConfig,
    dev: Option<DevEnvironment>,
}

fn read_file(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| usage(format!("{}: {e}", path.display())))
}

fn setup(global: &Global) -> Result<Setup, CliError> {
    let dev = match &global.dev {
        Some(dir) => Some(DevEnvironment::open(dir).map_err(|e| {
            usage(format!(
                "--dev: {e} (is `kms-server --dev` running in this directory?)"
            ))
        })?),
        None => None,
    };
    let endpoint = global
        .endpoint
        .clone()
        .or_else(|| dev.as_ref().map(|d| d.endpoint.clone()))
        .ok_or_else(|| usage("no endpoint: use --endpoint, HYGO_KMS_ENDPOINT or --dev"))?;
    let mut config = ClientConfig::new(endpoint);
    config.allow_insecure = global.insecure_plaintext;
    config.request_timeout = Duration::from_secs(global.timeout);
    if let Some(ca) = &global.ca_cert {
        let client_identity = match (&global.client_cert, &global.client_key) {
            (Some(cert), Some(key)) => Some(ClientIdentity {
                cert_pem: read_file(cert)?,
                key_pem: read_file(key)?.into(),
            }),
            _ => None,
        };
        config.tls = Some(TlsConfig {
            ca_cert_pem: read_file(ca)?,
            domain_name: global.tls_domain.clone(),
            client_identity,
        });
    }
    // Refuse a bad configuration before looking for credentials.
    config.endpoint()?;
    Ok(Setup { config, dev })
}

/// Reads a secret from a file, trimmed of surrounding whitespace.
fn read_secret_file(path: &Path) -> Result<SecretString, CliError> {
    let bytes = Zeroizing::new(read_file(path)?);
    let text =
        std::str::from_utf8(&bytes).map_err(|_| usage(format!("{}: not UTF-8", path.display())))?;
    Ok(SecretString::from(text.trim()))
}

async fn kms(global: &Global) -> Result<KmsClient, CliError> {
    let Setup { config, dev } = setup(global)?;
    let credential = if let Some(path) = &global.credential_file {
        read_secret_file(path)?
    } else if let Ok(value) = std::env::var("HYGO_KMS_CREDENTIAL") {
        SecretString::from(value)
    } else if let Some(dev) = &dev {
        dev.service_credential().map_err(|e| usage(e.to_string()))?
    } else {
        return Err(usage(
            "no service credential: use --credential-file, HYGO_KMS_CREDENTIAL_FILE, \
             HYGO_KMS_CREDENTIAL or --dev",
        ));
    };
    Ok(KmsClient::connect(config, credential).await?)
}

async fn admin(global: &Global) -> Result<AdminClient, CliError> {
    let Setup { config, dev } = setup(global)?;
    if let Some(path) = global.admin_token_file.clone() {
        let provider = move || -> Result<SecretString, ClientError> {
            read_secret_file(&path).map_err(|e| ClientError::Config {
                message: e.to_string(),
            })
        };
        return Ok(AdminClient::connect(config, provider).await?);
    }
    if let Ok(value) = std::env::var("HYGO_KMS_ADMIN_TOKEN") {
        return Ok(AdminClient::connect(config, SecretString::from(value)).await?);
    }
    match &dev {
        Some(dev) => {
            let tokens = dev.admin_tokens().map_err(|e| usage(e.to_string()))?;
            Ok(AdminClient::connect(config, tokens).await?)
        }
        None => Err(usage(
            "no admin token: use --admin-token-file, HYGO_KMS_ADMIN_TOKEN_FILE, \
             HYGO_KMS_ADMIN_TOKEN or --dev",
        )),
    }
}

/// Reads all of `--in FILE` or stdin (never an argument).
fn read_input(input: Option<&PathBuf>, what: &str) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let mut buffer = Zeroizing::new(Vec::new());
    match input {
        Some(path) => {
            let mut file =
                std::fs::File::open(path).map_err(|e| usage(format!("{}: {e}", path.display())))?;
            file.read_to_end(&mut buffer)
                .map_err(|e| usage(format!("{}: {e}", path.display())))?;
        }
        None => {
            let mut stdin = std::io::stdin().lock();
            if stdin.is_terminal() {
                eprintln!("kms-cli: reading the {what} from stdin (end with Ctrl-D)");
            }
            stdin
                .read_to_end(&mut buffer)
                .map_err(|e| usage(format!("stdin: {e}")))?;
        }
    }
    Ok(buffer)
}

/// Reads a base64 envelope from `--in FILE` or stdin.
fn read_envelope(input: Option<&PathBuf>) -> Result<Vec<u8>, CliError> {
    let text = read_input(input, "base64 envelope")?;
    let trimmed: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    STANDARD
        .decode(trimmed)
        .map_err(|e| usage(format!("the envelope is not base64: {e}")))
}

/// Writes raw secret bytes to a new 0600 file, or to stdout.
fn write_secret(output: Option<&PathBuf>, bytes: &[u8]) -> Result<(), CliError> {
    let fail = |e: std::io::Error| CliError::Output(format!("writing the output: {e}"));
    match output {
        Some(path) => {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| CliError::Output(format!("{}: {e}", path.display())))?;
            file.write_all(bytes)
                .and_then(|()| file.sync_all())
                .map_err(fail)
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(bytes)
                .and_then(|()| stdout.flush())
                .map_err(fail)
        }
    }
}

fn print_line(line: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").map_err(|e| CliError::Output(format!("writing the output: {e}")))
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let global = &cli.global;
    match cli.command {
        Command::Wrap {
            tenant,
            context,
            input,
        } => {
            let context = context.to_context().map_err(usage)?;
            let plaintext = read_input(input.as_ref(), "plaintext")?;
            let wrapped = kms(global)
                .await?
                .wrap(&tenant, &context, &plaintext)
                .await?;
            print_line(&STANDARD.encode(&wrapped.ciphertext))
        }
        Command::Unwrap {
            tenant,
            context,
            input,
            output,
        } => {
            let context = context.to_context().map_err(usage)?;
            let envelope = read_envelope(input.as_ref())?;
            let opened = kms(global)
                .await?
                .unwrap(&tenant, &context, &envelope)
                .await?;
            write_secret(output.as_ref(), &opened.plaintext)
        }
        Command::Rewrap {
            tenant,
            context,
            input,
        } => {
            let context = context.to_context().map_err(usage)?;
            let envelope = read_envelope(input.as_ref())?;
            let wrapped = kms(global)
                .await?
                .rewrap(&tenant, &context, &envelope)
                .await?;
            print_line(&STANDARD.encode(&wrapped.ciphertext))
        }
        Command::PutSecret {
            id,
            labels,
            expected_revision,
            input,
        } => {
            let options = PutSecretOptions {
                labels: args::unique_pairs(&labels, "--label").map_err(usage)?,
                expected_revision,
            };
            let value = read_input(input.as_ref(), "secret value")?;
            let stored = kms(global)
                .await?
                .put_secret(&id.tenant, &id.vendor, &id.name, &value, &options)
                .await?;
            print_line(&output::revision(&stored))
        }
        Command::GetSecret { id, output } => {
            let secret = kms(global)
                .await?
                .get_secret(&id.tenant, &id.vendor, &id.name)
                .await?;
            write_secret(output.as_ref(), &secret.value)?;
            if output.is_some() {
                print_line(&output::secret_metadata(&secret.metadata).to_string())?;
            }
            Ok(())
        }
        Command::ListSecrets {
            tenant,
            vendor,
            page_size,
            page_token,
        } => {
            let page = kms(global)
                .await?
                .list_secrets(&tenant, vendor.as_deref(), page_size, page_token.as_deref())
                .await?;
            print_line(&output::secret_page(&page))
        }
        Command::DeleteSecret { id } => {
            let deleted = kms(global)
                .await?
                .delete_secret(&id.tenant, &id.vendor, &id.name)
                .await?;
            print_line(&serde_json::json!({ "deleted": deleted }).to_string())
        }
        Command::CreateTenant { tenant } => {
            let info = admin(global).await?.create_tenant_key(&tenant).await?;
            print_line(&output::tenant_key_info(&info).to_string())
        }
        Command::TenantInfo { tenant } => {
            let info = admin(global).await?.get_tenant_key(&tenant).await?;
            print_line(&output::tenant_key_info(&info).to_string())
        }
        Command::RotateTenantKey {
            tenant,
            batch_size,
            no_rewrap,
        } => {
            let admin = admin(global).await?;
            let info = admin.rotate_tenant_key(&tenant).await?;
            eprintln!("rotated {tenant}: primary version {}", info.primary_version);
            if !no_rewrap {
                let mut progress = admin.rewrap_tenant_secrets(&tenant, batch_size).await?;
                while let Some(step) = progress.next().await {
                    let step = step?;
                    eprintln!(
                        "rewrap: {} rewrapped, {} remaining (primary v{}){}",
                        step.rewrapped,
                        step.remaining,
                        step.primary_version,
                        if step.done { ", done" } else { "" }
                    );
                }
            }
            let info = admin.get_tenant_key(&tenant).await?;
            print_line(&output::tenant_key_info(&info).to_string())
        }
        Command::ListTenants {
            page_size,
            page_token,
        } => {
            let page = admin(global)
                .await?
                .list_tenants(page_size, page_token.as_deref())
                .await?;
            print_line(&output::tenant_page(&page))
        }
        Command::Audit {
            tenant,
            after_seq,
            page_size,
        } => {
            let events = admin(global)
                .await?
                .list_audit_events(tenant.as_deref(), after_seq, page_size)
                .await?;
            for event in &events {
                print_line(&output::audit_event(event).to_string())?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(code: Code) -> ClientError {
        ClientError::from_parts(code, String::new(), None)
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(&error(Code::Unauthenticated)), 3);
        assert_eq!(exit_code(&error(Code::PermissionDenied)), 3);
        for code in [
            Code::InvalidArgument,
            Code::NotFound,
            Code::FailedPrecondition,
            Code::ResourceExhausted,
            Code::AlreadyExists,
        ] {
            assert_eq!(exit_code(&error(code)), 4, "{code:?}");
        }
        for code in [
            Code::Unavailable,
            Code::Internal,
            Code::DeadlineExceeded,
            Code::Unknown,
            Code::Aborted,
        ] {
            assert_eq!(exit_code(&error(code)), 5, "{code:?}");
        }
        let transport = ClientError::Transport {
            message: String::new(),
        };
        assert_eq!(exit_code(&transport), 5);
        let config = CliError::from(ClientError::Config {
            message: String::new(),
        });
        assert_eq!(config.exit_code(), 2);
    }
}
