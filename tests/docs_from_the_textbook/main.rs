//! `docs/from-the-textbook.md` cannot rot: every block marked `sh runnable` runs as written and
//! must succeed, within a time bound, leaving nothing running; every link must lead to a file
//! that exists, and every function or type a link names must still be defined there.
//!
//! The blocks run against the debug build that `cargo test` makes (this test builds the
//! examples if they are missing or stale), put on the `PATH` in place of the release build of
//! the page's `sh setup` block. Linux only, like the page (bash, `/proc`, `ulimit`).
#![cfg(target_os = "linux")]

mod links;
mod markdown;
mod run;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;

use markdown::Block;

/// Blocks run this many at a time: each uses a port of its own, and most of their time is
/// spent waiting.
const LANES: usize = 3;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn page_path() -> PathBuf {
    repo().join("docs/from-the-textbook.md")
}

fn page() -> String {
    std::fs::read_to_string(page_path()).expect("read docs/from-the-textbook.md")
}

fn blocks_marked(info: &str) -> Vec<Block> {
    markdown::code_blocks(&page())
        .into_iter()
        .filter(|block| block.info == info)
        .collect()
}

#[test]
fn every_link_leads_to_a_file_and_a_definition_that_exist() {
    let page = page();
    let links = markdown::links(&page);
    let problems: Vec<String> = links
        .iter()
        .filter_map(|link| {
            links::check(link, &page_path(), repo()).err().map(|why| {
                format!(
                    "line {}: [{}]({}): {why}",
                    link.line, link.text, link.target
                )
            })
        })
        .collect();
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
    let named = links.iter().filter(|l| l.text.contains("::")).count();
    assert!(
        named >= 10,
        "only {named} links name a function: is the page parsed?"
    );
}

#[test]
fn the_setup_block_builds_what_the_blocks_run() {
    let setup = blocks_marked("sh setup");
    assert_eq!(setup.len(), 1, "one `sh setup` block");
    let code = &setup[0].code;
    for needed in [
        "cargo build --release --bin echopool --examples\n",
        "export PATH=\"$PWD/target/release:$PWD/target/release/examples:$PATH\"\n",
    ] {
        assert!(
            code.contains(needed),
            "the setup block lacks {needed:?}:\n{code}"
        );
    }
}

#[test]
fn every_block_uses_loopback_and_a_port_of_its_own() {
    let mut owners: BTreeMap<String, usize> = BTreeMap::new();
    for block in blocks_marked("sh runnable") {
        let code = block.code.replace("/dev/tcp/", " ").replace('/', ":");
        for word in code.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':')) {
            let Some((host, port)) = word.split_once(':') else {
                continue;
            };
            if host.split('.').count() != 4 {
                continue;
            }
            assert!(
                host.starts_with("127."),
                "line {}: {host} is not loopback",
                block.line
            );
            let earlier = *owners.entry(port.to_string()).or_insert(block.line);
            assert_eq!(
                earlier, block.line,
                "port {port} is used by the blocks at lines {earlier} and {}",
                block.line
            );
        }
    }
    assert!(owners.len() >= 10, "ports found: {owners:?}");
}

#[test]
fn every_runnable_block_runs() {
    if !tool_found("bash") {
        return;
    }
    let blocks = blocks_marked("sh runnable");
    assert!(!blocks.is_empty(), "no `sh runnable` blocks found");
    let programs = run::Programs::build(repo());
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    thread::scope(|scope| {
        for _ in 0..LANES {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(block) = blocks.get(index) else {
                    return;
                };
                let name = format!("line-{}", block.line);
                if let Err(why) = run::block(&block.code, &programs, repo(), &name) {
                    let failure =
                        format!("the block at line {}:\n{}\n{why}", block.line, block.code);
                    failures.lock().unwrap().push(failure);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}

/// Whether `tool` runs; when it does not, fails under CI and says the test was skipped else.
fn tool_found(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is needed (CI is set)"
        );
        eprintln!("skipped: {tool} not found");
    }
    found
}
