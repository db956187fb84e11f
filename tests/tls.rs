//! TLS to both servers, on real ones: a MariaDB that requires TLS (require_secure_transport)
//! and ClickHouse behind HTTPS with a password user, as managed services are. A pipe that
//! verifies replicates; a certificate it cannot trust, or a mode that cannot work, fails the
//! pipe once with the reason, never in a retry loop.

mod support;

use std::time::{Duration, Instant};

use support::workload::{Workload, TABLES};
use support::{tls_servers, tributary, Daemon, Pipe, Servers, Tls};

const WITHIN: Duration = Duration::from_secs(90);

/// `[pipes.source]` lines: `verify_identity` with the CA file `ca` of the test's TLS folder.
fn verify_identity(tls: &Tls, ca: &str) -> String {
    format!(
        "ssl_mode = \"verify_identity\"\nssl_ca = \"{}\"",
        tls.file(ca)
    )
}

/// `[pipes.target]` lines for the HTTPS ClickHouse with its password user.
fn https_target(tls: &Tls, ca_file: bool) -> (String, String) {
    let mut extra = format!(
        "user = \"{}\"\npassword = \"{}\"",
        tls.https_user, tls.https_password
    );
    if ca_file {
        extra.push_str(&format!("\nca_file = \"{}\"", tls.file("ca.pem")));
    }
    (tls.https_url.clone(), extra)
}

/// The pipe's last transition: (from, to, reason).
fn last_transition(s: &Servers, pipe: &Pipe) -> (String, String, String) {
    let row = s.ch(&format!(
        "SELECT from_state, to_state, reason FROM `{}_state`.pipe_state WHERE pipe = '{}' ORDER BY seq DESC LIMIT 1 FORMAT TSVRaw",
        pipe.db, pipe.name
    ));
    let mut parts = row.trim_end_matches('\n').splitn(3, '\t');
    let mut next = || parts.next().unwrap_or_default().to_owned();
    (next(), next(), next())
}

/// Source TLS with `verify_identity`, a client certificate, and the HTTPS target with its CA
/// and password user: snapshot and CDC arrive equal, and `check` says what was verified.
#[tokio::test(flavor = "multi_thread")]
async fn verify_identity_and_an_https_target_replicate_equal() {
    let Some(tls) = tls_servers() else { return };
    let s = &tls.servers;
    let mut pipe = Pipe::new("tlsok");
    s.workload_tables(&pipe, 41, 300).await;
    // The client certificate's user: the server refuses it without the certificate.
    pipe.source_url = Some(s.mariadb_url.replace("root:", "tributary_x509:"));
    pipe.source_extra = format!(
        "ssl_mode = \"verify_identity\"\nssl_ca = \"{}\"\nssl_cert = \"{}\"\nssl_key = \"{}\"",
        tls.file("ca.pem"),
        tls.file("client.crt"),
        tls.file("client.key")
    );
    let (url, extra) = https_target(&tls, true);
    pipe.target_url = Some(url.clone());
    pipe.target_extra = extra;
    let config = s.config(&pipe, "");
    let cfg = config.to_str().expect("path");

    let (code, stdout, stderr) = tributary(&["check", "--config", cfg]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!(
            "PASS target: {url} (TLS, certificate verified with the system roots and {})",
            tls.file("ca.pem")
        )),
        "{stdout}"
    );
    let line = stdout
        .lines()
        .find(|l| l.contains(" tls: "))
        .unwrap_or_else(|| panic!("no tls line:\n{stdout}"));
    assert!(
        line.starts_with("PASS tls: TLSv1.")
            && line.contains("certificate verified (CA and host name)")
            && line.contains("ssl_mode = verify_identity"),
        "{line}"
    );

    let daemon = Daemon::start(&config);
    s.wait_equal(&pipe.db, TABLES, WITHIN, &daemon).await;
    let mut conn = s.mysql().await;
    s.exec(&mut conn, &format!("USE `{}`", pipe.db)).await;
    Workload::new(42).run(&mut conn, 300).await;
    s.wait_equal(&pipe.db, TABLES, WITHIN, &daemon).await;
    assert_eq!(s.state(&pipe), "Running");
    for t in TABLES {
        s.assert_no_duplicates(&pipe.db, t);
    }
    drop(daemon);
    s.cleanup(&pipe).await;
}

