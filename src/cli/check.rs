//! `tributary check`: the preflight report, one line per check (PASS, WARN or FAIL, found vs
//! required); exit code 1 on any FAIL. `run` refuses to start on the same failures.

use std::process::ExitCode;

use crate::config::{Config, PipeConfig, TargetConfig};
use crate::schema::TablePlan;
use crate::source::preflight::{self, Level};
use crate::source::{introspect, tls, ServerFlavor, Source};
use crate::target::Target;

/// Prints one line; returns false on a failure.
fn report(level: Level, what: &str, detail: &str) -> bool {
    super::say(&format!("{} {what}: {detail}\n", level.as_str()));
    level != Level::Fail
}

pub(super) async fn check(config: Config) -> ExitCode {
    let mut all_ok = true;
    for cfg in &config.pipes {
        super::say(&format!("pipe {}\n", cfg.name));
        all_ok &= check_pipe(cfg).await;
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// What the target line says about TLS.
fn target_tls(cfg: &TargetConfig) -> String {
    if cfg.url.scheme() != "https" {
        return String::new();
    }
    if cfg.skip_verify {
        return " (TLS, certificate NOT verified: target.skip_verify = true)".into();
    }
    match &cfg.ca_file {
        Some(ca) => format!(
            " (TLS, certificate verified with the system roots and {})",
            ca.display()
        ),
        None => " (TLS, certificate verified with the system roots)".into(),
    }
}

async fn check_pipe(cfg: &PipeConfig) -> bool {
    let mut ok = match Target::new(&cfg.target) {
        Ok(target) => match target.execute("SELECT 1", &[]).await {
            Ok(()) => report(
                Level::Pass,
                "target",
                &format!("{}{}", target.url(), target_tls(&cfg.target)),
            ),
            Err(e) => report(Level::Fail, "target", &e.to_string()),
        },
        Err(e) => report(Level::Fail, "target", &e.to_string()),
    };
    let source = match Source::connect(&cfg.source).await {
        Ok(s) => {
            report(
                Level::Pass,
                "source",
                &format!("{} ({:?})", s.url, s.flavor),
            );
            s
        }
        Err(e) => return report(Level::Fail, "source", &e.to_string()),
    };
    let mut conn = match source.conn().await {
        Ok(c) => c,
        Err(e) => return report(Level::Fail, "source", &e.to_string()),
    };
    match source.session_tls(&mut conn).await {
        Ok((version, cipher)) => {
            let (verified, text) = tls::describe_session(source.tls(), &version, &cipher);
            report(
                if verified { Level::Pass } else { Level::Warn },
                "tls",
                &text,
            );
        }
        Err(e) => {
            report(
                Level::Warn,
                "tls",
                &format!("cannot read the session's TLS status: {e}"),
            );
        }
    }
    let names = preflight::variables().chain([
        "binlog_expire_logs_seconds",
        "expire_logs_days",
        "gtid_mode",
        "gtid_binlog_pos",
    ]);
    let vars = match source.variables(&mut conn, names).await {
        Ok(vars) => vars,
        Err(e) => return report(Level::Fail, "settings", &e.to_string()),
    };
    for f in preflight::evaluate(&vars) {
        let detail = if f.ok {
            format!("{} (required {})", f.found, f.required)
        } else {
            format!("found {}, required {}: {}", f.found, f.required, f.hint)
        };
        ok &= report(f.level, f.setting, &detail);
    }
    let gtid = match source.flavor {
        ServerFlavor::Mariadb => (
            Level::Pass,
            format!(
                "MariaDB GTIDs (gtid_binlog_pos {})",
                vars.get("gtid_binlog_pos").map_or("-", String::as_str)
            ),
        ),
        ServerFlavor::Mysql => match vars.get("gtid_mode").map(String::as_str) {
            Some(m) if m.eq_ignore_ascii_case("ON") => (Level::Pass, "gtid_mode ON".into()),
            other => (
                Level::Warn,
                format!(
                    "gtid_mode {}: positions are file:pos (GTIDs recommended)",
                    other.unwrap_or("(not set)")
                ),
            ),
        },
    };
    report(gtid.0, "gtid", &gtid.1);
    let grants: Result<Vec<String>, _> = source.query_as(&mut conn, "SHOW GRANTS").await;
    ok &= match grants {
        Ok(grants) => {
            let (level, text) = preflight::check_grants(&grants);
            report(level, "privileges", &text)
        }
        Err(e) => report(Level::Fail, "privileges", &e.to_string()),
    };
    let tables = match introspect::matching_tables(&source, &mut conn, &cfg.tables).await {
        Ok(tables) if tables.is_empty() => {
            let detail = format!("no table matches {:?}", cfg.tables.include);
            return report(Level::Fail, "tables", &detail) && ok;
        }
        Ok(tables) => tables,
        Err(e) => return report(Level::Fail, "tables", &e.to_string()) && ok,
    };
    for (db, table) in &tables {
        let what = format!("table {db}.{table}");
        ok &= match introspect::table_def(&source, &mut conn, db, table).await {
            Ok(def) => {
                let key: Vec<String> = def.primary_key_names().map(str::to_owned).collect();
                let columns = def.columns.len();
                match TablePlan::selected(def, &cfg.tables) {
                    Ok(plan) if plan.append => {
                        let detail = format!("{columns} columns, no primary key: replicated append-only (tables.keyless = \"append\")");
                        report(Level::Pass, &what, &detail)
                    }
                    Ok(_) => {
                        let detail = format!("{columns} columns, primary key ({})", key.join(", "));
                        report(Level::Pass, &what, &detail)
                    }
                    Err(reason) => report(Level::Fail, &what, &reason),
                }
            }
            Err(e) => report(Level::Fail, &what, &e.to_string()),
        };
    }
    let retention = preflight::retention_seconds(&vars);
    let (level, text) = preflight::check_retention(retention, cfg.source.max_outage.as_secs());
    ok &= report(level, "binlog retention", &text);
    ok
}
