//! Which outbox message each packet id stands for, kept apart from any socket so that it can
//! be tested alone (like rumqtt keeps protocol state apart from its event loop).
//!
//! rumqttc 0.25 assigns the packet id when its event loop takes a publish request off its
//! channel, and reports it as `Outgoing::Publish(pkid)`; requests are taken strictly in the
//! order they were queued (a packet-id collision holds every later request back until it is
//! resolved), so the n-th `Outgoing::Publish` belongs to the n-th queued message. QoS 0
//! publishes report pkid 0 after they were written to the socket: that is their ack.

use std::collections::{HashMap, VecDeque};

/// An outbox message on its way: its outbox id and payload size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Sent {
    pub id: u64,
    pub bytes: u32,
}

#[derive(Debug, Default)]
pub(super) struct InFlight {
    /// Queued to rumqttc, packet id not known yet; in queue order.
    queued: VecDeque<Sent>,
    /// Written with a packet id, waiting for the PUBACK.
    awaiting: HashMap<u16, Sent>,
    /// Payload bytes of everything above: the MQTT client holds each payload until its ack.
    bytes: u64,
}

impl InFlight {
    pub fn queue(&mut self, sent: Sent) {
        self.bytes += u64::from(sent.bytes);
        self.queued.push_back(sent);
    }

    fn done(&mut self, sent: Option<Sent>) -> Option<Sent> {
        if let Some(s) = &sent {
            self.bytes = self.bytes.saturating_sub(u64::from(s.bytes));
        }
        sent
    }

    /// rumqttc wrote the next queued publish with `pkid`. Answers the message when that
    /// completes it (QoS 0).
    pub fn written(&mut self, pkid: u16) -> Option<Sent> {
        let sent = self.queued.pop_front()?;
        if pkid == 0 {
            return self.done(Some(sent));
        }
        if let Some(old) = self.awaiting.insert(pkid, sent) {
            // rumqttc only reuses an id after its ack; losing track would resend, not lose.
            tracing::warn!(pkid, id = old.id, "packet id reused before its PUBACK");
            self.done(Some(old));
        }
        None
    }

    /// The broker acknowledged `pkid`.
    pub fn acked(&mut self, pkid: u16) -> Option<Sent> {
        let sent = self.awaiting.remove(&pkid);
        self.done(sent)
    }

    /// The queued publish rumqttc was about to write when it failed.
    pub fn pop_next_queued(&mut self) -> Option<Sent> {
        let sent = self.queued.pop_front();
        self.done(sent)
    }

    pub fn len(&self) -> usize {
        self.queued.len() + self.awaiting.len()
    }

    /// Payload bytes in flight.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(id: u64) -> Sent {
        Sent { id, bytes: 10 }
    }

    #[test]
    fn maps_packet_ids_in_queue_order_and_acks_in_any_order() {
        let mut f = InFlight::default();
        for id in 10..14 {
            f.queue(s(id));
        }
        assert_eq!(f.written(1), None);
        assert_eq!(f.written(2), None);
        assert_eq!(f.len(), 4);
        assert_eq!(f.acked(2), Some(s(11)));
        assert_eq!(f.acked(2), None, "a second ack of one id is ignored");
        assert_eq!(f.written(3), None);
        assert_eq!(f.acked(1), Some(s(10)));
        assert_eq!(f.acked(3), Some(s(12)));
        assert_eq!(f.bytes(), 10);
        assert_eq!(f.pop_next_queued(), Some(s(13)));
        assert_eq!(f.len(), 0);
        assert_eq!(f.bytes(), 0);
    }

    #[test]
    fn qos0_completes_when_written() {
        let mut f = InFlight::default();
        f.queue(s(1));
        f.queue(s(2));
        assert_eq!(f.written(0), Some(s(1)));
        assert_eq!(f.written(0), Some(s(2)));
        assert_eq!(f.written(0), None);
    }
}
