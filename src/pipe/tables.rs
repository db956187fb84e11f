//! The tables of a pipe and the phase each one is in (pure): the one place that knows which
//! tables the pipe has, what it writes each into, and whether it replicates them.
//!
//! Invariants:
//! - Every selected table the pipe knows of has one [`Entry`]: its plan (when it has one), its
//!   target table, and its [`Phase`]. Nothing else holds a table's phase; the state store and
//!   the status are written from the [`Step`] each transition returns (`Ctx::apply`).
//! - CDC decodes and writes exactly the tables [`Tables::replicated`] lists: live ones, ones
//!   whose initial snapshot loads beside it (into their target), and ones reloading into
//!   their copy. An isolated table is out of replication from the moment
//!   it is isolated.
//! - A table reloading is written into its copy ([`Phase::Reloading::copy`], named by
//!   [`copy_of`] its target); its plan keeps its own target, which the copy replaces when it is
//!   swapped in.
//! - Transitions are pure: they change the model and say what changed, never fail half-way.

use std::collections::BTreeMap;

use crate::config::TablesConfig;
use crate::schema::TablePlan;
use crate::state::Reload;

/// Suffix of the copy a table is reloaded into before it is swapped in.
const COPY_SUFFIX: &str = "_resync";

/// The copy a table whose target is `target` is reloaded into (a resync's or a table
/// reload's).
pub(crate) fn copy_of(target: &str) -> String {
    format!("{target}{COPY_SUFFIX}")
}

/// Where one table stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Selected, its initial snapshot not done yet: loaded beside CDC (before it, for a table
    /// replicated append-only or a `snapshot_only` pipe), which writes its changes into its
    /// target meanwhile.
    Loading,
    /// Replicated into its target.
    Live,
    /// Not replicated, for `reason`; with `reload`, reloaded automatically once CDC has passed
    /// the change that isolated it.
    Isolated { reason: String, reload: bool },
    /// Loading into `copy` (its progress under the state key `namespace`) while CDC writes its
    /// changes there too; swapped in once loaded.
    Reloading { copy: String, namespace: String },
}

impl Phase {
    /// The isolation the state store holds for this phase ("" for none).
    fn isolation(&self) -> &str {
        match self {
            Phase::Isolated { reason, .. } => reason,
            _ => "",
        }
    }

    /// The reload the state store holds for this phase.
    fn reload(&self) -> Option<Reload> {
        match self {
            Phase::Isolated { reload: true, .. } => Some(Reload::Waiting),
            Phase::Reloading { namespace, .. } => Some(Reload::Loading {
                namespace: namespace.clone(),
            }),
            _ => None,
        }
    }
}

/// One table of the pipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The target table it replicates into (its plan's, when it has one).
    pub target: String,
    /// How it is decoded and written; `None` for a table isolated before it could be planned.
    pub plan: Option<TablePlan>,
    pub phase: Phase,
}

/// A change of one table's phase: what the state store and the status are brought to.
#[must_use = "a step is persisted and shown with Ctx::apply"]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Step {
    pub table: String,
    /// `None`: the table was not known.
    pub before: Option<Phase>,
    /// `None`: the table is no longer the pipe's.
    pub after: Option<Phase>,
}

impl Step {
    /// The isolation to store, when it changed: the new reason, or "" to clear it.
    pub fn isolation(&self) -> Option<&str> {
        let before = self.before.as_ref().map_or("", Phase::isolation);
        let after = self.after.as_ref().map_or("", Phase::isolation);
        (before != after).then_some(after)
    }

    /// The reload to store, when it changed (`Some(None)`: no reload any more).
    pub fn reload(&self) -> Option<Option<Reload>> {
        let before = self.before.as_ref().and_then(Phase::reload);
        let after = self.after.as_ref().and_then(Phase::reload);
        (before != after).then_some(after)
    }

    /// Whether this step isolates the table (or isolates it anew, for another reason).
    pub fn isolates(&self) -> bool {
        matches!(self.after, Some(Phase::Isolated { .. })) && self.isolation().is_some()
    }
}

