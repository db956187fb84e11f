//! TLS to the source: `ssl_mode` (MySQL's meanings) as mysql_async options, and a failed
//! connection's TLS cause as an error that names the mode and the problem.
//!
//! Invariants: a mode that verifies never connects without a verified certificate, and
//! `preferred` never fails for want of TLS (it falls back to plain, decided once per
//! provisioning by [`super::Source::connect`]). Every TLS failure is [`Error::SourceTls`],
//! which is definite: a certificate, a file or a server without TLS does not change by
//! retrying, so the pipe fails in Provisioning with the reason instead of looping.

use mysql_async::{ClientIdentity, DriverError, SslOpts};

use crate::config::{SourceTls, SslMode};
use crate::error::Error;

/// Server errors a login without TLS gets from a server that requires it: MySQL's
/// ER_SECURE_TRANSPORT_REQUIRED (3159); MariaDB answers access denied (1045).
pub(super) const REFUSED_WITHOUT_TLS: [u16; 2] = [3159, 1045];

/// The driver's TLS options for `tls`; `None` for no TLS. `hostname` replaces the URL's host
/// in the certificate's name check (see [`name_to_check`]).
pub(super) fn ssl_opts(tls: &SourceTls, hostname: Option<&str>) -> Option<SslOpts> {
    let mut opts = match tls.mode {
        SslMode::Disabled => return None,
        // MySQL's preferred and required encrypt without checking the certificate.
        SslMode::Preferred | SslMode::Required => {
            SslOpts::default().with_danger_accept_invalid_certs(true)
        }
        SslMode::VerifyCa | SslMode::VerifyIdentity => {
            let mut opts = SslOpts::default();
            if let Some(ca) = &tls.ca {
                // The CA file replaces the built-in roots, as MySQL's --ssl-ca does.
                opts = opts
                    .with_root_certs(vec![ca.clone().into()])
                    .with_disable_built_in_roots(true);
            }
            opts
        }
    };
    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
        opts = opts.with_client_identity(Some(ClientIdentity::new(
            cert.clone().into(),
            key.clone().into(),
        )));
    }
    if let Some(name) = hostname {
        opts = opts.with_danger_tls_hostname_override(Some(name.to_owned()));
    }
    Some(opts)
}

/// `verify_ca` checks the chain and not the host name; the driver's switch for that
/// (`skip_domain_validation`) matches rustls's message text, which changed, so it no longer
/// takes effect. The chain is verified before the name: a name mismatch therefore means the
/// chain was trusted, and connecting again with a name the certificate presents (checked
/// anew, chain included, on every connection) gives `verify_ca`'s guarantee exactly.
/// rustls lists the presented names as webpki prints them (`DnsName("db.internal")`,
/// `IpAddress(10.0.0.9)`); should that form change, no name is found and the mismatch stays
/// the error: verification never loosens.
pub(super) fn name_to_check(err: &mysql_async::Error) -> Option<String> {
    let rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext {
        presented,
        ..
    }) = crate::tls::rustls_error(err)?
    else {
        return None;
    };
    presented.iter().find_map(|printed| {
        let name = printed
            .strip_prefix("DnsName(\"")
            .and_then(|n| n.strip_suffix("\")"))
            .or_else(|| {
                printed
                    .strip_prefix("IpAddress(")
                    .and_then(|n| n.strip_suffix(')'))
            })?;
        // A wildcard stands for any one label.
        let name = match name.strip_prefix("*.") {
            Some(rest) => format!("tributary.{rest}"),
            None => name.to_owned(),
        };
        rustls::pki_types::ServerName::try_from(name.as_str())
            .is_ok()
            .then_some(name)
    })
}

/// Whether `err` says the server has no TLS to offer.
pub(super) fn no_tls_on_server(err: &mysql_async::Error) -> bool {
    matches!(
        err,
        mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer)
    )
}

/// The TLS problem in `err`, if it has one, as the operator's sentence.
pub(super) fn problem(err: &mysql_async::Error, tls: &SourceTls) -> Option<String> {
    if no_tls_on_server(err) {
        return Some(
            "the server does not offer TLS (it has no certificate configured: ssl_cert/ssl_key on the server); set ssl_mode = \"preferred\" or \"disabled\" to connect without it"
                .into(),
        );
    }
    if let mysql_async::Error::Driver(DriverError::NoKeyFound) = err {
        return Some("ssl_key holds no private key".into());
    }
    let fix = match &tls.ca {
        Some(ca) => format!(
            "ssl_ca ({}) is not the CA that signed it; set ssl_ca to that CA's PEM file",
            ca.display()
        ),
        None => "set ssl_ca to the PEM file of the CA that signed it".into(),
    };
    if let Some(e) = crate::tls::rustls_error(err) {
        return Some(crate::tls::describe(e, &fix));
    }
    // Files the driver could not use (they were checked at load; changed since).
    match err {
        mysql_async::Error::Io(mysql_async::IoError::Tls(e)) => Some(format!("TLS set-up: {e}")),
        _ => None,
    }
}

