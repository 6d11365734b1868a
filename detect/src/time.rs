//! Activity time in Unix milliseconds: every window and hold is measured on it, never on the
//! wall clock, so a replay judges as the live sensor did.

use pbjson_types::Timestamp;

pub type Millis = i64;

pub const SECOND: Millis = 1_000;
pub const MINUTE: Millis = 60 * SECOND;
pub const HOUR: Millis = 60 * MINUTE;
pub const DAY: Millis = 24 * HOUR;

pub fn millis(timestamp: Option<&Timestamp>) -> Option<Millis> {
    let timestamp = timestamp?;
    Some(
        timestamp
            .seconds
            .saturating_mul(1_000)
            .saturating_add(i64::from(timestamp.nanos / 1_000_000)),
    )
}

pub fn timestamp(millis: Millis) -> Timestamp {
    Timestamp {
        seconds: millis.div_euclid(1_000),
        nanos: i32::try_from(millis.rem_euclid(1_000) * 1_000_000).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_round_trip_before_and_after_the_epoch() {
        for value in [0, 1, 999, 1_796_538_561_886, -1, -1_001] {
            assert_eq!(millis(Some(&timestamp(value))), Some(value), "{value}");
        }
        assert_eq!(millis(None), None);
    }
}
