// iiot patch: `Duration` for the publish backoff.
use std::{
    future::Future,
    time::{Duration, Instant},
};

use futures::{stream::FuturesUnordered, StreamExt};
use opcua_types::{Error, StatusCode};
use tokio::{select, sync::watch::Receiver};
use tracing::debug;

use crate::{
    session::{services::subscriptions::PublishLimits, session_debug, session_error},
    SubscriptionActivity,
};

/// A trait for managing subscription state in the event loop.
///
/// This is just a handle to something that track subscriptions,
/// letting us query when the next publish should be sent.
pub trait SubscriptionCache {
    /// Get and update the time for the next publish. If `set_last_publish` is true,
    /// the last publish time is updated to now, affecting future calls to this method.
    fn next_publish_time(&mut self, set_last_publish: bool) -> Option<Instant>;
}

/// The state machine for the subscription event loop.
///
/// This is made generic and removed from the subscription event loop to make it
/// possible for users to implement their own event loop that doesn't depend on the
/// `Session`, which can allow for several useful features that we are unlikely to implement
/// in the `Session` itself, such as:
///
///  - Backpressure, letting users replace the `publish` implementation with one that
///    waits for the consumer to be ready before passing the publish response to the
///    event loop.
///  - Custom subscription caches, for example for persisting subscription state.
pub struct SubscriptionEventLoopState<T, R, S> {
    trigger_publish_recv: tokio::sync::watch::Receiver<Instant>,
    futures: FuturesUnordered<T>,
    last_external_trigger: Instant,
    // This is true if the client has received BadTooManyPublishRequests
    // and is waiting for a response before making further requests.
    // iiot patch: the wait is bounded. It ends on any response (success or error) that
    // leaves no request outstanding, and at the latest at `waiting_until`; upstream
    // cleared it only on a successful response, so once every outstanding request had
    // failed nothing was ever sent again.
    waiting_for_response: bool,
    // iiot patch: deadline of the `waiting_for_response` hold.
    waiting_until: Instant,
    // iiot patch: upstream kept a `no_active_subscription` flag here, set at start and on
    // BadNoSubscription and cleared only by an external trigger or a successful publish.
    // The event loop is re-created on every reconnect, after the subscriptions were
    // transferred or re-created (and the trigger that re-creation sent was already
    // consumed), so publishing never started again after a reconnect. The flag is gone:
    // the internal tick publishes whenever the subscription cache holds subscriptions,
    // and BadNoSubscription only delays the next request through the error backoff.
    //
    // iiot patch: number of publish failures since the last successful publish response.
    consecutive_failures: u32,
    // iiot patch: no publish is sent on the internal tick before this instant (backoff
    // after failures); `None` when the last publish succeeded.
    resume_at: Option<Instant>,
    /// Receiver for publish limits updates
    publish_limits_rx: Receiver<PublishLimits>,
    publish_source: R,
    subscription_cache: S,
    session_id: u32,
}

/// iiot patch: first delay after a failed publish request.
const PUBLISH_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// iiot patch: longest delay between publish attempts after failures, so publishing resumes
/// within this bound once the server answers again.
const PUBLISH_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// iiot patch: longest time BadTooManyPublishRequests holds back new publish requests while
/// earlier ones are still outstanding.
const TOO_MANY_PUBLISH_REQUESTS_HOLD_MAX: Duration = Duration::from_secs(5);

enum ActivityOrNext {
    Activity(SubscriptionActivity),
    Next(Option<Instant>),
}

