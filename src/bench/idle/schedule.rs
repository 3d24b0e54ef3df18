//! When each message is due and which connection it goes to: a Poisson process (exponential gaps
//! between arrivals) from a seeded generator, so every run with the same flags sees the same load.

use std::time::Duration;

/// The seed of every run's schedule: two servers compared side by side get the same instants.
pub const SEED: u64 = 0x6563_686f_706f_6f6c; // "echopool"

/// SplitMix64 (Steele, Lea and Flood, 2014): tiny, fast, and statistically sound for a load
/// schedule; nothing here needs a cryptographic generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator that yields the same numbers for the same seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One scheduled message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Arrival {
    /// When it is due, after the start of the schedule.
    pub at: Duration,
    /// Random bits that choose its connection when it is sent (among those open then).
    pub pick: u64,
}

/// The arrivals of a Poisson process of a given rate, in order, without end.
#[derive(Debug, Clone)]
pub struct Schedule {
    rng: Rng,
    mean_gap_nanos: f64,
    now_nanos: f64,
}

impl Schedule {
    /// Arrivals at `rate` per second on average, drawn from `seed`.
    ///
    /// # Panics
    /// If `rate` is not a positive finite number (the `--rate` parser guarantees it is).
    pub fn new(rate: f64, seed: u64) -> Schedule {
        assert!(rate.is_finite() && rate > 0.0, "rate {rate} must be > 0");
        Schedule {
            rng: Rng::new(seed),
            mean_gap_nanos: 1e9 / rate,
            now_nanos: 0.0,
        }
    }
}

impl Iterator for Schedule {
    type Item = Arrival;

    fn next(&mut self) -> Option<Arrival> {
        // Inverse transform: -ln(U) is exponential with mean 1 for U uniform on (0, 1]; gaps
        // that are exponential make the arrivals a Poisson process, memoryless, so a server
        // sees bursts and lulls as it would from independent clients.
        let uniform = 1.0 - self.rng.next_f64();
        self.now_nanos += -uniform.ln() * self.mean_gap_nanos;
        Some(Arrival {
            at: Duration::from_nanos(self.now_nanos as u64),
            pick: self.rng.next_u64(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let a: Vec<Arrival> = Schedule::new(100.0, 7).take(50).collect();
        let b: Vec<Arrival> = Schedule::new(100.0, 7).take(50).collect();
        let c: Vec<Arrival> = Schedule::new(100.0, 8).take(50).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn arrivals_are_in_order_and_at_the_rate() {
        let n = 100_000;
        let arrivals: Vec<Arrival> = Schedule::new(1000.0, SEED).take(n).collect();
        assert!(arrivals.windows(2).all(|w| w[0].at <= w[1].at));
        // n arrivals at 1000/s take about n ms; the standard deviation of the sum of n
        // exponential gaps is sqrt(n) gaps (0.3 % here), so 2 % is far outside chance.
        let last = arrivals[n - 1].at.as_secs_f64();
        assert!((last - n as f64 / 1000.0).abs() < 0.02 * last, "{last}");
    }

    #[test]
    fn gaps_are_exponential() {
        // An exponential distribution's standard deviation equals its mean, and a share e^-1 of
        // its gaps is longer than the mean: a schedule with even gaps, or bursts only, fails.
        let gaps: Vec<f64> = Schedule::new(1.0, SEED)
            .take(100_001)
            .map(|a| a.at.as_secs_f64())
            .collect::<Vec<_>>()
            .windows(2)
            .map(|w| w[1] - w[0])
            .collect();
        let n = gaps.len() as f64;
        let mean = gaps.iter().sum::<f64>() / n;
        let sd = (gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / n).sqrt();
        let longer = gaps.iter().filter(|&&g| g > mean).count() as f64 / n;
        assert!((mean - 1.0).abs() < 0.02, "mean {mean}");
        assert!((sd / mean - 1.0).abs() < 0.03, "cv {}", sd / mean);
        assert!((longer - (-1f64).exp()).abs() < 0.01, "{longer}");
    }

    #[test]
    fn picks_spread_over_the_connections() {
        let connections = 10u64;
        let mut counts = [0u32; 10];
        for arrival in Schedule::new(1.0, SEED).take(100_000) {
            counts[(arrival.pick % connections) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_500..10_500).contains(&c)),
            "{counts:?}"
        );
    }
}
