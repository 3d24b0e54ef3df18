//! Parsing durations given on the command line (`500ms`, `30s`, `5m`, `0`).

use std::time::Duration;

/// Parses a human duration such as `500ms`, `30s`, `1m30s` or `2h`; a bare `0` is zero.
///
/// Used as a clap `value_parser`; the error text is shown after clap's
/// "invalid value 'X' for '--flag <DUR>'", so it says what is accepted.
///
/// ```
/// use std::time::Duration;
/// use echopool::duration_arg::parse_duration;
///
/// assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
/// assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
/// assert!(parse_duration("30").is_err()); // a unit is required
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text).map_err(|err| {
        format!("{err}; expected a number with a unit, e.g. 500ms, 30s, 5m, 1h (or 0)")
    })
}

/// Like [`parse_duration`], but zero is refused (for limits where zero makes no sense).
pub fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        Duration::ZERO => Err("must be greater than zero, e.g. 500ms or 10s".to_string()),
        duration => Ok(duration),
    }
}

/// Maps the `0 = never` convention of limit flags to an `Option`.
pub fn nonzero(duration: Duration) -> Option<Duration> {
    (!duration.is_zero()).then_some(duration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_units_and_zero() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration(" 0 "), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_garbage_with_a_hint() {
        for bad in ["", "abc", "10", "-5s", "5 parsecs"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("e.g. 500ms"), "{bad:?}: {err}");
        }
        assert!(parse_positive_duration("0").is_err());
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,24}") {
            let _ = parse_duration(&text);
        }

        #[test]
        fn round_trips_milliseconds(ms in 1u64..10_000_000) {
            prop_assert_eq!(parse_duration(&format!("{ms}ms")), Ok(Duration::from_millis(ms)));
        }
    }
}
