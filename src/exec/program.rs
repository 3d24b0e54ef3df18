//! Finding the program of `exec:PROGRAM` once, at start: on `PATH` like a shell, and checked for
//! execute permission, so that a typo is a usage error and not a failure on every connection.

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// `PATH` when the environment has none (what a shell falls back to).
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The executable file that `word` names: itself when it holds a `/`, else the first match in
/// the directories of `PATH` (`path`).
///
/// # Errors
///
/// A message that names the program and why it cannot run: not found (with the `PATH`
/// searched), a directory, or not executable by this process.
pub(crate) fn find(word: &str, path: Option<&OsStr>) -> Result<PathBuf, String> {
    if word.contains('/') {
        let candidate = Path::new(word);
        return match candidate.metadata() {
            Ok(meta) if meta.is_dir() => Err(format!("exec: '{word}' is a directory")),
            Ok(_) if !executable(candidate) => Err(format!(
                "exec: '{word}' is not executable (by user {})",
                effective_uid()
            )),
            Ok(_) => Ok(candidate.to_path_buf()),
            Err(err) => Err(format!("exec: '{word}': {err}")),
        };
    }
    let searched = path.unwrap_or(OsStr::new(DEFAULT_PATH));
    let mut not_executable = None;
    // Empty entries would mean the current directory; a server should not run what happens to
    // be lying there.
    for dir in std::env::split_paths(searched).filter(|dir| !dir.as_os_str().is_empty()) {
        let candidate = dir.join(word);
        match candidate.metadata() {
            Ok(meta) if meta.is_file() && executable(&candidate) => return Ok(candidate),
            Ok(meta) if meta.is_file() => {
                not_executable.get_or_insert(candidate);
            }
            _ => {}
        }
    }
    Err(match not_executable {
        Some(found) => format!(
            "exec: '{}' is not executable (by user {})",
            found.display(),
            effective_uid()
        ),
        None => format!(
            "exec: no program '{word}' on PATH ({})",
            searched.to_string_lossy()
        ),
    })
}

/// Whether this process, with its effective ids, may execute `path`.
#[allow(unsafe_code)]
fn executable(path: &Path) -> bool {
    let Ok(path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a NUL-terminated path that lives across the call.
    let result =
        unsafe { libc::faccessat(libc::AT_FDCWD, path.as_ptr(), libc::X_OK, libc::AT_EACCESS) };
    result == 0
}

#[allow(unsafe_code)]
fn effective_uid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> Option<&OsStr> {
        Some(OsStr::new(text))
    }

    #[test]
    fn finds_a_program_on_path_in_order() {
        let found = find("sh", path("/nonexistent:/bin:/usr/bin")).unwrap();
        assert_eq!(found, Path::new("/bin/sh"));
        assert_eq!(find("/bin/sh", None).unwrap(), Path::new("/bin/sh"));
    }

    #[test]
    fn a_missing_program_names_itself_and_the_path() {
        let err = find("no-such-program-here", path("/bin:/usr/bin")).unwrap_err();
        assert_eq!(
            err,
            "exec: no program 'no-such-program-here' on PATH (/bin:/usr/bin)"
        );
        let err = find("/no/such/program", None).unwrap_err();
        assert!(err.starts_with("exec: '/no/such/program': "), "{err}");
    }

    #[test]
    fn directories_and_plain_files_are_refused() {
        let err = find("/tmp", None).unwrap_err();
        assert_eq!(err, "exec: '/tmp' is a directory");
        let dir = std::env::temp_dir().join(format!("echopool-program-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("notes");
        std::fs::write(&file, "not a program").unwrap();
        let err = find(file.to_str().unwrap(), None).unwrap_err();
        assert!(err.contains("is not executable"), "{err}");
        let err = find("notes", Some(dir.as_os_str())).unwrap_err();
        assert!(err.contains("is not executable"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn empty_path_entries_are_not_the_current_directory() {
        let err = find("Cargo.toml", path(":")).unwrap_err();
        assert!(err.contains("no program 'Cargo.toml'"), "{err}");
    }
}
