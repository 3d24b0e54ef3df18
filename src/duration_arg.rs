//! Durations on the command line (`500ms`, `30s`, `5m`, `0`): parsing them, and showing them
//! in `--help` as they are typed.

use std::fmt;
use std::time::Duration;

/// Parses a human duration such as `500ms`, `30s`, `1m30s` or `2h`; a bare `0` is zero.
///
/// Used as a clap `value_parser`; the error text is shown after clap's
/// "invalid value 'X' for '--flag <DUR>'", so it says what is accepted.
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

/// A duration flag's value; shown in `--help` the way it is typed (`60s`, `500ms`), so a
/// default can come from the server's own `Config::default()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationArg(pub Duration);

impl fmt::Display for DurationArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.is_zero() {
            f.write_str("0")
        } else if d.subsec_nanos() == 0 {
            write!(f, "{}s", d.as_secs())
        } else if d.subsec_nanos().is_multiple_of(1_000_000) {
            write!(f, "{}ms", d.as_millis())
        } else {
            write!(f, "{}", humantime::format_duration(d))
        }
    }
}

/// Parses a [`DurationArg`].
pub fn parse_duration_arg(text: &str) -> Result<DurationArg, String> {
    parse_duration(text).map(DurationArg)
}

/// A limit flag's value: `0` means no limit (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit<T>(pub Option<T>);

impl<T: fmt::Display> fmt::Display for Limit<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(limit) => limit.fmt(f),
            None => f.write_str("0"),
        }
    }
}

impl Limit<DurationArg> {
    /// The duration, `None` for no limit.
    pub fn duration(self) -> Option<Duration> {
        self.0.map(|arg| arg.0)
    }

    /// The flag value of an optional duration: `None` shows as `0`.
    pub fn of(duration: Option<Duration>) -> Self {
        Limit(duration.map(DurationArg))
    }
}

/// Parses a duration limit: `0` is no limit.
pub fn parse_duration_limit(text: &str) -> Result<Limit<DurationArg>, String> {
    parse_duration(text).map(|d| Limit::of(nonzero(d)))
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

    #[test]
    fn durations_show_as_they_are_typed() {
        for text in ["0", "60s", "10s", "500ms", "1h 1ms"] {
            let shown = parse_duration_arg(text).unwrap().to_string();
            let canonical = if text == "1h 1ms" { "3600001ms" } else { text };
            assert_eq!(shown, canonical);
        }
        assert_eq!(parse_duration_limit("0"), Ok(Limit(None)));
        assert_eq!(parse_duration_limit("0").unwrap().to_string(), "0");
        assert_eq!(
            parse_duration_limit("30s").unwrap().duration(),
            Some(Duration::from_secs(30))
        );
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

        #[test]
        fn what_help_shows_parses_back(nanos in any::<u64>()) {
            let arg = DurationArg(Duration::from_nanos(nanos));
            prop_assert_eq!(parse_duration_arg(&arg.to_string()), Ok(arg));
        }
    }
}
