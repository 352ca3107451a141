//! A small seeded random source for the reliability tests (power cuts, the load day).
//! The seed comes from an environment variable or the clock and is printed, so that a
//! failing run can be replayed exactly.

/// xorshift64: enough randomness for choosing moments and service times, and fully
/// determined by its seed.
#[derive(Debug, Clone)]
pub struct Dice {
    state: u64,
    /// The seed it started from, for reports.
    pub seed: u64,
}

impl Dice {
    /// A generator from `seed` (zero is replaced, xorshift cannot leave it).
    pub fn new(seed: u64) -> Dice {
        Dice {
            state: seed.max(1),
            seed,
        }
    }

    /// The seed from environment variable `var`, else from the clock; printed with `what`
    /// so that `VAR=seed` replays the run.
    pub fn from_env(var: &str, what: &str) -> Dice {
        let seed = std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
                    | 1
            });
        eprintln!("{what}: {var}={seed}");
        Dice::new(seed)
    }

    /// The next raw value.
    pub fn next_u64(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// A value in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A value in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An exponentially distributed value with the given mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// A log-normally distributed value with the given median and shape `sigma`
    /// (service times: most short, a long tail of complicated cases).
    pub fn log_normal(&mut self, median: f64, sigma: f64) -> f64 {
        // Box–Muller.
        let (u1, u2) = (1.0 - self.unit(), self.unit());
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        median * (sigma * z).exp()
    }
}

/// A whole-number setting from the environment, or `default`.
pub fn env_or<T: std::str::FromStr>(var: &str, default: T) -> T {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_replays_the_same_run() {
        let (mut a, mut b) = (Dice::new(42), Dice::new(42));
        let xs: Vec<u64> = (0..100).map(|_| a.below(1000)).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.below(1000)).collect();
        assert_eq!(xs, ys);
        let mut c = Dice::new(43);
        let zs: Vec<u64> = (0..100).map(|_| c.below(1000)).collect();
        assert_ne!(xs, zs, "another seed, another run");
    }

    #[test]
    fn distributions_have_the_asked_centre() {
        let mut d = Dice::new(7);
        let n = 20_000;
        let mean = (0..n).map(|_| d.exponential(30.0)).sum::<f64>() / f64::from(n);
        assert!((27.0..33.0).contains(&mean), "exponential mean {mean}");
        let mut v: Vec<f64> = (0..n).map(|_| d.log_normal(90.0, 0.45)).collect();
        v.sort_by(f64::total_cmp);
        let median = v[v.len() / 2];
        assert!((85.0..95.0).contains(&median), "log-normal median {median}");
        assert!(v.iter().all(|x| *x > 0.0));
        assert!((0..1000).all(|_| (0.0..1.0).contains(&d.unit())));
    }
}
