//! The time formats the four layouts and the syslog headers write, to Unix milliseconds (UTC).
//!
//! Pure calendar arithmetic (no clock, no time zone database): a time written without a zone is
//! taken as UTC, which is what SIEM forwarders are told to send.

/// Milliseconds in a day.
const MS_PER_DAY: i64 = 86_400_000;

/// Earliest and latest years accepted. Windows event times start in 1601 (FILETIME); anything
/// outside 1970..=9999 is a typo or hostile and would only make negative or absurd Unix times.
const YEARS: std::ops::RangeInclusive<i64> = 1970..=9999;

/// Month abbreviations as RFC 3164, RSA and ArcSight write them.
const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// A calendar time, checked field by field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CivilTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millisecond: u32,
}

impl CivilTime {
    /// Unix milliseconds, or `None` when a field is out of range (60 seconds is let through as
    /// 59: a leap second is not worth losing an event over).
    pub fn unix_ms(self) -> Option<u64> {
        if !YEARS.contains(&self.year)
            || !(1..=12).contains(&self.month)
            || !(1..=31).contains(&self.day)
            || self.hour > 23
            || self.minute > 59
            || self.second > 60
            || self.millisecond > 999
        {
            return None;
        }
        let days = days_from_civil(self.year, self.month, self.day);
        let ms = days * MS_PER_DAY
            + i64::from(self.hour) * 3_600_000
            + i64::from(self.minute) * 60_000
            + i64::from(self.second.min(59)) * 1000
            + i64::from(self.millisecond);
        u64::try_from(ms).ok()
    }
}

/// `jan`..`dec` (any case) to 1..12.
pub fn month(name: &str) -> Option<u32> {
    let name = name.get(..3)?;
    MONTHS
        .iter()
        .position(|month| month.eq_ignore_ascii_case(name))
        .and_then(|index| u32::try_from(index + 1).ok())
}

