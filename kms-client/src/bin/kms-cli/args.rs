//! The command line: global options and the [`Command`] enum.
//!
//! Plaintext and secret values are never arguments (they would land in shell history and
//! `ps`): they come from `--in FILE` or standard input.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use kms_client::Context;

/// Operator tool for HYGO KMS.
#[derive(Debug, Parser)]
#[command(name = "kms-cli", version)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options of every command.
#[derive(Debug, Args)]
pub(crate) struct Global {
    #[arg(
        long,
        env = "HYGO_KMS_ENDPOINT",
        global = true,
        help = "The KMS endpoint, e.g. https://kms.internal:7650"
    )]
    pub(crate) endpoint: Option<String>,
    /// File holding the service credential (else env HYGO_KMS_CREDENTIAL).
    #[arg(
        long,
        env = "HYGO_KMS_CREDENTIAL_FILE",
        global = true,
        value_name = "FILE"
    )]
    pub(crate) credential_file: Option<PathBuf>,
    /// File holding an admin JWT, re-read for every call (else env HYGO_KMS_ADMIN_TOKEN).
    #[arg(
        long,
        env = "HYGO_KMS_ADMIN_TOKEN_FILE",
        global = true,
        value_name = "FILE"
    )]
    pub(crate) admin_token_file: Option<PathBuf>,
    /// PEM of the CA that signs the server certificate (for https://).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) ca_cert: Option<PathBuf>,
    /// Name to verify in the server certificate, if not the endpoint's host.
    #[arg(long, global = true, value_name = "NAME")]
    pub(crate) tls_domain: Option<String>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long, global = true, value_name = "FILE", requires = "client_key")]
    pub(crate) client_cert: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS.
    #[arg(long, global = true, value_name = "FILE", requires = "client_cert")]
    pub(crate) client_key: Option<PathBuf>,
    /// Allow plaintext http:// to a non-loopback host (only behind a TLS-terminating tunnel).
    #[arg(long, global = true)]
    pub(crate) insecure_plaintext: bool,
    /// Per-call timeout in seconds.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(crate) timeout: u64,
    /// Use a `kms-server --dev` directory: its endpoint, service credential, and admin
    /// tokens minted from its identity-provider key (`--dev` or `--dev=DIR`).
    #[arg(long, global = true, value_name = "DIR", num_args = 0..=1,
          require_equals = true, default_missing_value = "./.kms-dev")]
    pub(crate) dev: Option<PathBuf>,
}

/// A `key=value` pair list (`--context`, `--label`).
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct ContextArgs {
    /// A context pair key=value (repeatable; the value may contain '=').
    #[arg(long = "context", value_name = "KEY=VALUE", value_parser = parse_pair)]
    pub(crate) pairs: Vec<(String, String)>,
}

impl ContextArgs {
    pub(crate) fn to_context(&self) -> Result<Context, String> {
        Ok(Context::from(unique_pairs(&self.pairs, "--context")?))
    }
}

