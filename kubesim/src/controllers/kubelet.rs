//! TODO: kubelet controller.

use super::Next;
use crate::Sim;

pub fn reconcile(_sim: &Sim) -> Next {
    Next::default()
}

/// Per-pod runtime state the kubelet keeps outside the API objects.
#[derive(Debug, Default)]
pub struct KubeletState {}
