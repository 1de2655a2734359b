//! One colour per thread state, shared by every output so a state looks the same everywhere.

use crate::model::ThreadState;

/// How a state is drawn.
#[derive(Debug, Clone, Copy)]
pub struct StateStyle {
    /// Letter used where there is no colour.
    pub glyph: char,
    /// `#rrggbb` for SVG, HTML and flame graphs.
    pub hex: &'static str,
    /// ANSI SGR colour for the terminal.
    pub ansi: &'static str,
    /// A reserved colour name of the Chrome trace viewer.
    pub chrome: &'static str,
    /// Human label.
    pub label: &'static str,
}

pub fn style(state: ThreadState) -> StateStyle {
    let (glyph, hex, ansi, chrome, label) = match state {
        ThreadState::Gil => ('G', "#d62728", "31", "terrible", "holds the GIL"),
        ThreadState::GilWait => ('w', "#f2b01e", "33", "yellow", "waits for the GIL"),
        ThreadState::Handoff => ('h', "#ff7f0e", "91", "bad", "passes the GIL on"),
        ThreadState::Native => ('N', "#2ca02c", "32", "good", "native, GIL released"),
        ThreadState::Io => ('i', "#1f77b4", "34", "rail_load", "I/O"),
        ThreadState::Sleep => ('s', "#17becf", "36", "thread_state_sleeping", "sleep"),
        ThreadState::Lock => ('l', "#9467bd", "35", "rail_animation", "waits on a lock"),
        ThreadState::ObjectLock => ('o', "#e377c2", "95", "olive", "waits for an object's lock"),
        ThreadState::Idle => ('.', "#b0b0b0", "90", "grey", "idle"),
        ThreadState::Unknown => ('?', "#e0e0e0", "90", "white", "unknown"),
    };
    StateStyle {
        glyph,
        hex,
        ansi,
        chrome,
        label,
    }
}

/// `(r, g, b)` of a `#rrggbb` colour.
pub fn rgb(hex: &str) -> (u8, u8, u8) {
    let channel = |i: usize| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("00"), 16).unwrap_or(0);
    (channel(1), channel(3), channel(5))
}
