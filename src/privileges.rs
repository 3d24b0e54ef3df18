//! `--user NAME[:GROUP]`: dropping root once the listeners are bound, so a server can listen on
//! a port below 1024 (7, echo) without serving connections as root.
//!
//! The user and group are looked up when the command line is read (an unknown name is a usage
//! error). The drop itself sets the supplementary groups, the group id and the user id, in that
//! order; glibc applies each to every thread of the process (the workers run already), and every
//! thread's ids are then read back from `/proc/self/task/*/status`. Any failure is fatal before
//! a connection is accepted.

use std::ffi::{CStr, CString};
use std::fmt;
use std::fs;

use anyhow::{bail, Context};

/// A `--user` value: whom to become, resolved when the command line is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserArg {
    text: String,
    /// The user id.
    pub uid: libc::uid_t,
    /// The primary group id: GROUP's, or the user's own.
    pub gid: libc::gid_t,
    /// The supplementary groups: the user's groups (from the group database), with `gid`.
    pub groups: Vec<libc::gid_t>,
}

impl fmt::Display for UserArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Parses `NAME[:GROUP]`; each may be a name or a number.
///
/// # Errors
///
/// A user or group that does not exist (a number without an entry is taken as it is, but a
/// user number without one needs `:GROUP`).
pub fn parse_user(text: &str) -> Result<UserArg, String> {
    let (user, group) = match text.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (text, None),
    };
    if user.is_empty() || group.is_some_and(str::is_empty) {
        return Err("expected NAME or NAME:GROUP".to_string());
    }
    let entry = match lookup_user(user)? {
        Some(entry) => Some(entry),
        None => match user.parse::<libc::uid_t>() {
            Ok(uid) => lookup_uid(uid)?,
            Err(_) => return Err(format!("no such user '{user}'")),
        },
    };
    let gid = match group {
        Some(group) => match lookup_group(group)? {
            Some(gid) => gid,
            None => group
                .parse::<libc::gid_t>()
                .map_err(|_| format!("no such group '{group}'"))?,
        },
        None => match &entry {
            Some(entry) => entry.gid,
            None => {
                return Err(format!(
                    "user {user} has no entry; give its group: {user}:GROUP"
                ))
            }
        },
    };
    let (uid, groups) = match entry {
        Some(entry) => {
            let groups = group_list(&entry.name, gid)?;
            (entry.uid, groups)
        }
        None => (user.parse().expect("checked above"), vec![gid]),
    };
    Ok(UserArg {
        text: text.to_string(),
        uid,
        gid,
        groups,
    })
}

/// Becomes `user` in every thread: supplementary groups, then the group id, then the user id;
/// then checks each thread's ids and that root cannot be regained.
///
/// # Errors
///
/// When a call fails (not started as root, say) or a thread's ids are not the ones asked for;
/// the message names `--user` and the value.
#[allow(unsafe_code)]
pub fn drop_to(user: &UserArg) -> anyhow::Result<()> {
    let failed = |call: &str| {
        let err = std::io::Error::last_os_error();
        anyhow::anyhow!("cannot drop privileges to --user {user}: {call}: {err}")
    };
    // SAFETY: a pointer to `groups.len()` gids that live across the call. glibc's wrappers of
    // these three calls apply them to every thread of the process.
    if unsafe { libc::setgroups(user.groups.len(), user.groups.as_ptr()) } != 0 {
        return Err(failed("setgroups"));
    }
    // SAFETY: plain integer arguments.
    if unsafe { libc::setgid(user.gid) } != 0 {
        return Err(failed("setgid"));
    }
    // SAFETY: plain integer arguments.
    if unsafe { libc::setuid(user.uid) } != 0 {
        return Err(failed("setuid"));
    }
    // SAFETY: plain integer arguments; this must fail once root is gone.
    if user.uid != 0 && unsafe { libc::setuid(0) } == 0 {
        bail!("dropped privileges to --user {user}, but setuid(0) still succeeds");
    }
    check_every_thread(user).with_context(|| format!("after dropping privileges to --user {user}"))
}

