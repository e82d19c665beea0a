//! Event binning: arbitrary coordinates, polarities, timestamps, offsets, shapes, step counts
//! and binnings. A batch is either refused with an error or binned so that every event that
//! lands in a window is counted exactly once.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use snnsim::{bin_events, Binning, EventBatch};

#[derive(Debug, Arbitrary)]
struct Case {
    shape: (u8, u8, u8),
    steps: u16,
    binning: u8,
    dt_us: i64,
    x: Vec<i64>,
    y: Vec<i64>,
    p: Vec<i64>,
    t: Vec<i64>,
    offsets: Vec<i64>,
    sorted: bool,
}

fuzz_target!(|c: Case| {
    snnsim::set_memory_limit(Some(256 << 20)).unwrap();
    let shape = [
        c.shape.0 as usize % 4,
        c.shape.1 as usize,
        c.shape.2 as usize,
    ];
    let mut t = c.t.clone();
    if c.sorted {
        // mostly valid timestamps, so that binning itself is reached
        t.iter_mut().for_each(|v| *v = v.rem_euclid(1 << 40));
        t.sort_unstable();
    }
    let binning = match c.binning % 3 {
        0 => Binning::Time,
        1 => Binning::Count,
        _ => match Binning::window(c.dt_us) {
            Ok(b) => b,
            Err(_) => return,
        },
    };
    let ev = EventBatch {
        x: &c.x,
        y: &c.y,
        p: &c.p,
        t: &t,
        offsets: &c.offsets,
    };
    let steps = c.steps as usize;
    let Ok(frames) = bin_events(&ev, shape, steps, binning) else {
        return;
    };
    // accepted: one count per event that lands in a window
    let b = c.offsets.len() - 1;
    let frame = shape.iter().product::<usize>();
    assert_eq!(frames.len(), b * steps * frame);
    for s in 0..b {
        let (lo, hi) = (c.offsets[s] as usize, c.offsets[s + 1] as usize);
        let total: i64 = frames[s * steps * frame..(s + 1) * steps * frame]
            .iter()
            .map(|&v| v as i64)
            .sum();
        let want = match binning {
            Binning::Window { dt_us } => t[lo..hi]
                .iter()
                .filter(|&&ti| ((ti as i128 - t[lo] as i128) / dt_us as i128) < steps as i128)
                .count(),
            _ => hi - lo,
        };
        assert_eq!(total, want as i64, "sample {s}");
    }
});
