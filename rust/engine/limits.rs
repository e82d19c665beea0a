//! Resource bounds (docs/robustness.md): what a network, a run, a stream step or an event
//! binning will allocate is computed *before* anything is allocated, and refused with a
//! [`SnnError::Limit`] naming the argument when it exceeds the memory limit.
//!
//! * The memory limit defaults to the smaller of [`DEFAULT_CAP`] (8 GiB) and half the memory
//!   this process may use (physical memory, a cgroup memory limit, the address-space rlimit;
//!   Linux, else 8 GiB). The environment variable `SNNSIM_MEMORY_LIMIT` (bytes, or a number
//!   with a `K`, `M`, `G` or `T` suffix, powers of 1024) replaces the default;
//!   [`set_memory_limit`] (Python: `snnsim.set_memory_limit`) replaces both.
//! * `threads` is at most [`MAX_THREADS`].
//!
//! The estimates are upper bounds of the engine's own allocations (results, recordings, one
//! sample state per worker thread, binned events, the compiled network); the caller's input
//! arrays are not counted. They follow the layout of `state.rs`, `network.rs` and `compile.rs`:
//! a change there that allocates more must be mirrored here.

use std::sync::atomic::{AtomicU64, Ordering};

use super::network::{Network, Op, CHUNK_BYTES, MAX_CHUNK};
use crate::error::{Result, SnnError};
use crate::format::{ModelFile, OpKind};
use crate::numeric::Precision;

/// Largest `threads` argument of a run.
pub const MAX_THREADS: usize = 256;
/// Upper end of the default memory limit (bytes).
pub(crate) const DEFAULT_CAP: u64 = 8 << 30;
/// Environment variable that sets the memory limit.
pub(crate) const ENV_VAR: &str = "SNNSIM_MEMORY_LIMIT";

/// 0: not set yet (the default or the environment variable is read on first use).
static LIMIT: AtomicU64 = AtomicU64::new(0);

/// The memory limit in bytes.
pub fn memory_limit() -> Result<u64> {
    let v = LIMIT.load(Ordering::Relaxed);
    if v != 0 {
        return Ok(v);
    }
    let d = match std::env::var(ENV_VAR) {
        Ok(s) => parse_bytes(&s).ok_or_else(|| {
            SnnError::arg(
                ENV_VAR,
                format!(
                    "'{s}' is not a byte count (a positive integer, optionally with a K, M, G \
                     or T suffix)"
                ),
            )
        })?,
        Err(_) => default_limit(),
    };
    let _ = LIMIT.compare_exchange(0, d, Ordering::Relaxed, Ordering::Relaxed);
    Ok(LIMIT.load(Ordering::Relaxed))
}

/// Sets the memory limit (bytes, >= 1); `None` goes back to the environment variable or the
/// default.
pub fn set_memory_limit(bytes: Option<u64>) -> Result<()> {
    match bytes {
        Some(0) => Err(SnnError::arg("bytes", "the memory limit must be >= 1 byte")),
        Some(b) => {
            LIMIT.store(b, Ordering::Relaxed);
            Ok(())
        }
        None => {
            LIMIT.store(0, Ordering::Relaxed);
            memory_limit().map(|_| ())
        }
    }
}

/// `"8589934592"`, `"8G"`, `"512 M"`, `"1.5g"` -> bytes (powers of 1024).
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return None,
            };
            (s[..i].trim(), m)
        }
        _ => (s, 1),
    };
    let v = if let Ok(n) = num.parse::<u64>() {
        n.checked_mul(mult)?
    } else {
        let f: f64 = num.parse().ok()?;
        let b = f * mult as f64;
        if !(b.is_finite() && b >= 1.0 && b < u64::MAX as f64) {
            return None;
        }
        b as u64
    };
    (v >= 1).then_some(v)
}

/// min(8 GiB, half the memory this process may use).
fn default_limit() -> u64 {
    match process_memory() {
        Some(m) => (m / 2).clamp(1 << 20, DEFAULT_CAP),
        None => DEFAULT_CAP,
    }
}

