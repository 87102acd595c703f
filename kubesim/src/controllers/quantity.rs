//! TODO: Kubernetes resource quantities.
