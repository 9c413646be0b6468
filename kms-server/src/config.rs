//! Configuration: one TOML file plus environment overrides. Secrets are never in the
//! file: root keys live in their namespace, credentials are stored as SHA-256 hashes,
//! and a database password may only come from `HYGO_KMS_DATABASE_URL`.
//!
//! See `docs/CONFIG.md` and `kms-server/config.example.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::auth::{AdminAuthConfig, ServicePolicyConfig};
use crate::keyring::CacheConfig;

/// Why the configuration was refused. Every variant names the setting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("configuration file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the key and line).
        message: String,
    },
    /// A setting is invalid.
    #[error("invalid setting {setting}: {reason}")]
    Invalid {
        /// The setting, e.g. `database.url`.
        setting: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        reason: reason.into(),
    }
}

/// TLS settings (rustls, TLS 1.2+).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// PEM CA bundle: when set, clients must present a certificate it signed (mTLS).
    pub client_ca_file: Option<PathBuf>,
}

/// Where root keys come from.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootKeysConfig {
    /// A directory of `<id>.key` files; when absent, `HYGO_KMS_ROOT_KEY_<ID>` variables.
    pub dir: Option<PathBuf>,
    /// The primary root key's id (required with more than one key).
    pub primary: Option<String>,
}

/// The database. `Debug` hides the URL: from the environment it may hold a password.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://USER@HOST/DB` (no password here: put a URL with a
    /// password in `HYGO_KMS_DATABASE_URL`).
    pub url: Option<String>,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = self.url.as_deref().and_then(|u| u.split(':').next());
        f.debug_struct("DatabaseConfig")
            .field("scheme", &scheme)
            .finish_non_exhaustive()
    }
}

/// Key cache settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    /// Most tenants cached.
    pub max_entries: usize,
    /// `cache_max_stale`: refresh after this many seconds.
    pub max_stale_secs: u64,
    /// With the database down, serve cached tenants this long after their last refresh.
    pub offline_grace_secs: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        let d = CacheConfig::default();
        Self {
            max_entries: d.max_entries,
            max_stale_secs: d.ttl.as_secs(),
            offline_grace_secs: d.offline_grace.as_secs(),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (default `127.0.0.1:7650`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// TLS; without it the server only listens on loopback unless `allow_plaintext`.
    pub tls: Option<TlsConfig>,
    /// Serve plaintext gRPC on a non-loopback address (behind a TLS-terminating tunnel).
    #[serde(default)]
    pub allow_plaintext: bool,
    /// Serve gRPC server reflection.
    #[serde(default)]
    pub reflection: bool,
    /// Provision a tenant's first key on its first `Wrap` (otherwise NOT_FOUND).
    #[serde(default)]
    pub auto_provision: bool,
    /// Root key namespace.
    #[serde(default)]
    pub root_keys: RootKeysConfig,
    /// Database.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// Key cache.
    #[serde(default)]
    pub cache: CacheSettings,
    /// Seconds between destruction sweeps.
    #[serde(default = "default_sweep")]
    pub destruction_sweep_secs: u64,
    /// Log format.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Admin JWT verification; without it the admin plane refuses every call.
    pub admin: Option<AdminAuthConfig>,
    /// Data-plane services.
    #[serde(default)]
    pub services: Vec<ServicePolicyConfig>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7650))
}

fn default_sweep() -> u64 {
    60
}

