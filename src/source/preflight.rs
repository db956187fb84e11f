//! Preflight checks of the source (pure: server variables, grants and measurements in, a
//! verdict per check out). `run` refuses to start on a `Fail`; `tributary check` prints them all.

use std::collections::HashMap;

use crate::error::Error;

/// One required setting: the variable, the values accepted, and what to do otherwise.
struct Requirement {
    variable: &'static str,
    accepted: &'static [&'static str],
    hint: &'static str,
    /// A setting the pipe can work without (a warning), or one it cannot (a failure).
    required: bool,
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Pass,
    Warn,
    Fail,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Pass => "PASS",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        }
    }
}

/// Time a retention must leave beyond twice the estimated snapshot: a restart, a slow day.
const RETENTION_MARGIN_SECS: u64 = 3600;

const REQUIREMENTS: &[Requirement] = &[
    Requirement {
        variable: "log_bin",
        accepted: &["ON", "1"],
        hint: "start the server with --log-bin",
        required: true,
    },
    Requirement {
        variable: "binlog_format",
        accepted: &["ROW"],
        hint: "set binlog_format=ROW (SET GLOBAL binlog_format='ROW' and in the server config); statement-based binlogs do not carry row values",
        required: true,
    },
    Requirement {
        variable: "binlog_row_image",
        accepted: &["FULL"],
        hint: "set binlog_row_image=FULL so that updates and deletes carry every column",
        required: true,
    },
    Requirement {
        variable: "binlog_row_metadata",
        accepted: &["FULL"],
        hint: "set binlog_row_metadata=FULL so that row events carry column names and signedness (tributary works without it, from the definitions it stores)",
        required: false,
    },
];

/// The verdict on one setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub setting: &'static str,
    pub found: String,
    pub required: &'static str,
    pub hint: &'static str,
    pub ok: bool,
    pub level: Level,
}

/// Every requirement against the server's variables, in a fixed order.
pub(crate) fn evaluate(vars: &HashMap<String, String>) -> Vec<Finding> {
    REQUIREMENTS
        .iter()
        .map(|req| {
            let found = vars
                .get(req.variable)
                .cloned()
                .unwrap_or_else(|| "(not set)".into());
            let ok = req.accepted.iter().any(|a| a.eq_ignore_ascii_case(&found));
            Finding {
                setting: req.variable,
                ok,
                level: match (ok, req.required) {
                    (true, _) => Level::Pass,
                    (false, false) => Level::Warn,
                    (false, true) => Level::Fail,
                },
                found,
                required: req.accepted[0],
                hint: req.hint,
            }
        })
        .collect()
}

/// Returns the first requirement the source does not meet, as an operator-facing error.
pub(crate) fn check_settings(vars: &HashMap<String, String>) -> Result<(), Error> {
    match evaluate(vars).into_iter().find(|f| f.level == Level::Fail) {
        None => Ok(()),
        Some(f) => Err(Error::InvalidSourceSetting {
            setting: f.setting.into(),
            actual: f.found,
            expected: f.required.into(),
            hint: f.hint.into(),
        }),
    }
}

/// Seconds a binlog stays on the server (`binlog_expire_logs_seconds`, else
/// `expire_logs_days`); `None` when binlogs are never purged by age.
pub(crate) fn retention_seconds(vars: &HashMap<String, String>) -> Option<u64> {
    let get = |name: &str| vars.get(name).and_then(|v| v.trim().parse::<f64>().ok());
    match (get("binlog_expire_logs_seconds"), get("expire_logs_days")) {
        (Some(secs), _) if secs > 0.0 => Some(secs as u64),
        (_, Some(days)) if days > 0.0 => Some((days * 86_400.0) as u64),
        _ => None,
    }
}

/// Seconds of binlog retention a load before CDC (a resync) of `estimated_snapshot_secs`
/// needs.
pub(crate) fn required_retention(estimated_snapshot_secs: u64) -> u64 {
    estimated_snapshot_secs.saturating_mul(2) + RETENTION_MARGIN_SECS
}

/// The retention check of a running pipe: CDC reads the binlog as it is written, from the
/// first second of the initial load, so binlogs only have to outlive the longest outage the
/// operator wants to survive (`source.max_outage`).
pub(crate) fn check_retention(retention: Option<u64>, max_outage: u64) -> (Level, String) {
    match retention {
        None => (Level::Pass, "binlogs are not purged by age".into()),
        Some(r) if r >= max_outage => (
            Level::Pass,
            format!("{r} s, covers source.max_outage ({max_outage} s)"),
        ),
        Some(r) => (
            Level::Fail,
            format!(
                "{r} s, shorter than source.max_outage ({max_outage} s): an outage longer than {r} s \
                 loses binlogs CDC has not read and needs a resync; raise binlog_expire_logs_seconds, \
                 or lower source.max_outage"
            ),
        ),
    }
}

