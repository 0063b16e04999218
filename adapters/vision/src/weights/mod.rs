//! Where model weights come from: local folders, `.pth` checkpoints, the Hugging Face hub cache.
