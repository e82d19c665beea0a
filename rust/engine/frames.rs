//! Dense frames of binned events (`snnsim._core.bin_events`, for tests and inspection),
//! bounded by the engine's memory limit before they are allocated.

use super::limits::check_frames;
use crate::error::{zeros, Result, SnnError};
use crate::events::{bin_sample, Binning, EventBatch};
use crate::format::MAX_ELEMS;

/// Dense frames `[B, steps, C, H, W]` (torch layout) of event counts.
pub fn bin_events(
    ev: &EventBatch<'_>,
    shape: [usize; 3],
    steps: usize,
    binning: Binning,
) -> Result<Vec<i32>> {
    let b = ev.validate()?;
    if steps == 0 {
        return Err(SnnError::arg("steps", "must be >= 1"));
    }
    let [c, h, w] = shape;
    if shape.contains(&0) {
        return Err(SnnError::arg("shape", "dimensions must be >= 1"));
    }
    let frame = c
        .checked_mul(h)
        .and_then(|v| v.checked_mul(w))
        .filter(|&v| v <= MAX_ELEMS)
        .ok_or_else(|| SnnError::arg("shape", "is too large"))?;
    let most = ev.most_per_sample();
    check_frames(b, steps, frame, most)?;
    let total = frame
        .checked_mul(steps)
        .and_then(|v| v.checked_mul(b))
        .ok_or_else(|| SnnError::limit("steps", "the frames array size overflows"))?;
    let mut out: Vec<i32> = zeros(total, "steps", "the frames")?;
    for s in 0..b {
        let binned =
            bin_sample(&ev.sample(s), shape, steps, binning).map_err(|e| e.in_sample(s))?;
        for j in 0..steps {
            let base = (s * steps + j) * frame;
            for &k in binned.step(j) {
                let k = k as usize;
                let ch = k % c;
                let pos = k / c;
                let o = base + ch * h * w + pos;
                out[o] = out[o].checked_add(1).ok_or_else(|| {
                    SnnError::events(Some(s), "more than 2^31 events at one pixel")
                })?;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_frames() {
        let b = EventBatch {
            x: &[1, 1, 0, 0],
            y: &[0, 0, 1, 0],
            p: &[1, 1, 0, 0],
            t: &[0, 1, 2, 3],
            offsets: &[0, 3, 4],
        };
        let f = bin_events(&b, [2, 2, 2], 1, Binning::Count).unwrap();
        assert_eq!(f.len(), 2 * 8);
        // sample 0: (c=1, y=0, x=1) twice, (c=0, y=1, x=0) once
        assert_eq!(f[4 + 1], 2);
        assert_eq!(f[2], 1);
        assert_eq!(f[..8].iter().sum::<i32>(), 3);
        assert_eq!(f[8], 1);
    }
}
