//! Byte sizes on the command line (`4096`, `64KiB`, `1M`): parsing them, and showing them in
//! `--help` as they are typed.

use std::fmt;

use crate::duration_arg::Limit;

/// Parses a byte count: a whole number with an optional binary unit
/// (`K`/`KiB`/`k`, `M`/`MiB`, `G`/`GiB`; `B` alone means bytes): `4096`, `64KiB`, `1M`.
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

/// A size flag's value, shown in `--help` with the largest binary unit that divides it
/// (`16KiB`), so a default can come from the server's own `Config::default()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0;
        for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if bytes >= size && bytes.is_multiple_of(size) {
                return write!(f, "{}{unit}", bytes / size);
            }
        }
        write!(f, "{bytes}")
    }
}

impl ByteSize {
    /// The size as a `usize` (what was parsed by [`byte_size_in`] fits one).
    pub fn get(self) -> usize {
        usize::try_from(self.0).expect("checked by the parser")
    }
}

/// Like [`size_in`], for a [`ByteSize`].
pub fn byte_size_in(
    min: u64,
    max: u64,
) -> impl Fn(&str) -> Result<ByteSize, String> + Clone + Send + Sync + 'static {
    let parse = size_in(min, max);
    move |text| parse(text).map(|size| ByteSize(size as u64))
}

/// Parses a size limit: `0` is no limit.
pub fn parse_size_limit(text: &str) -> Result<Limit<ByteSize>, String> {
    parse_size(text).map(|size| Limit((size > 0).then_some(ByteSize(size))))
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

    #[test]
    fn sizes_show_with_their_largest_unit() {
        assert_eq!(ByteSize(16 << 10).to_string(), "16KiB");
        assert_eq!(ByteSize(256 << 10).to_string(), "256KiB");
        assert_eq!(ByteSize(3 << 30).to_string(), "3GiB");
        assert_eq!(ByteSize(1000).to_string(), "1000");
        assert_eq!(parse_size_limit("0"), Ok(Limit(None)));
        assert_eq!(parse_size_limit("1k").unwrap().to_string(), "1KiB");
    }

    proptest! {
        #[test]
        fn what_help_shows_parses_back(n in any::<u64>()) {
            prop_assert_eq!(parse_size(&ByteSize(n).to_string()), Ok(n));
        }

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