/// `err` as a typed TLS error of the source at `url`, or as it is.
pub(super) fn classify(url: &str, tls: &SourceTls, err: mysql_async::Error) -> Error {
    match problem(&err, tls) {
        Some(problem) => Error::SourceTls {
            url: url.to_owned(),
            mode: tls.mode,
            problem,
        },
        None => Error::Source {
            url: url.to_owned(),
            source: Box::new(err),
        },
    }
}

/// What `check` prints about the session's TLS: `version` is the server's `Ssl_version`
/// (empty without TLS). The level is a warning when nothing verifies the server.
pub(crate) fn describe_session(tls: &SourceTls, version: &str, cipher: &str) -> (bool, String) {
    if version.is_empty() {
        let why = match tls.mode {
            SslMode::Disabled => "ssl_mode = disabled",
            _ => "ssl_mode = preferred and the server offers no TLS",
        };
        return (
            false,
            format!("not in use ({why}): traffic is not encrypted"),
        );
    }
    let verified = match tls.mode {
        SslMode::VerifyIdentity => "certificate verified (CA and host name)",
        SslMode::VerifyCa => "certificate verified (CA; host name not checked)",
        _ => "certificate NOT verified (ssl_mode = verify_identity with ssl_ca checks it)",
    };
    (
        tls.mode.verifies(),
        format!("{version} ({cipher}), {verified}; ssl_mode = {}", tls.mode),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(mode: SslMode) -> SourceTls {
        SourceTls {
            mode,
            ..SourceTls::default()
        }
    }

    #[test]
    fn modes_map_to_driver_options() {
        assert!(ssl_opts(&tls(SslMode::Disabled), None).is_none());
        for mode in [SslMode::Preferred, SslMode::Required] {
            let opts = ssl_opts(&tls(mode), None).expect("TLS");
            assert!(opts.accept_invalid_certs(), "{mode}");
        }
        let mut verify = tls(SslMode::VerifyIdentity);
        verify.ca = Some("/ca.pem".into());
        let opts = ssl_opts(&verify, None).expect("TLS");
        assert!(!opts.accept_invalid_certs());
        assert!(opts.disable_built_in_roots());
        assert_eq!(opts.root_certs().len(), 1);
        let opts = ssl_opts(&tls(SslMode::VerifyCa), Some("db.internal")).expect("TLS");
        assert!(!opts.accept_invalid_certs() && !opts.disable_built_in_roots());
        assert_eq!(opts.tls_hostname_override(), Some("db.internal"));
    }

    fn name_mismatch(presented: &[&str]) -> mysql_async::Error {
        let cert = rustls::CertificateError::NotValidForNameContext {
            expected: rustls::pki_types::ServerName::try_from("10.0.0.1")
                .expect("name")
                .to_owned(),
            presented: presented.iter().map(|s| (*s).to_owned()).collect(),
        };
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(cert),
        );
        mysql_async::Error::Io(mysql_async::IoError::Io(io))
    }

    #[test]
    fn verify_ca_takes_a_name_the_certificate_presents() {
        assert_eq!(
            name_to_check(&name_mismatch(&[
                "DirectoryName",
                "DnsName(\"db.internal\")",
                "IpAddress(10.0.0.9)"
            ]))
            .as_deref(),
            Some("db.internal")
        );
        assert_eq!(
            name_to_check(&name_mismatch(&["IpAddress(10.0.0.9)"])).as_deref(),
            Some("10.0.0.9")
        );
        assert_eq!(
            name_to_check(&name_mismatch(&["DnsName(\"*.prod.example\")"])).as_deref(),
            Some("tributary.prod.example")
        );
        assert_eq!(name_to_check(&name_mismatch(&[])), None);
        assert_eq!(name_to_check(&name_mismatch(&["Unsupported(0x00)"])), None);
    }

    #[test]
    fn tls_failures_are_typed_and_definite() {
        let url = "mysql://u:***@db:3306";
        let err = classify(
            url,
            &tls(SslMode::Required),
            mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer),
        );
        assert!(!err.is_transient());
        let text = err.to_string();
        assert!(
            text.contains("ssl_mode = required") && text.contains("does not offer TLS"),
            "{text}"
        );
        let text = classify(
            url,
            &tls(SslMode::VerifyCa),
            name_mismatch(&["DnsName(\"x\")"]),
        )
        .to_string();
        assert!(text.contains("not valid for name"), "{text}");
        // Not TLS: left as a source error (a lost connection stays transient).
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let err = classify(
            url,
            &tls(SslMode::Required),
            mysql_async::Error::Io(io.into()),
        );
        assert!(err.is_transient(), "{err}");
    }

    #[test]
    fn the_check_line_says_what_is_verified() {
        let (ok, text) = describe_session(&tls(SslMode::Preferred), "", "");
        assert!(!ok && text.starts_with("not in use"), "{text}");
        let (ok, text) =
            describe_session(&tls(SslMode::Required), "TLSv1.3", "TLS_AES_256_GCM_SHA384");
        assert!(
            !ok && text.contains("TLSv1.3") && text.contains("NOT verified"),
            "{text}"
        );
        let (ok, text) = describe_session(&tls(SslMode::VerifyIdentity), "TLSv1.2", "c");
        assert!(ok && text.contains("CA and host name"), "{text}");
    }
}
