//! A random, reproducible write workload over the three tables of [`TABLES`]: inserts,
//! updates, deletes, primary key changes, multi-row statements, multi-statement transactions
//! and rolled-back transactions.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Kind, Table};

pub const DDL: &str = "
CREATE TABLE orders (
  id BIGINT UNSIGNED PRIMARY KEY,
  customer VARCHAR(40) NOT NULL,
  amount DECIMAL(12,2) NOT NULL,
  qty INT NOT NULL,
  price DOUBLE,
  status ENUM('new','paid','shipped') NOT NULL,
  note TEXT,
  created DATETIME(3) NOT NULL,
  updated TIMESTAMP(6) NULL
);
CREATE TABLE items (
  order_id INT NOT NULL,
  line SMALLINT NOT NULL,
  sku VARCHAR(20) NOT NULL,
  weight FLOAT,
  PRIMARY KEY (order_id, line)
);
CREATE TABLE tags (
  tag VARCHAR(32) PRIMARY KEY,
  cnt INT UNSIGNED,
  data BLOB,
  doc JSON
);";

pub const TABLES: &[Table<'static>] = &[
    Table {
        name: "orders",
        key: &["id"],
        columns: &[
            ("id", Kind::Int),
            ("customer", Kind::Text),
            ("amount", Kind::Decimal(2)),
            ("qty", Kind::Int),
            ("price", Kind::Double),
            ("status", Kind::Text),
            ("note", Kind::Text),
            ("created", Kind::DateTime(3)),
            ("updated", Kind::DateTime(6)),
        ],
    },
    Table {
        name: "items",
        key: &["order_id", "line"],
        columns: &[
            ("order_id", Kind::Int),
            ("line", Kind::Int),
            ("sku", Kind::Text),
            ("weight", Kind::Float),
        ],
    },
    Table {
        name: "tags",
        key: &["tag"],
        columns: &[
            ("tag", Kind::Text),
            ("cnt", Kind::Int),
            ("data", Kind::Binary),
            ("doc", Kind::Text),
        ],
    },
];

pub struct Workload {
    rng: StdRng,
    /// Orders this workload creates have ids from here on, so that workloads with different
    /// seeds can run one after the other on the same tables.
    first_id: u64,
    next_id: u64,
}

impl Workload {
    pub fn new(seed: u64) -> Workload {
        let first_id = seed * 1_000_000 + 1;
        Workload {
            rng: StdRng::seed_from_u64(seed),
            first_id,
            next_id: first_id,
        }
    }

    fn order_values(&mut self, id: u64) -> String {
        let r = &mut self.rng;
        let note = if r.random_bool(0.3) {
            "NULL".to_string()
        } else {
            format!("'note {} ü€'", r.random::<u16>())
        };
        let price = if r.random_bool(0.1) {
            "NULL".to_string()
        } else {
            format!("{:e}", r.random::<f64>() * 1e6)
        };
        let updated = if r.random_bool(0.2) {
            "NULL".to_string()
        } else {
            format!(
                "'2024-0{}-1{} 0{}:3{}:00.{:06}'",
                r.random_range(1..10),
                r.random_range(0..10),
                r.random_range(0..10),
                r.random_range(0..10),
                r.random_range(0..1_000_000)
            )
        };
        format!(
            "({id}, 'cust{}', {}.{:02}, {}, {price}, '{}', {note}, '2023-12-31 23:59:{:02}.{:03}', {updated})",
            r.random::<u16>(),
            r.random_range(-99_999..99_999),
            r.random_range(0..100),
            r.random::<i32>(),
            ["new", "paid", "shipped"][r.random_range(0..3)],
            r.random_range(0..60),
            r.random_range(0..1000),
        )
    }

