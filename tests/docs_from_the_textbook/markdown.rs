//! Just enough Markdown for the page's tests: fenced code blocks, inline links, heading anchors.

/// A fenced code block.
#[derive(Debug)]
pub struct Block {
    /// The line of its opening fence, counted from 1.
    pub line: usize,
    /// The info string after the opening fence (`sh runnable`).
    pub info: String,
    /// The lines between the fences.
    pub code: String,
}

/// An inline link, `[text](target)`, outside code blocks.
#[derive(Debug)]
pub struct Link {
    /// Its line, counted from 1.
    pub line: usize,
    pub text: String,
    pub target: String,
}

/// Every fenced code block, in order.
pub fn code_blocks(page: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for (index, line) in page.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(Block {
                    line: index + 1,
                    info: info.trim().to_string(),
                    code: String::new(),
                })
            }
            (Some(_), Some("")) => blocks.extend(open.take()),
            (Some(block), _) => {
                block.code.push_str(line);
                block.code.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "a code block is never closed");
    blocks
}

/// Every inline link outside code blocks. Link texts hold no brackets on this page.
pub fn links(page: &str) -> Vec<Link> {
    let mut links = Vec::new();
    let mut in_block = false;
    for (index, line) in page.lines().enumerate() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            continue;
        }
        let mut rest = line;
        while let Some(middle) = rest.find("](") {
            let Some(start) = rest[..middle].rfind('[') else {
                rest = &rest[middle + 2..];
                continue;
            };
            let after = &rest[middle + 2..];
            let end = after.find(')').expect("a link target ends with `)`");
            links.push(Link {
                line: index + 1,
                text: rest[start + 1..middle].to_string(),
                target: after[..end].to_string(),
            });
            rest = &after[end + 1..];
        }
    }
    links
}

/// The anchors GitHub gives the page's headings: lower case, punctuation dropped, spaces to `-`.
pub fn anchors(page: &str) -> Vec<String> {
    let mut in_block = false;
    let mut anchors = Vec::new();
    for line in page.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
        }
        if in_block || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#').trim();
        let anchor = title
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        anchors.push(anchor);
    }
    anchors
}

#[test]
fn parses_blocks_links_and_anchors() {
    let page = "# A title: `x`\n[one](a.rs) and [`f`](b.rs#c)\n```sh runnable\n[no](link)\n```\n";
    let blocks = code_blocks(page);
    assert_eq!(blocks.len(), 1);
    assert_eq!(
        (blocks[0].line, blocks[0].info.as_str()),
        (3, "sh runnable")
    );
    assert_eq!(blocks[0].code, "[no](link)\n");
    let found: Vec<_> = links(page)
        .iter()
        .map(|l| (l.line, l.text.clone(), l.target.clone()))
        .collect();
    assert_eq!(
        found,
        [
            (2, "one".into(), "a.rs".into()),
            (2, "`f`".into(), "b.rs#c".into())
        ]
    );
    assert_eq!(anchors(page), ["a-title-x"]);
}
