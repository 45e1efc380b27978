//! Civil dates in UTC, both ways: a Unix time as the ISO date and minute the history shows, and a
//! date (or Unix seconds) as the Unix time a `--since`/`--until` flag means. The calendar arithmetic
//! is the `time` crate's (proleptic Gregorian, years -9999 to 9999).

use time::{Date, Month, OffsetDateTime, Time};

/// A date or time the analyzer cannot read, with the text it was given.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a date (YYYY-MM-DD) or Unix seconds")]
pub struct BadDate(pub String);

/// Formats a Unix time as an ISO date and time to the minute (UTC), e.g. `2000-02-29 00:00`; a time
/// outside the calendar's years (beyond ±9999) is shown as Unix seconds.
pub fn iso(unix_s: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(unix_s) {
        Ok(t) => format!("{:04}-{:02}-{:02} {:02}:{:02}", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute()),
        Err(_) => format!("{unix_s} s"),
    }
}

/// Parses a date (YYYY-MM-DD, meaning UTC midnight) or Unix seconds as Unix seconds; a day the
/// month does not have (2026-02-30, 2025-02-29) is an error, not the next month.
pub fn parse_when(text: &str) -> Result<i64, BadDate> {
    if let Ok(secs) = text.parse::<i64>() {
        return Ok(secs);
    }
    let bad = || BadDate(text.to_owned());
    let mut parts = text.split('-');
    let (Some(y), Some(m), Some(d), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else { return Err(bad()) };
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<i32>(), m.parse::<u8>(), d.parse::<u8>()) else { return Err(bad()) };
    let month = Month::try_from(m).map_err(|_| bad())?;
    let date = Date::from_calendar_date(y, month, d).map_err(|_| bad())?;
    Ok(date.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values from GNU date, not from this code: `date -u -d 2000-02-29 +%s` and
    // `date -u -d @951782400 '+%F %H:%M'`.
    #[test]
    fn unix_times_format_as_the_civil_calendar() {
        assert_eq!(iso(0), "1970-01-01 00:00");
        assert_eq!(iso(951_782_400), "2000-02-29 00:00");
        assert_eq!(iso(1_796_169_600 + 3_723), "2026-12-02 01:02");
        assert_eq!(iso(-1), "1969-12-31 23:59");
        assert_eq!(iso(-2_208_988_800), "1900-01-01 00:00");
        assert_eq!(iso(253_402_300_799), "9999-12-31 23:59");
    }

    #[test]
    fn dates_parse_to_unix_seconds() {
        assert_eq!(parse_when("2026-12-02").unwrap(), 1_796_169_600);
        assert_eq!(parse_when("2000-02-29").unwrap(), 951_782_400);
        assert_eq!(parse_when("2024-02-29").unwrap(), 1_709_164_800);
        assert_eq!(parse_when("1960-01-01").unwrap(), -315_619_200);
        assert_eq!(parse_when("1900-02-28").unwrap(), -2_203_977_600);
        assert_eq!(parse_when("2100-03-01").unwrap(), 4_107_542_400);
        assert_eq!(parse_when("9999-12-31").unwrap(), 253_402_214_400);
        assert_eq!(parse_when("1700000000").unwrap(), 1_700_000_000);
        assert_eq!(parse_when("-1").unwrap(), -1);
    }

    #[test]
    fn a_bad_date_is_one_line_naming_it() {
        for bad in ["2026-13-01", "2026-02-30", "2025-02-29", "1900-02-29", "2026-00-10", "2026-12", "2026-12-02-01", "yesterday", ""] {
            let e = parse_when(bad).unwrap_err().to_string();
            assert_eq!(e, format!("{bad:?} is not a date (YYYY-MM-DD) or Unix seconds"));
        }
    }
}
