//! Timestamps as they appear in interaction files, to unix milliseconds: the one parser of
//! dates and times of the interaction import and of the evaluation (redrec-eval reads its files
//! and its `--cutoff` with it).
//!
//! Accepted: numbers (unix seconds, milliseconds, microseconds or nanoseconds, told apart by
//! magnitude: any instant between March 1973 and the year 5138 is read right) and strings: the same numbers, `YYYY-MM-DD`,
//! `YYYY-MM-DD HH:MM[:SS[.fff]]` or RFC 3339 (`T` separator, `Z` or `±HH:MM` offset). A string
//! without an offset is UTC. Parquet `TIMESTAMP` columns arrive as numbers in their own unit
//! (milli-, micro- or nanoseconds: pandas writes nanoseconds, as in the Complete Journey
//! transactions) and fall under the magnitude rule.

use crate::source::Value;

/// Below this a number is seconds (1e11 s is the year 5138; 1e11 ms is March 1973).
const MS_FROM: f64 = 1e11;
/// From this a number is microseconds (1e14 ms is the year 5138; 1e14 µs is March 1973).
const US_FROM: f64 = 1e14;
/// From this a number is nanoseconds (1e17 µs is the year 5138; 1e17 ns is March 1973).
const NS_FROM: f64 = 1e17;

/// The unit of numeric timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TimeUnit {
    /// Told apart by magnitude: from 1e17 nanoseconds, from 1e14 microseconds, from 1e11
    /// milliseconds, else seconds.
    #[default]
    Auto,
    Seconds,
    Millis,
    Micros,
    Nanos,
}

/// Unix milliseconds of a value, or why not (numbers told apart by magnitude).
pub fn to_unix_ms(v: &Value) -> Result<i64, String> {
    to_unix_ms_in(v, TimeUnit::Auto)
}

/// Unix milliseconds of a value whose numbers are in `unit`, or why not.
pub fn to_unix_ms_in(v: &Value, unit: TimeUnit) -> Result<i64, String> {
    match v {
        Value::Num(n) => number_ms(*n, unit),
        Value::Str(s) => parse_in(s.trim(), unit),
        other => Err(format!(
            "expected a timestamp (unix seconds / ms / µs, or a date `YYYY-MM-DD[ HH:MM:SS]`), got {}",
            other.kind()
        )),
    }
}

/// Unix milliseconds of a date / date-time string (or a number in the text, by magnitude).
pub fn parse_timestamp_ms(s: &str) -> Result<i64, String> {
    parse_in(s.trim(), TimeUnit::Auto)
}

fn number_ms(n: f64, unit: TimeUnit) -> Result<i64, String> {
    if !n.is_finite() || n < 0.0 {
        return Err(format!("timestamp {n} is not a non-negative number"));
    }
    let unit = match unit {
        TimeUnit::Auto if n >= NS_FROM => TimeUnit::Nanos,
        TimeUnit::Auto if n >= US_FROM => TimeUnit::Micros,
        TimeUnit::Auto if n >= MS_FROM => TimeUnit::Millis,
        TimeUnit::Auto => TimeUnit::Seconds,
        u => u,
    };
    let ms = match unit {
        TimeUnit::Nanos => n / 1e6,
        TimeUnit::Micros => n / 1000.0,
        TimeUnit::Millis => n,
        _ => n * 1000.0,
    };
    Ok(ms.round() as i64)
}

/// `YYYY-MM-DD` of a unix time in seconds (UTC; Howard Hinnant's `civil_from_days`).
pub fn civil_date(secs: i64) -> String {
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn digits(s: &str, what: &str) -> Result<i64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad {what} `{s}`"));
    }
    s.parse().map_err(|_| format!("bad {what} `{s}`"))
}

