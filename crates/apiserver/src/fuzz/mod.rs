//! The fuzz entry point. [`one_input`] routes arbitrary bytes through everything a request body
//! meets before it is stored, for the built-in kinds and without a store: the JSON, YAML and
//! protobuf decoders, unknown-field handling, the generic create and update preparation and
//! validation (as `rest` runs them around its store calls), JSON / merge / strategic merge patch,
//! server-side apply and field ownership, label and field selectors, and Table printing of the
//! result. Errors are expected; a panic (or a stack overflow) is a bug.
//!
//! `cargo xtask fuzz` drives it with the mutation fuzzer of [`mutate`] from the seed corpus in
//! `crates/apiserver/fuzz-corpus/`; `tests/fuzz.rs` replays that corpus, the regression inputs
//! and a short fixed-seed run in CI.
//!
//! Input layout: byte 0 picks the target (`TARGETS`, modulo their number), byte 1 the kind (an
//! index into `apimachinery::resources::BUILTIN`, modulo its length), byte 2 the request options
//! (bit 0: the `status` subresource; bits 1–2: fieldValidation Warn / Ignore / Strict; bit 3:
//! force; bits 4–5: the Table's includeObject). The rest is the body; targets that need a stored
//! object and a request body (updates, patches, apply) split it at the first [`SEPARATOR`].

pub mod mutate;
mod pipeline;

use apimachinery::resources::{BUILTIN, ResourceDef};

use crate::patch::PatchKind;

/// Separates the stored object from the request body in two-part inputs.
pub const SEPARATOR: &[u8] = b"\n====\n";

/// The targets, in the order byte 0 selects them.
pub const TARGETS: &[&str] = &[
    "create-json",
    "apply-create",
    "create-protobuf",
    "update",
    "json-patch",
    "merge-patch",
    "strategic-merge-patch",
    "apply",
    "selectors",
    "table",
];

/// The stack of a tokio worker thread, where request handlers run: fuzz on one this size so a
/// recursion too deep for the server is found here too.
pub const WORKER_STACK_BYTES: usize = 2 * 1024 * 1024;

/// The fuzz entry point: any bytes, never a panic.
pub fn one_input(data: &[u8]) {
    run(data);
}

/// Runs one input and tells how far it got (the number of pipeline stages it passed), which the
/// mutation fuzzer uses as its only feedback.
pub fn run(data: &[u8]) -> usize {
    outcome(data).0
}

/// Runs one input: how far it got, and the error that stopped it (to see why a seed does not
/// go all the way through).
pub fn outcome(data: &[u8]) -> (usize, Result<(), String>) {
    let [target, kind, flags, body @ ..] = data else {
        return (0, Err("no header".into()));
    };
    let def = &BUILTIN[usize::from(*kind) % BUILTIN.len()];
    let mut run = pipeline::Run::new(def, *flags);
    let result = match usize::from(*target) % TARGETS.len() {
        0 => run.create_json(body),
        1 => run.apply_create(body),
        2 => run.create_protobuf(body),
        3 => run.update(body),
        4 => run.patch(PatchKind::Json, body),
        5 => run.patch(PatchKind::Merge, body),
        6 => run.patch(PatchKind::Strategic, body),
        7 => run.apply(body),
        8 => run.selectors(body),
        _ => run.table(body),
    };
    (run.stages, result.map(|_| ()).map_err(|e| e.message))
}

/// An input for `target` on `def`'s kind with option bits `flags`, made of printable header
/// bytes when possible (so corpus files stay readable).
pub fn input(target: &str, def: &ResourceDef, flags: u8, body: &[u8]) -> Vec<u8> {
    let target = TARGETS.iter().position(|t| *t == target).expect("a known target");
    let kind = BUILTIN
        .iter()
        .position(|d| std::ptr::eq(d, def))
        .expect("a built-in kind");
    let mut data = vec![
        printable(target, TARGETS.len()),
        printable(kind, BUILTIN.len()),
        flags,
    ];
    data.extend_from_slice(body);
    data
}

/// A printable byte congruent to `index` modulo `modulus`.
fn printable(index: usize, modulus: usize) -> u8 {
    (b'0'..=b'~')
        .find(|b| usize::from(*b) % modulus == index)
        .unwrap_or(index as u8)
}

/// Splits a two-part body at the first separator (all of it is the request when there is none).
fn split(body: &[u8]) -> (&[u8], &[u8]) {
    match body.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        Some(at) => (&body[..at], &body[at + SEPARATOR.len()..]),
        None => (&[], body),
    }
}
