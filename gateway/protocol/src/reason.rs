//! Why a connection closes: the reason code of a GOAWAY frame.

use std::fmt;

/// A GOAWAY reason code (`u16` on the wire).
///
/// A newtype over the number rather than an enum, so that a reason added by a newer peer survives
/// decoding unchanged; such a reason has no [`name`](GoawayReason::name), and the receiver relies
/// on the frame's reconnect flag, which every GOAWAY carries for exactly that case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GoawayReason(pub u16);

impl GoawayReason {
    /// The server is stopping (reconnect: another gateway, or this one once restarted).
    pub const SHUTTING_DOWN: GoawayReason = GoawayReason(1);
    /// Nothing was received for longer than the idle timeout (reconnect when there is work).
    pub const IDLE_TIMEOUT: GoawayReason = GoawayReason(2);
    /// HELLO did not arrive in time.
    pub const HANDSHAKE_TIMEOUT: GoawayReason = GoawayReason(3);
    /// The peer sent something this protocol does not allow.
    pub const PROTOCOL_ERROR: GoawayReason = GoawayReason(4);
    /// The peer sent a frame larger than the receiver's maximum frame size.
    pub const FRAME_TOO_LARGE: GoawayReason = GoawayReason(5);
    /// The server speaks no version the client offered.
    pub const UNSUPPORTED_VERSION: GoawayReason = GoawayReason(6);
    /// The credentials were missing or rejected.
    pub const UNAUTHENTICATED: GoawayReason = GoawayReason(7);
    /// The credentials expired (reconnect with a fresh token).
    pub const TOKEN_EXPIRED: GoawayReason = GoawayReason(8);
    /// The client did not read its replies or events fast enough (reconnect).
    pub const SLOW_CONSUMER: GoawayReason = GoawayReason(9);
    /// The server is at its connection limit (reconnect, preferably elsewhere).
    pub const TOO_MANY_CONNECTIONS: GoawayReason = GoawayReason(10);
    /// An operator's decision (a banned client, a drained tenant): don't reconnect.
    pub const POLICY: GoawayReason = GoawayReason(11);
    /// From a client: it has sent its last request and wants the answers to those in flight; the
    /// server answers them, then closes.
    pub const DONE: GoawayReason = GoawayReason(12);

    /// Every reason version 1 defines, in numeric order.
    pub const ALL: [GoawayReason; 12] = [
        GoawayReason::SHUTTING_DOWN,
        GoawayReason::IDLE_TIMEOUT,
        GoawayReason::HANDSHAKE_TIMEOUT,
        GoawayReason::PROTOCOL_ERROR,
        GoawayReason::FRAME_TOO_LARGE,
        GoawayReason::UNSUPPORTED_VERSION,
        GoawayReason::UNAUTHENTICATED,
        GoawayReason::TOKEN_EXPIRED,
        GoawayReason::SLOW_CONSUMER,
        GoawayReason::TOO_MANY_CONNECTIONS,
        GoawayReason::POLICY,
        GoawayReason::DONE,
    ];

    /// The snake_case name the spec, logs and metrics use, or `None` for a number version 1 does
    /// not define.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self {
            GoawayReason::SHUTTING_DOWN => "shutting_down",
            GoawayReason::IDLE_TIMEOUT => "idle_timeout",
            GoawayReason::HANDSHAKE_TIMEOUT => "handshake_timeout",
            GoawayReason::PROTOCOL_ERROR => "protocol_error",
            GoawayReason::FRAME_TOO_LARGE => "frame_too_large",
            GoawayReason::UNSUPPORTED_VERSION => "unsupported_version",
            GoawayReason::UNAUTHENTICATED => "unauthenticated",
            GoawayReason::TOKEN_EXPIRED => "token_expired",
            GoawayReason::SLOW_CONSUMER => "slow_consumer",
            GoawayReason::TOO_MANY_CONNECTIONS => "too_many_connections",
            GoawayReason::POLICY => "policy",
            GoawayReason::DONE => "done",
            _ => return None,
        })
    }

    /// Whether a sender sets the reconnect flag for this reason: the condition is about this
    /// connection or this moment, not about the client, so a new connection can succeed.
    pub const fn reconnect_by_default(self) -> bool {
        matches!(
            self,
            GoawayReason::SHUTTING_DOWN
                | GoawayReason::IDLE_TIMEOUT
                | GoawayReason::TOKEN_EXPIRED
                | GoawayReason::SLOW_CONSUMER
                | GoawayReason::TOO_MANY_CONNECTIONS
        )
    }
}

impl fmt::Display for GoawayReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "reason {}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_numbered_from_one_in_order_and_named() {
        for (i, reason) in GoawayReason::ALL.iter().enumerate() {
            assert_eq!(usize::from(reason.0), i + 1);
            assert!(reason.name().is_some());
        }
        assert_eq!(GoawayReason(0).name(), None);
        assert_eq!(GoawayReason(13).name(), None);
    }

    #[test]
    fn only_transient_reasons_advise_reconnecting() {
        let reconnect: Vec<_> = GoawayReason::ALL
            .into_iter()
            .filter(|r| r.reconnect_by_default())
            .filter_map(GoawayReason::name)
            .collect();
        assert_eq!(
            reconnect,
            [
                "shutting_down",
                "idle_timeout",
                "token_expired",
                "slow_consumer",
                "too_many_connections"
            ]
        );
    }

    #[test]
    fn display_names_known_reasons_and_numbers_unknown_ones() {
        assert_eq!(GoawayReason::FRAME_TOO_LARGE.to_string(), "frame_too_large");
        assert_eq!(GoawayReason(300).to_string(), "reason 300");
    }
}