/// The memory this process may use: physical memory, a cgroup limit, the address-space rlimit
/// (whichever is smallest), where the system tells.
fn process_memory() -> Option<u64> {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let mut best: Option<u64> = None;
    let mut take = |v: Option<u64>| {
        if let Some(v) = v.filter(|&v| v > 0) {
            best = Some(best.map_or(v, |b| b.min(v)));
        }
    };
    // /proc/meminfo: "MemTotal:       23912345 kB"
    take(read("/proc/meminfo").and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kb| kb.saturating_mul(1024))
    }));
    // cgroup v2 and v1 memory limits ("max" or a huge number when unlimited)
    take(read("/sys/fs/cgroup/memory.max").and_then(|s| s.trim().parse().ok()));
    take(
        read("/sys/fs/cgroup/memory/memory.limit_in_bytes")
            .and_then(|s| s.trim().parse().ok())
            .filter(|&v: &u64| v < 1 << 60),
    );
    // /proc/self/limits: "Max address space   unlimited   unlimited   bytes"
    take(read("/proc/self/limits").and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("Max address space"))
            .and_then(|l| l["Max address space".len()..].split_whitespace().next())
            .and_then(|v| v.parse().ok())
    }));
    best
}

/// `1536` -> `"1.5 KiB"`.
pub(crate) fn fmt_bytes(b: u128) -> String {
    const UNITS: [&str; 7] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if b < 1024 {
        return format!("{b} bytes");
    }
    if b >= 1 << 64 {
        return "more than 16 EiB".to_string();
    }
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// Checks `threads` (None: rayon's default pool).
pub(crate) fn check_threads(threads: Option<usize>) -> Result<()> {
    match threads {
        Some(t) if t == 0 || t > MAX_THREADS => Err(SnnError::arg(
            "threads",
            format!("must be between 1 and {MAX_THREADS} (or None for all cores), got {t}"),
        )),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Budgets

/// What an operation will allocate, item by item.
#[derive(Debug, Default)]
pub(crate) struct Need {
    items: Vec<(String, u128)>,
}

fn mul(xs: &[u128]) -> u128 {
    xs.iter().fold(1u128, |a, &x| a.saturating_mul(x))
}

impl Need {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds `bytes` under the name `what`.
    pub(crate) fn add(&mut self, what: impl Into<String>, bytes: u128) {
        if bytes > 0 {
            self.items.push((what.into(), bytes));
        }
    }

    pub(crate) fn total(&self) -> u128 {
        self.items
            .iter()
            .fold(0u128, |a, (_, b)| a.saturating_add(*b))
    }

    /// Refuses when the total exceeds the memory limit; the message names `arg`, `action` and
    /// the largest items.
    pub(crate) fn check(&self, arg: &str, action: &str) -> Result<()> {
        let limit = memory_limit()?;
        let total = self.total();
        if total <= limit as u128 {
            return Ok(());
        }
        let mut items: Vec<&(String, u128)> = self.items.iter().collect();
        items.sort_by_key(|it| std::cmp::Reverse(it.1));
        let parts: Vec<String> = items
            .iter()
            .take(3)
            .map(|(w, b)| format!("{w}: {}", fmt_bytes(*b)))
            .collect();
        let what = if arg == "model" {
            "a smaller network".to_string()
        } else {
            format!("a smaller '{arg}'")
        };
        Err(SnnError::limit(
            arg,
            format!(
                "{action} would allocate {} ({}), more than the memory limit of {}; use {what}, \
                 or raise the limit with snnsim.set_memory_limit(bytes) or the environment \
                 variable {ENV_VAR}",
                fmt_bytes(total),
                parts.join(", "),
                fmt_bytes(limit as u128)
            ),
        ))
    }
}

fn value_bytes(p: Precision) -> u128 {
    match p {
        Precision::Float32 | Precision::Int => 4,
    }
}

/// Chunk length of a network whose slots hold `slot_total` elements (as `compile` sets it).
fn chunk_of(slot_total: u128) -> u128 {
    let per_step = slot_total.max(1).saturating_mul(4);
    (CHUNK_BYTES as u128 / per_step).clamp(1, MAX_CHUNK as u128)
}

/// Bytes of one sample state (`state.rs`): per slot `chunk` value buffers with their nonzero
/// lists, the membranes, the output counts and the scratch buffers.
fn state_bytes(
    slot_len: &[u128],
    state_len: u128,
    out_len: u128,
    max_len: u128,
    chunk: u128,
    vb: u128,
) -> u128 {
    let slots: u128 = slot_len.iter().fold(0u128, |a, &n| a.saturating_add(n));
    let bufs = mul(&[slots, chunk, vb + 4]);
    let mem = state_len.saturating_mul(vb);
    let out = out_len.saturating_mul(8);
    // acc_w + xs_w (wide values), mark, touched, the gather conv's starts, the active lists of
    // a neuron layer split across threads; rows/xs per step of a chunk
    let scratch =
        mul(&[max_len, 8 + 8 + 1 + 4 + 4 + 4]).saturating_add(mul(&[chunk, max_len, 4 + vb]));
    bufs.saturating_add(mem)
        .saturating_add(out)
        .saturating_add(scratch)
}

/// Bytes of one sample state of a compiled network.
pub(crate) fn sample_state_bytes<V>(net: &Network<V>) -> u128 {
    let slots: Vec<u128> = net.slot_len.iter().map(|&n| n as u128).collect();
    let state_len: u128 = net
        .nodes
        .iter()
        .filter(|n| n.kind.has_state())
        .map(|n| n.len as u128)
        .sum();
    // the dense int8 conv's packed input and occupancy, when a conv has a packed kernel (at
    // most twice the input plus 64 KiB each, `kernels::vnni::padded_bytes_bound`)
    let packed = net
        .nodes
        .iter()
        .any(|n| matches!(&n.op, Op::Conv(c) if c.packed.is_some()));
    let dense_conv = if packed {
        mul(&[net.max_len as u128, 4]).saturating_add(2 << 16)
    } else {
        0
    };
    state_bytes(
        &slots,
        state_len,
        net.nodes[net.output].len as u128,
        net.max_len as u128,
        net.chunk.max(1) as u128,
        value_bytes(net.precision),
    )
    .saturating_add(dense_conv)
}

fn numel(s: &[usize]) -> u128 {
    mul(&s.iter().map(|&d| d as u128).collect::<Vec<_>>())
}

/// The compiled network and one sample state of a validated graph, before `compile` allocates
/// them (the "compiled geometry": a conv whose padding makes a 2x2 input 40000x40000 is a
/// valid file that no machine can run).
pub(crate) fn check_graph(mf: &ModelFile) -> Result<()> {
    let g = &mf.graph;
    let vb = value_bytes(g.precision);
    let mut need = Need::new();
    let mut slots: Vec<u128> = vec![numel(&g.input.shape)];
    let mut weights = 0u128;
    let mut tables = 0u128;
    let mut state_len = 0u128;
    let mut biggest: (u128, &str) = (0, "");
    for (n, params) in g.nodes.iter().zip(&mf.params) {
        let len = numel(&n.shape);
        let a = &n.attrs;
        let wb: u128 = match (g.precision, a.weight_bits) {
            (Precision::Float32, _) => 4,
            (_, 16) => 2,
            _ => 1,
        };
        let in_shape = g.src_shape(n.inputs[0]);
        let in_len = numel(in_shape);
        match n.op {
            OpKind::Linear => {
                weights = weights.saturating_add(mul(&[
                    a.in_features as u128,
                    a.out_features as u128,
                    wb,
                ]));
                tables = tables.saturating_add(len.saturating_mul(vb));
            }
            OpKind::Conv2d | OpKind::Conv1d => {
                weights = weights.saturating_add(mul(&[
                    a.out_channels as u128,
                    a.in_channels as u128,
                    a.kernel[0] as u128,
                    a.kernel[1] as u128,
                    wb,
                ]));
                // fan-out per input position, bias
                let hw = in_len / (in_shape[0].max(1) as u128);
                tables = tables
                    .saturating_add(hw.saturating_mul(4))
                    .saturating_add((a.out_channels as u128).saturating_mul(vb));
            }
            OpKind::AvgPool2d | OpKind::SumPool2d | OpKind::AvgPool1d | OpKind::SumPool1d => {
                let hw = in_len / (in_shape[0].max(1) as u128);
                tables = tables.saturating_add(hw.saturating_mul(4));
            }
            // permutation of a [C, H, W] input
            OpKind::Flatten => tables = tables.saturating_add(in_len.saturating_mul(4)),
            // index maps per input and the inverse permutation
            OpKind::Add => {
                tables = tables.saturating_add(mul(&[len, n.inputs.len() as u128 + 1, 4]))
            }
            // per-channel parameters expanded to one period of the value's layout
            _ => {
                let period = if n.shape.len() >= 2 {
                    n.shape[0] as u128
                } else {
                    len
                };
                let fields = params.fields.len().max(1) as u128;
                tables = tables.saturating_add(mul(&[period, fields, vb]))
            }
        }
        if n.op.has_state() {
            state_len = state_len.saturating_add(len);
        }
        if n.op != OpKind::Flatten {
            slots.push(len);
        }
        if len > biggest.0 {
            biggest = (len, n.name.as_str());
        }
    }
    let slot_total = slots.iter().fold(0u128, |a, &n| a.saturating_add(n));
    let max_len = slots.iter().copied().max().unwrap_or(1).max(1);
    let out_len = numel(&g.nodes[g.output].shape);
    need.add("weights", weights);
    need.add("per-element tables", tables);
    need.add(
        format!(
            "one sample state ({} values per step; largest node '{}' with {} elements)",
            slot_total, biggest.1, biggest.0
        ),
        state_bytes(
            &slots,
            state_len,
            out_len,
            max_len,
            chunk_of(slot_total),
            vb,
        ),
    );
    need.check("model", "compiling this network")
}

/// Number of sample states a batch run allocates at once.
pub(crate) fn workers(batch: usize, threads: Option<usize>) -> usize {
    match threads {
        _ if batch <= 1 => 1,
        Some(t) => t.min(batch),
        None => rayon::current_num_threads().min(batch),
    }
    .max(1)
}

/// Adds the result arrays of `batch` samples x `steps` steps: counts, outputs, recordings.
pub(crate) fn add_results<V>(
    need: &mut Need,
    net: &Network<V>,
    batch: usize,
    steps: usize,
    rec: &[usize],
) {
    let (b, t) = (batch as u128, steps as u128);
    let l = net.nodes.len() as u128;
    let n_out = net.nodes[net.output].len as u128;
    need.add(
        format!("counts (5 x [B={batch}, L={l}, T={steps}] uint64)"),
        mul(&[5, b, l, t, 8]),
    );
    need.add("outputs", mul(&[3, b, n_out, 8]));
    for &r in rec {
        let node = &net.nodes[r];
        need.add(
            format!(
                "recording of '{}' ([B={batch}, T={steps}, {} elements] uint8)",
                node.name, node.len
            ),
            mul(&[b, t, node.len as u128]),
        );
    }
}

/// Adds the binned events of one sample (per worker): step offsets and event indices.
pub(crate) fn add_binned(need: &mut Need, workers: usize, steps: usize, events: usize) {
    let per = mul(&[steps as u128 + 1, 2, 8]).saturating_add(mul(&[events as u128, 4 + 8 + 4]));
    need.add(
        format!("binned events ({workers} x {steps} steps)"),
        per.saturating_mul(workers as u128),
    );
}

/// Adds `n` sample states.
pub(crate) fn add_states<V>(need: &mut Need, net: &Network<V>, n: usize) {
    need.add(
        format!("{n} sample state(s)"),
        sample_state_bytes(net).saturating_mul(n as u128),
    );
}

/// Dense frames `[B, steps, C, H, W]` of `_core.bin_events`.
pub(crate) fn check_frames(
    batch: usize,
    steps: usize,
    frame: usize,
    max_events: usize,
) -> Result<()> {
    let mut need = Need::new();
    need.add(
        format!("frames ([B={batch}, T={steps}, {frame} elements] int32)"),
        mul(&[batch as u128, steps as u128, frame as u128, 4]),
    );
    add_binned(&mut need, 1, steps, max_events);
    need.check("steps", "binning these events")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_parse() {
        assert_eq!(parse_bytes("1024"), Some(1024));
        assert_eq!(parse_bytes("8G"), Some(8 << 30));
        assert_eq!(parse_bytes(" 512 m "), Some(512 << 20));
        assert_eq!(parse_bytes("1.5K"), Some(1536));
        for bad in ["", "0", "-5", "abc", "12X", "1e400", "nanG", "99999999999T"] {
            assert_eq!(parse_bytes(bad), None, "{bad}");
        }
    }

    #[test]
    fn sizes_format() {
        assert_eq!(fmt_bytes(12), "12 bytes");
        assert_eq!(fmt_bytes(1536), "1.5 KiB");
        assert_eq!(fmt_bytes(8 << 30), "8.0 GiB");
    }

    #[test]
    fn default_is_bounded() {
        let d = default_limit();
        assert!((1 << 20..=DEFAULT_CAP).contains(&d), "{d}");
    }

    #[test]
    fn threads_bound() {
        assert!(check_threads(None).is_ok());
        assert!(check_threads(Some(1)).is_ok());
        assert!(check_threads(Some(MAX_THREADS)).is_ok());
        for t in [0, MAX_THREADS + 1, usize::MAX] {
            let e = check_threads(Some(t)).unwrap_err().to_string();
            assert!(e.contains("'threads'") && e.contains("256"), "{e}");
        }
    }

    #[test]
    fn need_names_the_largest_items() {
        let mut n = Need::new();
        n.add("tiny", 10);
        n.add("huge", u128::MAX);
        n.add("huge2", u128::MAX);
        n.add("huge3", 1 << 70);
        assert_eq!(n.total(), u128::MAX);
        let e = n.check("steps", "this run").unwrap_err().to_string();
        assert!(e.contains("'steps'") && e.contains("huge") && e.contains("memory limit"));
        assert!(!e.contains("tiny") && e.contains("more than 16 EiB"), "{e}");
    }

    // -----------------------------------------------------------------------------------------
    // Regression tests: each request below aborted the process before the bounds existed.
    use crate::engine::bin_events;
    use crate::engine::{Data, Model};
    use crate::events::{Binning, EventBatch, Events};
    use crate::testutil::NetBuilder;

    fn limit_err(e: SnnError, arg: &str) -> String {
        let s = e.to_string();
        assert!(
            matches!(e, SnnError::Limit { .. }),
            "not a limit error: {s}"
        );
        assert!(
            s.contains(&format!("'{arg}'")) && s.contains("memory limit"),
            "{s}"
        );
        s
    }

    fn mlp() -> Model {
        let mut nb = NetBuilder::new(false, &[8], "static");
        nb.linear("fc1", "input", 16, vec![1; 128], None);
        nb.dsr_if("sn1", "fc1", vec![4], vec![2]);
        nb.linear("fc2", "sn1", 4, vec![1; 64], None);
        nb.integrate("out", "fc2");
        nb.model()
    }

    #[test]
    fn padded_conv_geometry_is_refused_before_compiling() {
        // a valid 2x2 input whose padding makes the conv output 1 x 40001 x 40001
        let mut nb = NetBuilder::new(false, &[1, 2, 2], "static");
        nb.conv(
            "c",
            "input",
            1,
            [2, 2],
            [1, 1],
            [20000, 20000],
            vec![1; 4],
            None,
        );
        nb.integrate("out", "c");
        let bytes = nb.bytes();
        assert!(
            crate::format::read_bytes(&bytes).is_ok(),
            "the file itself is valid"
        );
        let e = Model::from_bytes(&bytes).unwrap_err();
        let s = limit_err(e, "model");
        assert!(s.contains("largest node 'c'"), "{s}");
    }

    #[test]
    fn huge_step_counts_are_refused_before_allocating() {
        let m = mlp();
        let x = [1.0f32; 8];
        for steps in [100_000_000usize, 800_000_000, 1 << 62, usize::MAX] {
            let e = m.run_static(Data::F32(&x), steps, &[], None).unwrap_err();
            let s = limit_err(e, "steps");
            assert!(s.contains("counts (5 x [B=1, L=4"), "{s}");
        }
        // an ordinary run still works
        assert_eq!(m.run_static(Data::F32(&x), 5, &[], None).unwrap().steps, 5);
    }

    #[test]
    fn huge_frame_binning_is_refused_before_allocating() {
        let z = [0i64];
        let ev = EventBatch {
            x: &z,
            y: &z,
            p: &z,
            t: &z,
            offsets: &[0, 1],
        };
        let e = bin_events(&ev, [2, 1024, 1024], 4000, Binning::Time).unwrap_err();
        let s = limit_err(e, "steps");
        assert!(s.contains("frames ([B=1, T=4000"), "{s}");
    }

    #[test]
    fn huge_stream_windows_are_refused_and_the_stream_goes_on() {
        let mut nb = NetBuilder::new(true, &[2, 4, 4], "events");
        nb.pool("p", "input", false, [2, 2], [2, 2], 0, 0);
        nb.flatten("f", "p");
        nb.linear("fc", "f", 3, vec![1; 24], None);
        nb.dsr_if("out", "fc", vec![2], vec![1]);
        let m = nb.model();
        let mut st = m.new_stream();
        let (x, y, p) = ([1i64], [2i64], [1i64]);
        let ev = |t: &'static [i64]| Events {
            x: &x,
            y: &y,
            p: &p,
            t,
        };
        st.feed_events(&ev(&[0]), 0, 1, 1, &[]).unwrap();
        for steps in [800_000_000usize, usize::MAX / 2] {
            let e = st
                .feed_events(&ev(&[800_000_000]), 0, 1, steps, &[])
                .unwrap_err();
            limit_err(e, "dt_us");
            assert_eq!(
                st.steps_done(),
                1,
                "a refused step must not advance the stream"
            );
        }
        let r = st.feed_events(&ev(&[3]), 0, 1, 3, &[]).unwrap();
        assert_eq!((r.steps, st.steps_done()), (3, 4));
    }

    #[test]
    fn threads_are_bounded_and_pools_reused() {
        let m = mlp();
        let x = vec![1.0f32; 8 * 16];
        let want = m.run_static(Data::F32(&x), 3, &[], Some(1)).unwrap();
        for t in 1..=12 {
            let r = m.run_static(Data::F32(&x), 3, &[], Some(t)).unwrap();
            assert_eq!(r, want, "threads = {t}");
            assert!(crate::engine::batch::pool_sizes().len() <= crate::engine::batch::POOLS_KEPT);
        }
        for t in [0, MAX_THREADS + 1, 100_000] {
            let e = m.run_static(Data::F32(&x), 3, &[], Some(t)).unwrap_err();
            assert!(e.to_string().contains("'threads'"), "{e}");
        }
    }

    #[test]
    fn float_overflow_is_an_error_naming_the_node() {
        let mut nb = NetBuilder::new(false, &[2], "static");
        nb.linear("fc", "input", 2, vec![i64::MAX / 2; 4], None);
        nb.dsr_if("sn", "fc", vec![1], vec![1]);
        nb.linear("fc2", "sn", 2, vec![1; 4], None);
        nb.integrate("out", "fc2");
        let m = nb.model();
        let big = [3.0e38f32, 3.0e38];
        let e = m.run_static(Data::F32(&big), 4, &[], None).unwrap_err();
        let s = e.to_string();
        assert!(matches!(e, SnnError::NonFinite { .. }), "{s}");
        assert!(s.contains("'sn'") && s.contains("membrane"), "{s}");
        // a stream keeps its last good state after the error
        let mut st = m.new_stream();
        let ok = [0.0f32; 2];
        st.feed_frames(Data::F32(&ok), &[]).unwrap();
        assert!(st.feed_frames(Data::F32(&big), &[]).is_err());
        assert_eq!(st.steps_done(), 1);
        st.feed_frames(Data::F32(&ok), &[]).unwrap();
        assert_eq!(st.steps_done(), 2);
    }
}
