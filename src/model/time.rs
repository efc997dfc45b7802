//! Times as milliseconds since the Unix epoch (UTC), their input forms and their one output form.
//!
//! Input: RFC 3339 (any offset), a date alone (`2025-12-01`, start of day UTC), or a relative form
//! (`now`, `now-30d`, `now+2h`; units s, m, h, d, w) resolved against a `now` the caller passes.
//! Output: RFC 3339 in UTC with milliseconds (`2025-12-01T00:00:00.000Z`).

use std::fmt::Write;

use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// Earliest accepted time (year 0001) and latest (year 9999), so every time formats as RFC 3339.
const MIN_MS: Millis = -62_135_596_800_000;
const MAX_MS: Millis = 253_402_300_799_999;

/// Why a time or duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Not RFC 3339, a date, or a relative form.
    #[error("`{0}` is not a time (RFC 3339, YYYY-MM-DD, or now[+-]N[smhdw])")]
    Time(String),
    /// Not a duration like `30d`.
    #[error("`{0}` is not a duration (N followed by s, m, h, d or w)")]
    Duration(String),
}

/// Parses a duration like `30d`, `12h`, `90s` into milliseconds.
///
/// ```
/// assert_eq!(kindred::model::time::parse_duration("2h"), Ok(7_200_000));
/// ```
pub fn parse_duration(s: &str) -> Result<Millis, TimeError> {
    let err = || TimeError::Duration(s.to_string());
    let s2 = s.trim();
    if s2.len() < 2 {
        return Err(err());
    }
    let (digits, unit) = s2.split_at(s2.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    let n: i64 = digits.parse().map_err(|_| err())?;
    let unit_ms: i64 = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        _ => return Err(err()),
    };
    n.checked_mul(unit_ms).filter(|v| *v <= MAX_MS - MIN_MS).ok_or_else(err)
}

/// Parses an input time against `now`.
///
/// ```
/// use kindred::model::time::{parse_time, format_time};
/// let now = parse_time("2026-01-01T00:00:00Z", 0).unwrap();
/// assert_eq!(format_time(parse_time("now-1d", now).unwrap()), "2025-12-31T00:00:00.000Z");
/// assert_eq!(format_time(parse_time("2025-12-01", now).unwrap()), "2025-12-01T00:00:00.000Z");
/// ```
pub fn parse_time(s: &str, now: Millis) -> Result<Millis, TimeError> {
    let err = || TimeError::Time(s.to_string());
    let t = s.trim();
    if let Some(rest) = t.strip_prefix("now") {
        if rest.is_empty() {
            return Ok(now);
        }
        let (sign, dur) = match rest.as_bytes()[0] {
            b'+' => (1, &rest[1..]),
            b'-' => (-1, &rest[1..]),
            _ => return Err(err()),
        };
        let d = parse_duration(dur).map_err(|_| err())?;
        let v = now.checked_add(sign * d).ok_or_else(err)?;
        return in_range(v).ok_or_else(err);
    }
    if t.len() == 10 {
        let date = parse_date(t).ok_or_else(err)?;
        let dt = PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_utc();
        return Ok(to_millis(dt));
    }
    let dt = OffsetDateTime::parse(t, &Rfc3339).map_err(|_| err())?;
    in_range(to_millis(dt)).ok_or_else(err)
}

fn in_range(v: Millis) -> Option<Millis> {
    (MIN_MS..=MAX_MS).contains(&v).then_some(v)
}

fn parse_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i32> {
        let part = &s[r];
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    let month = Month::try_from(num(5..7)? as u8).ok()?;
    Date::from_calendar_date(num(0..4)?, month, num(8..10)? as u8).ok()
}

fn to_millis(dt: OffsetDateTime) -> Millis {
    (dt.unix_timestamp_nanos() / 1_000_000) as Millis
}

