//! alc-engine
