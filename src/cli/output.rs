//! What the commands print, and where they reach a daemon's API.
//!
//! Invariant: output goes through [`say`], so a reader that goes away never turns into a
//! panic or a failed command; every command that reaches the API computes its URL with
//! [`api_url`].

use std::net::SocketAddr;

/// The API's address when neither `--api` nor `--config` says otherwise (the config default).
pub(super) const DEFAULT_API: &str = "http://127.0.0.1:9187";

/// Writes command output to stdout. A reader that went away (`tributary status | head`) is not
/// an error of the command: the rest of the output is dropped and the exit code stays the
/// command's own (`println!` would panic instead).
pub(super) fn say(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// The URL a client on this host reaches `listen` at: an unspecified address (`0.0.0.0`, `::`)
/// is reached on loopback.
pub(super) fn api_url(listen: SocketAddr) -> String {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{addr}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_url_reaches_unspecified_addresses_on_loopback() {
        let url = |s: &str| api_url(s.parse().expect("socket address"));
        assert_eq!(url("0.0.0.0:9187"), "http://127.0.0.1:9187");
        assert_eq!(url("[::]:9187"), "http://[::1]:9187");
        assert_eq!(url("10.1.2.3:80"), "http://10.1.2.3:80");
    }
}
