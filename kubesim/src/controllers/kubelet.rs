//! TODO: kubelet controller.

use super::Next;
use crate::Sim;

pub fn reconcile(_sim: &Sim) -> Next {
    Next::default()
}
