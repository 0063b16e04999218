//! Newest-frame-wins fan-out. A [`Broadcaster`] holds one slot; publishing replaces what is there
//! and never waits. Each [`Subscription`] wakes on a change and takes whatever is newest, so a slow
//! subscriber skips items instead of queueing them: it can never add latency to the pipeline or to
//! the other subscribers (a FIFO backlog is how live views end up seconds behind).

use std::sync::Arc;

use tokio::sync::watch;

/// The slot's content: how many items were published so far, and the newest.
type Slot<T> = Option<(u64, Arc<T>)>;

pub struct Broadcaster<T> {
    /// Sending on a watch channel overwrites the slot and never blocks, even with no receiver.
    tx: watch::Sender<Slot<T>>,
}

impl<T> Default for Broadcaster<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for Broadcaster<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<T> Broadcaster<T> {
    pub fn new() -> Self {
        Self {
            tx: watch::Sender::new(None),
        }
    }

    /// Replaces the newest item; never blocks.
    pub fn publish(&self, item: Arc<T>) {
        self.tx.send_modify(|slot| {
            let n = slot.as_ref().map_or(0, |(n, _)| *n) + 1;
            *slot = Some((n, item));
        });
    }

    /// Empties the slot, so new subscribers do not get an item of a previous configuration.
    pub fn clear(&self) {
        self.tx.send_if_modified(|slot| slot.take().is_some());
    }

    pub fn latest(&self) -> Option<Arc<T>> {
        self.tx.borrow().as_ref().map(|(_, item)| item.clone())
    }

    pub fn subscriber_count(&self) -> usize {
        self.tx.receiver_count()
    }

    /// A subscription that first yields the current newest item, if there is one.
    pub fn subscribe(&self) -> Subscription<T> {
        let mut rx = self.tx.subscribe();
        if rx.borrow().is_some() {
            rx.mark_changed();
        }
        Subscription {
            rx,
            last: None,
            skipped: 0,
        }
    }
}

pub struct Subscription<T> {
    rx: watch::Receiver<Slot<T>>,
    /// Publication number of the last item taken, to count skips.
    last: Option<u64>,
    skipped: u64,
}

impl<T> Subscription<T> {
    /// Waits for an item newer than the last one taken and returns it; `None` once the broadcaster
    /// is gone.
    pub async fn next(&mut self) -> Option<Arc<T>> {
        loop {
            self.rx.changed().await.ok()?;
            let slot = self.rx.borrow_and_update().clone();
            if let Some((n, item)) = slot {
                if let Some(last) = self.last {
                    self.skipped += n.saturating_sub(last + 1);
                }
                self.last = Some(n);
                return Some(item);
            }
        }
    }

    /// Items published but never taken by this subscriber because newer ones replaced them.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_slow_subscriber_gets_the_newest_item_and_counts_the_rest_as_skipped() {
        let b = Broadcaster::new();
        let mut sub = b.subscribe();
        b.publish(Arc::new(1));
        assert_eq!(*sub.next().await.unwrap(), 1);
        for i in 2..=10 {
            b.publish(Arc::new(i));
        }
        assert_eq!(*sub.next().await.unwrap(), 10);
        assert_eq!(sub.skipped(), 8);
    }

    #[tokio::test]
    async fn publishing_never_waits_for_subscribers() {
        let b = Broadcaster::new();
        let _idle = b.subscribe();
        // Ten thousand publications with a subscriber that never reads: no backlog, no block.
        for i in 0..10_000 {
            b.publish(Arc::new(i));
        }
        assert_eq!(*b.latest().unwrap(), 9_999);
    }

    #[tokio::test]
    async fn a_new_subscriber_starts_with_the_current_item() {
        let b = Broadcaster::new();
        b.publish(Arc::new("first"));
        b.publish(Arc::new("second"));
        let mut sub = b.subscribe();
        assert_eq!(*sub.next().await.unwrap(), "second");
        assert_eq!(sub.skipped(), 0);
    }

    #[tokio::test]
    async fn one_slow_subscriber_does_not_hold_back_another() {
        let b = Broadcaster::new();
        let mut fast = b.subscribe();
        let _slow = b.subscribe();
        for i in 0..5 {
            b.publish(Arc::new(i));
            assert_eq!(*fast.next().await.unwrap(), i);
        }
    }

    #[tokio::test]
    async fn subscription_ends_when_the_broadcaster_is_dropped() {
        let b = Broadcaster::<u32>::new();
        let mut sub = b.subscribe();
        drop(b);
        let next = tokio::time::timeout(Duration::from_secs(1), sub.next()).await;
        assert_eq!(next.unwrap(), None);
    }

    #[tokio::test]
    async fn clear_forgets_the_item_for_new_subscribers() {
        let b = Broadcaster::new();
        b.publish(Arc::new(1));
        b.clear();
        assert!(b.latest().is_none());
        let mut sub = b.subscribe();
        b.publish(Arc::new(2));
        assert_eq!(*sub.next().await.unwrap(), 2);
    }
}
