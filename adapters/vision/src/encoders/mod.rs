//! Image encoders: DINOv2 (with and without registers) and DINOv3 vision transformers.
