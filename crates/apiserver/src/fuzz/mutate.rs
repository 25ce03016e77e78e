//! A small mutation fuzzer for [`super::one_input`], for stable Rust (no libFuzzer): inputs from
//! a seed corpus are mutated — byte flips, insertions, deletions, splices between corpus
//! entries, and JSON-aware edits (a value replaced by another JSON type, deep nesting, huge
//! numbers, long or odd unicode strings, duplicated subtrees, header bytes switched to another
//! target or kind) — and run under `catch_unwind` on a thread with a server worker's stack.
//! Mutants that get at least as far through the pipeline as their parent join the pool, the
//! only feedback there is without coverage instrumentation.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Map, Value};

use super::{SEPARATOR, WORKER_STACK_BYTES};

/// The seed corpus shipped with the crate.
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz-corpus")
}

/// The fuzz inputs of a corpus directory, sorted by path. Seeds live in one folder per target
/// and are named `<group>_<plural>_<label>.<ext>` (group `core` for the core group): the header
/// bytes come from the folder and the name (the label's words `status`, `strict` and `force`
/// set those options), the file holds the body. Regression inputs live in `regressions/`: named
/// the same way in a target folder, or as the fuzzer writes them (whole inputs, header
/// included) directly in it.
pub fn load_corpus(dir: &Path) -> std::io::Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let data = std::fs::read(&path)?;
            let folder = path
                .parent()
                .and_then(Path::file_name)
                .and_then(|f| f.to_str())
                .unwrap_or("");
            let input = match seed_header(folder, &path) {
                Some(header) => [header.as_slice(), &data].concat(),
                None => data,
            };
            out.push((path, input));
        }
    }
    out.sort();
    Ok(out)
}

fn seed_header(folder: &str, path: &Path) -> Option<Vec<u8>> {
    super::TARGETS.contains(&folder).then_some(())?;
    let stem = path.file_stem()?.to_str()?;
    let mut parts = stem.splitn(3, '_');
    let (group, plural, label) = (parts.next()?, parts.next()?, parts.next().unwrap_or(""));
    let group = if group == "core" { "" } else { group };
    let def = apimachinery::resources::BUILTIN
        .iter()
        .find(|d| d.group == group && d.plural == plural)?;
    let mut flags = 0;
    for word in label.split(['-', '_']) {
        flags |= match word {
            "status" => 1,
            "strict" => 4,
            "force" => 8,
            _ => 0,
        };
    }
    let mut header = super::input(folder, def, flags, &[]);
    header.truncate(3);
    Some(header)
}

/// A deterministic xorshift64* generator: repeatable runs from a seed, no dependency.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Byte strings worth inserting: JSON and YAML syntax, numbers at the edges, odd unicode.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    "null",
    "true",
    "-0",
    "1e400",
    "-1",
    "0.5",
    "18446744073709551616",
    "-9223372036854775809",
    "2147483648",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"\u{202e}é😀\"",
    "$patch",
    "\"$patch\":\"delete\"",
    "\"$retainKeys\":[]",
    "$setElementOrder/",
    "$deleteFromPrimitiveList/",
    "\"f:\"",
    "k:{",
    "v:",
    "~1",
    "~0",
    "/-",
    "---\n",
    "- ",
    ": ",
    "&a ",
    "*a",
    "!!binary ",
    "\n====\n",
    "k8s\0",
];

/// Values to put in place of another.
fn odd_value(rng: &mut Rng) -> Value {
    match rng.below(16) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(2)),
        2 => Value::from(u64::MAX),
        3 => Value::from(i64::MIN),
        4 => serde_json::from_str("1e300").unwrap_or(Value::Null),
        5 => Value::from(-1),
        6 => Value::from(0.5),
        7 => Value::String(String::new()),
        8 => Value::String("x".repeat(rng.below(300))),
        9 => Value::String("é\u{0}\u{202e}😀\u{fffd}".into()),
        10 => Value::Array(Vec::new()),
        11 => Value::Object(Map::new()),
        12 => nested(rng.below(140)),
        13 => Value::String(
            ["Always", "RollingUpdate", "ClusterIP", "10%", "1Gi", "-5m", "::1"][rng.below(7)].into(),
        ),
        14 => Value::Array(vec![Value::Null; rng.below(50)]),
        _ => Value::from(rng.next_u64() as i64),
    }
}

/// Objects and arrays nested `depth` deep.
fn nested(depth: usize) -> Value {
    let mut v = Value::Null;
    for i in 0..depth {
        v = if i % 2 == 0 {
            Value::Array(vec![v])
        } else {
            let mut m = Map::new();
            m.insert("a".into(), v);
            Value::Object(m)
        };
    }
    v
}

