//! dcwatch's wire types, generated at build time from `dcwatch/v1/*.proto`.
//!
//! Every message also serialises to JSON in the proto3 mapping with the proto field names kept
//! (snake_case) and enums by name: the form `dcwatch-sensor --output json` builds on. Alerts and
//! health events also have a CEF line in Defender for Identity's layout, behind an RFC 5424 or
//! RFC 3164 syslog header (`cef`).

pub mod cef;
pub mod json;

/// Version 1 of the protocol between sensors and backends.
pub mod v1 {
    #![expect(
        clippy::all,
        clippy::pedantic,
        clippy::allow_attributes,
        clippy::allow_attributes_without_reason,
        reason = "generated code"
    )]
    #![expect(unused_qualifications, reason = "generated code")]
    include!(concat!(env!("OUT_DIR"), "/dcwatch.v1.rs"));
    include!(concat!(env!("OUT_DIR"), "/dcwatch.v1.serde.rs"));
}