/// A source certificate from another CA: the pipe fails in Provisioning, once, naming the
/// certificate problem; `check` fails with the same reason.
#[tokio::test(flavor = "multi_thread")]
async fn the_wrong_ca_fails_in_provisioning_naming_the_certificate() {
    let Some(tls) = tls_servers() else { return };
    let s = &tls.servers;
    let mut pipe = Pipe::new("tlsca");
    s.workload_tables(&pipe, 41, 10).await;
    pipe.source_extra = verify_identity(&tls, "other-ca.pem");
    let config = s.config(&pipe, "");
    let cfg = config.to_str().expect("path");
    let (code, stdout, _) = tributary(&["check", "--config", cfg]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL source") && stdout.contains("UnknownIssuer"),
        "{stdout}"
    );
    assert!(!stdout.contains("tributary@"), "password leaked: {stdout}");

    let mut daemon = Daemon::start(&config);
    s.wait_for_state(&pipe, "Failed", WITHIN);
    let (from, _, reason) = last_transition(s, &pipe);
    assert_eq!(from, "Provisioning", "{reason}");
    for part in [
        "TLS with ssl_mode = verify_identity",
        "invalid peer certificate: UnknownIssuer",
        "not signed by a trusted CA",
        "other-ca.pem",
    ] {
        assert!(reason.contains(part), "missing `{part}`: {reason}");
    }
    assert!(
        !daemon.log_text().contains("retrying"),
        "{}",
        daemon.log_text()
    );
    let status = pipe
        .api()
        .get(&format!("/v1/pipes/{}", pipe.name))
        .expect("status")
        .json();
    assert_eq!(status["state"], "Failed");
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(1));
    s.cleanup(&pipe).await;
}

/// `ssl_mode = disabled` against a server that requires TLS: Failed with the cause, not a
/// retry loop (the server only says "access denied").
#[tokio::test(flavor = "multi_thread")]
async fn ssl_mode_disabled_against_require_secure_transport_fails_clearly() {
    let Some(tls) = tls_servers() else { return };
    let s = &tls.servers;
    let mut pipe = Pipe::new("tlsoff");
    s.workload_tables(&pipe, 41, 10).await;
    pipe.source_extra = "ssl_mode = \"disabled\"".into();
    let config = s.config(&pipe, "");
    let started = Instant::now();
    let mut daemon = Daemon::start(&config);
    s.wait_for_state(&pipe, "Failed", WITHIN);
    let failed_after = started.elapsed();
    let (from, _, reason) = last_transition(s, &pipe);
    assert_eq!(from, "Provisioning", "{reason}");
    assert!(
        reason.contains("TLS with ssl_mode = disabled")
            && reason.contains("refuses logins without TLS")
            && reason.contains("ssl_mode = \"verify_identity\""),
        "{reason}"
    );
    // Failed once, never retried.
    let failures = s.ch(&format!(
        "SELECT count() FROM `{}_state`.pipe_state WHERE to_state = 'Failed'",
        pipe.db
    ));
    assert_eq!(failures.trim(), "1");
    assert!(
        !daemon.log_text().contains("retrying"),
        "{}",
        daemon.log_text()
    );
    eprintln!("ssl_mode = disabled: Failed {failed_after:?} after the start");
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(1));
    s.cleanup(&pipe).await;
}

