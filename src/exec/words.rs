//! Splitting `exec:PROGRAM [ARG...]` into words the way a POSIX shell does, without a shell:
//! quotes and backslashes group and escape, and nothing is expanded.

/// Splits `text` into words:
///
/// - unquoted spaces, tabs and newlines separate words;
/// - `'...'` keeps everything inside as it is;
/// - `"..."` keeps everything inside, except that a backslash escapes `\`, `"`, `$`, `` ` ``
///   and a newline (which it removes); before any other character the backslash stays;
/// - an unquoted backslash keeps the next character as it is (a backslash-newline is removed);
/// - `''` or `""` alone is an empty word.
///
/// Nothing is expanded: `$HOME`, `*` and `~` reach the program as typed. A word that is a
/// shell operator (`|`, `;`, `&&`, `>`, ...) is refused, since without a shell it would only
/// be an odd argument; quote it to pass it on.
///
/// # Errors
///
/// An unclosed quote, a backslash at the very end, an operator, or no words at all; the
/// message says which.
pub(crate) fn split(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    // The word being built, and whether any of it was quoted (so `''` makes a word).
    let mut word: Option<(String, bool)> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if let Some(done) = word.take() {
                    words.push(checked(done)?);
                }
            }
            '\'' => {
                let (word, quoted) = word.get_or_insert_with(|| (String::new(), true));
                *quoted = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("a single quote (') is not closed".to_string()),
                    }
                }
            }
            '"' => {
                let (word, quoted) = word.get_or_insert_with(|| (String::new(), true));
                *quoted = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('\\' | '"' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("a double quote (\") is not closed".to_string()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("a double quote (\") is not closed".to_string()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => {
                    let (word, quoted) = word.get_or_insert_with(|| (String::new(), true));
                    *quoted = true;
                    word.push(c);
                }
                None => return Err("a backslash (\\) ends the text; escape it as \\\\".to_string()),
            },
            c => word.get_or_insert_with(|| (String::new(), false)).0.push(c),
        }
    }
    if let Some(done) = word.take() {
        words.push(checked(done)?);
    }
    if words.is_empty() {
        return Err("no program given".to_string());
    }
    Ok(words)
}

/// The word, unless it is an unquoted shell operator.
fn checked((word, quoted): (String, bool)) -> Result<String, String> {
    const OPERATORS: [&str; 10] = ["|", "||", "&", "&&", ";", ";;", "<", ">", ">>", "2>&1"];
    if !quoted && OPERATORS.contains(&word.as_str()) {
        return Err(format!(
            "'{word}' is a shell operator, but exec: runs no shell; \
             use exec:sh -c '...' for one, or quote it to pass it as an argument"
        ));
    }
    Ok(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        split(text).unwrap_or_else(|err| panic!("{text:?}: {err}"))
    }

    #[test]
    fn splits_on_unquoted_blanks() {
        assert_eq!(words("cat"), ["cat"]);
        assert_eq!(words("  tr  a-z\tA-Z \n"), ["tr", "a-z", "A-Z"]);
    }

    #[test]
    fn quotes_group_and_keep() {
        assert_eq!(
            words(r#"sh -c 'echo "$TCPREMOTEIP $TCPREMOTEPORT"'"#),
            ["sh", "-c", r#"echo "$TCPREMOTEIP $TCPREMOTEPORT""#]
        );
        assert_eq!(words(r#"printf "a b" 'c d'"#), ["printf", "a b", "c d"]);
        assert_eq!(words(r#"a"b"'c'd"#), ["abcd"]);
        assert_eq!(words(r#"x '' """#), ["x", "", ""]);
        assert_eq!(words(r#"x 'it'\''s'"#), ["x", "it's"]);
    }

    #[test]
    fn backslashes_escape_like_a_shell() {
        assert_eq!(words(r"a\ b c"), ["a b", "c"]);
        assert_eq!(words(r#"x "\"\\\$\`\n""#), ["x", r#""\$`\n"#]);
        assert_eq!(words(r"x '\n'"), ["x", r"\n"]);
        assert_eq!(words("a\\\nb"), ["ab"]);
        assert_eq!(words(r"x \|"), ["x", "|"]);
    }

    #[test]
    fn nothing_is_expanded() {
        assert_eq!(words("echo $HOME ~ *.txt"), ["echo", "$HOME", "~", "*.txt"]);
    }

    #[test]
    fn bad_text_says_what_is_wrong() {
        for (text, says) in [
            ("sh -c 'echo", "single quote"),
            ("sh -c \"echo", "double quote"),
            ("sh -c \"echo\\", "double quote"),
            ("echo \\", "backslash"),
            ("", "no program"),
            ("   ", "no program"),
            ("cat | tr a-z A-Z", "'|' is a shell operator"),
            ("cat > out", "'>' is a shell operator"),
            ("true && false", "'&&'"),
        ] {
            let err = split(text).unwrap_err();
            assert!(err.contains(says), "{text:?}: {err}");
        }
        assert_eq!(words("x '|' \">\""), ["x", "|", ">"]);
    }
}
