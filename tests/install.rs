//! What an operator installs beside the binary: shell completions and man pages, checked with
//! the real `bash` and `man`.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{run, run_command, tools};

const SHELLS: [&str; 5] = ["bash", "zsh", "fish", "elvish", "powershell"];

/// Every page `echopool man --out` writes: the program's and one per subcommand.
const PAGES: [&str; 6] = [
    "echopool.1",
    "echopool-bench.1",
    "echopool-client.1",
    "echopool-completions.1",
    "echopool-man.1",
    "echopool-serve.1",
];

/// A fresh directory under the system's temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("echopool-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a scratch directory");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `echopool completions SHELL`, which must succeed.
fn completions(shell: &str) -> String {
    let output = run(&["completions", shell], b"");
    assert!(output.status.success(), "{shell}: {}", stderr(&output));
    stdout(&output)
}

#[test]
fn every_shell_gets_a_script_that_knows_the_commands() {
    for shell in SHELLS {
        let script = completions(shell);
        for word in ["serve", "client", "bench", "idle-timeout"] {
            assert!(script.contains(word), "{shell}: no {word} in\n{script}");
        }
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let output = run(&["completions", "tcsh"], b"");
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("'tcsh'"), "{err}");
    assert!(err.contains("bash") && err.contains("powershell"), "{err}");
    assert_eq!(stdout(&output), "");
}

/// Runs `bash -c SCRIPT` with the completion script in a file, killed after the tests' timeout.
fn bash(bash: &Path, script_file: &Path, commands: &str) -> std::process::Output {
    let mut command = Command::new(bash);
    command
        .args(["--norc", "--noprofile", "-c", commands, "bash"])
        .arg(script_file);
    run_command(command, b"")
}

#[test]
fn bash_accepts_the_bash_script_and_completes_with_it() {
    let Some(bash_path) = tools::require("bash", "bash completions") else {
        return;
    };
    let scratch = Scratch::new("bash-completion");
    let file = scratch.0.join("echopool.bash");
    std::fs::write(&file, completions("bash")).unwrap();

    let syntax = bash(&bash_path, &file, r#"bash -n "$1""#);
    assert!(syntax.status.success(), "bash -n: {}", stderr(&syntax));

    // What bash does on TAB: the completion function gets the command, the word being
    // completed and the word before it, and leaves the candidates in COMPREPLY.
    let complete = r#"
        source "$1" || exit 1
        complete_line() {
            COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
            _echopool echopool "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
            echo "${COMPREPLY[*]}"
        }
        complete_line echopool se
        complete_line echopool serve --idle
        complete_line echopool serve --overflow ''
        complete_line echopool completions ''
    "#;
    let output = bash(&bash_path, &file, complete);
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<String> = stdout(&output).lines().map(str::to_owned).collect();
    assert_eq!(
        lines,
        [
            "serve",
            "--idle-timeout",
            "block reject",
            "-h -V --help --version bash elvish fish powershell zsh"
        ],
        "stderr: {}",
        stderr(&output)
    );
}

#[test]
fn man_prints_the_main_page() {
    let output = run(&["man"], b"");
    assert!(output.status.success(), "{}", stderr(&output));
    let page = stdout(&output);
    assert!(
        page.contains("\n.TH echopool 1 "),
        "not a man page:\n{page}"
    );
    for sub in ["serve", "client", "bench", "completions", "man"] {
        assert!(
            page.contains(&format!("echopool\\-{sub}(1)")),
            "{sub}:\n{page}"
        );
    }
}

#[test]
fn man_out_writes_one_page_per_command() {
    let scratch = Scratch::new("man-out");
    let dir = scratch.0.join("share/man/man1");
    let output = run(&["man", "--out", dir.to_str().unwrap()], b"");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "", "pages go to the directory only");
    let mut written: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    let mut expected = PAGES.to_vec();
    expected.sort();
    assert_eq!(written, expected);
}

#[test]
fn man_out_names_a_directory_it_cannot_create() {
    let scratch = Scratch::new("man-out-blocked");
    let file = scratch.0.join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let output = run(&["man", "--out", file.join("man1").to_str().unwrap()], b"");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("a-file/man1"),
        "{}",
        stderr(&output)
    );
}

/// `man -l FILE` as a reader would see it, 80 columns wide, no pager, groff's warnings on.
fn render(man: &Path, page: &Path) -> std::process::Output {
    let mut command = Command::new(man);
    command
        .args(["--warnings", "-l"])
        .arg(page)
        .env("MANWIDTH", "80")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat");
    run_command(command, b"")
}

#[test]
fn man_renders_every_page_without_warnings() {
    let Some(man) = tools::require("man", "man pages") else {
        return;
    };
    let scratch = Scratch::new("man-render");
    let output = run(&["man", "--out", scratch.0.to_str().unwrap()], b"");
    assert!(output.status.success(), "{}", stderr(&output));
    for page in PAGES {
        let path = scratch.0.join(page);
        let rendered = render(&man, &path);
        let text = stdout(&rendered);
        assert!(rendered.status.success(), "{page}: {}", stderr(&rendered));
        assert_eq!(stderr(&rendered), "", "{page}: warnings");
        let name = Path::new(page).file_stem().and_then(OsStr::to_str).unwrap();
        assert!(
            text.contains("NAME") && text.contains(name),
            "{page}:\n{text}"
        );
        assert!(text.contains("SYNOPSIS"), "{page}:\n{text}");
    }
    // The serve page carries the variables, as `--help` does.
    let serve = stdout(&render(&man, &scratch.0.join("echopool-serve.1")));
    for needle in ["--idle-timeout", "ECHOPOOL_IDLE_TIMEOUT", "ECHOPOOL_<FLAG>"] {
        assert!(serve.contains(needle), "no {needle} in\n{serve}");
    }
}