/// What the state store holds of a pipe's tables besides their isolation, read back at start.
#[derive(Debug, Default)]
pub(crate) struct Stored {
    /// Reloads waiting or loading.
    pub reloads: Vec<(String, Reload)>,
    /// Tables whose initial snapshot is done.
    pub loaded: Vec<String>,
}

/// The pipe's tables, by `db.table`.
#[derive(Debug, Clone)]
pub(crate) struct Tables {
    selection: TablesConfig,
    entries: BTreeMap<String, Entry>,
}

impl Tables {
    pub fn new(selection: TablesConfig) -> Tables {
        Tables {
            selection,
            entries: BTreeMap::new(),
        }
    }

    /// Adds the tables as a (re)started pipe finds them: `plans` replicate (loading, live, or
    /// reloading as `stored` says; with `snapshot` false, a `cdc_only` pipe, none is loaded
    /// first), `isolated` ones do not.
    pub fn restore(
        &mut self,
        plans: Vec<TablePlan>,
        isolated: Vec<(String, Option<TablePlan>, String)>,
        stored: &Stored,
        snapshot: bool,
    ) {
        let reload = |name: &str| {
            stored
                .reloads
                .iter()
                .find(|(t, _)| t == name)
                .map(|(_, r)| r.clone())
        };
        for plan in plans {
            let name = plan.def.qualified();
            let phase = match reload(&name) {
                Some(Reload::Loading { namespace }) => Phase::Reloading {
                    copy: copy_of(&plan.target),
                    namespace,
                },
                // A table reloading (or about to) is loaded alongside CDC, not before it.
                Some(Reload::Waiting) => Phase::Live,
                None if snapshot && !stored.loaded.contains(&name) => Phase::Loading,
                None => Phase::Live,
            };
            self.insert(name, Some(plan), phase);
        }
        for (name, plan, reason) in isolated {
            let reload = reload(&name) == Some(Reload::Waiting);
            self.insert(name, plan, Phase::Isolated { reason, reload });
        }
    }

    fn insert(&mut self, name: String, plan: Option<TablePlan>, phase: Phase) {
        let target = match &plan {
            Some(plan) => plan.target.clone(),
            None => self.default_target(&name),
        };
        let entry = Entry {
            target,
            plan,
            phase,
        };
        self.entries.insert(name, entry);
    }

    fn default_target(&self, name: &str) -> String {
        let (db, table) = name.split_once('.').unwrap_or((name, ""));
        self.selection.target_of(db, table)
    }

    /// Every table of the pipe, in name order.
    pub fn names(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }

    pub fn phase(&self, name: &str) -> Option<&Phase> {
        self.entries.get(name).map(|e| &e.phase)
    }

    /// The tables CDC decodes and writes, in name order: live ones, ones still loading (their
    /// initial snapshot loads beside CDC), and ones reloading.
    pub fn replicated(&self) -> Vec<(&str, &TablePlan)> {
        self.entries
            .iter()
            .filter(|(_, e)| {
                matches!(
                    e.phase,
                    Phase::Live | Phase::Loading | Phase::Reloading { .. }
                )
            })
            .filter_map(|(name, e)| Some((name.as_str(), e.plan.as_ref()?)))
            .collect()
    }

    /// The plans of the tables CDC replicates (see [`Tables::replicated`]).
    pub fn plans(&self) -> Vec<TablePlan> {
        self.replicated()
            .into_iter()
            .map(|(_, plan)| plan.clone())
            .collect()
    }

    /// The plans of the tables a resync reloads: those CDC replicates and those still to be
    /// loaded (a pipe that failed before its first load); not isolated ones.
    pub fn resynced(&self) -> Vec<TablePlan> {
        self.entries
            .values()
            .filter(|e| !matches!(e.phase, Phase::Isolated { .. }))
            .filter_map(|e| e.plan.clone())
            .collect()
    }

    /// Tables whose initial snapshot is still to be loaded.
    pub fn loading(&self) -> Vec<&TablePlan> {
        self.entries
            .values()
            .filter(|e| e.phase == Phase::Loading)
            .filter_map(|e| e.plan.as_ref())
            .collect()
    }

