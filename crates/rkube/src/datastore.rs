//! Opening the datastore a URL names, and `rkube datastore …`, a small etcdctl for either backend.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use store::{KeyRange, RangeRequest, Store, StoreUrl};

/// Where server state lives by default.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/rkube";

/// The default datastore: SQLite in `<data-dir>/db/state.db`.
pub fn default_url(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join("db").join("state.db").display())
}

/// Opens the datastore `url` names. For the default location, creates its directory.
pub async fn open(url: &str, data_dir: &Path) -> anyhow::Result<Arc<dyn Store>> {
    let store: Arc<dyn Store> = match StoreUrl::parse(url)? {
        StoreUrl::Sqlite(path) => {
            if url == default_url(data_dir) {
                std::fs::create_dir_all(data_dir.join("db"))
                    .with_context(|| format!("cannot create {}", data_dir.join("db").display()))?;
            }
            let store = tokio::task::spawn_blocking(move || store_sqlite::SqliteStore::open(path)).await??;
            Arc::new(store)
        }
        StoreUrl::Etcd(endpoints) => Arc::new(store_etcd::EtcdStore::connect(&endpoints).await?),
    };
    Ok(store)
}

#[derive(clap::Args)]
pub struct Args {
    /// Datastore URL: sqlite:///path/state.db, etcd://host:2379[,host:2379…] or http://host:2379[,…].
    /// Default: SQLite under --data-dir.
    #[arg(long, global = true, env = "RKUBE_DATASTORE_ENDPOINT")]
    datastore_endpoint: Option<String>,
    /// The server's data directory.
    #[arg(long, global = true, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Backend, current revision and number of keys.
    Status,
    /// Print one key's value and metadata.
    Get { key: String },
    /// List keys under a prefix with their revisions.
    List {
        #[arg(default_value = "/")]
        prefix: String,
        /// At most this many keys.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Discard history at and below a revision (default: all but the last 1000 revisions).
    Compact {
        #[arg(long)]
        revision: Option<i64>,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let url = args
            .datastore_endpoint
            .clone()
            .unwrap_or_else(|| default_url(&args.data_dir));
        let store = open(&url, &args.data_dir).await?;
        match args.command {
            Command::Status => {
                let keys = store
                    .range(RangeRequest::new(KeyRange::prefix("")).count_only())
                    .await?;
                println!("backend:  {}", store.backend());
                println!("endpoint: {}", StoreUrl::parse(&url)?);
                println!("revision: {}", keys.revision);
                println!("keys:     {}", keys.count);
            }
            Command::Get { key } => {
                let kv = store
                    .get(&key)
                    .await?
                    .with_context(|| format!("key {key:?} not found"))?;
                println!(
                    "key={} create_revision={} mod_revision={} version={} lease={}",
                    kv.key,
                    kv.create_revision,
                    kv.mod_revision,
                    kv.version,
                    kv.lease.unwrap_or(0)
                );
                println!("{}", String::from_utf8_lossy(&kv.value));
            }
            Command::List { prefix, limit } => {
                let mut req = RangeRequest::new(KeyRange::prefix(&prefix));
                req.limit = limit;
                let resp = store.range(req).await?;
                for kv in &resp.kvs {
                    println!("{}\t{}\t{} bytes", kv.key, kv.mod_revision, kv.value.len());
                }
                if resp.more {
                    eprintln!("({} of {} keys shown)", resp.kvs.len(), resp.count);
                }
            }
            Command::Compact { revision } => {
                let current = store.current_revision().await?;
                let revision = revision.unwrap_or(current - 1000);
                anyhow::ensure!(
                    revision > 0,
                    "nothing to compact: the current revision is {current}"
                );
                store.compact(revision).await?;
                println!("compacted through revision {revision} (current {current})");
            }
        }
        anyhow::Ok(())
    })
}
