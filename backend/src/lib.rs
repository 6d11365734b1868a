//! dcwatch's backend: gRPC ingest from sensors and the embedded activity store.
//!
//! `serve::serve` runs the `Ingest` service (ingest.rs) over TLS (tls.rs) into the store
//! (store.rs); `activities` prints stored activities back as the sensor's own JSON lines.

pub mod alerts_cli;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod console;
pub mod detection;
pub mod directory;
pub mod health;
pub mod ingest;
pub mod learning_cli;
pub mod outputs;
pub mod serve;
pub mod store;
pub mod tls;

use std::{
    fs::File,
    io::{self, Read as _, Write},
};

use dcwatch_proto::json::write_json_line;

use crate::store::{Query, Storage, StoreError};

/// Prints the activities `query` selects as JSON lines, the same bytes `dcwatch-sensor --output
/// json` printed for them; returns how many.
pub fn print_activities(
    store: &mut dyn Storage,
    query: &Query,
    out: &mut impl Write,
) -> Result<u64, StoreError> {
    let mut scratch = Vec::new();
    let mut count = 0_u64;
    let mut unprintable = 0_u64;
    store.activities(query, &mut |stored| {
        // A value with no JSON form fails before anything is written: skip it, say so below.
        match write_json_line(&stored.activity, out, &mut scratch) {
            Err(error) if error.kind() == io::ErrorKind::InvalidData => unprintable += 1,
            written => {
                written.map_err(StoreError::Output)?;
                count += 1;
            }
        }
        Ok(())
    })?;
    out.flush().map_err(StoreError::Output)?;
    if unprintable > 0 {
        log::warn!("{unprintable} stored activities have no JSON form and were not printed");
    }
    Ok(count)
}

/// Bytes of randomness in an access token.
pub const TOKEN_BYTES: usize = 32;

/// A new access token: 32 random bytes from the kernel, in hex.
pub fn new_token() -> io::Result<String> {
    let mut bytes = [0_u8; TOKEN_BYTES];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex::encode(bytes))
}
