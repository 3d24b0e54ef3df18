//! Starting the way services on a modern Linux start: listening sockets passed by the service
//! manager (socket activation), and readiness and status reported to it (`NOTIFY_SOCKET`).
//! Both follow systemd's protocols (`sd_listen_fds(3)`, `sd_notify(3)`), which other managers
//! (s6, dinit, ...) speak too.

pub mod activation;
pub mod notify;
