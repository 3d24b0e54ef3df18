//! System tools that a test runs (`bash`, `man`). A missing tool skips the test with a message,
//! except under CI (`CI` set), where it fails: `.ci/run` installs what the tests need.

use std::path::PathBuf;

/// The tool's path on `PATH`; `None` (after printing why the test is skipped) when it is
/// missing outside CI.
///
/// # Panics
///
/// When the tool is missing and `CI` is set.
pub fn require(tool: &str, test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(tool))
            .find(|candidate| is_executable(candidate))
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: `{tool}` is not on PATH, and under CI this test must run"
        );
        eprintln!("{test}: skipped, `{tool}` is not on PATH (CI installs it)");
    }
    found
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}
