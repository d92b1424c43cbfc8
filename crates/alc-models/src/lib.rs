//! alc-models
