//! The handle table: every handle given out (C pointer or Java `long`) is a number
//! registered here, never the address of an object. A lookup checks that the number is
//! live and of the expected kind, so NULL, a freed handle, a double free or a handle
//! of another kind is an error status rather than undefined behaviour. Numbers are
//! never reused within a process (a 64-bit counter; on 32-bit targets it would wrap
//! after about 2^28 handles).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use crate::error::{CapiError, Result};
use crate::objects::{ModelObj, SessionObj, StreamObj};

/// A registered object.
#[derive(Clone)]
pub enum Obj {
    Model(Arc<ModelObj>),
    Session(Arc<SessionObj>),
    Stream(Arc<StreamObj>),
}

impl Obj {
    fn kind(&self) -> &'static str {
        match self {
            Obj::Model(_) => "model",
            Obj::Session(_) => "session",
            Obj::Stream(_) => "stream",
        }
    }
}

struct Table {
    next: usize,
    live: HashMap<usize, Obj>,
}

/// Handles step by 16 from an odd-looking base so that they look like aligned
/// pointers to C but small integers and typical heap addresses are not live handles.
const BASE: usize = 0x0A1C_0000;
const STEP: usize = 16;

static TABLE: LazyLock<Mutex<Table>> = LazyLock::new(|| {
    Mutex::new(Table {
        next: BASE,
        live: HashMap::new(),
    })
});

fn table() -> MutexGuard<'static, Table> {
    // The table holds only Arcs: a panic elsewhere cannot leave it half-updated.
    TABLE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Register an object; the returned number is its handle (never 0).
pub fn insert(obj: Obj) -> usize {
    let mut t = table();
    let mut h = t.next;
    while h == 0 || t.live.contains_key(&h) {
        h = h.wrapping_add(STEP);
    }
    t.next = h.wrapping_add(STEP);
    t.live.insert(h, obj);
    h
}

fn bad(kind: &'static str, handle: usize) -> CapiError {
    CapiError::Handle { kind, handle }
}

pub fn get(handle: usize) -> Option<Obj> {
    table().live.get(&handle).cloned()
}

pub fn model(handle: usize) -> Result<Arc<ModelObj>> {
    match get(handle) {
        Some(Obj::Model(m)) => Ok(m),
        _ => Err(bad("model", handle)),
    }
}

pub fn session(handle: usize) -> Result<Arc<SessionObj>> {
    match get(handle) {
        Some(Obj::Session(s)) => Ok(s),
        _ => Err(bad("session", handle)),
    }
}

pub fn stream(handle: usize) -> Result<Arc<StreamObj>> {
    match get(handle) {
        Some(Obj::Stream(s)) => Ok(s),
        _ => Err(bad("stream", handle)),
    }
}

/// Unregister a handle of the given kind ("model", "session", "stream"). The object
/// itself is dropped when the last call using it returns.
pub fn remove(handle: usize, kind: &'static str) -> Result<Obj> {
    let mut t = table();
    match t.live.get(&handle) {
        Some(o) if o.kind() == kind => Ok(t.live.remove(&handle).expect("present")),
        _ => Err(bad(kind, handle)),
    }
}

/// Live handles of each kind (models, sessions, streams), for leak tests.
pub fn live_counts() -> (usize, usize, usize) {
    let t = table();
    let mut c = (0, 0, 0);
    for o in t.live.values() {
        match o {
            Obj::Model(_) => c.0 += 1,
            Obj::Session(_) => c.1 += 1,
            Obj::Stream(_) => c.2 += 1,
        }
    }
    c
}
