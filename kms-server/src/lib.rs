//! HYGO KMS server library.
//!
//! # Layout
//!
//! - [`limits`]: the limits of SPEC §4 as named constants.
//! - [`keys`]: typed, validated domain values: [`keys::TenantId`], [`keys::KeyVersion`],
//!   [`keys::Context`].
//! - [`root`]: root keys, their namespaces (key directory, environment) and check values.
//! - [`envelope`]: tenant key derivation ([`envelope::kdf`]), the byte format
//!   ([`envelope::format`]) and seal/open of key-committing AES-256-GCM-SIV envelopes.
//! - [`store`]: the [`store::Store`] trait (tenants, key versions, stored secrets, audit
//!   events, root key check values) with PostgreSQL (forced row-level security, runtime
//!   role) and embedded SQLite implementations; migrations in `schema/`.
//! - [`audit`]: hash-chained, MACed audit events and chain verification.
//! - [`auth`]: service credentials and policy ([`auth::service`]), admin JWTs verified
//!   against a JWKS ([`auth::admin`]), and the dev identity provider ([`auth::dev_idp`]).
//! - [`keyring`]: the key cache (derived keys per tenant version, TTL, offline grace).
//! - [`service`]: wrap, unwrap, rewrap, data keys, the secret store and the key
//!   lifecycle, free of tonic types.
//! - [`error`]: [`error::KmsError`] and the one mapping to `tonic::Status` (with
//!   `google.rpc.ErrorInfo` reasons).
//! - [`api`]: the tonic services: proto ⇄ domain, authentication, policy, request ids.
//! - [`config`], [`server`], [`dev`], [`hardening`]: configuration, the server (`run`
//!   takes a bound listener and a shutdown future), `--dev` mode, start-up hardening.
//!
//! # Flow of an unwrap
//!
//! ```text
//! api: bearer ─▶ auth (ServicePolicy) ─▶ keys::{TenantId, Context} (limits)
//!    ─▶ policy (method, tenant, context values)
//! service: envelope::check_size / parse ─▶ envelope::check_tenant (cross-tenant, audited)
//!    ─▶ keyring: cached keys of header.version, or store (salt, state)
//!       + root key ─▶ envelope::kdf::TenantKeys::derive
//!    ─▶ envelope::open_parsed (commitment, then AEAD) ─▶ plaintext (zeroizing)
//! error: KmsError ─▶ Status + ErrorInfo reason
//! ```

pub mod api;
pub mod audit;
pub mod auth;
pub mod config;
pub mod dev;
pub mod envelope;
pub mod error;
pub mod hardening;
pub mod keyring;
pub mod keys;
pub mod limits;
pub mod root;
pub mod server;
pub mod service;
pub mod store;