impl<T: Future<Output = Result<bool, Error>>, R: Fn() -> T, S: SubscriptionCache>
    SubscriptionEventLoopState<T, R, S>
{
    /// Construct a new subscription cache.
    ///
    /// # Arguments
    ///
    /// * `session_id` - The session id for logging purposes.
    /// * `trigger_publish_recv` - A channel used to transmit external publish triggers.
    ///   This is used to trigger publish outside of the normal schedule, for example when
    ///   a new subscription is created.
    /// * `publish_limits_rx` - A channel used to receive updates to publish limits.
    /// * `publish_source` - A function that produces a future that performs a publish operation.
    /// * `subscription_cache` - An implementation of the [SubscriptionCache] trait.
    pub fn new(
        session_id: u32,
        trigger_publish_recv: tokio::sync::watch::Receiver<Instant>,
        publish_limits_rx: Receiver<PublishLimits>,
        publish_source: R,
        subscription_cache: S,
    ) -> Self {
        let last_external_trigger = *trigger_publish_recv.borrow();
        Self {
            last_external_trigger,
            trigger_publish_recv,
            futures: FuturesUnordered::new(),
            waiting_for_response: false,
            // iiot patch: bounded hold after BadTooManyPublishRequests, error backoff.
            waiting_until: Instant::now(),
            consecutive_failures: 0,
            resume_at: None,
            publish_limits_rx,
            publish_source,
            subscription_cache,
            session_id,
        }
    }

    fn wait_for_next_tick(
        &self,
        next_publish: Option<Instant>,
    ) -> impl Future<Output = ()> + 'static {
        // Deliberately create a future that doesn't capture `self` at all.
        // iiot patch: upstream waited forever here while BadTooManyPublishRequests was
        // pending. The tick now only moves later: past the error backoff (`resume_at`)
        // and, while requests are still outstanding, past the bounded hold. Without
        // subscriptions (`next_publish` is `None`) there is still nothing to do.
        let should_wait_for_response = self.waiting_for_response && !self.futures.is_empty();
        let next_publish = next_publish.map(|mut at| {
            if let Some(resume_at) = self.resume_at {
                at = at.max(resume_at);
            }
            if should_wait_for_response {
                at = at.max(self.waiting_until);
            }
            at
        });
        async move {
            if let Some(next_publish) = next_publish {
                tokio::time::sleep_until(next_publish.into()).await;
            } else {
                futures::future::pending().await
            }
        }
    }

    /// iiot patch: delay before the next publish after `failures` failures in a row:
    /// doubles from [`PUBLISH_BACKOFF_MIN`] up to [`PUBLISH_BACKOFF_MAX`].
    fn publish_backoff(failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(16);
        PUBLISH_BACKOFF_MIN
            .saturating_mul(1u32 << shift)
            .min(PUBLISH_BACKOFF_MAX)
    }

    /// iiot patch: whether BadTooManyPublishRequests still holds publishing back. The hold
    /// ends once no request is outstanding (the server has answered all of them) or when
    /// it has lasted [`TOO_MANY_PUBLISH_REQUESTS_HOLD_MAX`].
    fn holding_for_response(&mut self, now: Instant) -> bool {
        if self.waiting_for_response && (self.futures.is_empty() || now >= self.waiting_until) {
            session_debug!(self, "Resuming publish after BadTooManyPublishRequests");
            self.waiting_for_response = false;
        }
        self.waiting_for_response
    }

    async fn wait_for_next_publish(&mut self) -> Result<bool, Error> {
        if self.futures.is_empty() {
            futures::future::pending().await
        } else {
            self.futures.next().await.unwrap_or_else(|| {
                Err(Error::new(
                    StatusCode::BadInvalidState,
                    "Invalid state, polling for publish completion returned None",
                ))
            })
        }
    }

    fn session_id(&self) -> u32 {
        self.session_id
    }

    /// Run an iteration of the event loop, returning each time a publish message is received.
    pub async fn iter_loop(&mut self) -> SubscriptionActivity {
        let mut next = self.subscription_cache.next_publish_time(false);
        let mut recv = self.trigger_publish_recv.clone();
        loop {
            match self.tick(next, &mut recv).await {
                ActivityOrNext::Activity(a) => return a,
                ActivityOrNext::Next(n) => next = n,
            }
        }
    }

    async fn tick(
        &mut self,
        mut next_publish: Option<Instant>,
        recv: &mut Receiver<Instant>,
    ) -> ActivityOrNext {
        let last_external_trigger = self.last_external_trigger;
        select! {
            v = recv.wait_for(|i| i > &last_external_trigger) => {
                if let Ok(v) = v {
                    // iiot patch: always take the trigger as seen. Upstream left it unseen
                    // while BadTooManyPublishRequests was pending, so `wait_for` returned
                    // at once on every iteration and the loop spun on a core; the internal
                    // tick publishes once the hold ends.
                    self.last_external_trigger = *v;
                    if !self.holding_for_response(Instant::now()) {
                        debug!("Sending publish due to external trigger");
                        // On an external trigger, we always publish.
                        self.futures.push((self.publish_source)());
                        next_publish = self.subscription_cache.next_publish_time(true);
                    } else {
                        debug!("Skipping publish due BadTooManyPublishRequests");
                    }
                }
                ActivityOrNext::Next(next_publish)
            }
            _ = self.wait_for_next_tick(next_publish) => {
                // iiot patch: publish on every tick while subscriptions exist (the tick
                // only fires then), below the outstanding-request limit, outside the error
                // backoff and the bounded BadTooManyPublishRequests hold.
                let now = Instant::now();
                let backing_off = self.resume_at.is_some_and(|at| now < at);
                if !backing_off && self.futures.len()
                    < self
                        .publish_limits_rx
                        .borrow()
                        .max_publish_requests
                {
                    if !self.holding_for_response(now) {
                        debug!("Sending publish due to internal tick");
                        self.futures.push((self.publish_source)());
                    } else {
                        debug!("Skipping publish due BadTooManyPublishRequests");
                    }
                }
                ActivityOrNext::Next(self.subscription_cache.next_publish_time(true))
            }
            res = self.wait_for_next_publish() => {
                match res {
                    Ok(more_notifications) => {
                        if more_notifications
                            || self.futures.len()
                                < self
                                    .publish_limits_rx
                                    .borrow()
                                    .min_publish_requests
                        {
                            if !self.waiting_for_response {
                                debug!("Sending publish after receiving response");
                                self.futures.push((self.publish_source)());
                                // Set the last publish time to to avoid a buildup
                                // of publish requests if exhausting the queue takes
                                // more time than a single publishing interval.
                                self.subscription_cache.next_publish_time(true);
                            } else {
                                debug!("Skipping publish due BadTooManyPublishRequests");
                            }
                        }
                        self.waiting_for_response = false;
                        // iiot patch: a success ends the error backoff.
                        self.consecutive_failures = 0;
                        self.resume_at = None;
                        ActivityOrNext::Activity(SubscriptionActivity::Publish)
                    }
                    Err(e) => {
                        // iiot patch: every failed publish delays the next one by a bounded,
                        // growing backoff; the internal tick then resumes publishing for as
                        // long as subscriptions exist.
                        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                        let backoff = Self::publish_backoff(self.consecutive_failures);
                        self.resume_at = Some(Instant::now() + backoff);
                        match e.status() {
                            StatusCode::BadTimeout => {
                                session_debug!(self, "Publish request timed out");
                            }
                            StatusCode::BadTooManyPublishRequests => {
                                session_debug!(
                                    self,
                                    "Server returned BadTooManyPublishRequests, backing off",
                                );
                                self.waiting_for_response = true;
                                // iiot patch: bounded hold, see `holding_for_response`.
                                self.waiting_until =
                                    Instant::now() + TOO_MANY_PUBLISH_REQUESTS_HOLD_MAX;
                            }
                            StatusCode::BadSessionClosed
                            | StatusCode::BadSessionIdInvalid => {
                                // If this happens we will probably eventually fail keep-alive, defer to that.
                                session_error!(self, "Publish response indicates session is dead");
                                return ActivityOrNext::Activity(SubscriptionActivity::FatalFailure(e.status()))
                            }
                            StatusCode::BadNoSubscription => {
                                session_debug!(
                                    self,
                                    "Publish response indicates that there are no subscriptions"
                                );
                                // iiot patch: no permanent stop here; the backoff above
                                // applies and publishing resumes while subscriptions exist.
                            },
                            _ => ()
                        }
                        ActivityOrNext::Activity(SubscriptionActivity::PublishFailed(e.status()))
                    }
                }
            },
        }
    }
}
