//! The HTTP feed puller (being written).
