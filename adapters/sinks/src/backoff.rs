//! The retry schedule every sink uses after a failure: exponential, capped, reset by a success.
//! Only the schedule; waiting (and being woken for shutdown meanwhile) is the caller's business.

use std::time::Duration;

use crate::settings::BackoffSettings;

#[derive(Debug)]
pub(crate) struct Backoff {
    settings: BackoffSettings,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(settings: BackoffSettings) -> Self {
        Self {
            settings,
            next: settings.initial,
        }
    }

    /// The wait before the next attempt; each call doubles the one after, up to the maximum.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.settings.max);
        delay
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.settings.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_maximum_and_start_over_after_a_reset() {
        let mut backoff = Backoff::new(BackoffSettings {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(3),
        });
        let delays: Vec<_> = (0..5).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(delays, [500, 1000, 2000, 3000, 3000]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(500));
    }
}
