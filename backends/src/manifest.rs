//! The static-pod manifest patcher (to be written).
