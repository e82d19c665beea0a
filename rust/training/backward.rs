//! Fused backward of a DSR neuron layer in the rate form.
//!
//! Given the upstream gradient `G = dL/dr` and the mean input current `I` of the forward (same
//! length, same memory order), one pass writes the input gradient of the clamp mapping and sums
//! the threshold gradient of Eq. 19 (docs/semantics.md §1.1):
//!
//! * IF:  `dL/dI = G * 1[0 <= I <= upper]`
//! * LIF: `dL/dI = (G / tau) * 1[0 < I < upper]` (strict bounds, as the public code)
//! * both: `sum of G over the elements with I > upper` (accumulated in f64).
//!
//! Written as torch element-wise ops this is about seven passes and three temporary masks.

use rayon::prelude::*;

use crate::error::{Result, SnnError};

/// Elements one task handles.
const CHUNK: usize = 16 * 1024;

/// The mapping's bounds: `upper` (in units of `I`), `strict` (LIF: open interval), and the
/// divisor `tau` of the input gradient (1 for IF).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateMask {
    pub upper: f32,
    pub strict: bool,
    pub tau: f32,
}

/// Writes `grad_in` and returns the threshold-gradient sum (see the module docs).
pub fn dsr_rate_backward(
    grad: &[f32],
    mean_current: &[f32],
    grad_in: &mut [f32],
    mask: RateMask,
) -> Result<f64> {
    let n = grad.len();
    if mean_current.len() != n || grad_in.len() != n {
        return Err(SnnError::Arg {
            arg: "mean_current".to_string(),
            msg: format!(
                "grad has {n} values, mean_current {} and grad_in {}: all must be equal",
                mean_current.len(),
                grad_in.len()
            ),
        });
    }
    if mask.tau.is_nan() || mask.tau <= 0.0 {
        return Err(SnnError::Arg {
            arg: "tau".to_string(),
            msg: format!("must be > 0, got {}", mask.tau),
        });
    }
    let RateMask { upper, strict, tau } = mask;
    let sum = grad_in
        .par_chunks_mut(CHUNK)
        .zip(grad.par_chunks(CHUNK))
        .zip(mean_current.par_chunks(CHUNK))
        .map(|((gi, g), i)| {
            let mut over = 0.0f64;
            for ((o, &g), &i) in gi.iter_mut().zip(g).zip(i) {
                let inside = if strict {
                    i > 0.0 && i < upper
                } else {
                    i >= 0.0 && i <= upper
                };
                *o = if inside {
                    if tau == 1.0 {
                        g
                    } else {
                        g / tau
                    }
                } else {
                    0.0
                };
                if i > upper {
                    over += g as f64;
                }
            }
            over
        })
        .sum();
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_mask_is_closed_and_theta_sums_above() {
        let i = [-0.5, 0.0, 0.5, 1.0, 1.5, 2.0];
        let g = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut gi = [9.0; 6];
        let m = RateMask {
            upper: 1.0,
            strict: false,
            tau: 1.0,
        };
        let s = dsr_rate_backward(&g, &i, &mut gi, m).unwrap();
        assert_eq!(gi, [0.0, 2.0, 3.0, 4.0, 0.0, 0.0]);
        assert_eq!(s, 11.0);
    }

    #[test]
    fn lif_mask_is_open_and_divides_by_tau() {
        let i = [0.0, 0.5, 1.0, 3.0];
        let g = [1.0, 3.0, 5.0, 7.0];
        let mut gi = [9.0; 4];
        let m = RateMask {
            upper: 1.0,
            strict: true,
            tau: 2.0,
        };
        let s = dsr_rate_backward(&g, &i, &mut gi, m).unwrap();
        assert_eq!(gi, [0.0, 1.5, 0.0, 0.0]);
        assert_eq!(s, 7.0);
    }

    #[test]
    fn long_inputs_sum_over_all_chunks() {
        let n = 3 * CHUNK + 17;
        let i: Vec<f32> = (0..n).map(|k| (k % 5) as f32 - 1.0).collect(); // -1, 0, 1, 2, 3
        let g = vec![1.0f32; n];
        let mut gi = vec![0.0f32; n];
        let m = RateMask {
            upper: 1.5,
            strict: false,
            tau: 1.0,
        };
        let s = dsr_rate_backward(&g, &i, &mut gi, m).unwrap();
        let over = i.iter().filter(|&&v| v > 1.5).count();
        assert_eq!(s, over as f64);
        let inside = gi.iter().filter(|&&v| v == 1.0).count();
        assert_eq!(
            inside,
            i.iter().filter(|&&v| (0.0..=1.5).contains(&v)).count()
        );
    }

    #[test]
    fn mismatched_lengths_and_bad_tau_are_errors() {
        let m = RateMask {
            upper: 1.0,
            strict: false,
            tau: 1.0,
        };
        let mut gi = [0.0; 2];
        assert!(dsr_rate_backward(&[1.0, 2.0], &[1.0], &mut gi, m).is_err());
        let bad = RateMask { tau: 0.0, ..m };
        assert!(dsr_rate_backward(&[1.0, 2.0], &[1.0, 1.0], &mut gi, bad).is_err());
    }
}