/// A run of exactly `len` ASCII digits.
fn digits(text: &str, len: usize) -> Option<u32> {
    if text.len() != len || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Up to the first three digits of a decimal fraction, as milliseconds ("7" is 700 ms).
fn fraction_ms(fraction: &str) -> Option<u32> {
    if fraction.is_empty() || !fraction.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let mut ms = 0;
    let mut scale = 100;
    for byte in fraction.bytes().take(3) {
        ms += u32::from(byte - b'0') * scale;
        scale /= 10;
    }
    Some(ms)
}

/// `hh:mm:ss[.fff…]` to (hour, minute, second, millisecond).
fn clock(text: &str) -> Option<(u32, u32, u32, u32)> {
    let (whole, fraction) = match text.split_once(['.', ',']) {
        Some((whole, fraction)) => (whole, fraction_ms(fraction)?),
        None => (text, 0),
    };
    let mut parts = whole.split(':');
    let hour = digits(parts.next()?, 2)?;
    let minute = digits(parts.next()?, 2)?;
    let second = digits(parts.next()?, 2)?;
    if parts.next().is_some() {
        return None;
    }
    Some((hour, minute, second, fraction))
}

/// Unix time as a number: 13 digits or more are milliseconds (ArcSight `rt`, QRadar
/// `TimeGenerated`), 9 to 10 digits seconds.
pub fn epoch(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() || text.len() > 16 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let value: u64 = text.parse().ok()?;
    match text.len() {
        9 | 10 => value.checked_mul(1000),
        13.. => Some(value),
        _ => None,
    }
}

/// WMI CIM_DATETIME, Splunk's and QRadar's `TimeGenerated`: `yyyyMMddHHmmss.ffffff±UUU`, where
/// UUU is the offset of local time from UTC in minutes (`-000`: UTC).
pub fn cim_datetime(text: &str) -> Option<u64> {
    let text = text.trim();
    let date = text.get(..14)?;
    let rest = text.get(14..)?;
    let (fraction, offset) = match rest.find(['+', '-']) {
        Some(sign) => (rest.get(..sign)?, rest.get(sign..)),
        None => (rest, None),
    };
    let millisecond = match fraction.strip_prefix('.') {
        Some(fraction) => fraction_ms(fraction)?,
        None if fraction.is_empty() => 0,
        None => return None,
    };
    let local = CivilTime {
        year: i64::from(digits(date.get(..4)?, 4)?),
        month: digits(date.get(4..6)?, 2)?,
        day: digits(date.get(6..8)?, 2)?,
        hour: digits(date.get(8..10)?, 2)?,
        minute: digits(date.get(10..12)?, 2)?,
        second: digits(date.get(12..14)?, 2)?,
        millisecond,
    }
    .unix_ms()?;
    let offset_minutes = match offset {
        Some(offset) => {
            let minutes = i64::from(
                offset
                    .get(1..)?
                    .parse::<u32>()
                    .ok()
                    .filter(|m| *m <= 1440)?,
            );
            if offset.starts_with('-') {
                -minutes
            } else {
                minutes
            }
        }
        None => 0,
    };
    let utc = i64::try_from(local).ok()? - offset_minutes * 60_000;
    u64::try_from(utc).ok()
}

/// A date and time: RSA's `2015-May-19 09:07:09[.mmm]`, ISO 8601 / RFC 3339
/// (`2015-05-19T09:07:09.123Z`, `+02:00`), ArcSight's `May 19 2015 09:07:09[.mmm]`, or a number
/// of Unix seconds or milliseconds.
pub fn date_time(text: &str) -> Option<u64> {
    let text = text.trim();
    epoch(text)
        .or_else(|| iso_like(text))
        .or_else(|| month_day_year(text))
        .or_else(|| cim_datetime(text))
}

/// `yyyy-(mm|Mmm)-dd[T ]hh:mm:ss[.fff][Z|±hh:mm]`.
fn iso_like(text: &str) -> Option<u64> {
    // `yyyy-` then a month of 2 digits or 3 letters (`Oct` holds a `t`: look after it).
    let month_end = text.get(5..)?.find('-')? + 5;
    let date = text.get(..month_end + 3)?;
    if !matches!(text.get(month_end + 3..month_end + 4)?, "T" | "t" | " ") {
        return None;
    }
    let rest = text.get(month_end + 4..)?.trim_start();
    let mut parts = date.split('-');
    let year = i64::from(digits(parts.next()?, 4)?);
    let month_text = parts.next()?;
    let month_number =
        digits(month_text, 2).or_else(|| month(month_text).filter(|_| month_text.len() == 3))?;
    let day = digits(parts.next()?, 2)?;
    if parts.next().is_some() {
        return None;
    }
    let (clock_text, offset_ms) = split_zone(rest)?;
    let (hour, minute, second, millisecond) = clock(clock_text)?;
    let utc = i64::try_from(
        CivilTime {
            year,
            month: month_number,
            day,
            hour,
            minute,
            second,
            millisecond,
        }
        .unix_ms()?,
    )
    .ok()?
        - offset_ms;
    u64::try_from(utc).ok()
}

/// Splits a trailing `Z`, `UTC` or `±hh:mm` / `±hhmm` off a clock; the offset in milliseconds.
fn split_zone(text: &str) -> Option<(&str, i64)> {
    let text = text.trim_end();
    if let Some(clock) = text.strip_suffix(['Z', 'z']) {
        return Some((clock, 0));
    }
    if let Some(clock) = text
        .strip_suffix("UTC")
        .or_else(|| text.strip_suffix("GMT"))
    {
        return Some((clock.trim_end(), 0));
    }
    // A sign after the seconds (a minus inside the date is gone by now).
    let Some(sign) = text.rfind(['+', '-']) else {
        return Some((text, 0));
    };
    let (clock, zone) = text.split_at_checked(sign)?;
    let zone_digits: String = zone.get(1..)?.chars().filter(|c| *c != ':').collect();
    let hours = digits(zone_digits.get(..2)?, 2)?;
    let minutes = digits(zone_digits.get(2..)?, 2)?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    let offset = i64::from(hours * 60 + minutes) * 60_000;
    Some((
        clock.trim_end(),
        if zone.starts_with('-') {
            -offset
        } else {
            offset
        },
    ))
}

/// `Mmm dd yyyy hh:mm:ss[.fff][ zone]`, ArcSight's own date form.
fn month_day_year(text: &str) -> Option<u64> {
    let mut parts = text.split_ascii_whitespace();
    let month_number = month(parts.next().filter(|name| name.len() == 3)?)?;
    let day_text = parts.next()?;
    let day = digits(day_text, day_text.len()).filter(|_| (1..=2).contains(&day_text.len()))?;
    let year = i64::from(digits(parts.next()?, 4)?);
    let (hour, minute, second, millisecond) = clock(parts.next()?)?;
    let zone = parts.next();
    if zone.is_some_and(|zone| !matches!(zone, "UTC" | "GMT" | "Z")) || parts.next().is_some() {
        return None;
    }
    CivilTime {
        year,
        month: month_number,
        day,
        hour,
        minute,
        second,
        millisecond,
    }
    .unix_ms()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_of_the_reference() {
        // reference/002: ArcSight rt, QRadar TimeGenerated, Splunk TimeGenerated, RSA's field.
        assert_eq!(epoch("1426218619000"), Some(1_426_218_619_000));
        assert_eq!(date_time("1456144380009"), Some(1_456_144_380_009));
        assert_eq!(
            cim_datetime("20150310132717.784882-000"),
            Some(1_425_994_037_784)
        );
        assert_eq!(date_time("2015-May-19 09:07:09"), Some(1_432_026_429_000));
        assert_eq!(
            date_time("2015-May-19 09:07:09.250"),
            Some(1_432_026_429_250)
        );
    }

    #[test]
    fn zones_and_other_forms() {
        assert_eq!(
            date_time("2015-05-19T09:07:09.250Z"),
            Some(1_432_026_429_250)
        );
        assert_eq!(
            date_time("2015-05-19T11:07:09.250+02:00"),
            Some(1_432_026_429_250)
        );
        assert_eq!(
            date_time("May 19 2015 09:07:09.250"),
            Some(1_432_026_429_250)
        );
        assert_eq!(
            cim_datetime("20150519110709.250000+120"),
            Some(1_432_026_429_250)
        );
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn nonsense_is_refused() {
        for text in [
            "",
            "x",
            "2015-13-19 09:07:09",
            "2015-May-19 25:07:09",
            "20151310132717.7-000",
            "1234",
            "99999999999999999999",
            "2015-May-19",
            "Foo 19 2015 09:07:09",
            "1969-01-01T00:00:00Z",
        ] {
            assert_eq!(date_time(text), None, "{text}");
        }
    }
}
