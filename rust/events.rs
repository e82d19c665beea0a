//! Event binning (docs/model-format.md §6): events `(x, y, p, t)` of one sample are assigned
//! to steps by equal time windows ("time"), equal event counts ("count") or fixed windows
//! (streaming), after validation of coordinates, polarity and timestamps. Dense frames of
//! binned events (bounded by the engine's memory limit) are `engine::frames`.

use crate::error::{Result, SnnError};

/// How events are assigned to the N steps of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binning {
    /// `j = ((t - t0) * N) // D`, `t0 = t[0]`, `D = t[-1] - t0 + 1`.
    Time,
    /// `k = E // N`; step `j` takes events `[k*j, k*(j+1))`, the last step also the remainder.
    Count,
    /// Fixed windows of `dt_us` microseconds from the sample's first event:
    /// `j = (t - t[0]) // dt_us`; events at `j >= N` are dropped.
    Window { dt_us: i64 },
}

impl Binning {
    pub fn parse(s: &str) -> Result<Binning> {
        match s {
            "time" => Ok(Binning::Time),
            "count" => Ok(Binning::Count),
            _ => Err(SnnError::arg(
                "binning",
                format!("must be \"time\" or \"count\", got \"{s}\""),
            )),
        }
    }

    /// Fixed windows of `dt_us` (>= 1) microseconds.
    pub fn window(dt_us: i64) -> Result<Binning> {
        if dt_us < 1 {
            return Err(SnnError::arg(
                "dt_us",
                format!("must be >= 1 microsecond, got {dt_us}"),
            ));
        }
        Ok(Binning::Window { dt_us })
    }
}

/// Events of a batch as parallel arrays; sample `b` owns `[offsets[b], offsets[b+1])`.
/// `p` is already mapped to `{0, 1}`.
#[derive(Debug, Clone, Copy)]
pub struct EventBatch<'a> {
    pub x: &'a [i64],
    pub y: &'a [i64],
    pub p: &'a [i64],
    pub t: &'a [i64],
    pub offsets: &'a [i64],
}

/// Events of one sample.
#[derive(Debug, Clone, Copy)]
pub struct Events<'a> {
    pub x: &'a [i64],
    pub y: &'a [i64],
    pub p: &'a [i64],
    pub t: &'a [i64],
}

impl<'a> EventBatch<'a> {
    /// The largest number of events of one sample (0 for an empty batch; offsets validated).
    pub fn most_per_sample(&self) -> usize {
        self.offsets
            .windows(2)
            .map(|w| (w[1] - w[0]).max(0) as usize)
            .max()
            .unwrap_or(0)
    }

    /// Checks array lengths and offsets; returns the batch size.
    pub fn validate(&self) -> Result<usize> {
        let e = self.x.len();
        for (name, len) in [
            ("y", self.y.len()),
            ("p", self.p.len()),
            ("t", self.t.len()),
        ] {
            if len != e {
                return Err(SnnError::arg(
                    name,
                    format!("has {len} events, x has {e} (all event arrays must have one length)"),
                ));
            }
        }
        if self.offsets.is_empty() {
            return Err(SnnError::arg(
                "offsets",
                "must have B + 1 entries (at least one)",
            ));
        }
        let mut prev = 0i64;
        for (b, &o) in self.offsets.iter().enumerate() {
            if o < prev || o as u64 > e as u64 || (b == 0 && o < 0) {
                return Err(SnnError::arg(
                    "offsets",
                    format!(
                        "offsets[{b}] = {o} is invalid (offsets must be non-decreasing within [0, {e}])"
                    ),
                ));
            }
            prev = o;
        }
        Ok(self.offsets.len() - 1)
    }

    /// Events of sample `b` (call [`validate`](Self::validate) first).
    pub fn sample(&self, b: usize) -> Events<'a> {
        let s = self.offsets[b] as usize;
        let e = self.offsets[b + 1] as usize;
        Events {
            x: &self.x[s..e],
            y: &self.y[s..e],
            p: &self.p[s..e],
            t: &self.t[s..e],
        }
    }
}

