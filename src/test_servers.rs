//! The test servers for the tests inside the crate, found as `tests/support` finds them.

/// The URL of a test server in the environment variable `var`, or `None` (after a notice)
/// when it is not set, where a test returns, unless `TRIBUTARY_TEST_REQUIRE_SERVERS=1`.
pub(crate) fn url(var: &str) -> Option<String> {
    let url = std::env::var(var).ok();
    if url.is_none() {
        assert_ne!(
            std::env::var("TRIBUTARY_TEST_REQUIRE_SERVERS").as_deref(),
            Ok("1"),
            "{var} must be set"
        );
        eprintln!("skipped: no test server ({var})");
    }
    url
}
