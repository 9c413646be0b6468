//! The HYGO KMS gRPC API, package `hygo.kms.v1`, generated from `proto/` at build time.
//! Messages, the `KeyService` and `KeyAdmin` clients and servers.

#![allow(missing_docs, unreachable_pub, reason = "generated code")]
#![allow(clippy::all, clippy::pedantic, reason = "generated code")]

/// `hygo.kms.v1`.
pub mod v1 {
    tonic::include_proto!("hygo.kms.v1");

    /// The encoded `FileDescriptorSet` of the API, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/hygo_kms_v1_descriptor.bin"));
}
