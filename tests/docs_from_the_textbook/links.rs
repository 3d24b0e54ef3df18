//! What a link on the page promises: the file exists, the heading it points at exists, and the
//! function or type its text names (`` [`accept::run`](../src/server/accept.rs) ``) is still
//! defined in that file, in the module the text says.

use std::fs;
use std::path::{Component, Path, PathBuf};

use super::markdown::{self, Link};

/// Checks one link of the page at `page_path` (inside `repo`); says what is wrong.
pub fn check(link: &Link, page_path: &Path, repo: &Path) -> Result<(), String> {
    if link.target.starts_with("http://") || link.target.starts_with("https://") {
        return Ok(());
    }
    let (path, anchor) = match link.target.split_once('#') {
        Some((path, anchor)) => (path, Some(anchor)),
        None => (link.target.as_str(), None),
    };
    let file = if path.is_empty() {
        page_path.to_path_buf()
    } else {
        normalize(&page_path.parent().unwrap().join(path))
    };
    if !file.starts_with(repo) {
        return Err(format!("{} is outside the repository", link.target));
    }
    if !file.exists() {
        return Err(format!("{} does not exist", file.display()));
    }
    if let Some(anchor) = anchor {
        let text = read(&file)?;
        if !markdown::anchors(&text).iter().any(|a| a == anchor) {
            return Err(format!("{} has no heading #{anchor}", file.display()));
        }
    }
    match code_path(&link.text) {
        Some(names) if file.extension().is_some_and(|e| e == "rs") => {
            defines(&file, &read(&file)?, &names)
        }
        _ => Ok(()),
    }
}

/// The segments of a link text that is a Rust path in backticks (`` `Pool::start` ``).
fn code_path(text: &str) -> Option<Vec<&str>> {
    let inner = text.strip_prefix('`')?.strip_suffix('`')?;
    let names: Vec<&str> = inner.split("::").collect();
    let is_name = |name: &&str| {
        name.chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_alphanumeric() || c == '_')
    };
    names.iter().all(is_name).then_some(names)
}

/// Whether `source` (the file at `file`) defines the last of `names`, inside the types and the
/// module that the others name.
fn defines(file: &Path, source: &str, names: &[&str]) -> Result<(), String> {
    let (last, outer) = names.split_last().expect("at least one name");
    for name in outer {
        let found = if name.starts_with(char::is_uppercase) {
            ["struct", "enum", "trait", "impl", "for"]
                .iter()
                .any(|keyword| has_word_pair(source, keyword, name))
        } else {
            module_of(file).is_some_and(|module| module == *name)
        };
        if !found {
            return Err(format!("{} is not where `{name}` is", file.display()));
        }
    }
    let defined = ["fn", "struct", "enum", "trait", "type", "const"]
        .iter()
        .any(|keyword| has_word_pair(source, keyword, last));
    if defined {
        Ok(())
    } else {
        Err(format!("{} does not define `{last}`", file.display()))
    }
}

/// Whether `source` has `keyword name` with `name` a whole word (`fn run(`, not `fn run_all`).
fn has_word_pair(source: &str, keyword: &str, name: &str) -> bool {
    let needle = format!("{keyword} {name}");
    source.match_indices(&needle).any(|(at, _)| {
        let before = source[..at].chars().next_back();
        let after = source[at + needle.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// The module a source file is: its name, or its folder's for `mod.rs` and `lib.rs`.
fn module_of(file: &Path) -> Option<String> {
    let stem = file.file_stem()?.to_str()?;
    if matches!(stem, "mod" | "lib" | "main") {
        let folder = file.parent()?.file_name()?.to_str()?;
        Some(if folder == "src" { "crate" } else { folder }.to_string())
    } else {
        Some(stem.to_string())
    }
}

fn read(file: &Path) -> Result<String, String> {
    fs::read_to_string(file).map_err(|err| format!("cannot read {}: {err}", file.display()))
}

/// `a/b/../c` as `a/c`, without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[test]
fn names_are_checked_as_definitions_in_their_module() {
    let file = Path::new("src/server/accept.rs");
    let source = "pub(crate) fn run(x: u8) {}\nstruct Pool;\nimpl Pool { fn start() {} }\n";
    assert!(defines(file, source, &["accept", "run"]).is_ok());
    assert!(defines(file, source, &["Pool", "start"]).is_ok());
    assert!(defines(file, source, &["run_all"]).is_err());
    assert!(defines(file, source, &["pool", "run"]).is_err());
    assert!(defines(file, source, &["Queue", "start"]).is_err());
    assert_eq!(module_of(Path::new("src/client/mod.rs")).unwrap(), "client");
    assert_eq!(code_path("`Session::eof`"), Some(vec!["Session", "eof"]));
    assert_eq!(code_path("`examples/iterative.rs`"), None);
    assert_eq!(code_path("BENCHMARKS.md"), None);
}
