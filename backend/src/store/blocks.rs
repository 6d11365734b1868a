//! The compacted tier of the activity store: activities older than the hot window, in blocks
//! of up to [`BLOCK_ACTIVITIES`] per sensor, each compressed with zstd after its protobuf fields
//! are laid out column by column (every activity's field N together), with the keys queries
//! filter on (protocol, account, address) indexed per block instead of per activity.
//!
//! A block holds its activities whole: decoding gives back the bytes the sensor sent.

use std::collections::{BTreeMap, BTreeSet};

use dcwatch_proto::{
    json::{endpoint_ip, protocol_name},
    v1::Activity,
};
use prost::Message as _;

/// Activities in one block at most: large enough for zstd to find the repetition between
/// activities, small enough that a query decodes little it does not want.
pub const BLOCK_ACTIVITIES: usize = 4096;
/// zstd's level for blocks: compaction runs in the background, once per activity.
pub const BLOCK_ZSTD_LEVEL: i32 = 15;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS activity_blocks (
    id INTEGER PRIMARY KEY,
    sensor_id TEXT NOT NULL,
    first_sequence INTEGER NOT NULL,
    last_sequence INTEGER NOT NULL,
    min_time_ns INTEGER NOT NULL,
    max_time_ns INTEGER NOT NULL,
    count INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS activity_blocks_time ON activity_blocks (min_time_ns, max_time_ns);
CREATE INDEX IF NOT EXISTS activity_blocks_ref ON activity_blocks (sensor_id, first_sequence);
CREATE TABLE IF NOT EXISTS activity_block_keys (
    key TEXT NOT NULL,
    block_id INTEGER NOT NULL,
    PRIMARY KEY (key, block_id)
) WITHOUT ROWID;
";

/// One activity of a block, with its place in the sensor's stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub sequence: u64,
    pub position: u64,
    pub activity: Activity,
}

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("block is not zstd: {0}")]
    Zstd(std::io::Error),
    #[error("block is cut short or inconsistent")]
    Malformed,
    #[error("an activity in the block does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
}

/// The keys of a block's index: protocol, account name and addresses, each as
/// [`protocol_key`], [`account_key`], [`address_key`] spell them.
pub fn keys(entries: &[Entry]) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for entry in entries {
        let activity = &entry.activity;
        keys.insert(protocol_key(protocol_name(activity.body.as_ref())));
        if let Some(account) = &activity.account
            && !account.name.is_empty()
        {
            keys.insert(account_key(&account.name));
        }
        for endpoint in [&activity.src, &activity.dst].into_iter().flatten() {
            if let Some(ip) = endpoint_ip(endpoint) {
                keys.insert(address_key(&ip.to_string()));
            }
        }
    }
    keys
}

pub fn protocol_key(protocol: &str) -> String {
    format!("p:{}", protocol.to_lowercase())
}

/// Accounts are matched without regard to case, as the hot tier's NOCASE index does.
pub fn account_key(name: &str) -> String {
    format!("a:{}", name.to_lowercase())
}

pub fn address_key(ip: &str) -> String {
    format!("i:{ip}")
}

/// A stream per top-level field number, and one for what is kept per activity (its place, and
/// the field numbers in the order they came).
#[derive(Default)]
struct Columns {
    layout: Vec<u8>,
    fields: BTreeMap<u32, Vec<u8>>,
}

/// Marks the end of an activity's field numbers in the layout stream (0 is no field number).
const END_OF_ACTIVITY: u32 = 0;

