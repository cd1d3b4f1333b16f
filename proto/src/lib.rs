//! ripcord's wire protocol: the `.proto` files under `proto/` and the tonic
//! and prost code generated from them. Nothing else lives here; conversions
//! to domain types are in the coordinator's `grpc/convert.rs` and the
//! clients that use them.

#![allow(clippy::all, clippy::pedantic)]

/// `ripcord.v1`: the agent stream and the operator control API.
pub mod v1 {
    tonic::include_proto!("ripcord.v1");
}