/// Reads every thread's user, group and supplementary group ids back from `/proc`.
fn check_every_thread(user: &UserArg) -> anyhow::Result<()> {
    let mut wanted_groups = user.groups.clone();
    wanted_groups.sort_unstable();
    wanted_groups.dedup();
    let tasks = fs::read_dir("/proc/self/task").context("cannot list /proc/self/task")?;
    let mut checked = 0;
    for task in tasks {
        let task = task.context("cannot list /proc/self/task")?;
        let path = task.path().join("status");
        let status = match fs::read_to_string(&path) {
            Ok(status) => status,
            // A thread that ended meanwhile.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
        };
        let ids = |key: &str| -> Vec<u32> {
            status
                .lines()
                .find_map(|line| line.strip_prefix(key))
                .map(|rest| {
                    rest.split_whitespace()
                        .filter_map(|n| n.parse().ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        let (uids, gids, mut groups) = (ids("Uid:"), ids("Gid:"), ids("Groups:"));
        groups.sort_unstable();
        groups.dedup();
        let thread = task.file_name().to_string_lossy().into_owned();
        if uids.len() != 4 || uids.iter().any(|&id| id != user.uid) {
            bail!("thread {thread} has user ids {uids:?}, not {}", user.uid);
        }
        if gids.len() != 4 || gids.iter().any(|&id| id != user.gid) {
            bail!("thread {thread} has group ids {gids:?}, not {}", user.gid);
        }
        if groups != wanted_groups {
            bail!("thread {thread} has supplementary groups {groups:?}, not {wanted_groups:?}");
        }
        checked += 1;
    }
    tracing::info!(
        user = %user,
        uid = user.uid,
        gid = user.gid,
        groups = ?wanted_groups,
        threads = checked,
        "dropped privileges"
    );
    Ok(())
}

/// A user's entry in the password database.
struct Passwd {
    name: CString,
    uid: libc::uid_t,
    gid: libc::gid_t,
}

fn lookup_user(name: &str) -> Result<Option<Passwd>, String> {
    let Ok(c_name) = CString::new(name) else {
        return Err(format!("no such user '{name}'"));
    };
    // SAFETY: the closure passes getpwnam_r valid pointers (see `with_passwd`).
    with_passwd(&|pwd, buf, len, result| unsafe {
        libc::getpwnam_r(c_name.as_ptr(), pwd, buf, len, result)
    })
    .map_err(|err| format!("cannot look up user '{name}': {err}"))
}

fn lookup_uid(uid: libc::uid_t) -> Result<Option<Passwd>, String> {
    // SAFETY: the closure passes getpwuid_r valid pointers (see `with_passwd`).
    with_passwd(&|pwd, buf, len, result| unsafe { libc::getpwuid_r(uid, pwd, buf, len, result) })
        .map_err(|err| format!("cannot look up user {uid}: {err}"))
}

/// A `getpwnam_r` or `getpwuid_r` call, given the entry, the buffer, its length and the result.
type PasswdCall<'a> =
    dyn Fn(*mut libc::passwd, *mut libc::c_char, usize, *mut *mut libc::passwd) -> i32 + 'a;

/// Runs a `getpw*_r` call with a buffer that grows until the entry fits.
#[allow(unsafe_code)]
fn with_passwd(call: &PasswdCall<'_>) -> std::io::Result<Option<Passwd>> {
    let mut buf = vec![0 as libc::c_char; 1024];
    loop {
        // SAFETY: all-zero bytes are a valid `passwd` (null pointers, zero ids).
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result = std::ptr::null_mut();
        let code = call(&mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        match code {
            0 if result.is_null() => return Ok(None),
            // SAFETY: on success `pw_name` points to a NUL-terminated string inside `buf`.
            0 => {
                return Ok(Some(Passwd {
                    name: unsafe { CStr::from_ptr(pwd.pw_name) }.to_owned(),
                    uid: pwd.pw_uid,
                    gid: pwd.pw_gid,
                }))
            }
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            // "Not found" comes back as one of these from some NSS modules.
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => return Ok(None),
            code => return Err(std::io::Error::from_raw_os_error(code)),
        }
    }
}

#[allow(unsafe_code)]
fn lookup_group(name: &str) -> Result<Option<libc::gid_t>, String> {
    let Ok(c_name) = CString::new(name) else {
        return Err(format!("no such group '{name}'"));
    };
    let mut buf = vec![0 as libc::c_char; 1024];
    loop {
        // SAFETY: all-zero bytes are a valid `group`.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result = std::ptr::null_mut();
        // SAFETY: valid pointers to a `group`, a buffer of the length given, and a result.
        let code = unsafe {
            libc::getgrnam_r(
                c_name.as_ptr(),
                &mut grp,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        match code {
            0 if result.is_null() => return Ok(None),
            0 => return Ok(Some(grp.gr_gid)),
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => return Ok(None),
            code => {
                let err = std::io::Error::from_raw_os_error(code);
                return Err(format!("cannot look up group '{name}': {err}"));
            }
        }
    }
}

/// The groups `user` belongs to, with `gid` among them (`getgrouplist`).
#[allow(unsafe_code)]
fn group_list(user: &CStr, gid: libc::gid_t) -> Result<Vec<libc::gid_t>, String> {
    let mut groups: Vec<libc::gid_t> = vec![0; 32];
    loop {
        let mut count = groups.len() as libc::c_int;
        // SAFETY: a NUL-terminated name and a buffer of `count` gids; on -1, `count` says how
        // many are needed.
        let found =
            unsafe { libc::getgrouplist(user.as_ptr(), gid, groups.as_mut_ptr(), &mut count) };
        if found >= 0 {
            groups.truncate(count as usize);
            return Ok(groups);
        }
        if count as usize <= groups.len() || groups.len() > 1 << 16 {
            return Err(format!(
                "cannot list the groups of user '{}'",
                user.to_string_lossy()
            ));
        }
        groups.resize(count as usize, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_resolve() {
        let root = parse_user("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert!(root.groups.contains(&0));
        let numeric = parse_user("0").unwrap();
        assert_eq!(numeric.uid, 0);
        let with_group = parse_user("root:0").unwrap();
        assert_eq!(with_group.gid, 0);
        assert_eq!(with_group.to_string(), "root:0");
        let no_entry = parse_user("4000001:4000002").unwrap();
        assert_eq!((no_entry.uid, no_entry.gid), (4000001, 4000002));
        assert_eq!(no_entry.groups, [4000002]);
    }

    #[test]
    fn unknown_names_are_named() {
        for (text, says) in [
            ("no-such-user-here", "no such user 'no-such-user-here'"),
            (
                "root:no-such-group-here",
                "no such group 'no-such-group-here'",
            ),
            ("4000001", "give its group: 4000001:GROUP"),
            ("", "expected NAME"),
            ("root:", "expected NAME"),
        ] {
            let err = parse_user(text).unwrap_err();
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }
}
