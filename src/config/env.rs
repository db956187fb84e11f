//! `TRIBUTARY__…` environment overrides, applied to the parsed value tree before it is
//! validated (see the module documentation of [`super`] for the syntax).

use config::{Map, Value, ValueKind};

pub(super) const ENV_PREFIX: &str = "TRIBUTARY__";
/// Keys whose override value is a comma-separated list.
const LIST_KEYS: [&str; 5] = [
    "include",
    "exclude",
    "exclude_columns",
    "order_by",
    "allowed_origins",
];

/// Sets one `TRIBUTARY__…` variable into the parsed tree; `Err` holds the reason.
pub(super) fn apply_env_var(
    root: &mut Map<String, Value>,
    var: &str,
    value: &str,
) -> Result<(), String> {
    let segments: Vec<String> = var[ENV_PREFIX.len()..]
        .split("__")
        .map(str::to_ascii_lowercase)
        .collect();
    if segments
        .iter()
        .any(|s| s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    {
        return Err(
            "expected TRIBUTARY__SECTION__KEY, with `__` between non-empty segments".into(),
        );
    }
    if segments
        .windows(2)
        .any(|w| w[0] == "tables" && w[1] == "options")
    {
        return Err(
            "tables.options cannot be set from the environment; edit the config file".into(),
        );
    }
    let (mut table, path): (&mut Map<String, Value>, &[String]) = if segments[0] == "pipes" {
        let index =
            match segments.get(1).map(|s| s.parse::<usize>()) {
                Some(Ok(index)) if segments.len() >= 3 => index,
                _ => return Err(
                    "pipes are overridden per key, as TRIBUTARY__PIPES__<index>__<SECTION>__<KEY>"
                        .into(),
                ),
            };
        let pipes = match root.get_mut("pipes").map(|v| &mut v.kind) {
            Some(ValueKind::Array(pipes)) => pipes,
            _ => {
                return Err(format!(
                    "refers to pipes[{index}], but the config file defines no [[pipes]]"
                ))
            }
        };
        let count = pipes.len();
        match pipes.get_mut(index).map(|v| &mut v.kind) {
            Some(ValueKind::Table(pipe)) => (pipe, &segments[2..]),
            Some(_) => return Err(format!("pipes[{index}] in the config file is not a table")),
            None => {
                return Err(format!(
                    "refers to pipes[{index}], but the config file defines {count} pipe(s); pipes cannot be added from the environment"
                ))
            }
        }
    } else {
        (root, &segments[..])
    };
    let (last, parents) = path.split_last().ok_or("empty key path")?;
    for (depth, segment) in parents.iter().enumerate() {
        let entry = table
            .entry(segment.clone())
            .or_insert_with(|| Value::new(None, Map::<String, Value>::new()));
        table = match &mut entry.kind {
            ValueKind::Table(map) => map,
            _ => return Err(format!("`{}` is not a table", path[..=depth].join("."))),
        };
    }
    if value.is_empty() {
        table.remove(last);
    } else if LIST_KEYS.contains(&last.as_str()) {
        let items: Vec<Value> = value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Value::new(None, s.to_owned()))
            .collect();
        table.insert(last.clone(), Value::new(None, items));
    } else {
        table.insert(last.clone(), Value::new(None, value.to_owned()));
    }
    Ok(())
}