/// Converts milliseconds to a UTC date-time.
pub fn to_datetime(ms: Millis) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Converts a UTC date-time to milliseconds.
pub fn from_datetime(dt: OffsetDateTime) -> Millis {
    to_millis(dt)
}

/// Formats milliseconds as RFC 3339 UTC with milliseconds.
pub fn format_time(ms: Millis) -> String {
    let mut out = String::with_capacity(24);
    write_time(&mut out, ms);
    out
}

/// Appends the RFC 3339 form of `ms` to `out`. Every rendered object formats two or more of
/// these, so the years 1-9999 take a path without `fmt` (a third of the cost of a page's dates).
pub fn write_time(out: &mut String, ms: Millis) {
    if !(MIN_MS..=MAX_MS).contains(&ms) {
        return write_time_slow(out, ms);
    }
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (secs, milli) = (in_day / 1000, in_day % 1000);
    let mut b = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: i64| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, y);
    put(5, 2, m);
    put(8, 2, d);
    put(11, 2, secs / 3600);
    put(14, 2, secs / 60 % 60);
    put(17, 2, secs % 60);
    put(20, 3, milli);
    out.push_str(std::str::from_utf8(&b).expect("ASCII digits"));
}

/// (year, month, day) of a day count since 1970-01-01 in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// [`write_time`] through the `time` crate: outside years 1-9999, and the fast path's oracle.
fn write_time_slow(out: &mut String, ms: Millis) {
    let dt = to_datetime(ms);
    let (y, m, d) = dt.to_calendar_date();
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        y,
        m as u8,
        d,
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.millisecond()
    );
}

/// Start of the calendar unit containing `ms` (UTC), for calendar date histograms.
pub fn truncate(ms: Millis, unit: CalendarUnit) -> Millis {
    let dt = to_datetime(ms);
    let date = dt.date();
    let start = match unit {
        CalendarUnit::Minute => {
            return ms.div_euclid(60_000) * 60_000;
        }
        CalendarUnit::Hour => return ms.div_euclid(3_600_000) * 3_600_000,
        CalendarUnit::Day => date,
        CalendarUnit::Week => {
            let back = date.weekday().number_days_from_monday() as i64;
            date - time::Duration::days(back)
        }
        CalendarUnit::Month => Date::from_calendar_date(date.year(), date.month(), 1).expect("day 1"),
        CalendarUnit::Quarter => {
            let q = (date.month() as u8 - 1) / 3;
            let month = Month::try_from(q * 3 + 1).expect("valid month");
            Date::from_calendar_date(date.year(), month, 1).expect("day 1")
        }
        CalendarUnit::Year => Date::from_calendar_date(date.year(), Month::January, 1).expect("day 1"),
    };
    to_millis(PrimitiveDateTime::new(start, Time::MIDNIGHT).assume_utc())
}

/// The start of the next calendar unit after the one starting at `start`.
pub fn next_unit(start: Millis, unit: CalendarUnit) -> Millis {
    let dt = to_datetime(start);
    let date = dt.date();
    let add_months = |months: i32| -> Millis {
        let total = date.year() * 12 + (date.month() as i32 - 1) + months;
        let (y, m) = (total.div_euclid(12), total.rem_euclid(12) + 1);
        let d = Date::from_calendar_date(y, Month::try_from(m as u8).expect("month"), 1).expect("day 1");
        to_millis(PrimitiveDateTime::new(d, Time::MIDNIGHT).assume_utc())
    };
    match unit {
        CalendarUnit::Minute => start + 60_000,
        CalendarUnit::Hour => start + 3_600_000,
        CalendarUnit::Day => start + 86_400_000,
        CalendarUnit::Week => start + 7 * 86_400_000,
        CalendarUnit::Month => add_months(1),
        CalendarUnit::Quarter => add_months(3),
        CalendarUnit::Year => add_months(12),
    }
}

/// Calendar units of a `calendar_interval` date histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalendarUnit {
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One UTC day.
    Day,
    /// An ISO week, starting Monday.
    Week,
    /// A calendar month.
    Month,
    /// A calendar quarter.
    Quarter,
    /// A calendar year.
    Year,
}

