//! Positional numeric arguments of the benchmark examples.

/// The first `N` command-line arguments as numbers, each one missing or not a
/// number replaced by its default.
pub fn positional<const N: usize>(defaults: [usize; N]) -> [usize; N] {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::array::from_fn(|i| {
        args.get(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or(defaults[i])
    })
}
