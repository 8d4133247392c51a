//! Verification sessions: sends per session, wrong codes per issued code,
//! destination changes, code expiry.

use crate::request::Channel;
use std::time::Duration;

/// Session limits from the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionParams {
    pub max_sends: u8,
    pub max_code_attempts: u8,
    pub max_destination_changes: u8,
    pub code_ttl: Duration,
    /// A session with no activity for this long is forgotten.
    pub idle_ttl: Duration,
}

/// Why a session refuses a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionFinding {
    MaxSends,
    CodeAttempts,
    CodeExpired,
    DestinationChange,
    ChannelChange,
}

impl SessionFinding {
    pub fn code(self) -> &'static str {
        match self {
            SessionFinding::MaxSends => "session.max_sends",
            SessionFinding::CodeAttempts => "session.code_attempts",
            SessionFinding::CodeExpired => "session.code_expired",
            SessionFinding::DestinationChange => "session.destination_change",
            SessionFinding::ChannelChange => "session.channel_change",
        }
    }
}

/// Channels grouped by what they deliver to: a number, an address, a device.
fn class(c: Channel) -> u8 {
    match c {
        Channel::Sms | Channel::Voice | Channel::Whatsapp => 1,
        Channel::Email => 2,
        Channel::Push => 3,
    }
}

/// One session: 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionState {
    /// Forgotten after this instant (Unix ns).
    pub expires_at: u64,
    /// When the current code was sent; 0 before the first.
    pub code_sent_at: u64,
    /// Keyed hash of the destination (number or address); 0 before the first.
    pub destination: u64,
    pub sends: u8,
    pub wrong_codes: u8,
    pub destination_changes: u8,
    /// `class()` of the channel of the last send; 0 before the first.
    pub channel_class: u8,
    pub failed: bool,
}

impl SessionState {
    pub fn live(s: Option<&SessionState>, now: u64) -> Option<&SessionState> {
        s.filter(|s| s.expires_at > now)
    }

    /// Would a send to `destination` over `channel` be refused?
    pub fn check_send(
        &self,
        p: &SessionParams,
        destination: u64,
        channel: Channel,
    ) -> Option<SessionFinding> {
        if self.failed || self.sends >= p.max_sends {
            return Some(SessionFinding::MaxSends);
        }
        if self.channel_class != 0 && self.channel_class != class(channel) {
            return Some(SessionFinding::ChannelChange);
        }
        if self.destination != 0
            && destination != 0
            && destination != self.destination
            && self.destination_changes >= p.max_destination_changes
        {
            return Some(SessionFinding::DestinationChange);
        }
        None
    }

    /// Would a code entered at `now` be refused before it is even checked?
    pub fn check_verify(&self, p: &SessionParams, now: u64) -> Option<SessionFinding> {
        if self.code_sent_at == 0 {
            return None;
        }
        if self.wrong_codes >= p.max_code_attempts {
            return Some(SessionFinding::CodeAttempts);
        }
        if now
            >= self
                .code_sent_at
                .saturating_add(p.code_ttl.as_nanos() as u64)
        {
            return Some(SessionFinding::CodeExpired);
        }
        None
    }

    /// After a code was sent: a new code, its attempts start over.
    pub fn after_send(
        prev: Option<&SessionState>,
        p: &SessionParams,
        destination: u64,
        channel: Channel,
        now: u64,
    ) -> SessionState {
        let mut s = Self::live(prev, now).copied().unwrap_or_default();
        if s.destination != 0 && destination != 0 && destination != s.destination {
            s.destination_changes = s.destination_changes.saturating_add(1);
        }
        if destination != 0 {
            s.destination = destination;
        }
        s.channel_class = class(channel);
        s.sends = s.sends.saturating_add(1);
        s.wrong_codes = 0;
        s.code_sent_at = now;
        s.touch(p, now);
        s
    }

