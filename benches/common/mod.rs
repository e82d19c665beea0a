//! What the criterion benches share: a small deterministic generator (xorshift64), so that
//! every run builds the same weights and inputs.

/// xorshift64 state; seed it with a nonzero value.
pub struct Rng(pub u64);

#[allow(dead_code)] // each bench uses some of these
impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Approximately normal (sum of uniforms).
    pub fn normal(&mut self) -> f64 {
        (0..4).map(|_| self.uniform()).sum::<f64>() - 2.0
    }
    /// True with probability `p`.
    pub fn below(&mut self, p: f64) -> bool {
        self.uniform() < p
    }
    /// Small signed integers in [-127, 127].
    pub fn weight(&mut self) -> i8 {
        ((self.next() % 255) as i32 - 127) as i8
    }
}
