//! alc-kernels