fn parse_in(s: &str, unit: TimeUnit) -> Result<i64, String> {
    if let Ok(n) = s.parse::<f64>() {
        return number_ms(n, unit);
    }
    let bad = |why: String| format!("timestamp `{s}`: {why}");
    let (date, rest) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(s[i + 1..].trim())),
        None => (s, None),
    };
    let mut parts = date.split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("expected a date `YYYY-MM-DD`".into()));
    };
    let (y, m, d) = (
        digits(y, "year").map_err(bad)?,
        digits(m, "month").map_err(bad)?,
        digits(d, "day").map_err(bad)?,
    );
    if !(1970..=2100).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad("date out of range (years 1970-2100)".into()));
    }
    let mut ms = days_from_civil(y, m, d) * 86_400_000;
    if let Some(rest) = rest.filter(|r| !r.is_empty()) {
        // split off the offset: Z, +HH:MM or -HH:MM
        let (clock, offset_ms) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
            (c, 0)
        } else if let Some(i) = rest.rfind(['+', '-']) {
            let (c, off) = rest.split_at(i);
            let sign = if off.starts_with('-') { -1 } else { 1 };
            let mut hm = off[1..].split(':');
            let h = digits(hm.next().unwrap_or(""), "offset hours").map_err(bad)?;
            let m = hm
                .next()
                .map(|m| digits(m, "offset minutes"))
                .transpose()
                .map_err(bad)?
                .unwrap_or(0);
            (c, sign * (h * 3_600_000 + m * 60_000))
        } else {
            (rest, 0)
        };
        let mut hms = clock.split(':');
        let h = digits(hms.next().unwrap_or(""), "hour").map_err(bad)?;
        let mi = digits(hms.next().unwrap_or(""), "minute").map_err(bad)?;
        let sec_ms = match hms.next() {
            None => 0,
            Some(sec) => {
                let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
                let whole = digits(whole, "second").map_err(bad)?;
                let frac_ms = if frac.is_empty() {
                    0
                } else {
                    let f3: String = frac.chars().chain("000".chars()).take(3).collect();
                    digits(&f3, "fraction of a second").map_err(bad)?
                };
                whole * 1000 + frac_ms
            }
        };
        if hms.next().is_some() || h > 23 || mi > 59 || sec_ms >= 61_000 {
            return Err(bad("time of day out of range".into()));
        }
        ms += h * 3_600_000 + mi * 60_000 + sec_ms - offset_ms;
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(v: Value, want: i64) {
        assert_eq!(to_unix_ms(&v), Ok(want), "{v:?}");
    }

    #[test]
    fn numbers_by_magnitude() {
        check(Value::Num(1_500_000_000.0), 1_500_000_000_000);
        check(Value::Num(1_500_000_000_123.0), 1_500_000_000_123);
        check(Value::Num(1_500_000_000_123_456.0), 1_500_000_000_123);
        check(Value::Num(1_500_000_000_123_456_789.0), 1_500_000_000_123);
        check(Value::Str("1500000000".into()), 1_500_000_000_000);
        assert!(to_unix_ms(&Value::Num(-1.0)).is_err());
        assert_eq!(
            to_unix_ms_in(&Value::Num(1500.0), TimeUnit::Millis),
            Ok(1500)
        );
        assert_eq!(
            to_unix_ms_in(&Value::Str("1500".into()), TimeUnit::Micros),
            Ok(2)
        );
        assert_eq!(civil_date(1_512_086_400), "2017-12-01");
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(951_782_400), "2000-02-29");
        assert!(to_unix_ms(&Value::Null).unwrap_err().contains("got null"));
    }

    #[test]
    fn dates_and_times() {
        check(Value::Str("1970-01-01".into()), 0);
        check(Value::Str("2017-01-01".into()), 1_483_228_800_000);
        check(Value::Str("2017-01-01 13:05:09".into()), 1_483_275_909_000);
        check(Value::Str("2017-01-01T13:05:09Z".into()), 1_483_275_909_000);
        check(
            Value::Str("2017-01-01T13:05:09.25Z".into()),
            1_483_275_909_250,
        );
        check(
            Value::Str("2017-01-01T15:05:09+02:00".into()),
            1_483_275_909_000,
        );
        check(
            Value::Str("2017-01-01T08:05-05:00".into()),
            1_483_275_900_000,
        );
        check(Value::Str("2016-02-29".into()), 1_456_704_000_000);
        for bad in [
            "2017-13-01",
            "2017-01",
            "yesterday",
            "2017-01-01 25:00",
            "2017-01-01 1x:00",
        ] {
            assert!(to_unix_ms(&Value::Str(bad.into())).is_err(), "{bad}");
        }
    }
}