/// The tenant, vendor and name of a stored secret.
#[derive(Debug, Args)]
pub(crate) struct SecretId {
    /// The tenant.
    #[arg(long)]
    pub(crate) tenant: String,
    /// The vendor (e.g. shopify).
    #[arg(long)]
    pub(crate) vendor: String,
    /// The secret's name.
    #[arg(long)]
    pub(crate) name: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Wrap plaintext from --in or stdin; prints the base64 envelope.
    Wrap {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        context: ContextArgs,
        /// Read the plaintext from this file instead of stdin.
        #[arg(long = "in", value_name = "FILE")]
        input: Option<PathBuf>,
    },
    /// Unwrap a base64 envelope from --in or stdin; writes the raw plaintext.
    Unwrap {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        context: ContextArgs,
        /// Read the base64 envelope from this file instead of stdin.
        #[arg(long = "in", value_name = "FILE")]
        input: Option<PathBuf>,
        /// Write the plaintext to this new file (mode 0600) instead of stdout.
        #[arg(long = "out", value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Re-seal a base64 envelope under the primary version; prints the new envelope.
    Rewrap {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        context: ContextArgs,
        /// Read the base64 envelope from this file instead of stdin.
        #[arg(long = "in", value_name = "FILE")]
        input: Option<PathBuf>,
    },
    /// Store a secret value read from --in or stdin.
    PutSecret {
        #[command(flatten)]
        id: SecretId,
        /// A label key=value (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_pair)]
        labels: Vec<(String, String)>,
        /// Compare-and-swap: only if the current revision is N (0: must not exist).
        #[arg(long, value_name = "N")]
        expected_revision: Option<u64>,
        /// Read the value from this file instead of stdin.
        #[arg(long = "in", value_name = "FILE")]
        input: Option<PathBuf>,
    },
    /// Write a stored secret's raw value to stdout, or to --out (then print its metadata).
    GetSecret {
        #[command(flatten)]
        id: SecretId,
        /// Write the value to this new file (mode 0600) and print the metadata as JSON.
        #[arg(long = "out", value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// List stored secrets' metadata (one page, JSON).
    ListSecrets {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Only this vendor's secrets.
        #[arg(long)]
        vendor: Option<String>,
        /// 1..1000 (server default 100).
        #[arg(long, default_value_t = 0)]
        page_size: u32,
        /// From the previous page's next_page_token.
        #[arg(long)]
        page_token: Option<String>,
    },
    /// Delete a stored secret.
    DeleteSecret {
        #[command(flatten)]
        id: SecretId,
    },
    /// Provision a tenant's key (admin).
    CreateTenant {
        /// The tenant.
        #[arg(long)]
        tenant: String,
    },
    /// Show a tenant's key versions and state (admin).
    TenantInfo {
        /// The tenant.
        #[arg(long)]
        tenant: String,
    },
    /// Rotate a tenant's key, then rewrap its stored secrets, progress on stderr (admin).
    RotateTenantKey {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Secrets per rewrap batch, 1..1000 (server default 100).
        #[arg(long, default_value_t = 0)]
        batch_size: u32,
        /// Only rotate; do not rewrap stored secrets.
        #[arg(long)]
        no_rewrap: bool,
    },
    /// List tenants (one page, JSON; admin).
    ListTenants {
        /// 1..1000 (server default 100).
        #[arg(long, default_value_t = 0)]
        page_size: u32,
        /// From the previous page's next_page_token.
        #[arg(long)]
        page_token: Option<String>,
    },
    /// List audit events of a tenant's chain, or of the global chain (admin).
    Audit {
        /// The tenant; the global chain when absent.
        #[arg(long)]
        tenant: Option<String>,
        /// Only events after this sequence number.
        #[arg(long, default_value_t = 0)]
        after_seq: u64,
        /// 1..1000 (server default 100).
        #[arg(long, default_value_t = 0)]
        page_size: u32,
    },
}

/// Parses `key=value`, splitting at the first `=` (values may contain `=`).
pub(crate) fn parse_pair(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, got {text:?}"))?;
    if key.is_empty() {
        return Err(format!("empty key in {text:?}"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// The pairs as a map, refusing a key given twice.
pub(crate) fn unique_pairs(
    pairs: &[(String, String)],
    flag: &str,
) -> Result<std::collections::BTreeMap<String, String>, String> {
    let mut map = std::collections::BTreeMap::new();
    for (key, value) in pairs {
        if map.insert(key.clone(), value.clone()).is_some() {
            return Err(format!("{flag} key {key:?} given more than once"));
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kms-cli").chain(args.iter().copied()))
    }

    #[test]
    fn context_pairs_keep_equals_in_values() {
        let cli = parse(&[
            "wrap",
            "--tenant",
            "t1",
            "--context",
            "vendor=shopify",
            "--context",
            "q=a=b=",
        ])
        .unwrap();
        let Command::Wrap {
            tenant,
            context,
            input,
        } = cli.command
        else {
            panic!("not wrap");
        };
        assert_eq!(tenant, "t1");
        assert!(input.is_none());
        let context = context.to_context().unwrap();
        assert_eq!(context.pairs().get("q").map(String::as_str), Some("a=b="));
        assert_eq!(
            context.pairs().get("vendor").map(String::as_str),
            Some("shopify")
        );
        let cli = parse(&["wrap", "--tenant", "t1", "--context", "empty="]).unwrap();
        let Command::Wrap { context, .. } = cli.command else {
            panic!()
        };
        assert_eq!(
            context
                .to_context()
                .unwrap()
                .pairs()
                .get("empty")
                .map(String::as_str),
            Some("")
        );
    }

    #[test]
    fn bad_or_duplicate_pairs_are_refused() {
        assert!(parse(&["wrap", "--tenant", "t", "--context", "novalue"]).is_err());
        assert!(parse(&["wrap", "--tenant", "t", "--context", "=v"]).is_err());
        let cli = parse(&[
            "wrap",
            "--tenant",
            "t",
            "--context",
            "a=1",
            "--context",
            "a=2",
        ])
        .unwrap();
        let Command::Wrap { context, .. } = cli.command else {
            panic!()
        };
        assert!(context.to_context().unwrap_err().contains("more than once"));
        let labels = [
            ("k".to_owned(), "1".to_owned()),
            ("k".to_owned(), "2".to_owned()),
        ];
        assert!(unique_pairs(&labels, "--label").is_err());
    }

    #[test]
    fn plaintext_is_never_an_argument() {
        for args in [
            &["wrap", "--tenant", "t", "shpat_secret"][..],
            &["wrap", "--tenant", "t", "--plaintext", "shpat_secret"],
            &[
                "put-secret",
                "--tenant",
                "t",
                "--vendor",
                "v",
                "--name",
                "n",
                "--value",
                "x",
            ],
            &[
                "put-secret",
                "--tenant",
                "t",
                "--vendor",
                "v",
                "--name",
                "n",
                "x",
            ],
        ] {
            let error = parse(args).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{args:?}");
        }
        let cli = parse(&["wrap", "--tenant", "t", "--in", "plain.bin"]).unwrap();
        let Command::Wrap { input, .. } = cli.command else {
            panic!()
        };
        assert_eq!(input, Some(PathBuf::from("plain.bin")));
    }

    #[test]
    fn global_options_and_dev_default() {
        let cli = parse(&["--dev", "list-tenants"]).unwrap();
        assert_eq!(cli.global.dev, Some(PathBuf::from("./.kms-dev")));
        let cli = parse(&["list-tenants", "--dev=/tmp/d", "--timeout", "3"]).unwrap();
        assert_eq!(cli.global.dev, Some(PathBuf::from("/tmp/d")));
        assert_eq!(cli.global.timeout, 3);
        assert!(parse(&["--timeout", "0", "list-tenants"]).is_err());
        assert!(parse(&["--client-cert", "c.pem", "list-tenants"]).is_err());
        let cli = parse(&[
            "put-secret",
            "--tenant",
            "t",
            "--vendor",
            "shopify",
            "--name",
            "token",
            "--label",
            "env=prod",
            "--expected-revision",
            "0",
        ])
        .unwrap();
        let Command::PutSecret {
            id,
            labels,
            expected_revision,
            ..
        } = cli.command
        else {
            panic!()
        };
        assert_eq!(
            (id.tenant.as_str(), id.vendor.as_str(), id.name.as_str()),
            ("t", "shopify", "token")
        );
        assert_eq!(labels, [("env".to_owned(), "prod".to_owned())]);
        assert_eq!(expected_revision, Some(0));
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
