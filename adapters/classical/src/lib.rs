//! The weights-free classical detector (to be written).
