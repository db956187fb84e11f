//! Preflight checks of the source's replication settings (pure: a map of server variables in,
//! a verdict per setting out).

use std::collections::HashMap;

use crate::error::Error;

/// One required setting: the variable, the values accepted, and what to do otherwise.
struct Requirement {
    variable: &'static str,
    accepted: &'static [&'static str],
    hint: &'static str,
}

const REQUIREMENTS: &[Requirement] = &[
    Requirement {
        variable: "log_bin",
        accepted: &["ON", "1"],
        hint: "start the server with --log-bin",
    },
    Requirement {
        variable: "binlog_format",
        accepted: &["ROW"],
        hint: "set binlog_format=ROW (SET GLOBAL binlog_format='ROW' and in the server config); statement-based binlogs do not carry row values",
    },
    Requirement {
        variable: "binlog_row_image",
        accepted: &["FULL"],
        hint: "set binlog_row_image=FULL so that updates and deletes carry every column",
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
            Finding {
                setting: req.variable,
                ok: req.accepted.iter().any(|a| a.eq_ignore_ascii_case(&found)),
                found,
                required: req.accepted[0],
                hint: req.hint,
            }
        })
        .collect()
}

/// Returns the first requirement the source does not meet, as an operator-facing error.
pub(crate) fn check_settings(vars: &HashMap<String, String>) -> Result<(), Error> {
    match evaluate(vars).into_iter().find(|f| !f.ok) {
        None => Ok(()),
        Some(f) => Err(Error::InvalidSourceSetting {
            setting: f.setting.into(),
            actual: f.found,
            expected: f.required.into(),
            hint: f.hint.into(),
        }),
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
    fn missing_log_bin_fails() {
        let msg = check_settings(&vars(&[])).unwrap_err().to_string();
        assert!(
            msg.contains("log_bin") && msg.contains("(not set)"),
            "{msg}"
        );
    }
}
