//! `uppercase`: the Unicode uppercase of UTF-8 text, whatever the split into reads.

use std::io::{self, Write};

use crate::{ConnInfo, Handler, Opened, Session};

/// Writes back the Unicode uppercase of its input (`str::to_uppercase` semantics).
///
/// Bytes that are not valid UTF-8 pass through unchanged, and the text around them is still
/// uppercased. A character split across two reads is held back until it is complete, so the
/// output is the same however the input was split; an incomplete character at end-of-input is
/// written as it is.
///
/// ```
/// use echopool_handlers::{ConnInfo, Handler, Uppercase};
///
/// let mut session = Uppercase.open(&ConnInfo::example()).into_session().unwrap();
/// let mut out = Vec::new();
/// session.data(b"stra\xC3", &mut out).unwrap(); // "\xC3\x9F" is 'ß', split in two
/// session.data(b"\x9Fe \xFF ok", &mut out).unwrap();
/// session.eof(&mut out).unwrap();
/// assert_eq!(out, b"STRASSE \xFF OK");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Uppercase;

impl Handler for Uppercase {
    fn open(&self, _conn: &ConnInfo) -> Opened {
        Opened::session(UppercaseSession::default())
    }
}

/// The longest UTF-8 sequence; a held-back incomplete one is shorter.
const MAX_UTF8_LEN: usize = 4;

/// One connection's state: the start of a character split across reads, and a reusable output
/// buffer so a chunk costs one write and no allocation once the buffer has grown.
#[derive(Debug, Default)]
struct UppercaseSession {
    held: Vec<u8>,
    converted: Vec<u8>,
}

impl Session for UppercaseSession {
    fn data(&mut self, input: &[u8], out: &mut dyn Write) -> io::Result<()> {
        self.converted.clear();
        let rest = self.complete_held(input);
        self.convert(rest);
        if self.converted.is_empty() {
            return Ok(());
        }
        out.write_all(&self.converted)
    }

    fn eof(&mut self, out: &mut dyn Write) -> io::Result<()> {
        // An incomplete character at the very end is not UTF-8: it passes unchanged.
        let held = std::mem::take(&mut self.held);
        out.write_all(&held)
    }
}

impl UppercaseSession {
    /// Finishes the character held from the previous read with the first bytes of `input`;
    /// returns the part of `input` that follows it.
    fn complete_held<'a>(&mut self, input: &'a [u8]) -> &'a [u8] {
        if self.held.is_empty() {
            return input;
        }
        let held_len = self.held.len();
        let mut joint = std::mem::take(&mut self.held);
        joint.extend_from_slice(&input[..input.len().min(MAX_UTF8_LEN)]);
        // The first unit of `joint` is the held character, complete or proven invalid.
        let first = joint.utf8_chunks().next().expect("joint is not empty");
        let unit_len = match first.valid().chars().next() {
            Some(c) => {
                push_uppercase(&mut self.converted, c.encode_utf8(&mut [0; 4]));
                c.len_utf8()
            }
            None if first.invalid().len() == joint.len() && is_incomplete(first.invalid()) => {
                // Still incomplete: all of the input was used and the character goes on.
                self.held = joint;
                return &[];
            }
            None => {
                self.converted.extend_from_slice(first.invalid());
                first.invalid().len()
            }
        };
        // A held prefix is valid so far, so its unit covers at least the held bytes.
        debug_assert!(unit_len >= held_len);
        &input[unit_len - held_len..]
    }

    /// Uppercases `input`, passing invalid bytes through and holding an incomplete tail.
    fn convert(&mut self, input: &[u8]) {
        let mut chunks = input.utf8_chunks().peekable();
        while let Some(chunk) = chunks.next() {
            push_uppercase(&mut self.converted, chunk.valid());
            let invalid = chunk.invalid();
            if chunks.peek().is_none() && is_incomplete(invalid) {
                self.held.extend_from_slice(invalid);
            } else {
                self.converted.extend_from_slice(invalid);
            }
        }
    }
}

/// Whether `invalid`, an invalid run at the end of the input, is a character cut short by the
/// end of the input rather than bytes that can never be UTF-8.
fn is_incomplete(invalid: &[u8]) -> bool {
    std::str::from_utf8(invalid).is_err_and(|err| err.error_len().is_none())
}

fn push_uppercase(out: &mut Vec<u8>, text: &str) {
    if text.is_ascii() {
        out.extend(text.bytes().map(|b| b.to_ascii_uppercase()));
        return;
    }
    let mut utf8 = [0; 4];
    for c in text.chars().flat_map(char::to_uppercase) {
        out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reference: `str::to_uppercase` on each valid run of the whole input at once.
    fn reference(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in input.utf8_chunks() {
            out.extend_from_slice(chunk.valid().to_uppercase().as_bytes());
            out.extend_from_slice(chunk.invalid());
        }
        out
    }

    fn run_split(input: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut session = UppercaseSession::default();
        let mut out = Vec::new();
        let mut start = 0;
        let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
        cuts.sort_unstable();
        for cut in cuts.into_iter().chain([input.len()]) {
            session.data(&input[start..cut], &mut out).unwrap();
            start = cut;
        }
        session.eof(&mut out).unwrap();
        out
    }

    #[test]
    fn uppercases_unicode() {
        assert_eq!(
            run_split("straße ǆ éa".as_bytes(), &[]),
            "STRASSE Ǆ ÉA".as_bytes()
        );
    }

    #[test]
    fn invalid_bytes_pass_and_letters_around_them_change() {
        assert_eq!(run_split(b"a\xFFb\xC3(c", &[]), b"A\xFFB\xC3(C");
    }

    #[test]
    fn a_character_split_byte_by_byte_is_held_until_complete() {
        let input = "x😀é".as_bytes();
        let every_byte: Vec<usize> = (1..input.len()).collect();
        assert_eq!(run_split(input, &every_byte), "X😀É".as_bytes());
    }

    #[test]
    fn an_incomplete_character_at_eof_passes_unchanged() {
        assert_eq!(run_split(b"ab\xF0\x9F", &[3]), b"AB\xF0\x9F");
    }

    #[test]
    fn a_held_prefix_broken_by_the_next_read_passes_unchanged() {
        assert_eq!(run_split(b"\xE2\x82zz", &[2]), b"\xE2\x82ZZ");
        assert_eq!(run_split(b"\xF0\x9F\x98q", &[1, 2, 3]), b"\xF0\x9F\x98Q");
    }

    /// Bytes that are mostly text, with the awkward cases (multi-byte, invalid) common.
    fn texty_bytes() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            "[a-zß]{0,4}".prop_map(String::into_bytes),
            any::<char>().prop_map(|c| c.to_string().into_bytes()),
            prop::collection::vec(any::<u8>(), 0..4),
            Just(vec![0xF0, 0x9F]),
        ];
        prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #[test]
        fn output_matches_whole_input_reference_for_any_split(
            input in texty_bytes(),
            cuts in prop::collection::vec(any::<usize>(), 0..8),
        ) {
            let cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
            prop_assert_eq!(run_split(&input, &cuts), reference(&input));
        }
    }
}
