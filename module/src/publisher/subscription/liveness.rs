//! What one subscription's publish responses tell about it: which notifications were missed
//! (a gap in sequence numbers, to republish) and whether it fell silent (for the watchdog).
//!
//! Pure: the caller passes the time and acts on the answer, so these rules are tested without
//! a server.

use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

/// The most notifications a gap may span before Republish is not attempted.
pub const MAX_REPUBLISH: u32 = 1000;

/// What the watchdog should do about a silent subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silence {
    /// Silent for the first time: ask the server for a publish.
    Revive,
    /// Still silent a whole silence limit after the revival: create it again.
    Recreate,
}

#[derive(Debug, Clone)]
pub struct Liveness {
    /// Sequence number of the last notification known consumed, to notice gaps; `None` until
    /// the first data notification.
    last_sequence: Option<u32>,
    /// Last data or keep-alive.
    last_heard: Instant,
    /// When the watchdog last triggered a publish for it, if nothing was heard since.
    revived_at: Option<Instant>,
}

impl Liveness {
    /// A subscription just created counts as heard at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            last_sequence: None,
            last_heard: now,
            revived_at: None,
        }
    }

    /// Records a publish response (data, or a keep-alive when `has_data` is false) and answers
    /// the sequence numbers missed before it, if a republish can recover them.
    ///
    /// Data carries its own sequence number, a keep-alive the next one: either way every number
    /// below it must have been seen. Gaps are looked for only after the first data
    /// notification, and not across the wrap of the 32-bit counter.
    pub fn record(
        &mut self,
        sequence_number: u32,
        has_data: bool,
        now: Instant,
    ) -> Option<RangeInclusive<u32>> {
        self.last_heard = now;
        self.revived_at = None;
        let last_consumed = sequence_number.wrapping_sub(1);
        let missing = match self.last_sequence {
            Some(l) if last_consumed > l && last_consumed - l <= MAX_REPUBLISH => {
                Some((l + 1)..=last_consumed)
            }
            _ => None,
        };
        if has_data {
            self.last_sequence = Some(sequence_number);
        } else if self.last_sequence.is_some() {
            self.last_sequence = Some(last_consumed);
        }
        missing
    }

    /// The subscription moved to a new session: its silence counts from `now`.
    pub fn transferred(&mut self, now: Instant) {
        self.last_heard = now;
    }

    /// Whether the watchdog should act at `now`, given the silence `limit`. A revival is
    /// answered once, then the subscription gets a whole `limit` of grace before it is
    /// re-created.
    pub fn check(&mut self, now: Instant, limit: Duration) -> Option<Silence> {
        if now.duration_since(self.last_heard) < limit {
            return None;
        }
        match self.revived_at {
            None => {
                self.revived_at = Some(now);
                Some(Silence::Revive)
            }
            Some(t) if now.duration_since(t) >= limit => Some(Silence::Recreate),
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(25);

    fn fed(start: Instant, sequences: &[(u32, bool)]) -> (Liveness, Vec<RangeInclusive<u32>>) {
        let mut l = Liveness::new(start);
        let gaps = sequences
            .iter()
            .filter_map(|&(seq, data)| l.record(seq, data, start))
            .collect();
        (l, gaps)
    }

    #[test]
    fn consecutive_data_has_no_gap() {
        let (_, gaps) = fed(Instant::now(), &[(1, true), (2, true), (3, true)]);
        assert!(gaps.is_empty(), "{gaps:?}");
    }

    #[test]
    fn skipped_data_is_a_gap() {
        let (_, gaps) = fed(Instant::now(), &[(1, true), (2, true), (6, true)]);
        assert_eq!(gaps, vec![3..=5]);
    }

    #[test]
    fn first_message_is_never_a_gap() {
        // Whatever number a subscription starts at, nothing before it was ours to see.
        let (_, gaps) = fed(Instant::now(), &[(500, true)]);
        assert!(gaps.is_empty());
        let (_, gaps) = fed(Instant::now(), &[(500, false)]);
        assert!(gaps.is_empty());
    }

    #[test]
    fn keep_alives_before_data_set_no_baseline() {
        let (_, gaps) = fed(Instant::now(), &[(5, false), (9, false), (20, true)]);
        assert!(gaps.is_empty(), "{gaps:?}");
    }

    #[test]
    fn keep_alive_carries_the_next_number() {
        // A keep-alive announcing 4 after data 3: nothing missing, and data 4 follows cleanly.
        let (_, gaps) = fed(Instant::now(), &[(3, true), (4, false), (4, true)]);
        assert!(gaps.is_empty(), "{gaps:?}");
    }

    #[test]
    fn keep_alive_reveals_lost_data() {
        // After data 3 a keep-alive announcing 7 means 4..=6 were sent and lost.
        let (_, gaps) = fed(Instant::now(), &[(3, true), (7, false)]);
        assert_eq!(gaps, vec![4..=6]);
    }

    #[test]
    fn gap_found_by_a_keep_alive_is_not_asked_again() {
        let (_, gaps) = fed(
            Instant::now(),
            &[(3, true), (7, false), (7, true), (8, true)],
        );
        assert_eq!(gaps, vec![4..=6]);
    }

    #[test]
    fn too_large_a_gap_is_not_republished() {
        let (_, gaps) = fed(
            Instant::now(),
            &[
                (1, true),
                (2 + MAX_REPUBLISH, true),
                (4 + 2 * MAX_REPUBLISH, true),
            ],
        );
        // 2..=1+MAX is exactly MAX numbers; the next gap is one more.
        assert_eq!(gaps, vec![2..=1 + MAX_REPUBLISH]);
    }

    #[test]
    fn an_older_or_repeated_number_is_no_gap() {
        let (_, gaps) = fed(
            Instant::now(),
            &[(10, true), (10, true), (4, true), (5, true)],
        );
        assert!(gaps.is_empty(), "{gaps:?}");
    }

    #[test]
    fn wrap_around_is_no_gap() {
        // Sequence numbers wrap to 1 after u32::MAX (0 is never sent); the jump back is not a
        // four-billion-number gap, and counting goes on from the new number.
        let (_, gaps) = fed(
            Instant::now(),
            &[
                (u32::MAX - 1, true),
                (u32::MAX, true),
                (1, true),
                (2, true),
                (4, true),
            ],
        );
        assert_eq!(gaps, vec![3..=3]);
    }

    #[test]
    fn heard_recently_is_not_silent() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0);
        assert_eq!(l.check(t0 + LIMIT - Duration::from_millis(1), LIMIT), None);
    }

    #[test]
    fn silence_revives_once_then_recreates_after_the_grace() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0);
        let silent = t0 + LIMIT;
        assert_eq!(l.check(silent, LIMIT), Some(Silence::Revive));
        // Within the grace after a revival: nothing more.
        assert_eq!(l.check(silent, LIMIT), None);
        assert_eq!(
            l.check(silent + LIMIT - Duration::from_millis(1), LIMIT),
            None
        );
        assert_eq!(l.check(silent + LIMIT, LIMIT), Some(Silence::Recreate));
        // Until it is heard again, every later check asks for the re-creation.
        assert_eq!(l.check(silent + 2 * LIMIT, LIMIT), Some(Silence::Recreate));
    }

    #[test]
    fn a_notification_ends_the_silence_and_the_revival() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0);
        assert_eq!(l.check(t0 + LIMIT, LIMIT), Some(Silence::Revive));
        // A keep-alive is enough.
        l.record(1, false, t0 + LIMIT + Duration::from_secs(1));
        assert_eq!(l.check(t0 + 2 * LIMIT, LIMIT), None);
        // Silent again later: it starts over with a revival, not a re-creation.
        assert_eq!(
            l.check(t0 + 2 * LIMIT + Duration::from_secs(1), LIMIT),
            Some(Silence::Revive)
        );
    }

    #[test]
    fn a_transfer_restarts_the_silence_clock_but_keeps_the_revival() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0);
        assert_eq!(l.check(t0 + LIMIT, LIMIT), Some(Silence::Revive));
        let moved = t0 + LIMIT + Duration::from_secs(1);
        l.transferred(moved);
        assert_eq!(
            l.check(moved + LIMIT - Duration::from_millis(1), LIMIT),
            None
        );
        // Silent a whole limit after the transfer, and the revival is older than the limit.
        assert_eq!(l.check(moved + LIMIT, LIMIT), Some(Silence::Recreate));
    }
}
