//! tributary: replicates MySQL and MariaDB tables into ClickHouse by change data capture.

mod api;
mod batch;
mod binlog;
mod charset;
mod cli;
mod clickhouse;
mod config;
mod ddl;
mod decode;
mod error;
#[cfg(test)]
mod layers;
mod lifecycle;
mod metrics;
mod pipe;
mod schema;
mod snapshot;
mod source;
mod state;
mod target;
#[cfg(test)]
mod test_servers;
mod tls;

fn main() -> std::process::ExitCode {
    cli::main()
}