/// The retention check of a resync, which loads its copies before CDC goes on: binlogs must
/// outlive the load twice over, plus [`RETENTION_MARGIN_SECS`].
pub(crate) fn check_resync_retention(
    retention: Option<u64>,
    estimated_snapshot_secs: u64,
) -> (Level, String) {
    let required = estimated_snapshot_secs.saturating_mul(2) + RETENTION_MARGIN_SECS;
    match retention {
        None => (
            Level::Pass,
            format!("binlogs are not purged by age; estimated snapshot {estimated_snapshot_secs} s"),
        ),
        Some(r) if r >= required => (
            Level::Pass,
            format!("{r} s, required {required} s (estimated snapshot {estimated_snapshot_secs} s x 2 + {RETENTION_MARGIN_SECS} s)"),
        ),
        Some(r) => (
            Level::Fail,
            format!(
                "{r} s, required {required} s (estimated snapshot {estimated_snapshot_secs} s x 2 + {RETENTION_MARGIN_SECS} s): \
                 binlogs written during the snapshot could be purged before CDC reads them; \
                 raise binlog_expire_logs_seconds"
            ),
        ),
    }
}

/// Whether `SHOW GRANTS` lines give what a pipe needs: replication (REPLICATION SLAVE or
/// REPLICA, plus REPLICATION CLIENT, BINLOG MONITOR or SLAVE MONITOR for the position
/// queries) and SELECT.
pub(crate) fn check_grants(grants: &[String]) -> (Level, String) {
    let all = grants
        .iter()
        .any(|g| g.to_uppercase().contains("ALL PRIVILEGES ON *.*"));
    let has = |p: &str| all || grants.iter().any(|g| g.to_uppercase().contains(p));
    let replication = has("REPLICATION SLAVE") || has("REPLICATION REPLICA");
    let position = has("REPLICATION CLIENT") || has("BINLOG MONITOR") || has("SLAVE MONITOR");
    let select = has("SELECT");
    let missing: Vec<&str> = [
        (!replication).then_some("REPLICATION SLAVE"),
        (!position).then_some("REPLICATION CLIENT (MariaDB: BINLOG MONITOR)"),
        (!select).then_some("SELECT"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if missing.is_empty() {
        (
            Level::Pass,
            "REPLICATION SLAVE, REPLICATION CLIENT and SELECT granted".into(),
        )
    } else {
        (
            Level::Fail,
            format!(
                "missing {}: GRANT them to the source user",
                missing.join(", ")
            ),
        )
    }
}

/// The variables [`check_settings`] reads.
pub(crate) fn variables() -> impl Iterator<Item = &'static str> {
    REQUIREMENTS.iter().map(|r| r.variable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn good_settings_pass() {
        let v = vars(&[
            ("log_bin", "ON"),
            ("binlog_format", "ROW"),
            ("binlog_row_image", "FULL"),
        ]);
        assert!(check_settings(&v).is_ok());
    }

    #[test]
    fn statement_format_names_setting_and_values() {
        let v = vars(&[
            ("log_bin", "ON"),
            ("binlog_format", "STATEMENT"),
            ("binlog_row_image", "FULL"),
        ]);
        let msg = check_settings(&v).unwrap_err().to_string();
        assert!(msg.contains("binlog_format"), "{msg}");
        assert!(msg.contains("STATEMENT"), "{msg}");
        assert!(msg.contains("ROW"), "{msg}");
    }

    #[test]
    fn row_metadata_only_warns() {
        let v = vars(&[
            ("log_bin", "ON"),
            ("binlog_format", "ROW"),
            ("binlog_row_image", "FULL"),
            ("binlog_row_metadata", "MINIMAL"),
        ]);
        assert!(check_settings(&v).is_ok());
        let f = evaluate(&v);
        assert_eq!(
            f.iter()
                .find(|f| f.setting == "binlog_row_metadata")
                .map(|f| f.level),
            Some(Level::Warn)
        );
    }

    #[test]
    fn retention_against_the_estimated_snapshot() {
        let v = vars(&[
            ("binlog_expire_logs_seconds", "0"),
            ("expire_logs_days", "2"),
        ]);
        assert_eq!(retention_seconds(&v), Some(172_800));
        assert_eq!(
            retention_seconds(&vars(&[("binlog_expire_logs_seconds", "0")])),
            None
        );
        assert_eq!(check_resync_retention(Some(172_800), 600).0, Level::Pass);
        let (level, text) = check_resync_retention(Some(3_000), 600);
        assert_eq!(level, Level::Fail);
        assert!(text.contains("3000 s, required 4800 s"), "{text}");
        assert_eq!(check_resync_retention(None, 10_000_000).0, Level::Pass);
        // A running pipe's: against the outage to survive, whatever the snapshot's size.
        assert_eq!(check_retention(Some(3_600), 3_600).0, Level::Pass);
        let (level, text) = check_retention(Some(600), 3_600);
        assert_eq!(level, Level::Fail);
        assert!(
            text.contains("600 s, shorter than source.max_outage (3600 s)"),
            "{text}"
        );
        assert_eq!(check_retention(None, 3_600).0, Level::Pass);
    }

    #[test]
    fn grants_name_what_is_missing() {
        let ok =
            vec!["GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `cdc`@`%`".to_string()];
        assert_eq!(check_grants(&ok).0, Level::Pass);
        let root =
            vec!["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION".to_string()];
        assert_eq!(check_grants(&root).0, Level::Pass);
        let (level, text) = check_grants(&["GRANT SELECT ON `shop`.* TO `x`@`%`".to_string()]);
        assert_eq!(level, Level::Fail);
        assert!(
            text.contains("REPLICATION SLAVE") && !text.contains("SELECT,"),
            "{text}"
        );
    }

    #[test]
    fn missing_log_bin_fails() {
        let msg = check_settings(&vars(&[])).unwrap_err().to_string();
        assert!(
            msg.contains("log_bin") && msg.contains("(not set)"),
            "{msg}"
        );
    }
}
