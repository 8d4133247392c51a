//! Generated protobuf and gRPC code for `tollgate.v1` (see `build.rs`).

#![allow(clippy::all, missing_docs)]

pub mod v1 {
    tonic::include_proto!("tollgate.v1");
}

/// Encoded `FileDescriptorSet` of our protos, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/tollgate_descriptor.bin"));
