//! The run's shared vocabulary: plain data that the stages produce and the
//! report shows, with no imports from the stages themselves.

pub mod progress;
