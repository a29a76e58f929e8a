//! A verified FlatBuffers message that owns its bytes.
//!
//! Readers generated for a table borrow the buffer they read (`Monster<'a>`), which makes them
//! awkward to hold across `.await`. A [`Message<T>`] owns the buffer as [`Bytes`] (cheap to clone
//! and to pass through channels), is verified once when it is made, and hands out readers on
//! demand: the payload is never copied or re-encoded between the socket and the service.

use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;
use flatbuffers::{FlatBufferBuilder, InvalidFlatbuffer, VerifierOptions};

use crate::table::Table;

/// The encoded buffer of a table `T` (identified by its owned type, e.g. `Message<MonsterT>`),
/// known to pass the verifier.
pub struct Message<T: Table> {
    bytes: Bytes,
    _table: PhantomData<fn() -> T>,
}

impl<T: Table> Message<T> {
    /// Verifies `bytes` as a buffer whose root is `T`, with the verifier's default limits.
    ///
    /// # Errors
    ///
    /// The verifier's description of the first problem found.
    pub fn from_bytes(bytes: Bytes) -> Result<Message<T>, InvalidFlatbuffer> {
        Message::from_bytes_with(bytes, &VerifierOptions::default())
    }

    /// Verifies `bytes` with explicit limits (depth, table count, size).
    ///
    /// # Errors
    ///
    /// The verifier's description of the first problem found.
    pub fn from_bytes_with(
        bytes: Bytes,
        options: &VerifierOptions,
    ) -> Result<Message<T>, InvalidFlatbuffer> {
        flatbuffers::root_with_opts::<T::Reader<'_>>(options, &bytes)?;
        Ok(Message { bytes, _table: PhantomData })
    }

    /// Wraps `bytes` without verifying them.
    ///
    /// # Safety
    ///
    /// `bytes` must be a valid buffer whose root is `T` (for example one this process built),
    /// because [`Message::get`] reads it without bounds checks.
    pub unsafe fn from_bytes_unchecked(bytes: Bytes) -> Message<T> {
        Message { bytes, _table: PhantomData }
    }

    /// Encodes `value` into a new buffer.
    pub fn pack(value: &T) -> Message<T> {
        let mut fbb = FlatBufferBuilder::new();
        let root = value.pack(&mut fbb);
        fbb.finish_minimal(root);
        let (buf, head) = fbb.collapse();
        let mut bytes = Bytes::from(buf);
        let bytes = bytes.split_off(head);
        // SAFETY: the builder just wrote a complete buffer whose root is `T`.
        unsafe { Message::from_bytes_unchecked(bytes) }
    }

    /// The zero-copy reader of the root table.
    pub fn get(&self) -> T::Reader<'_> {
        // SAFETY: every constructor either verified the buffer or has the caller promise it is
        // valid; the reader borrows `self.bytes`, which lives as long as the borrow of `self`.
        unsafe { flatbuffers::root_unchecked::<T::Reader<'_>>(&self.bytes) }
    }

    /// Copies the message into its owned object.
    pub fn unpack(&self) -> T {
        T::unpack(self.get())
    }

    /// The encoded buffer.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }
}

impl<T: Table> Clone for Message<T> {
    fn clone(&self) -> Self {
        Message { bytes: self.bytes.clone(), _table: PhantomData }
    }
}

impl<T: Table> From<T> for Message<T> {
    fn from(value: T) -> Message<T> {
        Message::pack(&value)
    }
}

impl<T: Table> From<&T> for Message<T> {
    fn from(value: &T) -> Message<T> {
        Message::pack(value)
    }
}

impl<T: Table> fmt::Debug for Message<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Message<{}>({} bytes)", T::NAME, self.bytes.len())
    }
}
