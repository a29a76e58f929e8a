//! The link between a table's owned object, its zero-copy reader and its verifier.

use flatbuffers::{Allocator, FlatBufferBuilder, Follow, Verifiable, WIPOffset};

/// Implemented by rpcgen for the owned object type of every table (`MonsterT` for table
/// `Monster`), so runtime code (message buffers, service dispatch, clients) can be generic over
/// messages.
pub trait Table: Clone + Default + Send + Sync + 'static {
    /// The zero-copy reader, `Monster<'a>`.
    type Reader<'a>: Follow<'a, Inner = Self::Reader<'a>> + Verifiable + Copy;

    /// The table's fully qualified schema name, `my.game.Monster`.
    const NAME: &'static str;

    /// Copies everything the reader can see into an owned object.
    fn unpack(reader: Self::Reader<'_>) -> Self;

    /// Writes the object into `fbb` and returns the offset of the table (not finished).
    fn pack<'b, A: Allocator + 'b>(
        &self,
        fbb: &mut FlatBufferBuilder<'b, A>,
    ) -> WIPOffset<Self::Reader<'b>>;
}