impl Config {
    /// Reads `path`, applies environment overrides and validates.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })?;
        if config.database.url.as_deref().is_some_and(url_has_password) {
            return Err(invalid(
                "database.url",
                "a password must not be in the configuration file; set HYGO_KMS_DATABASE_URL",
            ));
        }
        config.apply_env(|k| std::env::var(k).ok())?;
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text (no overrides, no validation).
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Applies the environment overrides found by `get`: `HYGO_KMS_LISTEN`,
    /// `HYGO_KMS_DATABASE_URL`, `HYGO_KMS_ROOT_KEY_DIR`, `HYGO_KMS_PRIMARY_ROOT_KEY`,
    /// `HYGO_KMS_LOG_FORMAT`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = get("HYGO_KMS_LISTEN") {
            self.listen = v
                .parse()
                .map_err(|_| invalid("listen", "HYGO_KMS_LISTEN is not an address:port"))?;
        }
        if let Some(v) = get("HYGO_KMS_DATABASE_URL") {
            self.database.url = Some(v);
        }
        if let Some(v) = get("HYGO_KMS_ROOT_KEY_DIR") {
            self.root_keys.dir = Some(v.into());
        }
        if let Some(v) = get("HYGO_KMS_PRIMARY_ROOT_KEY") {
            self.root_keys.primary = Some(v);
        }
        if let Some(v) = get("HYGO_KMS_LOG_FORMAT") {
            self.log_format = match v.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return Err(invalid("log_format", "must be text or json")),
            };
        }
        Ok(())
    }

    /// Checks the settings that serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tls.is_none() && !self.listen.ip().is_loopback() && !self.allow_plaintext {
            return Err(invalid(
                "tls",
                "plaintext is only served on loopback: configure [tls] or set allow_plaintext = true behind a TLS-terminating tunnel",
            ));
        }
        match self.database.url.as_deref() {
            None => {
                return Err(invalid(
                    "database.url",
                    "required (or HYGO_KMS_DATABASE_URL)",
                ));
            }
            Some(u)
                if !(u.starts_with("sqlite:")
                    || u.starts_with("postgres://")
                    || u.starts_with("postgresql://")) =>
            {
                return Err(invalid(
                    "database.url",
                    "must start with sqlite: or postgres://",
                ));
            }
            _ => {}
        }
        if self.cache.max_entries == 0 {
            return Err(invalid("cache.max_entries", "must be at least 1"));
        }
        if self.cache.max_stale_secs == 0
            || self.cache.max_stale_secs > self.cache.offline_grace_secs
        {
            return Err(invalid(
                "cache.max_stale_secs",
                "must be at least 1 and at most cache.offline_grace_secs",
            ));
        }
        if self.destruction_sweep_secs == 0 {
            return Err(invalid("destruction_sweep_secs", "must be at least 1"));
        }
        if let Some(admin) = &self.admin {
            admin
                .validate()
                .map_err(|e| invalid("admin", e.to_string()))?;
        }
        crate::auth::ServicePolicy::from_config(&self.services)
            .map_err(|e| invalid("services", e.to_string()))?;
        Ok(())
    }

    /// The cache settings as the keyring takes them.
    pub fn cache_config(&self) -> CacheConfig {
        CacheConfig {
            max_entries: self.cache.max_entries,
            ttl: Duration::from_secs(self.cache.max_stale_secs),
            offline_grace: Duration::from_secs(self.cache.offline_grace_secs),
        }
    }

    /// The database URL (may hold a password when it came from the environment).
    pub fn database_url(&self) -> SecretString {
        SecretString::from(self.database.url.clone().unwrap_or_default())
    }
}

fn url_has_password(url: &str) -> bool {
    url.split_once("://")
        .and_then(|(_, rest)| rest.split(['/', '?']).next())
        .and_then(|authority| authority.rsplit_once('@'))
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn minimal_config_and_overrides() {
        let mut c = Config::parse("[database]\nurl = \"sqlite:kms.db\"\n").unwrap();
        c.validate().unwrap();
        assert_eq!(c.listen, default_listen());
        c.apply_env(|k| (k == "HYGO_KMS_LISTEN").then(|| "0.0.0.0:9000".to_owned()))
            .unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("tls"), "{err}");
        c.allow_plaintext = true;
        c.validate().unwrap();
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_setting() {
        let e = Config::parse("listn = \"x\"").unwrap_err();
        assert!(e.contains("listn"), "{e}");
        let c = Config::parse("[database]\nurl = \"mysql://x\"").unwrap();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("database.url")
        );
        let c = Config::parse("[database]\nurl = \"sqlite:x\"\n[cache]\nmax_entries = 0").unwrap();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("cache.max_entries")
        );
    }

    #[test]
    fn the_example_file_is_valid() {
        let text = include_str!("../config.example.toml");
        let mut c = Config::parse(text).unwrap();
        // The example's JWKS path does not exist here; everything else validates.
        c.admin = None;
        c.validate().unwrap();
        assert_eq!(c.services.len(), 2);
        assert!(!url_has_password(c.database.url.as_deref().unwrap()));
    }

    #[test]
    fn debug_hides_the_database_url() {
        let mut c = Config::parse("").unwrap();
        c.database.url = Some("postgres://kms:s3cret-pw@db/kms".to_owned());
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("s3cret-pw") && !dbg.contains("db/kms"),
            "{dbg}"
        );
        assert!(dbg.contains("postgres"), "{dbg}");
    }

    #[test]
    fn passwords_in_urls_are_detected() {
        assert!(url_has_password("postgres://kms:secret@db/kms"));
        assert!(!url_has_password("postgres://kms@db/kms"));
        assert!(!url_has_password("postgres://db/kms?user=a"));
        assert!(!url_has_password("sqlite:/var/lib/kms.db"));
    }
}
