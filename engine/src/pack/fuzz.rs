//! The evidence-pack fuzz body (placeholder, filled below).