/// An https:// target whose certificate the system roots do not know: Failed, with the reason
/// in the API (the state store is on that very server), and never retried.
#[tokio::test(flavor = "multi_thread")]
async fn an_https_target_without_its_ca_fails_clearly() {
    let Some(tls) = tls_servers() else { return };
    let s = &tls.servers;
    let mut pipe = Pipe::new("tlsch");
    s.workload_tables(&pipe, 41, 10).await;
    pipe.source_extra = verify_identity(&tls, "ca.pem");
    let (url, extra) = https_target(&tls, false);
    pipe.target_url = Some(url.clone());
    pipe.target_extra = extra;
    let config = s.config(&pipe, "");
    let (code, stdout, _) = tributary(&["check", "--config", config.to_str().expect("path")]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "FAIL target: ClickHouse `{url}`: TLS: invalid peer certificate: UnknownIssuer"
        )),
        "{stdout}"
    );

    let mut daemon = Daemon::start(&config);
    let api = pipe.api();
    let deadline = Instant::now() + WITHIN;
    let status = loop {
        let status = api
            .get(&format!("/v1/pipes/{}", pipe.name))
            .map(|a| a.json())
            .ok();
        if let Some(status) = status.filter(|s| s["state"] == "Failed") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "not Failed:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let error = status["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!("ClickHouse `{url}`: TLS"))
            && error.contains("UnknownIssuer")
            && error.contains("target.ca_file"),
        "{status}"
    );
    let ready = api.get("/readyz").expect("readyz");
    assert_eq!(ready.status, 503);
    assert!(ready.body.contains("is Failed"), "{}", ready.body);
    assert!(
        !daemon.log_text().contains("retrying"),
        "{}",
        daemon.log_text()
    );
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(1));

    // The escape hatch: no verification, said at every start.
    pipe.target_extra.push_str("\nskip_verify = true");
    let config = s.config(&pipe, "");
    let (code, stdout, stderr) = tributary(&["check", "--config", config.to_str().expect("path")]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!(
            "PASS target: {url} (TLS, certificate NOT verified: target.skip_verify = true)"
        )),
        "{stdout}"
    );
    assert!(
        stderr.contains("WARN") && stderr.contains("target.skip_verify = true"),
        "{stderr}"
    );
    s.cleanup(&pipe).await;
}

/// The modes against the plain server and against a host name the certificate lacks:
/// `preferred` falls back to plain, `required` fails, `verify_ca` checks the CA and not the
/// name, `verify_identity` checks both.
#[tokio::test(flavor = "multi_thread")]
async fn modes_decide_what_is_checked() {
    let Some(tls) = tls_servers() else { return };
    let plain = support::servers().expect("servers");
    let pipe = Pipe::new("tlsmodes");
    plain.workload_tables(&pipe, 41, 1).await;
    let check = |source_url: &str, source_extra: &str| {
        let mut p = Pipe::new("tlsmodes");
        p.db = pipe.db.clone();
        p.source_url = Some(source_url.to_owned());
        p.source_extra = source_extra.to_owned();
        let config = plain.config(&p, "");
        tributary(&["check", "--config", config.to_str().expect("path")])
    };
    let (code, stdout, _) = check(&plain.mariadb_url, "");
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains("WARN tls: not in use (ssl_mode = preferred and the server offers no TLS)"),
        "{stdout}"
    );
    let (code, stdout, _) = check(&plain.mariadb_url, "ssl_mode = \"required\"");
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("TLS with ssl_mode = required: the server does not offer TLS"),
        "{stdout}"
    );
    let (_, stdout, _) = check(&tls.servers.mariadb_url, "ssl_mode = \"required\"");
    assert!(
        stdout.contains("PASS source") && stdout.contains("certificate NOT verified"),
        "{stdout}"
    );

    // A name that reaches the server but is not in its certificate (127.0.0.1, localhost).
    let Some(name) = hostname_on_loopback() else {
        eprintln!("skipped the host name cases: this machine's name does not resolve to 127.0.0.1");
        plain.cleanup(&pipe).await;
        return;
    };
    let by_name = tls.servers.mariadb_url.replace("127.0.0.1", &name);
    let ca = format!("ssl_ca = \"{}\"", tls.file("ca.pem"));
    let (code, stdout, _) = check(&by_name, &format!("ssl_mode = \"verify_identity\"\n{ca}"));
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("not valid for name"), "{stdout}");
    let (_, stdout, _) = check(&by_name, &format!("ssl_mode = \"verify_ca\"\n{ca}"));
    assert!(
        stdout.contains("PASS source")
            && stdout.contains("certificate verified (CA; host name not checked)"),
        "{stdout}"
    );
    let other = format!("ssl_ca = \"{}\"", tls.file("other-ca.pem"));
    let (code, stdout, _) = check(&by_name, &format!("ssl_mode = \"verify_ca\"\n{other}"));
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("UnknownIssuer"), "{stdout}");
    plain.cleanup(&pipe).await;
}

/// This machine's host name, when it resolves to 127.0.0.1.
fn hostname_on_loopback() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim().to_owned();
    let loopback = std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), 0))
        .ok()?
        .any(|a| a.ip() == std::net::Ipv4Addr::LOCALHOST);
    (loopback && !name.is_empty() && name != "localhost").then_some(name)
}
