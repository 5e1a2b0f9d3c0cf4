//! Degradation checks, history and health, version comparison over stored samples.
