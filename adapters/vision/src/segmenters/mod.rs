//! Promptable segmenters: SAM, SAM-HQ (TinyViT and ViT-B) and MobileSAM.