/// Events of one sample assigned to steps: the events of step `j` are
/// `idx[start[j]..start[j+1]]`, as channels-last indices `(y*W + x)*C + c`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Binned {
    pub start: Vec<usize>,
    pub idx: Vec<u32>,
}

impl Binned {
    pub(crate) fn step(&self, j: usize) -> &[u32] {
        match (self.start.get(j), self.start.get(j + 1)) {
            (Some(&a), Some(&b)) => &self.idx[a..b],
            _ => &[],
        }
    }
}

/// Validates coordinates, polarity and timestamps; returns each event's channels-last index.
fn validate_events(ev: &Events<'_>, shape: [usize; 3]) -> Result<Vec<u32>> {
    let [c, h, w] = shape;
    if c != 1 && c != 2 {
        return Err(SnnError::events(
            None,
            format!("the input shape must be [C, H, W] with C in {{1, 2}}, got C = {c}"),
        ));
    }
    let mut out = Vec::with_capacity(ev.x.len());
    let mut prev_t = 0i64;
    for i in 0..ev.x.len() {
        let (x, y, p, t) = (ev.x[i], ev.y[i], ev.p[i], ev.t[i]);
        if x < 0 || x as u64 >= w as u64 {
            return Err(SnnError::events(
                None,
                format!("event {i}: x = {x} is outside [0, {w})"),
            ));
        }
        if y < 0 || y as u64 >= h as u64 {
            return Err(SnnError::events(
                None,
                format!("event {i}: y = {y} is outside [0, {h})"),
            ));
        }
        if t < 0 {
            return Err(SnnError::events(
                None,
                format!("event {i}: t = {t} is negative"),
            ));
        }
        if i > 0 && t < prev_t {
            return Err(SnnError::events(
                None,
                format!("event {i}: t = {t} is before the previous event's t = {prev_t} (timestamps must be non-decreasing)"),
            ));
        }
        prev_t = t;
        let ch = if c == 2 {
            if p != 0 && p != 1 {
                return Err(SnnError::events(
                    None,
                    format!("event {i}: polarity p = {p} is not 0 or 1"),
                ));
            }
            p as usize
        } else {
            0
        };
        out.push(((y as usize * w + x as usize) * c + ch) as u32);
    }
    Ok(out)
}

/// Groups events by step (`step_of[i]` < `steps`, or `usize::MAX` for a dropped event)
/// keeping their order within a step.
fn group(idx: Vec<u32>, step_of: &[usize], steps: usize) -> Result<Binned> {
    let n = steps
        .checked_add(1)
        .ok_or_else(|| SnnError::limit("steps", "too large"))?;
    let mut start: Vec<usize> = crate::error::zeros(n, "steps", "the binned events")?;
    let mut kept = 0usize;
    for &j in step_of {
        if j < steps {
            start[j + 1] += 1;
            kept += 1;
        }
    }
    for j in 0..steps {
        start[j + 1] += start[j];
    }
    let mut fill = start.clone();
    let mut out = vec![0u32; kept];
    for (&i, &j) in idx.iter().zip(step_of) {
        if j < steps {
            out[fill[j]] = i;
            fill[j] += 1;
        }
    }
    Ok(Binned { start, idx: out })
}

/// Step of every event under `binning` (events validated, timestamps non-decreasing);
/// `usize::MAX` for an event after the last window.
fn steps_of(t: &[i64], steps: usize, binning: Binning) -> Vec<usize> {
    let e = t.len();
    match binning {
        Binning::Time => {
            if e == 0 {
                return Vec::new();
            }
            let t0 = t[0] as i128;
            let d = t[e - 1] as i128 - t0 + 1;
            t.iter()
                .map(|&ti| (((ti as i128 - t0) * steps as i128) / d) as usize)
                .map(|j| j.min(steps - 1))
                .collect()
        }
        Binning::Count => {
            let k = e / steps;
            (0..e)
                .map(|i| i.checked_div(k).map_or(steps - 1, |j| j.min(steps - 1)))
                .collect()
        }
        Binning::Window { dt_us } => {
            let Some(&t0) = t.first() else {
                return Vec::new();
            };
            let dt = dt_us.max(1) as i128;
            t.iter()
                .map(|&ti| {
                    let j = (ti as i128 - t0 as i128) / dt;
                    if j < steps as i128 {
                        j as usize
                    } else {
                        usize::MAX
                    }
                })
                .collect()
        }
    }
}