    /// Tables loading into their copy: (name, plan, copy, namespace).
    pub fn reloading(&self) -> Vec<(&str, &TablePlan, &str, &str)> {
        self.entries
            .iter()
            .filter_map(|(name, e)| match (&e.phase, &e.plan) {
                (Phase::Reloading { copy, namespace }, Some(plan)) => {
                    Some((name.as_str(), plan, copy.as_str(), namespace.as_str()))
                }
                _ => None,
            })
            .collect()
    }

    /// Isolated tables waiting to be reloaded automatically.
    pub fn waiting(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(_, e)| matches!(e.phase, Phase::Isolated { reload: true, .. }))
            .map(|(name, _)| name.clone())
            .collect()
    }

    fn step(&mut self, name: &str, plan: Option<TablePlan>, phase: Option<Phase>) -> Step {
        let before = self.entries.get(name).map(|e| e.phase.clone());
        match phase.clone() {
            None => {
                self.entries.remove(name);
            }
            Some(phase) => {
                let plan = plan.or_else(|| self.entries.get(name).and_then(|e| e.plan.clone()));
                self.insert(name.to_owned(), plan, phase);
            }
        }
        Step {
            table: name.to_owned(),
            before,
            after: phase,
        }
    }

    /// A table that starts being replicated: created in the source, or added and loaded.
    pub fn add(&mut self, plan: TablePlan) -> Step {
        let name = plan.def.qualified();
        self.step(&name, Some(plan), Some(Phase::Live))
    }

    /// A table's initial snapshot is done: it replicates.
    pub fn loaded(&mut self, name: &str) -> Step {
        self.step(name, None, Some(Phase::Live))
    }

    /// Takes `name` out of replication for `reason`; with `reload`, it is reloaded once CDC
    /// has passed the change. A table the pipe did not know yet is known from now on.
    pub fn isolate(&mut self, name: &str, reason: String, reload: bool) -> Step {
        self.step(name, None, Some(Phase::Isolated { reason, reload }))
    }

    /// Tables a DDL changed all at once, each old name to its new plan (followed in place,
    /// perhaps under another name): each keeps its phase under its new name, and a swap of two
    /// names swaps them. Returns a step per name whose phase changed or that left.
    pub fn follow(&mut self, changes: Vec<(String, TablePlan)>) -> Vec<Step> {
        let before: BTreeMap<String, Phase> = self
            .entries
            .iter()
            .map(|(n, e)| (n.clone(), e.phase.clone()))
            .collect();
        let moved: Vec<(TablePlan, Phase)> = changes
            .into_iter()
            .filter_map(|(old, plan)| Some((plan, self.entries.remove(&old)?.phase)))
            .collect();
        let mut names: Vec<String> = before
            .keys()
            .filter(|n| !self.entries.contains_key(*n))
            .cloned()
            .collect();
        for (plan, phase) in moved {
            let name = plan.def.qualified();
            names.push(name.clone());
            self.insert(name, Some(plan), phase);
        }
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|name| Step {
                before: before.get(&name).cloned(),
                after: self.phase(&name).cloned(),
                table: name,
            })
            .collect()
    }

    /// `name` starts loading into its copy with `plan` (its current definition), its progress
    /// under `namespace`; until the swap, CDC writes its changes into the copy.
    pub fn start_reload(&mut self, plan: TablePlan, namespace: String) -> Step {
        let name = plan.def.qualified();
        let copy = copy_of(&plan.target);
        self.step(
            &name,
            Some(plan),
            Some(Phase::Reloading { copy, namespace }),
        )
    }

    /// The copy of `name` is swapped in: it replicates into its own target again.
    pub fn finish_reload(&mut self, name: &str) -> Step {
        self.step(name, None, Some(Phase::Live))
    }

    /// An isolated table replicates again once loaded afresh (a resync takes every table).
    pub fn reinstate(&mut self, name: &str) -> Step {
        self.step(name, None, Some(Phase::Loading))
    }

    /// A resync reloads every table: the reloads in progress or waiting are superseded.
    pub fn supersede_reloads(&mut self) -> Vec<Step> {
        let names: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.phase.reload().is_some())
            .map(|(name, _)| name.clone())
            .collect();
        names
            .into_iter()
            .map(|name| {
                let phase = match self.phase(&name) {
                    Some(Phase::Isolated { reason, .. }) => Phase::Isolated {
                        reason: reason.clone(),
                        reload: false,
                    },
                    _ => Phase::Live,
                };
                self.step(&name, None, Some(phase))
            })
            .collect()
    }

    /// The table is no longer the pipe's (removed, dropped or renamed away in the source).
    pub fn remove(&mut self, name: &str) -> Step {
        self.step(name, None, None)
    }

    /// The table whose reload loads under `namespace`, if one still does (under its name
    /// now: a table renamed during its reload keeps it).
    pub fn reloaded_in(&self, namespace: &str) -> Option<&str> {
        self.entries.iter().find_map(|(name, e)| match &e.phase {
            Phase::Reloading { namespace: n, .. } if n == namespace => Some(name.as_str()),
            _ => None,
        })
    }

    /// Whether `name` has a reload waiting or in progress (a load of its copy may still want
    /// that copy).
    pub fn has_reload(&self, name: &str) -> bool {
        self.phase(name).is_some_and(|p| p.reload().is_some())
    }

    /// Whether CDC replicates `name` (see [`Tables::replicated`]).
    pub fn replicates(&self, name: &str) -> bool {
        matches!(
            self.phase(name),
            Some(Phase::Live | Phase::Loading | Phase::Reloading { .. })
        )
    }

    /// The plan of the replicated table `db`.`table`, if the pipe replicates it.
    pub fn replicated_plan(&self, db: &str, table: &str) -> Option<&TablePlan> {
        self.replicated()
            .into_iter()
            .find(|(_, p)| p.def.db == db && p.def.name == table)
            .map(|(_, p)| p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::TableDef;

    fn plan(name: &str) -> TablePlan {
        let (db, table) = name.split_once('.').expect("db.table");
        TablePlan {
            def: TableDef {
                db: db.into(),
                name: table.into(),
                columns: Vec::new(),
                primary_key: Vec::new(),
            },
            target: table.into(),
            order_by: Vec::new(),
            included: Vec::new(),
            append: false,
        }
    }

    fn names(list: Vec<(&str, &TablePlan)>) -> Vec<String> {
        list.into_iter().map(|(n, _)| n.to_owned()).collect()
    }

    fn restored() -> Tables {
        let stored = Stored {
            reloads: vec![
                (
                    "d.r".into(),
                    Reload::Loading {
                        namespace: "#n".into(),
                    },
                ),
                ("d.w".into(), Reload::Waiting),
            ],
            loaded: vec!["d.live".into()],
        };
        let mut tables = Tables::new(TablesConfig::default());
        tables.restore(
            vec![plan("d.live"), plan("d.new"), plan("d.r")],
            vec![("d.w".into(), None, "changed".into())],
            &stored,
            true,
        );
        tables
    }

    #[test]
    fn a_restart_finds_each_table_in_its_phase() {
        let tables = restored();
        assert_eq!(tables.phase("d.live"), Some(&Phase::Live));
        assert_eq!(tables.phase("d.new"), Some(&Phase::Loading));
        assert_eq!(
            tables.phase("d.r"),
            Some(&Phase::Reloading {
                copy: "r_resync".into(),
                namespace: "#n".into()
            })
        );
        assert_eq!(
            tables.phase("d.w"),
            Some(&Phase::Isolated {
                reason: "changed".into(),
                reload: true
            })
        );
        // CDC replicates the live table, the one loading beside it and the one reloading; the
        // isolated one has no plan and is written nowhere, but keeps its default target name
        // for its copy.
        assert_eq!(names(tables.replicated()), ["d.live", "d.new", "d.r"]);
        assert_eq!(tables.get("d.w").map(|e| e.target.as_str()), Some("w"));
        assert_eq!(tables.waiting(), ["d.w"]);
        assert_eq!(tables.loading().len(), 1);
        // Without a snapshot (cdc_only), nothing is loaded first.
        let mut cdc_only = Tables::new(TablesConfig::default());
        cdc_only.restore(vec![plan("d.new")], Vec::new(), &Stored::default(), false);
        assert_eq!(cdc_only.phase("d.new"), Some(&Phase::Live));
    }

    #[test]
    fn isolation_takes_a_table_out_at_once_and_says_what_to_store() {
        let mut tables = restored();
        let step = tables.isolate("d.live", "drifted".into(), false);
        assert!(step.isolates());
        assert_eq!(step.isolation(), Some("drifted"));
        assert_eq!(step.reload(), None, "no reload before, none after");
        assert_eq!(names(tables.replicated()), ["d.new", "d.r"]);
        // Isolated again for the same reason: nothing to store.
        let again = tables.isolate("d.live", "drifted".into(), false);
        assert!(!again.isolates());
        assert_eq!(again.isolation(), None);
        // A table isolated during its reload: the reload is over, the isolation stored.
        let step = tables.isolate("d.r", "statement not understood".into(), true);
        assert_eq!(step.isolation(), Some("statement not understood"));
        assert_eq!(step.reload(), Some(Some(Reload::Waiting)));
        // A table the pipe did not know (created, not understood) is known from now on.
        let step = tables.isolate("d.created", "not understood".into(), false);
        assert_eq!(step.before, None);
        assert_eq!(
            tables.get("d.created").map(|e| e.target.as_str()),
            Some("created")
        );
    }

    #[test]
    fn a_reload_writes_into_the_copy_until_it_is_swapped_in() {
        let mut tables = restored();
        let step = tables.start_reload(plan("d.w"), "#m".into());
        assert_eq!(step.isolation(), Some(""), "the isolation is cleared");
        assert_eq!(
            step.reload(),
            Some(Some(Reload::Loading {
                namespace: "#m".into()
            }))
        );
        assert_eq!(tables.reloaded_in("#m"), Some("d.w"));
        assert_eq!(tables.reloaded_in("#x"), None);
        let reloading: Vec<_> = tables
            .reloading()
            .into_iter()
            .map(|(n, p, copy, ns)| {
                (
                    n.to_owned(),
                    p.target.clone(),
                    copy.to_owned(),
                    ns.to_owned(),
                )
            })
            .collect();
        assert_eq!(
            reloading,
            [
                ("d.r".into(), "r".into(), "r_resync".into(), "#n".into()),
                ("d.w".into(), "w".into(), "w_resync".into(), "#m".into())
            ]
        );
        let step = tables.finish_reload("d.w");
        assert_eq!(step.reload(), Some(None));
        assert_eq!(step.isolation(), None);
        assert_eq!(tables.phase("d.w"), Some(&Phase::Live));
    }

    #[test]
    fn renames_move_tables_with_their_phase_and_a_swap_swaps() {
        let mut tables = restored();
        let mut renamed = plan("d.r2");
        renamed.target = "r2".into();
        let steps = tables.follow(vec![("d.r".into(), renamed)]);
        assert_eq!(steps.len(), 2);
        assert_eq!((steps[0].table.as_str(), &steps[0].after), ("d.r", &None));
        assert_eq!(steps[0].reload(), Some(None));
        assert!(
            matches!(steps[1].after, Some(Phase::Reloading { ref copy, .. }) if copy == "r_resync")
        );
        assert_eq!(names(tables.replicated()), ["d.live", "d.new", "d.r2"]);
        assert_eq!(tables.reloaded_in("#n"), Some("d.r2"));
        // `RENAME TABLE live TO tmp, r2 TO live, tmp TO r2`: both move together.
        let mut to_live = plan("d.live");
        to_live.def.primary_key = vec![2];
        let steps = tables.follow(vec![
            ("d.live".into(), plan("d.r2")),
            ("d.r2".into(), to_live.clone()),
        ]);
        assert_eq!(
            tables.get("d.live").and_then(|e| e.plan.clone()),
            Some(to_live)
        );
        assert!(matches!(
            tables.phase("d.live"),
            Some(Phase::Reloading { .. })
        ));
        assert_eq!(tables.phase("d.r2"), Some(&Phase::Live));
        assert!(steps.iter().all(|s| s.after.is_some()));
        let step = tables.remove("d.live");
        assert_eq!(step.after, None);
        assert!(!tables.replicates("d.live"));
    }
}
