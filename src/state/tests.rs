//! What every state store must answer (tests): the last write of a table's state is read
//! back, whatever the timing; [`MemoryStore`] is held to it here, `ClickHouseStore` against
//! the test server (`clickhouse::tests`).

use super::memory::MemoryStore;
use super::{Reload, StateStore};
use crate::schema::TableDef;

/// What the store reads of `d.t` (its definition at checkpoint `seq`) and the other tables.
#[derive(Debug, PartialEq)]
pub(super) struct Seen {
    pub isolated: Vec<(String, String)>,
    pub overrides: Vec<(String, bool)>,
    pub reloads: Vec<(String, Reload)>,
    pub definition: Option<TableDef>,
}

pub(super) async fn seen<S: StateStore>(store: &S, seq: u64) -> Seen {
    Seen {
        isolated: store.isolated().await.unwrap(),
        overrides: store.overrides().await.unwrap(),
        reloads: store.reloads().await.unwrap(),
        definition: store.stored_definition("d.t", seq).await.unwrap(),
    }
}

/// A definition of `d.t` told apart by `tag`.
pub(super) fn definition(tag: usize) -> TableDef {
    TableDef {
        db: "d".into(),
        name: "t".into(),
        columns: Vec::new(),
        primary_key: vec![tag],
    }
}

/// Writes each kind of ordered state of `d.t` twice back to back, as fast as the store
/// answers, the second write differing from the first, and checks that the second is read.
pub(super) async fn overwrite<S: StateStore>(store: &S, round: usize) {
    let even = round % 2 == 0;
    let reason = format!("b{round}");
    store.isolate("d.t", &format!("a{round}")).await.unwrap();
    store
        .isolate("d.t", if even { "" } else { &reason })
        .await
        .unwrap();
    store.save_override("d.t", even).await.unwrap();
    store.save_override("d.t", !even).await.unwrap();
    let loading = Reload::Loading {
        namespace: format!("#n{round}"),
    };
    store.save_reload("d.t", Some(&loading)).await.unwrap();
    let last = (!even).then_some(Reload::Waiting);
    store.save_reload("d.t", last.as_ref()).await.unwrap();
    store
        .save_definition(&definition(2 * round), 7)
        .await
        .unwrap();
    store
        .save_definition(&definition(2 * round + 1), 7)
        .await
        .unwrap();
    assert_eq!(seen(store, 7).await, last_of(round), "round {round}");
}

/// What the store reads after `overwrite(round)`.
pub(super) fn last_of(round: usize) -> Seen {
    let even = round % 2 == 0;
    let table = || "d.t".to_owned();
    Seen {
        isolated: (!even)
            .then(|| (table(), format!("b{round}")))
            .into_iter()
            .collect(),
        overrides: vec![(table(), !even)],
        reloads: (!even)
            .then(|| (table(), Reload::Waiting))
            .into_iter()
            .collect(),
        definition: Some(definition(2 * round + 1)),
    }
}

#[tokio::test]
async fn the_memory_store_reads_back_the_last_write_as_clickhouse_does() {
    let store = MemoryStore::new("p");
    for round in 0..4 {
        overwrite(&store, round).await;
    }
    assert_eq!(seen(&store.restart(), 7).await, last_of(3));
    // Definitions are read by the checkpoint they apply from.
    store.save_definition(&definition(99), 3).await.unwrap();
    assert_eq!(
        store.stored_definition("d.t", 4).await.unwrap(),
        Some(definition(99))
    );
    assert_eq!(
        store.stored_definition("d.t", 7).await.unwrap(),
        Some(definition(7))
    );
}
