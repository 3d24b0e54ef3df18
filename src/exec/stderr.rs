//! A program's stderr, cut into lines for the log.

/// The longest line logged as one; a longer one is logged in pieces of this size.
const MAX_LINE: usize = 4096;

/// Bytes of a program's stderr, held until a line is complete.
#[derive(Debug, Default)]
pub(crate) struct Lines {
    held: Vec<u8>,
}

impl Lines {
    /// Takes a chunk and hands every complete line (without its `\n` or `\r\n`, invalid UTF-8
    /// replaced) to `line`.
    pub(crate) fn feed(&mut self, chunk: &[u8], mut line: impl FnMut(&str)) {
        self.held.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(end) = self.held[start..].iter().position(|&b| b == b'\n') {
            emit(&self.held[start..start + end], &mut line);
            start += end + 1;
        }
        self.held.drain(..start);
        while self.held.len() >= MAX_LINE {
            emit(&self.held[..MAX_LINE], &mut line);
            self.held.drain(..MAX_LINE);
        }
    }

    /// The stream ended: hands on what is left, a last line without its `\n`.
    pub(crate) fn finish(&mut self, mut line: impl FnMut(&str)) {
        if !self.held.is_empty() {
            emit(&self.held, &mut line);
            self.held.clear();
        }
    }
}

fn emit(bytes: &[u8], line: &mut impl FnMut(&str)) {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    line(&String::from_utf8_lossy(bytes));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(chunks: &[&[u8]]) -> Vec<String> {
        let mut lines = Lines::default();
        let mut out = Vec::new();
        for chunk in chunks {
            lines.feed(chunk, |line| out.push(line.to_string()));
        }
        lines.finish(|line| out.push(line.to_string()));
        out
    }

    #[test]
    fn lines_may_arrive_split_anywhere() {
        assert_eq!(
            lines(&[b"one\ntw", b"o\r\n", b"\nthree"]),
            ["one", "two", "", "three"]
        );
        assert_eq!(lines(&[b"bad \xff byte\n"]), ["bad \u{fffd} byte"]);
        assert!(lines(&[]).is_empty());
    }

    #[test]
    fn a_very_long_line_is_logged_in_pieces() {
        let long = vec![b'x'; MAX_LINE * 2 + 10];
        let out = lines(&[&long]);
        assert_eq!(
            out.iter().map(String::len).collect::<Vec<_>>(),
            [MAX_LINE, MAX_LINE, 10]
        );
    }
}