/// Compresses `entries` (of one sensor) into a block.
pub fn encode(entries: &[Entry]) -> Result<Vec<u8>, BlockError> {
    let mut columns = Columns::default();
    let mut previous_sequence = 0_u64;
    for entry in entries {
        put_varint(
            &mut columns.layout,
            entry.sequence.wrapping_sub(previous_sequence),
        );
        previous_sequence = entry.sequence;
        put_varint(&mut columns.layout, entry.position);
        let bytes = entry.activity.encode_to_vec();
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            let (number, length) = field_extent(rest).ok_or(BlockError::Malformed)?;
            put_varint(&mut columns.layout, u64::from(number));
            let (field, tail) = rest.split_at(length);
            columns
                .fields
                .entry(number)
                .or_default()
                .extend_from_slice(field);
            rest = tail;
        }
        put_varint(&mut columns.layout, u64::from(END_OF_ACTIVITY));
    }
    let mut plain = Vec::new();
    put_varint(&mut plain, entries.len() as u64);
    put_varint(&mut plain, columns.fields.len() as u64);
    put_varint(&mut plain, columns.layout.len() as u64);
    for (number, bytes) in &columns.fields {
        put_varint(&mut plain, u64::from(*number));
        put_varint(&mut plain, bytes.len() as u64);
    }
    plain.extend_from_slice(&columns.layout);
    for bytes in columns.fields.values() {
        plain.extend_from_slice(bytes);
    }
    zstd::bulk::compress(&plain, BLOCK_ZSTD_LEVEL).map_err(BlockError::Zstd)
}

/// A block's entries, in the order they were encoded.
pub fn decode(block: &[u8]) -> Result<Vec<Entry>, BlockError> {
    let plain = zstd::stream::decode_all(block).map_err(BlockError::Zstd)?;
    let mut header = plain.as_slice();
    let count = take_varint(&mut header)?;
    let streams = take_varint(&mut header)?;
    let layout_len = take_len(&mut header)?;
    let mut lengths = Vec::new();
    for _ in 0..streams {
        let number = u32::try_from(take_varint(&mut header)?).map_err(|_| BlockError::Malformed)?;
        lengths.push((number, take_len(&mut header)?));
    }
    let (mut layout, mut body) = split(header, layout_len)?;
    let mut fields: BTreeMap<u32, &[u8]> = BTreeMap::new();
    for (number, length) in lengths {
        let (stream, rest) = split(body, length)?;
        fields.insert(number, stream);
        body = rest;
    }
    // Every activity takes at least two layout bytes: a count beyond that is a lie.
    let mut entries = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(layout.len() / 2));
    let mut sequence = 0_u64;
    let mut bytes = Vec::new();
    for _ in 0..count {
        sequence = sequence.wrapping_add(take_varint(&mut layout)?);
        let position = take_varint(&mut layout)?;
        bytes.clear();
        loop {
            let number =
                u32::try_from(take_varint(&mut layout)?).map_err(|_| BlockError::Malformed)?;
            if number == END_OF_ACTIVITY {
                break;
            }
            let stream = fields.get_mut(&number).ok_or(BlockError::Malformed)?;
            let (_, length) = field_extent(stream).ok_or(BlockError::Malformed)?;
            let (field, rest) = split(stream, length)?;
            bytes.extend_from_slice(field);
            *stream = rest;
        }
        entries.push(Entry {
            sequence,
            position,
            activity: Activity::decode(bytes.as_slice())?,
        });
    }
    Ok(entries)
}

fn split(bytes: &[u8], at: usize) -> Result<(&[u8], &[u8]), BlockError> {
    bytes.split_at_checked(at).ok_or(BlockError::Malformed)
}

fn take_len(bytes: &mut &[u8]) -> Result<usize, BlockError> {
    usize::try_from(take_varint(bytes)?).map_err(|_| BlockError::Malformed)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn take_varint(bytes: &mut &[u8]) -> Result<u64, BlockError> {
    let (value, used) = varint(bytes).ok_or(BlockError::Malformed)?;
    *bytes = &bytes[used..];
    Ok(value)
}

/// A varint at the start of `bytes`, and its length.
fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0_u64;
    for (index, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Some((value, index + 1));
        }
    }
    None
}

