//! The delays between reconnection attempts: exponential growth with full jitter
//! ([`Backoff`](crate::config::Backoff) describes the policy), and the random numbers behind
//! that jitter, which token refreshes use too.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Duration;

use crate::config::Backoff;

/// The delays of one series of failed attempts; [`Delays::reset`] starts a new series once a
/// connection is established.
#[derive(Debug)]
pub(crate) struct Delays {
    policy: Backoff,
    /// Failed attempts so far in this series.
    attempt: u32,
    rng: Jitter,
}

impl Delays {
    pub(crate) fn new(policy: Backoff) -> Delays {
        Delays::with_jitter(policy, Jitter::from_entropy())
    }

    fn with_jitter(policy: Backoff, rng: Jitter) -> Delays {
        Delays { policy, attempt: 0, rng }
    }

    /// The bound of the next delay: `min(max, initial × factor^attempt)`.
    pub(crate) fn bound(&self) -> Duration {
        let grown =
            self.policy.initial.as_secs_f64() * self.policy.factor.powf(self.attempt as f64);
        // `min` first: the product may be infinite after many attempts.
        Duration::from_secs_f64(grown.min(self.policy.max.as_secs_f64()))
    }

    /// The delay before the next attempt, uniformly random in `[0, bound]`.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.bound().mul_f64(self.rng.unit());
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// Starts a new series: the next delay is bounded by `initial` again.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A small non-cryptographic generator (xorshift64*): jitter only needs to spread clients
/// apart, and this keeps the crate free of a random-number dependency.
#[derive(Debug)]
pub(crate) struct Jitter(u64);

impl Jitter {
    /// Seeded from the process's hash-map keys, which the standard library draws from the OS.
    pub(crate) fn from_entropy() -> Jitter {
        Jitter::seeded(RandomState::new().hash_one(std::time::Instant::now()))
    }

    fn seeded(seed: u64) -> Jitter {
        // One splitmix64 step, so that neighbouring seeds start far apart; `| 1` because zero
        // is the generator's one fixed point.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Jitter((z ^ (z >> 31)) | 1)
    }

    /// A number in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        // The top 53 bits, the precision of an f64 mantissa.
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delays(seed: u64) -> Delays {
        Delays::with_jitter(Backoff::default(), Jitter::seeded(seed))
    }

    #[test]
    fn bounds_double_from_initial_up_to_max() {
        let mut delays = delays(1);
        let mut bounds = Vec::new();
        for _ in 0..10 {
            bounds.push(delays.bound().as_millis());
            delays.next_delay();
        }
        assert_eq!(bounds, [50, 100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        for _ in 0..2000 {
            delays.next_delay();
        }
        assert_eq!(delays.bound(), Duration::from_secs(5), "no overflow after many attempts");
        delays.reset();
        assert_eq!(delays.bound(), Duration::from_millis(50));
    }

    #[test]
    fn delays_are_spread_over_the_whole_bound() {
        // Attempt 6 is bounded by 3.2 s; over many series its delays must fill the range, not
        // sit at one value (that would be no jitter) nor past the bound.
        let samples: Vec<Duration> = (0..1000)
            .map(|seed| {
                let mut d = delays(seed);
                for _ in 0..6 {
                    d.next_delay();
                }
                d.next_delay()
            })
            .collect();
        let bound = Duration::from_millis(3200);
        assert!(samples.iter().all(|&s| s <= bound));
        let low = samples.iter().filter(|&&s| s < bound / 4).count();
        let high = samples.iter().filter(|&&s| s > bound * 3 / 4).count();
        assert!((150..350).contains(&low), "{low} of 1000 in the lowest quarter");
        assert!((150..350).contains(&high), "{high} of 1000 in the highest quarter");
    }

    #[test]
    fn unit_stays_in_its_interval() {
        let mut rng = Jitter::seeded(0);
        for _ in 0..10_000 {
            let x = rng.unit();
            assert!((0.0..1.0).contains(&x), "{x}");
        }
    }
}
