//! [`Timestamp`]: an instant as UTC nanoseconds since the Unix epoch, parsed from and printed
//! as RFC 3339.

use std::fmt;

use super::error::Problem;

const NANOS_PER_SEC: i64 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;

/// An instant, as signed nanoseconds since 1970-01-01T00:00:00Z (UTC, leap seconds not
/// counted, as in Unix time). Every `i64` is a valid value: 1677-09-21T00:12:43.145224192Z to
/// 2262-04-11T23:47:16.854775807Z.
///
/// The event JSON's `ts` is parsed with [`Timestamp::parse_rfc3339`]; the offset it was written
/// with is applied and not kept, so `2026-03-01T13:00:00+01:00` and `2026-03-01T12:00:00Z` are
/// the same timestamp, and both print as the latter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The earliest timestamp, 1677-09-21T00:12:43.145224192Z.
    pub const MIN: Self = Self(i64::MIN);
    /// The latest timestamp, 2262-04-11T23:47:16.854775807Z.
    pub const MAX: Self = Self(i64::MAX);
    /// The Unix epoch, 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: Self = Self(0);

    /// The timestamp `nanos` nanoseconds after (or, when negative, before) the Unix epoch.
    #[must_use]
    pub const fn from_unix_nanos(nanos: i64) -> Self {
        Self(nanos)
    }

    /// The current time from the system clock (clamped to the representable range).
    #[must_use]
    pub fn now() -> Self {
        let nanos = match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_nanos()).map_or(i64::MIN, |n| -n),
        };
        Self(nanos)
    }

    /// Nanoseconds since the Unix epoch.
    #[must_use]
    pub const fn as_unix_nanos(self) -> i64 {
        self.0
    }

    /// Parses an RFC 3339 `date-time`: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`.
    ///
    /// Strict: the offset is required; `T` may also be `t` or a space (RFC 3339 §5.6) and `Z`
    /// may be `z`; the fraction has 1 to 9 digits (nanoseconds; more would be silently cut);
    /// a leap second (`:60`) is refused because Unix time cannot hold it.
    ///
    /// # Errors
    ///
    /// [`Problem::BadTimestamp`] with the byte where parsing failed, or
    /// [`Problem::TimestampOutOfRange`].
    pub fn parse_rfc3339(text: &str) -> Result<Self, Problem> {
        parse(text.as_bytes())
    }

    /// Prints RFC 3339 in UTC: `YYYY-MM-DDTHH:MM:SS[.fff[fff[fff]]]Z`, with the fraction in
    /// groups of three digits and left out when zero. Parsing the output gives `self` back.
    #[must_use]
    pub fn to_rfc3339(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(NANOS_PER_SEC);
        let nanos = self.0.rem_euclid(NANOS_PER_SEC);
        let days = secs.div_euclid(SECS_PER_DAY);
        let sod = secs.rem_euclid(SECS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            sod / 3600,
            sod / 60 % 60,
            sod % 60
        )?;
        if nanos != 0 {
            if nanos % 1_000_000 == 0 {
                write!(f, ".{:03}", nanos / 1_000_000)?;
            } else if nanos % 1_000 == 0 {
                write!(f, ".{:06}", nanos / 1_000)?;
            } else {
                write!(f, ".{nanos:09}")?;
            }
        }
        f.write_str("Z")
    }
}

fn bad(at: usize, reason: &'static str) -> Problem {
    Problem::BadTimestamp { at, reason }
}

fn digits(b: &[u8], at: usize, n: usize) -> Result<i64, Problem> {
    let mut v = 0;
    for i in at..at + n {
        match b.get(i) {
            Some(c) if c.is_ascii_digit() => v = v * 10 + i64::from(c - b'0'),
            _ => return Err(bad(i, "expected a digit")),
        }
    }
    Ok(v)
}

fn expect(b: &[u8], at: usize, allowed: &[u8], reason: &'static str) -> Result<(), Problem> {
    match b.get(at) {
        Some(c) if allowed.contains(c) => Ok(()),
        _ => Err(bad(at, reason)),
    }
}

fn parse(b: &[u8]) -> Result<Timestamp, Problem> {
    let year = digits(b, 0, 4)?;
    expect(b, 4, b"-", "expected '-'")?;
    let month = digits(b, 5, 2)?;
    expect(b, 7, b"-", "expected '-'")?;
    let day = digits(b, 8, 2)?;
    expect(b, 10, b"Tt ", "expected 'T'")?;
    let hour = digits(b, 11, 2)?;
    expect(b, 13, b":", "expected ':'")?;
    let minute = digits(b, 14, 2)?;
    expect(b, 16, b":", "expected ':'")?;
    let second = digits(b, 17, 2)?;
    let mut pos = 19;
    let mut frac = 0;
    if b.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while b.get(pos).is_some_and(u8::is_ascii_digit) {
            pos += 1;
        }
        let n = pos - start;
        if n == 0 {
            return Err(bad(pos, "expected a digit after '.'"));
        }
        if n > 9 {
            return Err(bad(start + 9, "more than 9 fractional digits"));
        }
        frac = digits(b, start, n)?;
        for _ in n..9 {
            frac *= 10;
        }
    }
    let offset_at = pos;
    let offset_secs = match b.get(pos) {
        Some(b'Z' | b'z') => {
            pos += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let oh = digits(b, pos + 1, 2)?;
            expect(b, pos + 3, b":", "expected ':' in the offset")?;
            let om = digits(b, pos + 4, 2)?;
            if oh > 23 {
                return Err(bad(pos + 1, "offset hours over 23"));
            }
            if om > 59 {
                return Err(bad(pos + 4, "offset minutes over 59"));
            }
            pos += 6;
            let s = oh * 3600 + om * 60;
            if sign == b'-' { -s } else { s }
        }
        _ => return Err(bad(offset_at, "expected 'Z' or a UTC offset like +01:00")),
    };
    if pos != b.len() {
        return Err(bad(pos, "unexpected characters after the offset"));
    }
    if !(1..=12).contains(&month) {
        return Err(bad(5, "month out of range"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(bad(8, "day out of range for the month"));
    }
    if hour > 23 {
        return Err(bad(11, "hour over 23"));
    }
    if minute > 59 {
        return Err(bad(14, "minute over 59"));
    }
    if second == 60 {
        return Err(bad(17, "leap seconds are not supported"));
    }
    if second > 59 {
        return Err(bad(17, "second over 59"));
    }
    let days = days_from_civil(year, month, day);
    let secs = days * SECS_PER_DAY + hour * 3600 + minute * 60 + second - offset_secs;
    let nanos = i128::from(secs) * i128::from(NANOS_PER_SEC) + i128::from(frac);
    i64::try_from(nanos)
        .map(Timestamp)
        .map_err(|_| Problem::TimestampOutOfRange)
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
