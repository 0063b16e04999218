//! WebRTC live view: annotated video track and a predictions data channel for browsers.
