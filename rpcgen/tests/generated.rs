//! Compiles the code in `tests/golden/*.rs` (kept up to date by `tests/golden.rs`) and checks
//! its behaviour: owned → pack → verify → read → unpack gives back the original, for every
//! feature, plus the fixes over flatc.

#[allow(clippy::all)]
mod monster {
    include!("golden/monster.rs");
}

mod weapons {
    include!("golden/weapons.rs");
}

use gateway_core::flatbuffers::FlatBufferBuilder;
use monster::my::game::*;

fn main_monster() -> MonsterT {
    let mut m = MonsterT::default();
    m.name = "orc".into();
    m
}

#[test]
fn default_round_trip() {
    let m = main_monster();
    let mut fbb = FlatBufferBuilder::new();
    let root = m.pack(&mut fbb);
    finish_monster_buffer(&mut fbb, root);
    let buf = fbb.finished_data();
    let read = root_as_monster(buf).expect("valid buffer");
    assert_eq!(read.unpack(), m);
}

mod names {
    include!("golden/names.rs");
}
