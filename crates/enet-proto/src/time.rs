//! ENet's 32-bit millisecond wire clock.
//!
//! ENet timestamps are `u32` milliseconds that wrap around every ~49.7 days. Two
//! timestamps are compared "wrap-aware": a difference of more than
//! [`OVERFLOW`] (one day) in the forward direction means the first one is in fact
//! *before* the second (same rule as C ENet's `ENET_TIME_*` macros).
//!
//! [`WireClock`] converts [`Instant`]s into this clock, relative to an epoch
//! fixed when the host is created; the clock itself is never read here.

use std::time::{Duration, Instant};

/// Wire time, in milliseconds (wrapping).
pub type WireTime = u32;

/// Differences at least this large are treated as negative (C ENet's `ENET_TIME_OVERFLOW`).
pub const OVERFLOW: u32 = 86_400_000;

/// `a < b` on the wrapping clock.
pub const fn less(a: WireTime, b: WireTime) -> bool {
    a.wrapping_sub(b) >= OVERFLOW
}

/// `a > b` on the wrapping clock.
pub const fn greater(a: WireTime, b: WireTime) -> bool {
    b.wrapping_sub(a) >= OVERFLOW
}

/// `a <= b` on the wrapping clock.
pub const fn less_equal(a: WireTime, b: WireTime) -> bool {
    !greater(a, b)
}

/// `a >= b` on the wrapping clock.
pub const fn greater_equal(a: WireTime, b: WireTime) -> bool {
    !less(a, b)
}

/// The absolute distance between `a` and `b` on the wrapping clock.
pub const fn difference(a: WireTime, b: WireTime) -> u32 {
    if a.wrapping_sub(b) >= OVERFLOW {
        b.wrapping_sub(a)
    } else {
        a.wrapping_sub(b)
    }
}

/// Rebuilds a full 32-bit timestamp from the low 16 bits echoed in an
/// acknowledgement, assuming it lies shortly before `now` (C ENet's rule).
pub const fn expand_sent_time(now: WireTime, low: u16) -> WireTime {
    let mut t = (low as u32) | (now & 0xFFFF_0000);
    if (t & 0x8000) > (now & 0x8000) {
        t = t.wrapping_sub(0x1_0000);
    }
    t
}

/// Maps [`Instant`]s onto the 32-bit wire clock, relative to a fixed epoch.
#[derive(Debug, Clone, Copy)]
pub struct WireClock {
    epoch: Instant,
    base: WireTime,
}

impl WireClock {
    /// A clock whose value at `epoch` is `base`.
    pub const fn new(epoch: Instant, base: WireTime) -> WireClock {
        WireClock { epoch, base }
    }

    /// The wire time at `now` (instants before the epoch map to the epoch).
    pub fn at(&self, now: Instant) -> WireTime {
        let ms = now.saturating_duration_since(self.epoch).as_millis();
        self.base.wrapping_add(ms as u32)
    }

    /// Milliseconds from the epoch to `now` (0 before it); unlike the wire time, it never wraps.
    pub fn elapsed_ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// The instant at which the wire clock reaches `deadline`, given that it reads
    /// `current` at `reference`. Deadlines in the past map to `reference`.
    pub fn instant_of(reference: Instant, current: WireTime, deadline: WireTime) -> Instant {
        if less_equal(deadline, current) {
            reference
        } else {
            reference + Duration::from_millis(u64::from(deadline.wrapping_sub(current)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_across_the_wrap() {
        let before = u32::MAX - 5;
        let after = 10u32;
        assert!(less(before, after));
        assert!(greater(after, before));
        assert!(less_equal(before, after));
        assert!(greater_equal(after, before));
        assert!(!less(after, before));
        assert_eq!(difference(after, before), 16);
        assert_eq!(difference(before, after), 16);
        assert!(less_equal(7, 7) && greater_equal(7, 7) && !less(7, 7));
    }

    #[test]
    fn ordering_without_wrap() {
        assert!(less(100, 200));
        assert!(!less(200, 100));
        assert_eq!(difference(200, 100), 100);
        assert_eq!(difference(100, 200), 100);
    }

    #[test]
    fn expand_sent_time_handles_16_bit_wrap() {
        // Sent at 0x0001_FFF0, acknowledged at 0x0002_0010.
        assert_eq!(expand_sent_time(0x0002_0010, 0xFFF0), 0x0001_FFF0);
        // Same 64 KiB page.
        assert_eq!(expand_sent_time(0x0002_9000, 0x8FF0), 0x0002_8FF0);
        // Across the 32-bit wrap.
        assert_eq!(expand_sent_time(0x0000_0005, 0xFFFE), 0xFFFF_FFFE);
    }

    #[test]
    fn wire_clock_wraps_and_maps_back() {
        let epoch = Instant::now();
        let clock = WireClock::new(epoch, u32::MAX - 9);
        assert_eq!(clock.at(epoch), u32::MAX - 9);
        let later = epoch + Duration::from_millis(25);
        assert_eq!(clock.at(later), 15);
        assert_eq!(
            WireClock::instant_of(later, 15, 115),
            later + Duration::from_millis(100)
        );
        assert_eq!(WireClock::instant_of(later, 15, u32::MAX - 3), later);
    }
}
