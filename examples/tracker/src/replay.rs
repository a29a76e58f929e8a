//! The per-device replay window of `docs/tracker-devices.md` ("Replay window").
//!
//! A device's reports carry increasing counters, but datagrams may arrive out of order. The
//! window keeps the highest counter accepted and which of the 64 counters ending at it
//! (`highest - 63 ..= highest`) were seen. A counter above the highest is new; one inside the
//! window is new if its bit is clear; anything at or below `highest - 64` is too old to tell and
//! is refused, as is anything seen.

/// How many counters, ending at the highest accepted one, the window remembers.
pub const WINDOW: u64 = 64;

/// One device's replay window. See the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayWindow {
    /// The highest counter accepted (0 if none: counters start at 1).
    highest: u64,
    /// Bit `i` set: counter `highest - i` was accepted (or is treated as seen).
    seen: u64,
}

impl Default for ReplayWindow {
    fn default() -> ReplayWindow {
        ReplayWindow::restored(0)
    }
}

impl ReplayWindow {
    /// A window for a device whose highest accepted counter is `highest`, with nothing known of
    /// the counters below it: they are all refused. This is how a tracker restarts (only the
    /// highest counter is stored) and how a new device starts (`restored(0)`: counter 0 is never
    /// valid).
    pub fn restored(highest: u64) -> ReplayWindow {
        ReplayWindow { highest, seen: u64::MAX }
    }

    /// The highest counter accepted so far (0 if none).
    pub fn highest(&self) -> u64 {
        self.highest
    }

    /// Whether `counter` would be accepted now (changes nothing).
    pub fn check(&self, counter: u64) -> bool {
        if counter > self.highest {
            return true;
        }
        let back = self.highest - counter;
        back < WINDOW && self.seen & (1 << back) == 0
    }

    /// Accepts `counter` if [`ReplayWindow::check`] allows it, marking it seen and moving the
    /// window up to it if it is the new highest. Returns whether it was accepted.
    pub fn accept(&mut self, counter: u64) -> bool {
        if !self.check(counter) {
            return false;
        }
        if counter > self.highest {
            let shift = counter - self.highest;
            self.seen = if shift >= WINDOW { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.highest = counter;
        } else {
            self.seen |= 1 << (self.highest - counter);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_device_accepts_counters_from_1_and_never_0() {
        let mut w = ReplayWindow::default();
        assert!(!w.check(0));
        assert!(w.accept(1));
        assert!(!w.accept(1), "a replay");
        assert!(w.accept(2));
        assert_eq!(w.highest(), 2);
        assert!(!w.accept(0));
    }

    #[test]
    fn out_of_order_counters_within_the_window_are_accepted_once() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(10));
        for c in [7, 9, 8] {
            assert!(w.accept(c), "{c}");
        }
        for c in [7, 8, 9, 10] {
            assert!(!w.accept(c), "{c} again");
        }
        // Counters 1..=6 were never seen and are still inside the window.
        for c in 1..=6 {
            assert!(w.accept(c), "{c}");
        }
    }

    #[test]
    fn the_window_edge_is_64_counters_ending_at_the_highest() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(1000));
        assert!(!w.check(1000 - 64), "just below the window: too old");
        assert!(w.check(1000 - 63), "the window's lowest counter");
        assert!(w.accept(1000 - 63));
        assert!(!w.accept(1000 - 63));
        // Moving the highest by one pushes 937 out, and 936 was already out.
        assert!(w.accept(1001));
        assert!(!w.check(1001 - 64));
        assert!(w.check(1001 - 63), "938 was never seen");
    }

    #[test]
    fn a_jump_of_64_or_more_forgets_the_old_window() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(5));
        assert!(w.accept(5 + 64));
        assert!(!w.check(5), "now below the window");
        assert!(w.check(6), "inside the new window and never seen");
        let mut w = ReplayWindow::default();
        assert!(w.accept(3));
        assert!(w.accept(3 + 63));
        assert!(!w.check(3), "still the window's lowest counter, and seen");
        assert!(w.check(4));
        assert!(w.accept(u64::MAX));
        assert!(!w.accept(u64::MAX));
        assert!(w.accept(u64::MAX - 1));
    }

    #[test]
    fn a_restored_window_refuses_everything_up_to_the_stored_highest() {
        let mut w = ReplayWindow::restored(500);
        for c in [0, 1, 437, 436, 499, 500] {
            assert!(!w.check(c), "{c}");
        }
        assert!(w.accept(501));
        assert!(!w.check(500), "still treated as seen after moving on");
        assert!(w.accept(600));
        assert!(w.check(590), "a counter the restart never saw, inside the new window");
    }
}
