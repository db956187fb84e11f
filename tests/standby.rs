//! One owner per pipe, and a hot standby (real servers): two daemons on one config, as two
//! hosts, race for the pipe and exactly one replicates; the standby takes over within the
//! lease period when the owner is killed with -9, at once when it is stopped, and through
//! rolling updates; the data ends equal and the checkpoint never goes back.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::workload::{Workload, TABLES};
use support::{free_port, servers, Api, Daemon, Pipe, Servers};

const WITHIN: Duration = Duration::from_secs(90);

/// One daemon of the pair: its config (its own API port), its host and its API.
struct Instance {
    config: std::path::PathBuf,
    host: String,
    api: Api,
    daemon: Option<Daemon>,
}

impl Instance {
    fn new(s: &Servers, pipe: &mut Pipe, label: &str) -> Instance {
        pipe.api_port = free_port();
        let written = s.config(pipe, "");
        let config = written.with_file_name(format!("{}-{label}.toml", pipe.name));
        std::fs::copy(&written, &config).expect("copy config");
        Instance {
            config,
            // Two hosts: a standby knows nothing of its owner's process and waits out the
            // lease of one killed (on one host, a dead owner's process is seen gone at once).
            host: format!("host-{label}"),
            api: pipe.api(),
            daemon: None,
        }
    }

    fn start(&mut self) {
        self.daemon = Some(Daemon::start_on(&self.config, &self.host));
    }

    /// The pipe's status as this instance shows it.
    fn status(&self, pipe: &Pipe) -> serde_json::Value {
        self.api
            .get(&format!("/v1/pipes/{}", pipe.name))
            .map_or(serde_json::Value::Null, |a| a.json())
    }

    fn role(&self, pipe: &Pipe) -> String {
        self.status(pipe)["role"].as_str().unwrap_or("").to_owned()
    }

    fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("started")
    }
}

/// A write workload until stopped.
fn workload(s: &Servers, db: &str, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    let (url, db) = (s.mariadb_url.clone(), db.to_owned());
    tokio::spawn(async move {
        let opts = mysql_async::Opts::from_url(&url).expect("url");
        let mut conn = mysql_async::Conn::new(opts).await.expect("connect");
        mysql_async::prelude::Queryable::query_drop(&mut conn, format!("USE `{db}`"))
            .await
            .expect("use");
        let mut seed = 100;
        while !stop.load(Ordering::Relaxed) {
            seed += 1;
            Workload::new(seed).run(&mut conn, 20).await;
        }
    })
}

/// The newest checkpoint as (file, offset).
fn checkpoint(s: &Servers, pipe: &Pipe) -> Option<(String, u64)> {
    let tsv = s
        .ch_try(&format!(
            "SELECT file, pos FROM `{}_state`.checkpoints WHERE pipe = '{}' ORDER BY seq DESC LIMIT 1",
            pipe.db, pipe.name
        ))
        .ok()?;
    let (file, pos) = tsv.trim().split_once('\t')?;
    Some((file.to_owned(), pos.parse().ok()?))
}

/// Waits until `to` owns the pipe and replicates; returns how long that took from `since`.
async fn wait_owner(pipe: &Pipe, to: &Instance, since: Instant) -> Duration {
    support::wait_until("the standby did not take over", WITHIN, to.daemon(), || {
        let status = to.status(pipe);
        status["role"] == "owner" && status["state"] == "Running"
    })
    .await;
    since.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_owner_and_a_standby_that_takes_over() {
    let Some(s) = servers() else { return };
    let mut pipe = Pipe::new("standby");
    let _conn = s.workload_tables(&pipe, 31, 200).await;
    let mut a = Instance::new(&s, &mut pipe, "a");
    let mut b = Instance::new(&s, &mut pipe, "b");
    // Both start at once and race for the pipe: exactly one owns it.
    a.start();
    b.start();
    let deadline = Instant::now() + WITHIN;
    let (mut owner, mut standby) = loop {
        match (a.role(&pipe).as_str(), b.role(&pipe).as_str()) {
            ("owner", "standby") => break (a, b),
            ("standby", "owner") => break (b, a),
            roles => {
                assert!(Instant::now() < deadline, "roles {roles:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    support::wait_until("the owner is not Running", WITHIN, owner.daemon(), || {
        owner.status(&pipe)["state"] == "Running"
    })
    .await;
    // The standby names the owner, shows the owner's state as recorded, and is not ready.
    support::wait_until(
        "the standby does not show Running",
        WITHIN,
        standby.daemon(),
        || standby.status(&pipe)["state"] == "Running",
    )
    .await;
    let seen = standby.status(&pipe);
    assert_eq!(seen["owner"], owner.status(&pipe)["owner"], "{seen}");
    assert_eq!(standby.api.get("/readyz").expect("readyz").status, 503);
    let refused = standby
        .api
        .post(&format!("/v1/pipes/{}/pause", pipe.name), "")
        .expect("pause");
    assert_eq!(refused.status, 409, "{refused:?}");

    let stop = Arc::new(AtomicBool::new(false));
    let writes = workload(&s, &pipe.db, Arc::clone(&stop));
    let mut last = checkpoint(&s, &pipe);
    let mut forward = |s: &Servers, pipe: &Pipe| {
        let now = checkpoint(s, pipe);
        assert!(
            now >= last,
            "the checkpoint went back: {last:?} then {now:?}"
        );
        last = now;
    };
    // Killed with -9 under writes: the standby takes over within the lease period (15 s).
    let mut kills = Vec::new();
    for _ in 0..5 {
        forward(&s, &pipe);
        owner.daemon.as_mut().expect("started").kill9();
        let took = wait_owner(&pipe, &standby, Instant::now()).await;
        kills.push(took);
        forward(&s, &pipe);
        owner.start();
        std::mem::swap(&mut owner, &mut standby);
    }
    // Rolling updates: a new instance starts, then the owner is stopped; it hands over at
    // once, after its final checkpoint.
    let mut handovers = Vec::new();
    for _ in 0..10 {
        support::wait_until(
            "the new instance is no standby",
            WITHIN,
            standby.daemon(),
            || standby.role(&pipe) == "standby",
        )
        .await;
        forward(&s, &pipe);
        let since = Instant::now();
        let code = owner
            .daemon
            .as_mut()
            .expect("started")
            .terminate(Duration::from_secs(30));
        assert_eq!(code, Some(0));
        handovers.push(wait_owner(&pipe, &standby, since).await);
        forward(&s, &pipe);
        owner.start();
        std::mem::swap(&mut owner, &mut standby);
    }
    stop.store(true, Ordering::Relaxed);
    writes.await.expect("workload");
    s.wait_equal(&pipe.db, TABLES, WITHIN, owner.daemon()).await;
    kills.sort();
    handovers.sort();
    println!(
        "takeover after kill -9: p50 {:?}, max {:?}; handover after SIGTERM (stop + takeover): p50 {:?}, max {:?}",
        kills[kills.len() / 2],
        kills[kills.len() - 1],
        handovers[handovers.len() / 2],
        handovers[handovers.len() - 1]
    );
    assert!(
        kills.iter().all(|t| *t < Duration::from_secs(20)),
        "{kills:?}"
    );
    assert!(
        handovers.iter().all(|t| *t < Duration::from_secs(10)),
        "{handovers:?}"
    );
    for instance in [&mut owner, &mut standby] {
        let code = instance
            .daemon
            .as_mut()
            .expect("started")
            .terminate(Duration::from_secs(30));
        assert_eq!(code, Some(0));
    }
    s.cleanup(&pipe).await;
}
