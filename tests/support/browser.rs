//! A headless Chromium (Debian's `chromium`) driven through Debian's `chromium-driver` by the
//! W3C WebDriver protocol, the one Selenium speaks: the tests' own small client, independent
//! of the code under test. Every request the page makes is recorded from the browser's
//! performance log (DevTools `Network.requestWillBeSent`), so a test can tell where it went.
//!
//! `scripts/test-env up` installs both packages; `TRIBUTARY_TEST_CHROMEDRIVER` and
//! `TRIBUTARY_TEST_CHROMIUM` name other binaries.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::reqwest_lite;

/// How long chromedriver may take to listen, and a page to answer.
const DRIVER_START: Duration = Duration::from_secs(30);

/// Large enough for the pipe page's charts and tables in one screenshot.
const WINDOW: (u32, u32) = (1280, 1500);

pub struct Browser {
    driver: Child,
    host: String,
    session: String,
}

/// Starts chromedriver and a headless Chromium session, or `None` (after a notice) where they
/// are not installed; with `TRIBUTARY_TEST_REQUIRE_SERVERS=1` (scripts/test) a missing one
/// fails the test instead.
pub fn browser() -> Option<Browser> {
    let driver = std::env::var("TRIBUTARY_TEST_CHROMEDRIVER").unwrap_or("chromedriver".into());
    let chromium = std::env::var("TRIBUTARY_TEST_CHROMIUM").unwrap_or("/usr/bin/chromium".into());
    let port = super::free_port();
    let spawned = Command::new(&driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let installed = spawned.is_ok() && std::path::Path::new(&chromium).exists();
    if !installed {
        if std::env::var("TRIBUTARY_TEST_REQUIRE_SERVERS").as_deref() == Ok("1") {
            panic!("{driver} or {chromium} is missing: scripts/test-env up installs chromium and chromium-driver");
        }
        eprintln!("skipped: no {driver} or {chromium} (scripts/test-env up installs them)");
        return None;
    }
    let mut browser = Browser {
        driver: spawned.expect("checked above"),
        host: format!("127.0.0.1:{port}"),
        session: String::new(),
    };
    let deadline = Instant::now() + DRIVER_START;
    while reqwest_lite::request_http11(&browser.host, "GET", "/status", "").is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen within {DRIVER_START:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let args = [
        "--headless=new".to_owned(),
        // Root in CI: Chromium's sandbox refuses to run as root.
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        // No traffic of the browser's own (updates, sync, first-run pages).
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--no-first-run".to_owned(),
        format!("--window-size={},{}", WINDOW.0, WINDOW.1),
    ];
    let capabilities = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {"binary": chromium, "args": args},
        "goog:loggingPrefs": {"performance": "ALL"},
    }}});
    let session = browser.call("POST", "/session", &capabilities);
    browser.session = session["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no session: {session}"))
        .to_owned();
    Some(browser)
}

impl Browser {
    /// One WebDriver command; its `value`. A WebDriver error panics with its message.
    fn call(&self, method: &str, path: &str, body: &Value) -> Value {
        let body = if method == "GET" || method == "DELETE" {
            String::new()
        } else {
            body.to_string()
        };
        let (status, text) = reqwest_lite::request_http11(&self.host, method, path, &body)
            .unwrap_or_else(|e| panic!("chromedriver {method} {path}: {e}"));
        let reply: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("chromedriver {method} {path}: {e}: {text}"));
        assert_eq!(status, 200, "chromedriver {method} {path}: {reply}");
        reply["value"].clone()
    }

    fn command(&self, method: &str, path: &str, body: &Value) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    pub fn goto(&self, url: &str) {
        self.command("POST", "/url", &json!({ "url": url }));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page; its result.
    pub fn script(&self, script: &str, args: Value) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            &json!({"script": script, "args": args}),
        )
    }

    /// The text of the first element matching `css`, or `None` when there is none.
    pub fn text(&self, css: &str) -> Option<String> {
        let found = self.script(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            json!([css]),
        );
        found.as_str().map(str::to_owned)
    }

    /// Clicks the first element matching `css` as a user would (it must be visible and not
    /// covered).
    pub fn click(&self, css: &str) {
        let id = self.element(css);
        self.command("POST", &format!("/element/{id}/click"), &json!({}));
    }

    /// Types `text` into the first element matching `css`.
    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.command(
            "POST",
            &format!("/element/{id}/value"),
            &json!({ "text": text }),
        );
    }

    /// The WebDriver id of the first element matching `css`.
    fn element(&self, css: &str) -> String {
        let found = self.command(
            "POST",
            "/element",
            &json!({"using": "css selector", "value": css}),
        );
        // The id is the value of the W3C element key, the object's only entry.
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_owned()
    }

    /// Waits until `done` holds, checking every 100 ms; after `within`, fails with `what` and
    /// the page's text.
    pub fn wait(&self, what: &str, within: Duration, mut done: impl FnMut(&Browser) -> bool) {
        let deadline = Instant::now() + within;
        while !done(self) {
            if Instant::now() > deadline {
                let page = self.text("body").unwrap_or_default();
                panic!("{what}: not within {within:?}; the page shows:\n{page}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Saves a PNG of the window to `path`.
    pub fn screenshot(&self, path: &std::path::Path) {
        let png = self.command("GET", "/screenshot", &Value::Null);
        let png = base64_decode(png.as_str().expect("base64 PNG"));
        std::fs::write(path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// The URLs the page has requested since the last call, in order.
    pub fn requests(&self) -> Vec<String> {
        let log = self.command("POST", "/se/log", &json!({"type": "performance"}));
        log.as_array()
            .into_iter()
            .flatten()
            .filter_map(|entry| {
                let message: Value = serde_json::from_str(entry["message"].as_str()?).ok()?;
                let message = &message["message"];
                (message["method"] == "Network.requestWillBeSent")
                    .then(|| {
                        message["params"]["request"]["url"]
                            .as_str()
                            .map(str::to_owned)
                    })
                    .flatten()
            })
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = reqwest_lite::request_http11(&self.host, "DELETE", &path, "");
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 (WebDriver's screenshots) to bytes.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let sextets: Vec<u8> = text.bytes().filter_map(value).collect();
    sextets
        .chunks(4)
        .flat_map(|c| {
            let n = c
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, s)| n | u32::from(*s) << (18 - 6 * i));
            let bytes = n.to_be_bytes();
            bytes[1..c.len()].to_vec()
        })
        .collect()
}
