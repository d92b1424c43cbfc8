//! `ALC_FUZZ_VERBOSE=1` makes a target print why each input was accepted or refused
//! (for checking that seeds reach the code behind the parser; slow, not for fuzzing).

use std::sync::OnceLock;

pub fn on() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("ALC_FUZZ_VERBOSE").is_some())
}

macro_rules! say {
    ($($t:tt)*) => {
        if crate::verbose::on() {
            eprintln!($($t)*);
        }
    };
}
pub(crate) use say;