/// The field number of the protobuf field at the start of `bytes`, and its length in bytes
/// (tag included); `None` for a cut field or a group (prost's messages have none).
fn field_extent(bytes: &[u8]) -> Option<(u32, usize)> {
    let (tag, tag_len) = varint(bytes)?;
    let number = u32::try_from(tag >> 3).ok().filter(|&number| number != 0)?;
    let rest = bytes.get(tag_len..)?;
    let value_len = match tag & 7 {
        0 => varint(rest)?.1,
        1 => 8,
        2 => {
            let (length, used) = varint(rest)?;
            used.checked_add(usize::try_from(length).ok()?)?
        }
        5 => 4,
        _ => return None,
    };
    let total = tag_len.checked_add(value_len)?;
    (total <= bytes.len()).then_some((number, total))
}

#[cfg(test)]
mod tests {
    use dcwatch_proto::v1::{Account, DnsActivity, Endpoint, KerberosActivity, activity::Body};

    use super::*;

    fn entry(sequence: u64, position: u64, name: &str, body: Body) -> Entry {
        Entry {
            sequence,
            position,
            activity: Activity {
                time: Some(pbjson_types::Timestamp {
                    seconds: 1_700_000_000 + i64::try_from(sequence).expect("small"),
                    nanos: 5,
                }),
                sensor_id: "s1".to_owned(),
                src: Some(Endpoint {
                    ip: vec![10, 0, 0, 5],
                    port: 50_000,
                }),
                dst: Some(Endpoint {
                    ip: vec![10, 0, 0, 1],
                    port: 88,
                }),
                account: (!name.is_empty()).then(|| Account {
                    domain: "CORP".to_owned(),
                    name: name.to_owned(),
                    ..Account::default()
                }),
                body: Some(body),
                ..Activity::default()
            },
        }
    }

    #[test]
    fn a_block_gives_back_every_activity_byte_for_byte() {
        let entries: Vec<Entry> = (0..300)
            .map(|i| {
                let body = if i % 3 == 0 {
                    Body::Dns(DnsActivity {
                        query_name: format!("host{i}.corp.example"),
                        ..DnsActivity::default()
                    })
                } else {
                    Body::Kerberos(KerberosActivity {
                        service: format!("cifs/fs{}", i % 7),
                        ..KerberosActivity::default()
                    })
                };
                entry(
                    100 + i / 10,
                    i % 10,
                    if i % 5 == 0 { "" } else { "Alice" },
                    body,
                )
            })
            .collect();
        let block = encode(&entries).expect("encodes");
        let back = decode(&block).expect("decodes");
        assert_eq!(back, entries);
        for (original, decoded) in entries.iter().zip(&back) {
            assert_eq!(
                original.activity.encode_to_vec(),
                decoded.activity.encode_to_vec()
            );
        }
        let raw: usize = entries.iter().map(|e| e.activity.encoded_len()).sum();
        assert!(block.len() * 5 < raw, "{} of {raw} bytes", block.len());
        let keys = keys(&entries);
        for key in ["p:dns", "p:kerberos", "a:alice", "i:10.0.0.5", "i:10.0.0.1"] {
            assert!(keys.contains(key), "{key} in {keys:?}");
        }
        assert_eq!(keys.len(), 5);
    }

    #[test]
    fn a_damaged_block_is_an_error_not_a_panic() {
        let entries = vec![entry(1, 0, "bob", Body::Dns(DnsActivity::default()))];
        let block = encode(&entries).expect("encodes");
        let plain = zstd::stream::decode_all(block.as_slice()).expect("zstd");
        for cut in 0..plain.len() {
            let damaged = zstd::bulk::compress(&plain[..cut], 1).expect("compress");
            assert!(decode(&damaged).is_err(), "cut at {cut}");
        }
        let mut lying = plain.clone();
        lying[0] = 0x7f; // claims 127 activities
        let lying = zstd::bulk::compress(&lying, 1).expect("compress");
        assert!(decode(&lying).is_err());
        assert!(decode(b"not zstd").is_err());
        assert_eq!(
            decode(&encode(&[]).expect("empty")).expect("empty"),
            Vec::new()
        );
    }
}
