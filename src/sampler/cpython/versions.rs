//! The CPython releases gilscope is tested on, written once. From 3.13 an interpreter describes
//! its own structures (`_Py_DebugOffsets`, [`super::debug_offsets`]), so a new release needs
//! only this range widened and its tests; the releases before 3.13 have fixed offsets, one
//! entry per minor version in each reader's table: the GIL's place ([`super::gil`]), the frame
//! layout ([`super::layout`]) and the collector's flag ([`super::gc`]).

use std::ops::RangeInclusive;

/// The minor versions of CPython 3 whose default build the tests run.
pub const TESTED_MINORS: RangeInclusive<u64> = 8..=15;

/// The minor versions whose free-threaded build the tests run (3.13t).
pub const TESTED_FREE_THREADED_MINORS: [u64; 1] = [13];