/// One mutant of `input` (a full fuzz input, header included).
pub fn mutate(rng: &mut Rng, input: &[u8], pool: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(3) {
        out = match rng.below(12) {
            0..=3 => json_edit(rng, &out).unwrap_or_else(|| bytes_edit(rng, &out)),
            4..=7 => bytes_edit(rng, &out),
            8 => {
                let other = &pool[rng.below(pool.len())];
                splice(rng, &out, other)
            }
            9 if rng.chance(2) => header_edit(rng, &out),
            9 => json_patch_op(rng, &out).unwrap_or_else(|| bytes_edit(rng, &out)),
            10 => token_insert(rng, &out),
            _ => {
                // The other half of a two-part input from another entry.
                let other = rng.pick(pool).clone();
                recombine(&out, &other)
            }
        };
    }
    out.truncate(1 << 20);
    out
}

fn bytes_edit(rng: &mut Rng, data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    if out.len() < 4 {
        out.resize(4, b'{');
    }
    let n = out.len();
    match rng.below(6) {
        0 => {
            let i = 3 + rng.below(n - 3);
            out[i] ^= 1 << rng.below(8);
        }
        1 => {
            let i = 3 + rng.below(n - 3);
            out[i] = rng.next_u64() as u8;
        }
        2 => {
            let i = 3 + rng.below(n - 2);
            let len = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            out.splice(i.min(n)..i.min(n), bytes);
        }
        3 => {
            let i = 3 + rng.below(n - 3);
            let len = 1 + rng.below((n - i).min(32));
            out.drain(i..i + len);
        }
        4 => {
            // Duplicate a range.
            let i = 3 + rng.below(n - 3);
            let len = 1 + rng.below((n - i).min(64));
            let copy = out[i..i + len].to_vec();
            let at = 3 + rng.below(out.len() - 2);
            out.splice(at..at, copy);
        }
        _ => {
            let i = 3 + rng.below(n - 3);
            out[i] = *rng.pick(b"{}[]\":,0-\\ \n");
        }
    }
    out
}

fn token_insert(rng: &mut Rng, data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    let at = 3.min(out.len()) + rng.below(out.len().saturating_sub(3) + 1);
    out.splice(at..at, rng.pick(TOKENS).bytes());
    out
}

/// Head of one input, tail of another (at random points).
fn splice(rng: &mut Rng, a: &[u8], b: &[u8]) -> Vec<u8> {
    let cut_a = rng.below(a.len() + 1);
    let cut_b = rng.below(b.len() + 1);
    let mut out = a[..cut_a].to_vec();
    out.extend_from_slice(&b[cut_b..]);
    out
}

/// This input's stored object with another's request body (or the other way round).
fn recombine(a: &[u8], b: &[u8]) -> Vec<u8> {
    let (a_head, a_first, _) = parts(a);
    let (_, _, b_second) = parts(b);
    let mut out = a_head.to_vec();
    out.extend_from_slice(a_first);
    out.extend_from_slice(SEPARATOR);
    out.extend_from_slice(b_second);
    out
}

fn header_edit(rng: &mut Rng, data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    out.resize(out.len().max(3), 0);
    let i = rng.below(3);
    out[i] = rng.next_u64() as u8;
    out
}

/// Header, first part and second part of an input (the first part empty without separator).
fn parts(data: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let header = &data[..data.len().min(3)];
    let (first, second) = super::split(&data[header.len()..]);
    (header, first, second)
}

/// Parses one JSON part, edits one of its values, and writes the input back.
fn json_edit(rng: &mut Rng, data: &[u8]) -> Option<Vec<u8>> {
    let (header, first, second) = parts(data);
    let edit_first = !first.is_empty() && rng.chance(3);
    let part = if edit_first { first } else { second };
    let mut value: Value = serde_json::from_slice(part).ok()?;
    let mut nodes = 0;
    count(&value, &mut nodes);
    let target = rng.below(nodes.max(1));
    let mut seen = 0;
    edit_node(rng, &mut value, target, &mut seen);
    let text = serde_json::to_vec(&value).ok()?;
    let mut out = header.to_vec();
    if edit_first {
        out.extend_from_slice(&text);
        out.extend_from_slice(SEPARATOR);
        out.extend_from_slice(second);
    } else if !first.is_empty() {
        out.extend_from_slice(first);
        out.extend_from_slice(SEPARATOR);
        out.extend_from_slice(&text);
    } else {
        out.extend_from_slice(&text);
    }
    Some(out)
}

