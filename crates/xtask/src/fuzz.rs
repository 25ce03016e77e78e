//! `cargo xtask fuzz`: the mutation fuzzer of `apiserver::fuzz` over the seed corpus, until the
//! time is up or an input panics. A panicking input is minimized and written to
//! `target/fuzz-crashes/`; the input being run is kept in `target/fuzz-crashes/last-input`, so
//! one that overflows the stack (which aborts the process) is on disk too.

use std::path::PathBuf;
use std::time::Duration;

use apiserver::fuzz::mutate::{self, Options};

#[derive(clap::Args)]
pub struct Args {
    /// How long to fuzz.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// The random seed (default: from the clock); a run is repeatable from its seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Runs these whole inputs (crash files, as the fuzzer writes them) once each instead of
    /// fuzzing.
    #[arg(long, num_args = 1..)]
    replay: Vec<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if !args.replay.is_empty() {
        return replay(&args.replay);
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let crashes = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/fuzz-crashes");
    std::fs::create_dir_all(&crashes)?;
    let corpus: Vec<Vec<u8>> = mutate::load_corpus(&mutate::corpus_dir())?
        .into_iter()
        .map(|(_, input)| input)
        .collect();
    eprintln!(
        "fuzzing {} corpus inputs for {}s, seed {seed}",
        corpus.len(),
        args.seconds
    );
    let last = crashes.join("last-input");
    let options = Options {
        seed,
        iterations: None,
        duration: Some(Duration::from_secs(args.seconds)),
        before_each: Some(Box::new(move |input: &[u8]| {
            let _ = std::fs::write(&last, input);
        })),
    };
    match mutate::fuzz(corpus, options) {
        Ok(stats) => {
            eprintln!(
                "no panic in {} executions ({} inputs in the pool)",
                stats.executions, stats.pool
            );
            Ok(())
        }
        Err(crash) => {
            eprintln!("panic: {}\nminimizing…", crash.message);
            let small = mutate::minimize(&crash);
            let name = format!("crash-{seed}-{:016x}", fnv1a(&small));
            let path = crashes.join(name);
            std::fs::write(&path, &small)?;
            eprintln!("input: {:?}", String::from_utf8_lossy(&small));
            eprintln!(
                "the input is in {} (keep it in crates/apiserver/fuzz-corpus/regressions/ once fixed)",
                path.display()
            );
            std::process::exit(1)
        }
    }
}

fn replay(paths: &[PathBuf]) -> anyhow::Result<()> {
    let mut failed = false;
    for path in paths {
        let input = std::fs::read(path)?;
        match mutate::check(&input) {
            Ok(()) => eprintln!("{}: no panic", path.display()),
            Err(crash) => {
                eprintln!("{}: panic: {}", path.display(), crash.message);
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

/// A stable name for a crash file.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}
