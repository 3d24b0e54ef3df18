//! A worker's read buffer: small while reads are small, growing while reads fill it.

/// The size a buffer starts at: enough for a short message, and small enough that a thousand
/// idle workers hold half a MiB of buffers between them.
const INITIAL: usize = 512;

/// A read buffer that starts small and doubles, up to its maximum, whenever a read fills it, so
/// that a thousand idle workers cost little while a bulk stream still gets large reads after a
/// few chunks. It never shrinks: a worker that has streamed once keeps its size.
///
/// ```text
/// let mut buf = ReadBuffer::new(16 << 10);
/// let read = stream.read(buf.space())?;
/// session.data(&buf.space()[..read], out)?;
/// buf.filled(read);
/// ```
#[derive(Debug)]
pub(crate) struct ReadBuffer {
    bytes: Vec<u8>,
    max: usize,
}

impl ReadBuffer {
    /// A buffer that will grow to at most `max` bytes (at least 1).
    pub(crate) fn new(max: usize) -> Self {
        let max = max.max(1);
        ReadBuffer {
            bytes: vec![0; INITIAL.min(max)],
            max,
        }
    }

    /// Where the next read goes.
    pub(crate) fn space(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    /// Records that a read returned `read` bytes; a full buffer doubles for the next read.
    /// Returns whether the read filled the buffer (so more is probably waiting).
    pub(crate) fn filled(&mut self, read: usize) -> bool {
        let full = read == self.bytes.len();
        if full && self.bytes.len() < self.max {
            let grown = (self.bytes.len() * 2).min(self.max);
            self.bytes.resize(grown, 0);
        }
        full
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_by_doubling_while_full_up_to_the_maximum() {
        let mut buf = ReadBuffer::new(5_000);
        assert_eq!(buf.space().len(), 512);
        assert!(!buf.filled(100));
        assert_eq!(buf.space().len(), 512, "a partial read does not grow it");
        assert!(buf.filled(512));
        assert_eq!(buf.space().len(), 1024);
        buf.filled(1024);
        buf.filled(2048);
        assert_eq!(buf.space().len(), 4096);
        buf.filled(4096);
        assert_eq!(buf.space().len(), 5_000);
        assert!(buf.filled(5_000), "full, though it cannot grow");
        assert_eq!(buf.space().len(), 5_000);
    }

    #[test]
    fn a_maximum_below_the_initial_size_is_the_size() {
        let mut buf = ReadBuffer::new(32);
        assert_eq!(buf.space().len(), 32);
        buf.filled(32);
        assert_eq!(buf.space().len(), 32);
    }
}