impl CalendarUnit {
    /// Parses the Elasticsearch names (`month`, `1M`, `quarter`, `1q`...).
    pub fn parse(s: &str) -> Option<CalendarUnit> {
        Some(match s {
            "minute" | "1m" => CalendarUnit::Minute,
            "hour" | "1h" => CalendarUnit::Hour,
            "day" | "1d" => CalendarUnit::Day,
            "week" | "1w" => CalendarUnit::Week,
            "month" | "1M" => CalendarUnit::Month,
            "quarter" | "1q" => CalendarUnit::Quarter,
            "year" | "1y" => CalendarUnit::Year,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: Millis = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    proptest! {
        #[test]
        fn fast_time_formatting_agrees_with_the_time_crate(ms in MIN_MS..=MAX_MS) {
            let (mut fast, mut slow) = (String::new(), String::new());
            write_time(&mut fast, ms);
            write_time_slow(&mut slow, ms);
            prop_assert_eq!(&fast, &slow);
            prop_assert_eq!(parse_time(&fast, NOW).unwrap(), ms);
        }
    }

    #[test]
    fn time_formatting_at_the_edges() {
        for (ms, s) in [
            (MIN_MS, "0001-01-01T00:00:00.000Z"),
            (MAX_MS, "9999-12-31T23:59:59.999Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
        ] {
            assert_eq!(format_time(ms), s);
        }
    }

    #[test]
    fn rfc3339_with_offset_is_normalized_to_utc() {
        let t = parse_time("2025-12-01T01:00:00+01:00", NOW).unwrap();
        assert_eq!(format_time(t), "2025-12-01T00:00:00.000Z");
    }

    #[test]
    fn relative_forms_resolve_against_now() {
        assert_eq!(parse_time("now", NOW).unwrap(), NOW);
        assert_eq!(parse_time("now+2h", NOW).unwrap(), NOW + 7_200_000);
        assert_eq!(parse_time("now-1w", NOW).unwrap(), NOW - 604_800_000);
        assert!(parse_time("now-", NOW).is_err());
        assert!(parse_time("now*2d", NOW).is_err());
        assert!(parse_time("now-2y", NOW).is_err());
    }

    #[test]
    fn bad_dates_are_rejected() {
        for s in ["2025-13-01", "2025-02-30", "yesterday", "", "2025-1-01", "+2025-01-01"] {
            assert!(parse_time(s, NOW).is_err(), "{s}");
        }
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("30d").unwrap(), 30 * 86_400_000);
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("-3d").is_err());
        assert!(parse_duration("99999999999999999w").is_err());
    }

    #[test]
    fn calendar_truncation_and_steps() {
        let t = parse_time("2025-05-17T13:14:15.123Z", NOW).unwrap();
        assert_eq!(
            format_time(truncate(t, CalendarUnit::Month)),
            "2025-05-01T00:00:00.000Z"
        );
        assert_eq!(
            format_time(truncate(t, CalendarUnit::Quarter)),
            "2025-04-01T00:00:00.000Z"
        );
        assert_eq!(format_time(truncate(t, CalendarUnit::Week)), "2025-05-12T00:00:00.000Z");
        assert_eq!(format_time(truncate(t, CalendarUnit::Year)), "2025-01-01T00:00:00.000Z");
        let dec = parse_time("2025-12-01", NOW).unwrap();
        assert_eq!(
            format_time(next_unit(dec, CalendarUnit::Month)),
            "2026-01-01T00:00:00.000Z"
        );
        assert_eq!(
            format_time(next_unit(dec, CalendarUnit::Quarter)),
            "2026-03-01T00:00:00.000Z"
        );
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(ms in MIN_MS..=MAX_MS) {
            prop_assert_eq!(parse_time(&format_time(ms), NOW).unwrap(), ms);
        }
    }
}