/// Adds a JSON patch operation on paths that exist in the stored object (or just past them),
/// when the request part is a JSON patch.
fn json_patch_op(rng: &mut Rng, data: &[u8]) -> Option<Vec<u8>> {
    let (header, first, second) = parts(data);
    let stored: Value = serde_json::from_slice(first).ok()?;
    let Value::Array(mut ops) = serde_json::from_slice(second).ok()? else {
        return None;
    };
    let mut pointers = Vec::new();
    collect_pointers(&stored, String::new(), &mut pointers);
    let pointer = |rng: &mut Rng| {
        let mut p = rng.pick(&pointers).clone();
        match rng.below(6) {
            0 => p.push_str("/-"),
            1 => p.push_str("/0"),
            2 => p.push_str("/x~1y"),
            3 => p.push_str("/18446744073709551616"),
            _ => {}
        }
        p
    };
    let op = *rng.pick(&["add", "remove", "replace", "move", "copy", "test"]);
    let mut new = Map::new();
    new.insert("op".into(), op.into());
    new.insert("path".into(), pointer(rng).into());
    if matches!(op, "move" | "copy") {
        new.insert("from".into(), pointer(rng).into());
    }
    if matches!(op, "add" | "replace" | "test") {
        let value = if rng.chance(2) {
            let from: &String = rng.pick(&pointers);
            stored.pointer(from).cloned().unwrap_or(Value::Null)
        } else {
            odd_value(rng)
        };
        new.insert("value".into(), value);
    }
    let at = rng.below(ops.len() + 1);
    ops.insert(at, Value::Object(new));
    let mut out = header.to_vec();
    out.extend_from_slice(first);
    out.extend_from_slice(SEPARATOR);
    out.extend_from_slice(&serde_json::to_vec(&ops).ok()?);
    Some(out)
}

/// JSON pointers to the nodes of `value` (at most a few hundred).
fn collect_pointers(value: &Value, here: String, out: &mut Vec<String>) {
    if out.len() >= 300 {
        return;
    }
    out.push(here.clone());
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_pointers(item, format!("{here}/{i}"), out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let escaped = key.replace('~', "~0").replace('/', "~1");
                collect_pointers(item, format!("{here}/{escaped}"), out);
            }
        }
        _ => {}
    }
}

fn count(value: &Value, n: &mut usize) {
    *n += 1;
    match value {
        Value::Array(items) => items.iter().for_each(|v| count(v, n)),
        Value::Object(map) => map.values().for_each(|v| count(v, n)),
        _ => {}
    }
}

/// Edits the `target`-th node in depth-first order.
fn edit_node(rng: &mut Rng, value: &mut Value, target: usize, seen: &mut usize) -> bool {
    if *seen == target {
        edit_here(rng, value);
        return true;
    }
    *seen += 1;
    match value {
        Value::Array(items) => items.iter_mut().any(|v| edit_node(rng, v, target, seen)),
        Value::Object(map) => map.values_mut().any(|v| edit_node(rng, v, target, seen)),
        _ => false,
    }
}

fn edit_here(rng: &mut Rng, value: &mut Value) {
    match (rng.below(6), &mut *value) {
        (0, Value::Object(map)) if !map.is_empty() => {
            // Rename a key (to a directive, a near miss, or nothing).
            let key = map.keys().nth(rng.below(map.len())).cloned().unwrap_or_default();
            let v = map.remove(&key).unwrap_or(Value::Null);
            let new = match rng.below(5) {
                0 => "$patch".to_owned(),
                1 => format!("$setElementOrder/{key}"),
                2 => format!("$deleteFromPrimitiveList/{key}"),
                3 => String::new(),
                _ => format!("{key}x"),
            };
            map.insert(new, v);
        }
        (1, Value::Object(map)) => {
            let key = [
                "metadata",
                "spec",
                "status",
                "name",
                "items",
                "kind",
                "apiVersion",
                "labels",
                "managedFields",
                "$retainKeys",
            ][rng.below(10)];
            map.insert(key.into(), odd_value(rng));
        }
        (2, Value::Array(items)) if !items.is_empty() => {
            // Duplicate an item (duplicate merge keys), or drop one.
            let i = rng.below(items.len());
            if rng.chance(2) {
                let copy = items[i].clone();
                items.insert(i, copy);
            } else {
                items.remove(i);
            }
        }
        (3, v) => {
            // Wrap the value in arrays and objects.
            let depth = rng.below(130);
            let mut wrapped = std::mem::take(v);
            for _ in 0..depth {
                wrapped = Value::Array(vec![wrapped]);
            }
            *v = wrapped;
        }
        _ => *value = odd_value(rng),
    }
}

/// A panic found by [`fuzz`]: the input and what the panic said.
#[derive(Debug)]
pub struct Crash {
    pub input: Vec<u8>,
    pub message: String,
}

/// How a fuzz run ended without a crash.
#[derive(Debug, Default)]
pub struct Stats {
    pub executions: u64,
    pub pool: usize,
}

