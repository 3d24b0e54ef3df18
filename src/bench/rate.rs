//! The `--rate` of `--mode idle`: how many messages the whole run sends per second, given either
//! as a total (`100/s`) or as the share of the connections that speak each second (`1%`).

use std::fmt;

/// The most messages per second a run may schedule: one poller thread writes and reads them all.
pub const MAX_RATE: f64 = 1e6;

/// A `--rate` value as given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// Messages per second in all, whatever the number of connections.
    PerSecond(f64),
    /// Percent of the connections that send a message each second (on average).
    PercentPerSecond(f64),
}

impl Rate {
    /// Messages per second in all, for a run of `connections` connections.
    pub fn total(self, connections: usize) -> f64 {
        match self {
            Rate::PerSecond(rate) => rate,
            Rate::PercentPerSecond(percent) => percent / 100.0 * connections as f64,
        }
    }
}

impl Default for Rate {
    /// `1%`: the issue's "mostly idle" client speaks about once every 100 s.
    fn default() -> Self {
        Rate::PercentPerSecond(1.0)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::PerSecond(rate) => write!(f, "{rate}/s"),
            Rate::PercentPerSecond(percent) => write!(f, "{percent}%"),
        }
    }
}

/// Parses `100/s`, `2.5/s` or `1%` (of the connections, each second); a clap `value_parser`.
///
/// ```
/// use echopool::bench::{parse_rate, Rate};
///
/// assert_eq!(parse_rate("100/s"), Ok(Rate::PerSecond(100.0)));
/// assert_eq!(parse_rate("1%"), Ok(Rate::PercentPerSecond(1.0)));
/// assert!(parse_rate("100").is_err()); // a unit is required
/// ```
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    let hint = "expected messages per second in all (100/s) or the percent of the connections \
                that speak each second (1%)";
    let text = text.trim();
    let (number, rate): (&str, fn(f64) -> Rate) = if let Some(n) = text.strip_suffix("/s") {
        (n, Rate::PerSecond)
    } else if let Some(n) = text.strip_suffix('%') {
        (n, Rate::PercentPerSecond)
    } else {
        return Err(format!("no unit; {hint}"));
    };
    match number.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => {
            let parsed = rate(n);
            // A percent is checked against the cap once the connections are known.
            if matches!(parsed, Rate::PerSecond(r) if r > MAX_RATE) {
                return Err(format!("at most {MAX_RATE} messages per second"));
            }
            Ok(parsed)
        }
        _ => Err(format!("'{number}' is not a number greater than 0; {hint}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_and_percentages() {
        assert_eq!(parse_rate("100/s").unwrap().total(10), 100.0);
        assert_eq!(parse_rate("0.5/s").unwrap().total(10), 0.5);
        assert_eq!(parse_rate(" 1% ").unwrap().total(10_000), 100.0);
        assert_eq!(parse_rate("10%").unwrap().total(1_000), 100.0);
        assert_eq!(Rate::default().total(1_000), 10.0);
        assert_eq!(Rate::PerSecond(2.5).to_string(), "2.5/s");
        assert_eq!(Rate::PercentPerSecond(1.0).to_string(), "1%");
    }

    #[test]
    fn refuses_what_is_not_a_rate() {
        for bad in [
            "", "100", "/s", "%", "0/s", "-1%", "x/s", "inf/s", "NaN%", "2e6/s",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad:?}");
        }
    }
}