    /// One statement of the workload.
    fn statement(&mut self) -> String {
        let (min, max) = (self.first_id, self.next_id.max(self.first_id + 1));
        let pick = self.rng.random_range(0..100);
        match pick {
            0..=29 => {
                let n = self.rng.random_range(1..4);
                let rows: Vec<String> = (0..n)
                    .map(|_| {
                        let id = self.next_id;
                        self.next_id += 1;
                        self.order_values(id)
                    })
                    .collect();
                format!("INSERT INTO orders VALUES {}", rows.join(", "))
            }
            30..=49 => {
                let id = self.rng.random_range(min..max);
                format!(
                    "UPDATE orders SET qty = qty + 1, status = '{}', amount = {}.{:02}, note = IF(note IS NULL, 'was null', NULL) WHERE id = {id}",
                    ["new", "paid", "shipped"][self.rng.random_range(0..3)],
                    self.rng.random_range(-1000..1000),
                    self.rng.random_range(0..100)
                )
            }
            50..=54 => {
                let lo = self.rng.random_range(min..max);
                format!("UPDATE orders SET price = price * 2 WHERE id BETWEEN {lo} AND {}", lo + 5)
            }
            55..=59 => {
                let id = self.rng.random_range(min..max);
                let new = self.next_id;
                self.next_id += 1;
                format!("UPDATE orders SET id = {new} WHERE id = {id}")
            }
            60..=69 => format!("DELETE FROM orders WHERE id = {}", self.rng.random_range(min..max)),
            70..=79 => format!(
                "INSERT INTO items VALUES ({}, {}, 'sku{}', {}) ON DUPLICATE KEY UPDATE weight = VALUES(weight), sku = 'dup'",
                self.rng.random_range(1..200),
                self.rng.random_range(1..5),
                self.rng.random::<u16>(),
                self.rng.random::<f32>() * 100.0
            ),
            80..=84 => format!(
                "UPDATE IGNORE items SET line = line + 10 WHERE order_id = {} AND line < 10 ORDER BY line DESC",
                self.rng.random_range(1..200)
            ),
            85..=87 => format!("DELETE FROM items WHERE order_id = {}", self.rng.random_range(1..200)),
            88..=93 => format!(
                "INSERT INTO tags VALUES ('tag{0}', {1}, X'00{0:04x}ff', '{{\"n\": {1}, \"s\": \"é\"}}') ON DUPLICATE KEY UPDATE cnt = cnt + 1, data = NULL",
                self.rng.random_range(0..300u32),
                self.rng.random::<u32>()
            ),
            94..=96 => {
                let t = self.rng.random_range(0..300u32);
                format!("UPDATE IGNORE tags SET tag = 'moved{t}-{}' WHERE tag = 'tag{t}'", self.next_id)
            }
            _ => format!("DELETE FROM tags WHERE tag = 'tag{}'", self.rng.random_range(0..300u32)),
        }
    }

    /// Like [`Workload::run`], but returns the first error instead of panicking (for loads
    /// that run through server faults).
    pub async fn try_run(
        &mut self,
        conn: &mut Conn,
        transactions: usize,
    ) -> Result<(), mysql_async::Error> {
        for _ in 0..transactions {
            let n = self.rng.random_range(1..=5);
            let rollback = self.rng.random_bool(0.1);
            conn.query_drop("BEGIN").await?;
            for _ in 0..n {
                let s = self.statement();
                conn.query_drop(&s).await?;
            }
            conn.query_drop(if rollback { "ROLLBACK" } else { "COMMIT" })
                .await?;
        }
        Ok(())
    }

    /// Runs `transactions` transactions of 1 to 5 statements; about one in ten is rolled back.
    pub async fn run(&mut self, conn: &mut Conn, transactions: usize) {
        for _ in 0..transactions {
            let n = self.rng.random_range(1..=5);
            let rollback = self.rng.random_bool(0.1);
            let mut stmts = vec!["BEGIN".to_string()];
            for _ in 0..n {
                stmts.push(self.statement());
            }
            stmts.push(if rollback { "ROLLBACK" } else { "COMMIT" }.to_string());
            for s in stmts {
                if let Err(e) = conn.query_drop(&s).await {
                    panic!("workload statement failed: {e}\n{s}");
                }
            }
        }
    }
}
