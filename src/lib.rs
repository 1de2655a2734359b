//! gilscope: why are your Python threads not faster?
//!
//! The data flows one way: [`target`] → [`sampler`] → [`model::Record`]s (optionally to a
//! [`recording`]) → [`analysis`] → [`diagnosis`] → [`report`] → [`render`]; [`diff`] compares two
//! reports.

pub mod agent;
pub mod analysis;
pub mod app;
pub mod bench;
pub mod classify;
pub mod cli;
pub mod diagnosis;
pub mod diff;
pub mod error;
pub mod gate;
pub mod known_frames;
pub mod model;
pub mod options;
pub mod output;
pub mod progress;
pub mod push;
pub mod recording;
pub mod render;
pub mod report;
pub mod sampler;
pub mod session;
pub mod target;
pub mod top;
pub mod words;
