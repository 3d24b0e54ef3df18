//! Room for the descriptors a run needs: the soft `RLIMIT_NOFILE` (often 1024) is raised toward
//! the hard one, as any process may do; a hard limit that is too low is the user's to raise.

use std::io;

/// Descriptors beyond the connections: stdio, the poller and its timer, and some to spare.
pub const SPARE: libc::rlim_t = 64;

/// Makes sure this process may hold `needed` open descriptors, raising the soft limit if that is
/// required (to the hard limit, or to `needed` when the hard limit is unlimited).
///
/// # Errors
/// When the hard limit is below `needed` (the message says what to do), or the limit cannot be
/// read or set.
pub fn ensure(needed: libc::rlim_t) -> Result<(), String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own and reads nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(format!(
            "reading the open-file limit: {}",
            io::Error::last_os_error()
        ));
    }
    let (soft, hard) = (limit.rlim_cur, limit.rlim_max);
    let unlimited = hard == libc::RLIM_INFINITY;
    if soft >= needed {
        return Ok(()); // RLIM_INFINITY is the largest value
    }
    if !unlimited && hard < needed {
        return Err(format!(
            "needs {needed} open files, but the hard limit (ulimit -Hn) is {hard}; raise it \
             (as root: ulimit -Hn {needed}, or LimitNOFILE= in a systemd unit) or ask for fewer \
             connections"
        ));
    }
    limit.rlim_cur = if unlimited { needed } else { hard };
    // SAFETY: setrlimit reads the struct we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(format!(
            "raising the open-file limit from {soft} to {}: {}",
            limit.rlim_cur,
            io::Error::last_os_error()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_need_is_met_and_an_impossible_one_named() {
        assert_eq!(ensure(16), Ok(()));
        // Over any hard limit; with an unlimited hard limit, over what the kernel allows.
        let err = ensure(libc::rlim_t::MAX / 2).unwrap_err();
        assert!(
            err.contains("hard limit (ulimit -Hn)") || err.contains("raising"),
            "{err}"
        );
    }
}
