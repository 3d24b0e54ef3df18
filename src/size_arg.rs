//! Parsing byte sizes given on the command line (`4096`, `64KiB`, `1M`).

/// Parses a byte count: a whole number with an optional binary unit
/// (`K`/`KiB`/`k`, `M`/`MiB`, `G`/`GiB`; `B` alone means bytes).
///
/// ```
/// use echopool::size_arg::parse_size;
///
/// assert_eq!(parse_size("4096"), Ok(4096));
/// assert_eq!(parse_size("64KiB"), Ok(65536));
/// assert_eq!(parse_size("1M"), Ok(1 << 20));
/// assert!(parse_size("1.5M").is_err());
/// ```
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    let hint = "expected a whole number of bytes with an optional unit, e.g. 4096, 64KiB, 1MiB";
    if digits.is_empty() {
        return Err(format!("no number; {hint}"));
    }
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown unit '{other}'; {hint}")),
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("number too large; {hint}"))?;
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("number too large; {hint}"))
}

/// Returns a clap `value_parser` that accepts sizes from `min` to `max` bytes.
pub fn size_in(
    min: u64,
    max: u64,
) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync + 'static {
    move |text| {
        let size = parse_size(text)?;
        if size < min || size > max {
            return Err(format!("must be from {min} to {max} bytes"));
        }
        usize::try_from(size).map_err(|_| format!("must be at most {} bytes", usize::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn units_are_binary_and_case_blind() {
        assert_eq!(parse_size("2k"), Ok(2048));
        assert_eq!(parse_size("2KB"), Ok(2048));
        assert_eq!(parse_size("3 MiB"), Ok(3 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("7b"), Ok(7));
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        for bad in ["", "k", "-1", "1.5k", "12 parsecs", "99999999999999999999"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
        assert!(parse_size("18446744073709551615k").is_err());
    }

    #[test]
    fn bounds_are_inclusive() {
        let parse = size_in(1, 1024);
        assert_eq!(parse("1"), Ok(1));
        assert_eq!(parse("1k"), Ok(1024));
        assert!(parse("0").unwrap_err().contains("from 1 to 1024"));
        assert!(parse("1025").is_err());
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,24}") {
            let _ = parse_size(&text);
        }

        #[test]
        fn plain_numbers_round_trip(n in any::<u64>()) {
            prop_assert_eq!(parse_size(&n.to_string()), Ok(n));
        }
    }
}
