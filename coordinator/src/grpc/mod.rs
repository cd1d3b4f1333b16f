//! Everything that knows protobuf: the mTLS listener, caller authorization,
//! the two services, and the conversions between wire and domain types.

pub mod auth;
pub mod contacts;
pub mod convert;
pub mod drills;
pub mod readiness;
pub mod service;
pub mod tls;
