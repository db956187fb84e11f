//! TLS material and diagnosis shared by the three TLS users: https:// targets, the API's
//! listener and the CLI's API client (the source's TLS goes through mysql_async, which reads
//! its files itself; see [`crate::source::tls`]).
//!
//! Invariants:
//! - one crypto provider (ring) is installed for the process before any TLS object exists, so
//!   no rustls builder can panic for want of one;
//! - every file error names the file and what was expected in it (config load uses the same
//!   readers, so a file that loads there is one the connections can use);
//! - [`problem`] is the one place that turns a failed handshake, however deep in an error
//!   chain, into an operator's sentence; a handshake's failure is a TLS problem only when
//!   rustls says so, never guessed from message text.

use std::error::Error as StdError;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use hyper_util::client::legacy::connect::HttpConnector;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// The process's crypto provider; installing it twice is harmless.
pub(crate) fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn provider() -> Arc<CryptoProvider> {
    install_provider();
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// The certificates of a PEM file (at least one).
pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("`{}` is not a PEM file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "`{}` holds no certificate (expected PEM `-----BEGIN CERTIFICATE-----` blocks)",
            path.display()
        ));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|e| {
        format!(
            "`{}` holds no usable private key (expected a PEM `PRIVATE KEY` block): {e}",
            path.display()
        )
    })
}

/// The operating system's trusted roots, read once (`/etc/ssl/certs`, `SSL_CERT_FILE`, ...).
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

/// A client configuration that trusts the system roots plus the certificates of `ca_file`;
/// with `skip_verify`, one that accepts any certificate (the traffic is still encrypted).
pub(crate) fn client_config(
    ca_file: Option<&Path>,
    skip_verify: bool,
) -> Result<ClientConfig, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?;
    if skip_verify {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
            .with_no_client_auth());
    }
    let mut roots = RootCertStore::empty();
    // Unusable system roots (an odd format) are skipped: the others still verify.
    roots.add_parsable_certificates(system_roots().iter().cloned());
    if let Some(path) = ca_file {
        for cert in read_certs(path)? {
            roots
                .add(cert)
                .map_err(|e| format!("`{}` is not a usable CA certificate: {e}", path.display()))?;
        }
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// An HTTP/1 connector that speaks TLS with `tls` to https:// URLs and plain TCP (`http`'s
/// settings) to http:// ones.
pub(crate) fn https_connector(
    tls: ClientConfig,
    mut http: HttpConnector,
) -> hyper_rustls::HttpsConnector<HttpConnector> {
    http.enforce_http(false);
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http)
}

/// The API listener's configuration: its certificate chain and key.
pub(crate) fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, String> {
    let chain = read_certs(cert)?;
    let key_der = read_key(key)?;
    rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| {
            format!(
                "`{}` and `{}` are not a certificate and its key: {e}",
                cert.display(),
                key.display()
            )
        })
}

/// Accepts every server certificate (`target.skip_verify`); handshake signatures are still
/// checked, so the session is encrypted to whoever holds the presented key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The rustls error somewhere in `err`'s chain. `io::Error` hides its payload from `source()`
/// (it returns the payload's own source), so each link is also opened with `get_ref`.
pub(crate) fn rustls_error<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        if let Some(found) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| rustls_error(inner))
        {
            return Some(found);
        }
        next = e.source();
    }
    None
}

/// What went wrong in a handshake that rustls refused, for an operator: rustls's own words
/// plus what usually causes it. `fix` says which setting addresses a certificate the client
/// does not trust (the CA file key of the side that failed).
pub(crate) fn describe(err: &rustls::Error, fix: &str) -> String {
    let cause = match err {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => {
                format!("the server's certificate is not signed by a trusted CA: {fix}")
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "the server's certificate does not name the host the URL connects to (use the name in the certificate, or a mode that does not check the host name)".to_owned()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the server's certificate has expired".to_owned()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet (check the clocks)".to_owned()
            }
            _ => "the server's certificate was refused".to_owned(),
        },
        rustls::Error::AlertReceived(_) => {
            "the server ended the handshake (a client certificate it wants or refuses, or no common TLS version)".to_owned()
        }
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            "the server did not answer in TLS (is this port plain text?)".to_owned()
        }
        rustls::Error::PeerIncompatible(_) => {
            "the server offers no TLS version or cipher in common".to_owned()
        }
        _ => "the TLS handshake failed".to_owned(),
    };
    format!("{err}: {cause}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rustls_errors_are_found_inside_io_errors() {
        let tls = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, tls.clone());
        let wrapped = std::io::Error::other(io);
        assert_eq!(rustls_error(&wrapped), Some(&tls));
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(rustls_error(&plain), None);
    }

    #[test]
    fn descriptions_say_what_to_change() {
        let unknown = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let text = describe(&unknown, "set target.ca_file");
        assert!(text.contains("UnknownIssuer"), "{text}");
        assert!(
            text.contains("not signed by a trusted CA: set target.ca_file"),
            "{text}"
        );
        let expired = rustls::Error::InvalidCertificate(CertificateError::Expired);
        assert!(describe(&expired, "").contains("expired"));
    }

    #[test]
    fn files_that_are_not_certificates_are_named() {
        let dir = std::env::temp_dir().join(format!("tributary-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = read_certs(&path).unwrap_err();
        assert!(
            err.contains("ca.pem") && err.contains("no certificate"),
            "{err}"
        );
        let err = read_key(&path).unwrap_err();
        assert!(err.contains("private key"), "{err}");
        let err = read_certs(&dir.join("missing.pem")).unwrap_err();
        assert!(err.contains("cannot read"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