    pub fn after_wrong_code(
        prev: Option<&SessionState>,
        p: &SessionParams,
        now: u64,
    ) -> SessionState {
        let mut s = Self::live(prev, now).copied().unwrap_or_default();
        s.wrong_codes = s.wrong_codes.saturating_add(1);
        s.touch(p, now);
        s
    }

    pub fn after_failure(prev: Option<&SessionState>, p: &SessionParams, now: u64) -> SessionState {
        let mut s = Self::live(prev, now).copied().unwrap_or_default();
        s.failed = true;
        s.touch(p, now);
        s
    }

    fn touch(&mut self, p: &SessionParams, now: u64) {
        self.expires_at = now.saturating_add(p.idle_ttl.as_nanos() as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn p() -> SessionParams {
        SessionParams {
            max_sends: 3,
            max_code_attempts: 3,
            max_destination_changes: 1,
            code_ttl: Duration::from_secs(300),
            idle_ttl: Duration::from_secs(1800),
        }
    }

    #[test]
    fn sends_per_session() {
        let (p, t) = (p(), 1000 * S);
        let mut s = SessionState::after_send(None, &p, 7, Channel::Sms, t);
        assert_eq!(s.check_send(&p, 7, Channel::Sms), None);
        s = SessionState::after_send(Some(&s), &p, 7, Channel::Sms, t);
        s = SessionState::after_send(Some(&s), &p, 7, Channel::Sms, t);
        assert_eq!(
            s.check_send(&p, 7, Channel::Sms),
            Some(SessionFinding::MaxSends)
        );
        let failed = SessionState::after_failure(Some(&s), &p, t);
        assert!(failed.failed);
    }

    #[test]
    fn one_destination_change_never_across_channels() {
        let (p, t) = (p(), 1000 * S);
        let s = SessionState::after_send(None, &p, 7, Channel::Sms, t);
        assert_eq!(s.check_send(&p, 8, Channel::Sms), None);
        assert_eq!(
            s.check_send(&p, 9, Channel::Email),
            Some(SessionFinding::ChannelChange)
        );
        // Voice to the same kind of destination is not a channel change.
        assert_eq!(s.check_send(&p, 7, Channel::Voice), None);
        let s = SessionState::after_send(Some(&s), &p, 8, Channel::Sms, t);
        assert_eq!(s.destination_changes, 1);
        assert_eq!(
            s.check_send(&p, 8, Channel::Sms),
            None,
            "the new number again is fine"
        );
        assert_eq!(
            s.check_send(&p, 7, Channel::Sms),
            Some(SessionFinding::DestinationChange)
        );
    }

    #[test]
    fn wrong_codes_and_expiry() {
        let (p, t) = (p(), 1000 * S);
        let mut s = SessionState::after_send(None, &p, 7, Channel::Sms, t);
        for _ in 0..2 {
            s = SessionState::after_wrong_code(Some(&s), &p, t);
            assert_eq!(s.check_verify(&p, t), None);
        }
        s = SessionState::after_wrong_code(Some(&s), &p, t);
        assert_eq!(s.check_verify(&p, t), Some(SessionFinding::CodeAttempts));
        // A new code: attempts start over.
        s = SessionState::after_send(Some(&s), &p, 7, Channel::Sms, t + 60 * S);
        assert_eq!(s.check_verify(&p, t + 60 * S), None);
        assert_eq!(s.check_verify(&p, t + 359 * S), None);
        assert_eq!(
            s.check_verify(&p, t + 360 * S),
            Some(SessionFinding::CodeExpired)
        );
    }

    #[test]
    fn idle_sessions_are_gone() {
        let (p, t) = (p(), 1000 * S);
        let s = SessionState::after_send(None, &p, 7, Channel::Sms, t);
        assert!(SessionState::live(Some(&s), t + 1799 * S).is_some());
        assert!(SessionState::live(Some(&s), t + 1800 * S).is_none());
        let fresh = SessionState::after_send(Some(&s), &p, 9, Channel::Email, t + 1800 * S);
        assert_eq!((fresh.sends, fresh.destination_changes), (1, 0));
    }
}
