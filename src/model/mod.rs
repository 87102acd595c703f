//! The shared vocabulary every stage speaks, with no dependencies of its
//! own on them: findings and signals, progress and verdicts, timeline
//! samples. Data flows one way through the stages; what they hand each other
//! is defined here.

pub mod finding;
pub mod progress;
pub mod timeline;

pub use finding::{Cause, Finding, Signal};
pub use progress::{Progress, Timers, Verdict};
pub use timeline::{Mark, Phase, Sample};
