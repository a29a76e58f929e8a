//! The one status type every failure travels as, from a service through the gateway to a client.
//!
//! Codes and numbers are gRPC's, so anyone who knows gRPC knows what they mean. Each status also
//! says whether retrying the same call can help (`retryable`), so clients don't have to guess
//! from the code, and may carry the stable id of an application error declared in a `.service`
//! file (`error DeviceNotFound: not_found;`).

use std::borrow::Cow;
use std::fmt;

/// A status code, numbered as gRPC numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Code {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl Code {
    /// Every code, in numeric order.
    pub const ALL: [Code; 17] = [
        Code::Ok,
        Code::Cancelled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
    ];

    /// The code with this number; numbers this version does not know map to `Unknown`, so a
    /// newer peer never makes an older one fail to decode.
    pub fn from_u8(n: u8) -> Code {
        Code::ALL.get(n as usize).copied().unwrap_or(Code::Unknown)
    }

    /// The snake_case name used in service files, docs and metrics (`not_found`).
    pub const fn name(self) -> &'static str {
        match self {
            Code::Ok => "ok",
            Code::Cancelled => "cancelled",
            Code::Unknown => "unknown",
            Code::InvalidArgument => "invalid_argument",
            Code::DeadlineExceeded => "deadline_exceeded",
            Code::NotFound => "not_found",
            Code::AlreadyExists => "already_exists",
            Code::PermissionDenied => "permission_denied",
            Code::ResourceExhausted => "resource_exhausted",
            Code::FailedPrecondition => "failed_precondition",
            Code::Aborted => "aborted",
            Code::OutOfRange => "out_of_range",
            Code::Unimplemented => "unimplemented",
            Code::Internal => "internal",
            Code::Unavailable => "unavailable",
            Code::DataLoss => "data_loss",
            Code::Unauthenticated => "unauthenticated",
        }
    }

    /// Whether retrying can help when nothing more specific is known: the server was unreachable
    /// or busy (`unavailable`, `resource_exhausted`), or a conflict made it give up (`aborted`).
    pub const fn retryable_by_default(self) -> bool {
        matches!(self, Code::Unavailable | Code::ResourceExhausted | Code::Aborted)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed call: a code, a message for humans, whether to retry, and optionally the id of an
/// application error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    code: Code,
    message: Cow<'static, str>,
    retryable: bool,
    error_id: u32,
}

impl Status {
    /// A status with `code`'s default retryability and no application error.
    pub fn new(code: Code, message: impl Into<Cow<'static, str>>) -> Status {
        Status {
            code,
            message: message.into(),
            retryable: code.retryable_by_default(),
            error_id: 0,
        }
    }

    pub fn code(&self) -> Code {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the same call, sent again, can succeed.
    pub fn retryable(&self) -> bool {
        self.retryable
    }

    /// The stable id of the application error this status carries, or 0.
    pub fn error_id(&self) -> u32 {
        self.error_id
    }

    /// Overrides whether retrying can help.
    pub fn with_retryable(mut self, retryable: bool) -> Status {
        self.retryable = retryable;
        self
    }

    /// Attaches an application error id (generated code does this for declared errors).
    pub fn with_error_id(mut self, error_id: u32) -> Status {
        self.error_id = error_id;
        self
    }

    pub fn cancelled(message: impl Into<Cow<'static, str>>) -> Status {
        Status::new(Code::Cancelled, message)
    }

    pub fn invalid_argument(message: impl Into<Cow<'static, str>>) -> Status {
        Status::new(Code::InvalidArgument, message)
    }

    pub fn deadline_exceeded(message: impl Into<Cow<'static, str>>) -> Status {
        Status::new(Code::DeadlineExceeded, message)
    }

    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Status {
        Status::new(Code::NotFound, message)
    }

    pub fn resource_exhausted(message: impl Into<Cow<'static, str>>) -> Status {
        Status::new(Code::ResourceExhausted, message)
    }

    pub fn unimplemented(message: impl Into<Cow<'static, str>>) -> Status {
        Status::new(Code::Unimplemented, message)
    }

    pub fn internal(message: impl Into<Cow<'static, str>>) -> Status {
        Status::new(Code::Internal, message)
    }

    pub fn unavailable(message: impl Into<Cow<'static, str>>) -> Status {
        Status::new(Code::Unavailable, message)
    }

    pub fn permission_denied(message: impl Into<Cow<'static, str>>) -> Status {
        Status::new(Code::PermissionDenied, message)
    }

    pub fn unauthenticated(message: impl Into<Cow<'static, str>>) -> Status {
        Status::new(Code::Unauthenticated, message)
    }

    pub fn data_loss(message: impl Into<Cow<'static, str>>) -> Status {
        Status::new(Code::DataLoss, message)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if self.error_id != 0 {
            write!(f, " (error {:#010x})", self.error_id)?;
        }
        Ok(())
    }
}

impl std::error::Error for Status {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_their_numbers() {
        for code in Code::ALL {
            assert_eq!(Code::from_u8(code as u8), code);
        }
        assert_eq!(Code::from_u8(17), Code::Unknown);
        assert_eq!(Code::from_u8(255), Code::Unknown);
    }

    #[test]
    fn retryability_defaults_follow_the_code_and_can_be_overridden() {
        assert!(Status::unavailable("down").retryable());
        assert!(Status::resource_exhausted("busy").retryable());
        assert!(!Status::invalid_argument("bad").retryable());
        assert!(!Status::unavailable("disabled by operator").with_retryable(false).retryable());
    }

    #[test]
    fn display_names_code_message_and_error() {
        let status = Status::not_found("no device 7").with_error_id(0xdead_beef);
        assert_eq!(status.to_string(), "not_found: no device 7 (error 0xdeadbeef)");
    }
}