/// The panic messages of fuzz threads (the hook records them instead of printing).
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);
const THREAD_NAME: &str = "fuzz-worker";

fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() == Some(THREAD_NAME) {
                let location = info.location().map(|l| format!(" at {l}")).unwrap_or_default();
                let payload = info.payload();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(non-string panic)".into());
                // The panic's location is often inside serde_json (an index into the wrong
                // type): name the first frame of this workspace too.
                let trace = std::backtrace::Backtrace::force_capture().to_string();
                let ours = trace
                    .lines()
                    .map(str::trim)
                    .filter_map(|l| l.strip_prefix("at "))
                    .find(|l| l.contains("crates/") && !l.contains("/fuzz/"))
                    .map(|l| format!(", from {l}"))
                    .unwrap_or_default();
                *LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(format!("{message}{location}{ours}"));
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `input` once, on a worker-sized stack, catching a panic.
pub fn check(input: &[u8]) -> Result<(), Crash> {
    let input = input.to_vec();
    on_worker(move || try_one(&input))
}

fn try_one(input: &[u8]) -> Result<usize, Crash> {
    std::panic::catch_unwind(|| super::run(input)).map_err(|_| Crash {
        input: input.to_vec(),
        message: LAST_PANIC
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default(),
    })
}

fn on_worker<T: Send + 'static>(f: impl FnOnce() -> Result<T, Crash> + Send + 'static) -> Result<(), Crash> {
    install_panic_hook();
    std::thread::Builder::new()
        .name(THREAD_NAME.into())
        .stack_size(WORKER_STACK_BYTES)
        .spawn(f)
        .expect("spawn the fuzz thread")
        .join()
        .expect("the fuzz thread catches panics")
        .map(|_| ())
}

/// A callback run with each input before it runs.
pub type BeforeEach = Box<dyn FnMut(&[u8]) + Send>;

/// What a run does: its seed and when it stops.
pub struct Options {
    pub seed: u64,
    pub iterations: Option<u64>,
    pub duration: Option<Duration>,
    /// Called with each input before it runs (to keep the last one on disk: a stack overflow
    /// aborts the process before any report).
    pub before_each: Option<BeforeEach>,
}

/// Mutates the corpus and runs the mutants until `options` says stop or an input panics.
pub fn fuzz(corpus: Vec<Vec<u8>>, mut options: Options) -> Result<Stats, Crash> {
    const POOL_MAX: usize = 4096;
    let result = std::sync::Arc::new(Mutex::new(Stats::default()));
    let stats = result.clone();
    on_worker(move || {
        let mut rng = Rng::new(options.seed);
        let mut pool: Vec<(Vec<u8>, usize)> = Vec::new();
        for input in corpus {
            let score = try_one(&input)?;
            pool.push((input, score));
        }
        if pool.is_empty() {
            pool.push((vec![0, 0, 0], 0));
        }
        let started = std::time::Instant::now();
        let mut executions = 0u64;
        let mut inputs: Vec<Vec<u8>> = pool.iter().map(|(i, _)| i.clone()).collect();
        loop {
            if options.iterations.is_some_and(|n| executions >= n)
                || options.duration.is_some_and(|d| started.elapsed() >= d)
            {
                break;
            }
            let parent = rng.below(pool.len());
            let mutant = mutate(&mut rng, &pool[parent].0, &inputs);
            if let Some(before) = options.before_each.as_mut() {
                before(&mutant);
            }
            let score = try_one(&mutant)?;
            executions += 1;
            if score >= pool[parent].1 && score > 0 && mutant != pool[parent].0 {
                if pool.len() < POOL_MAX {
                    inputs.push(mutant.clone());
                    pool.push((mutant, score));
                } else {
                    let slot = rng.below(pool.len());
                    inputs[slot] = mutant.clone();
                    pool[slot] = (mutant, score);
                }
            }
        }
        let mut stats = stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.executions = executions;
        stats.pool = pool.len();
        Ok(())
    })?;
    let stats = std::mem::take(&mut *result.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(stats)
}

/// A smaller input that panics the same way (same message and location): chunks are cut out
/// while the panic stays, from halves down to single bytes of the body.
pub fn minimize(crash: &Crash) -> Vec<u8> {
    let mut best = crash.input.clone();
    let mut chunk = best.len() / 2;
    while chunk > 0 {
        let mut at = 3;
        while at < best.len() {
            let end = (at + chunk).min(best.len());
            let candidate = [&best[..at], &best[end..]].concat();
            match check(&candidate) {
                Err(c) if c.message == crash.message => best = candidate,
                _ => at += chunk,
            }
        }
        chunk /= 2;
    }
    best
}
