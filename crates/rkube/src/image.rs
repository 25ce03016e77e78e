//! `rkube image import|pull|ls`: the node's image store (`<data-dir>/agent/images`), whether
//! or not the node runs.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;

use crate::datastore::DEFAULT_DATA_DIR;

#[derive(clap::Args)]
pub struct Args {
    /// The node's data directory (as for `rkube server` / `rkube agent`).
    #[arg(long, global = true, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Import images from an OCI layout or docker-archive tar (as `docker save` or
    /// `skopeo copy … docker-archive:` / `oci-archive:` write them); names come from the archive.
    Import {
        /// The archive (a tar, optionally gzipped, or an OCI layout directory).
        file: PathBuf,
    },
    /// Pull an image from its registry (or the mirrors the registry config names) and print
    /// its digest.
    Pull {
        /// A registries.yaml (k3s's format: mirrors, endpoint auth and TLS).
        #[arg(long)]
        registry_config: Option<PathBuf>,
        /// The image (`busybox:1.36`, `registry.example.com/app@sha256:…`).
        image: String,
    },
    /// List the stored images.
    Ls,
}

/// The image store of a node's data directory.
pub fn store_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("agent").join("images")
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let root = store_dir(&args.data_dir);
    let store = images::Store::open(&root)
        .with_context(|| format!("cannot open the image store {}", root.display()))?;
    match args.command {
        Command::Import { file } => {
            let names = store
                .import(&file)
                .with_context(|| format!("cannot import {}", file.display()))?;
            for name in names {
                println!("imported {name}");
            }
        }
        Command::Pull {
            registry_config,
            image,
        } => {
            let reference = images::Reference::parse(&image)?;
            let registries = match registry_config {
                Some(path) => images::registry::RegistriesConfig::load(&path)?,
                None => Default::default(),
            };
            let options = images::PullOptions {
                registries,
                ..Default::default()
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let pulled = runtime.block_on(store.pull(&reference, &options))?;
            println!("{}", pulled.manifest);
        }
        Command::Ls => {
            let rows: Vec<[String; 4]> = store
                .list()?
                .into_iter()
                .map(|(name, image)| {
                    let reference = images::Reference::parse(&name).ok();
                    let (repo, tag) = match &reference {
                        Some(r) => (r.name(), r.tag.clone().unwrap_or_else(|| "<none>".into())),
                        None => (name.clone(), "<none>".into()),
                    };
                    let id = image
                        .config
                        .trim_start_matches("sha256:")
                        .chars()
                        .take(13)
                        .collect();
                    [repo, tag, id, human_size(image.size)]
                })
                .collect();
            print_table(["IMAGE", "TAG", "IMAGE ID", "SIZE"], &rows);
        }
    }
    Ok(())
}

/// Columns padded as `crictl images` prints them.
fn print_table(header: [&str; 4], rows: &[[String; 4]]) {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; 4]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}   "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header);
    for row in rows {
        line([&row[0], &row[1], &row[2], &row[3]]);
    }
}

/// Decimal units with three significant digits, as Docker's `units.HumanSize` (`2.16MB`).
fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    let digits = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{value:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    };
    format!("{text}{}", units[unit])
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_print_as_docker() {
        assert_eq!(super::human_size(2_160_000), "2.16MB");
        assert_eq!(super::human_size(999), "999B");
        assert_eq!(super::human_size(1_250), "1.25kB");
        assert_eq!(super::human_size(57_000_000), "57MB");
    }
}
