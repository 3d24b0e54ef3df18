//! The bytes sent: a fixed pattern, made once per connection, with a message number stamped
//! at the front so that a stale or repeated echo is caught as well as a corrupted one.

/// A reusable message buffer.
#[derive(Debug, Clone)]
pub struct Payload {
    bytes: Vec<u8>,
}

impl Payload {
    /// A message of `size` bytes; `seed` (e.g. the connection number) makes each connection's
    /// pattern differ, so that bytes crossed between connections are caught.
    pub fn new(size: usize, seed: u64) -> Payload {
        let bytes = (0..size as u64)
            .map(|i| (i.wrapping_mul(131).wrapping_add(seed.wrapping_mul(29)) % 251) as u8)
            .collect();
        Payload { bytes }
    }

    /// Writes `number` into the first (up to) eight bytes.
    pub fn stamp(&mut self, number: u64) {
        let n = self.bytes.len().min(8);
        self.bytes[..n].copy_from_slice(&number.to_le_bytes()[..n]);
    }

    /// The message as it is now.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether `echo` is this message, byte for byte.
    pub fn matches(&self, echo: &[u8]) -> bool {
        self.bytes == echo
    }

    /// Whether `piece` is the message stamped `number` from byte `offset` on, without stamping:
    /// for echoes that arrive in pieces while other messages are being written.
    pub fn matches_part(&self, number: u64, offset: usize, piece: &[u8]) -> bool {
        let Some(expected) = self.bytes.get(offset..offset + piece.len()) else {
            return false;
        };
        // The first (up to) eight bytes are the stamp, the rest the pattern.
        let stamp = number.to_le_bytes();
        let stamped = self.bytes.len().min(stamp.len()).saturating_sub(offset);
        let (head, tail) = piece.split_at(stamped.min(piece.len()));
        (head.is_empty() || head == &stamp[offset..offset + head.len()])
            && tail == &expected[head.len()..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_change_the_message_and_fit_tiny_sizes() {
        let mut p = Payload::new(64, 3);
        let first = p.bytes().to_vec();
        p.stamp(1);
        assert_ne!(p.bytes(), &first[..]);
        assert!(p.matches(p.bytes()));
        let mut tiny = Payload::new(1, 0);
        tiny.stamp(0x1234);
        assert_eq!(tiny.bytes(), &[0x34]);
        assert_ne!(Payload::new(8, 1).bytes(), Payload::new(8, 2).bytes());
    }

    #[test]
    fn parts_match_the_stamped_message_in_any_split() {
        for size in [1, 5, 8, 9, 64] {
            let mut p = Payload::new(size, 7);
            p.stamp(0xDEAD_BEEF_0102);
            let whole = p.bytes().to_vec();
            for cut in 0..=size {
                assert!(p.matches_part(0xDEAD_BEEF_0102, 0, &whole[..cut]));
                assert!(p.matches_part(0xDEAD_BEEF_0102, cut, &whole[cut..]));
            }
            // Another number, a flipped byte, or bytes past the end do not match.
            assert!(!p.matches_part(3, 0, &whole));
            let mut wrong = whole.clone();
            wrong[size - 1] ^= 1;
            assert!(!p.matches_part(0xDEAD_BEEF_0102, 0, &wrong));
            assert!(!p.matches_part(0xDEAD_BEEF_0102, 1, &whole));
        }
    }
}