/// Bins the events of one sample into `steps` steps.
pub(crate) fn bin_sample(
    ev: &Events<'_>,
    shape: [usize; 3],
    steps: usize,
    binning: Binning,
) -> Result<Binned> {
    if steps == 0 {
        return Err(SnnError::arg("steps", "must be >= 1"));
    }
    let idx = validate_events(ev, shape)?;
    let step_of = steps_of(ev.t, steps, binning);
    group(idx, &step_of, steps)
}

/// Bins events into fixed windows: window `j` (0 <= j < steps) covers
/// `[start + j*dt, start + (j+1)*dt)` with `start = origin + first_step*dt`. Every event must
/// fall inside the windows.
pub(crate) fn bin_windows(
    ev: &Events<'_>,
    shape: [usize; 3],
    origin_us: i64,
    dt_us: i64,
    first_step: usize,
    steps: usize,
) -> Result<Binned> {
    if dt_us <= 0 {
        return Err(SnnError::arg("dt_us", format!("must be >= 1, got {dt_us}")));
    }
    let idx = validate_events(ev, shape)?;
    let start = origin_us as i128 + first_step as i128 * dt_us as i128;
    let end = start + steps as i128 * dt_us as i128;
    let mut step_of = Vec::with_capacity(idx.len());
    for (i, &t) in ev.t.iter().enumerate() {
        let t = t as i128;
        if t < start || t >= end {
            return Err(SnnError::events(
                None,
                format!(
                    "event {i}: t = {t} is outside the {steps} window(s) [{start}, {end}) being fed"
                ),
            ));
        }
        step_of.push(((t - start) / dt_us as i128) as usize);
    }
    group(idx, &step_of, steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev<'a>(x: &'a [i64], y: &'a [i64], p: &'a [i64], t: &'a [i64]) -> Events<'a> {
        Events { x, y, p, t }
    }

    #[test]
    fn time_binning() {
        let x = [0, 1, 2, 3];
        let y = [0, 0, 0, 0];
        let p = [0, 1, 0, 1];
        let t = [10, 14, 15, 19]; // D = 10
        let b = bin_sample(&ev(&x, &y, &p, &t), [2, 1, 4], 2, Binning::Time).unwrap();
        // j = ((t-10)*2)//10 : 0, 0, 1, 1
        assert_eq!(b.start, vec![0, 2, 4]);
        assert_eq!(b.idx, vec![0, 3, 4, 7]);
        // single event, D = 1
        let b = bin_sample(
            &ev(&x[..1], &y[..1], &p[..1], &t[..1]),
            [2, 1, 4],
            3,
            Binning::Time,
        )
        .unwrap();
        assert_eq!(b.start, vec![0, 1, 1, 1]);
        // no events
        let b = bin_sample(&ev(&[], &[], &[], &[]), [2, 1, 4], 3, Binning::Time).unwrap();
        assert_eq!(b.start, vec![0, 0, 0, 0]);
        // all at the same time
        let t2 = [5, 5, 5, 5];
        let b = bin_sample(&ev(&x, &y, &p, &t2), [2, 1, 4], 4, Binning::Time).unwrap();
        assert_eq!(b.start, vec![0, 4, 4, 4, 4]);
    }

    #[test]
    fn count_binning_with_remainder_and_fewer_events_than_steps() {
        let x = [0, 0, 0, 0, 0, 0, 0];
        let y = [0; 7];
        let p = [0; 7];
        let t = [0, 1, 2, 3, 4, 5, 6];
        // E = 7, N = 3: k = 2 -> [0,2) [2,4) [4,7)
        let b = bin_sample(&ev(&x, &y, &p, &t), [1, 1, 1], 3, Binning::Count).unwrap();
        assert_eq!(b.start, vec![0, 2, 4, 7]);
        // E = 2 < N = 5: every event in the last step
        let b = bin_sample(
            &ev(&x[..2], &y[..2], &p[..2], &t[..2]),
            [1, 1, 1],
            5,
            Binning::Count,
        )
        .unwrap();
        assert_eq!(b.start, vec![0, 0, 0, 0, 0, 2]);
    }

    #[test]
    fn validation_errors() {
        let shape = [2, 3, 4];
        let e = bin_sample(&ev(&[4], &[0], &[0], &[0]), shape, 1, Binning::Time).unwrap_err();
        assert!(e.to_string().contains("x = 4"), "{e}");
        let e = bin_sample(&ev(&[0], &[-1], &[0], &[0]), shape, 1, Binning::Time).unwrap_err();
        assert!(e.to_string().contains("y = -1"), "{e}");
        let e = bin_sample(&ev(&[0], &[0], &[2], &[0]), shape, 1, Binning::Time).unwrap_err();
        assert!(e.to_string().contains("polarity"), "{e}");
        let e = bin_sample(&ev(&[0], &[0], &[0], &[-3]), shape, 1, Binning::Time).unwrap_err();
        assert!(e.to_string().contains("negative"), "{e}");
        let e = bin_sample(
            &ev(&[0, 0], &[0, 0], &[0, 0], &[5, 4]),
            shape,
            1,
            Binning::Time,
        )
        .unwrap_err();
        assert!(e.to_string().contains("non-decreasing"), "{e}");
        // C == 1: polarity ignored
        assert!(bin_sample(&ev(&[0], &[0], &[7], &[0]), [1, 3, 4], 1, Binning::Time).is_ok());
        // offsets
        let b = EventBatch {
            x: &[0],
            y: &[0],
            p: &[0],
            t: &[0],
            offsets: &[0, 2],
        };
        assert!(b.validate().is_err());
        let b = EventBatch {
            x: &[0],
            y: &[0, 1],
            p: &[0],
            t: &[0],
            offsets: &[0, 1],
        };
        assert!(b.validate().is_err());
    }

    #[test]
    fn windows() {
        let x = [0, 1, 1];
        let y = [0, 0, 0];
        let p = [0, 0, 1];
        let t = [100, 109, 125];
        let b = bin_windows(&ev(&x, &y, &p, &t), [2, 1, 2], 100, 10, 0, 3).unwrap();
        assert_eq!(b.start, vec![0, 2, 2, 3]);
        // continuing after 2 steps done: windows start at 120
        let b = bin_windows(
            &ev(&x[2..], &y[2..], &p[2..], &t[2..]),
            [2, 1, 2],
            100,
            10,
            2,
            1,
        )
        .unwrap();
        assert_eq!(b.start, vec![0, 1]);
        assert!(bin_windows(&ev(&x, &y, &p, &t), [2, 1, 2], 100, 10, 0, 2).is_err());
        assert!(bin_windows(&ev(&x, &y, &p, &t), [2, 1, 2], 101, 10, 0, 5).is_err());
    }

    #[test]
    fn fixed_windows_from_the_first_event() {
        let x = [0, 1, 1, 0];
        let y = [0, 0, 0, 0];
        let p = [0, 0, 1, 1];
        let t = [100, 109, 125, 400];
        // origin 100, dt 10: windows 0, 0, 2, 30 -> the last is beyond 3 steps and dropped
        let w = Binning::window(10).unwrap();
        let b = bin_sample(&ev(&x, &y, &p, &t), [2, 1, 2], 3, w).unwrap();
        assert_eq!(b.start, vec![0, 2, 2, 3]);
        assert_eq!(b.idx, vec![0, 2, 3]);
        assert!(Binning::window(0).is_err());
        let b = bin_sample(&ev(&[], &[], &[], &[]), [2, 1, 2], 2, w).unwrap();
        assert_eq!(b.start, vec![0, 0, 0]);
    }
}
