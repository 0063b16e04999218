//! The catalogue of models this build knows: id, Hugging Face repository and files, approximate
//! download size, licence, and whether the weights are already in a cache.
//!
//! Sizes are the f32 checkpoints' sizes, rounded (they are shown to users before a download, not
//! checked). Revisions are `main`; the hub resolves them to a commit on first download, which
//! `refs/main` in the cache then remembers.

use super::hub::HubCache;

/// What a model does in the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// An image encoder (patch features).
    Encoder,
    /// A promptable segmenter.
    Segmenter,
}

/// One downloadable model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// Stable id used in configurations and the API, e.g. `dinov3_small`.
    pub id: &'static str,
    pub kind: ModelKind,
    /// A short human description.
    pub name: &'static str,
    /// Hugging Face repository, `org/name`.
    pub repo: &'static str,
    pub revision: &'static str,
    /// Files to fetch from the repository.
    pub files: &'static [&'static str],
    /// Approximate download size in bytes.
    pub size_bytes: u64,
    /// SPDX id or the licence's name.
    pub licence: &'static str,
    /// The repository asks users to accept its licence first (an `HF_TOKEN` is needed).
    pub gated: bool,
}

impl ModelSpec {
    /// Whether every file of the model is in the hub-layout cache at `cache_dir`.
    pub fn present_locally(&self, cache_dir: &std::path::Path) -> bool {
        HubCache::new(cache_dir).contains(self.repo, self.revision, self.files)
    }
}

const HF_FILES: &[&str] = &["config.json", "model.safetensors"];
const MB: u64 = 1_000_000;

const CATALOGUE: &[ModelSpec] = &[
    ModelSpec {
        id: "dinov3_small",
        kind: ModelKind::Encoder,
        name: "DINOv3 ViT-S/16 (the reference's default size class at 512 px)",
        repo: "facebook/dinov3-vits16-pretrain-lvd1689m",
        revision: "main",
        files: HF_FILES,
        size_bytes: 86 * MB,
        licence: "DINOv3 License",
        gated: true,
    },
    ModelSpec {
        id: "dinov3_base",
        kind: ModelKind::Encoder,
        name: "DINOv3 ViT-B/16",
        repo: "facebook/dinov3-vitb16-pretrain-lvd1689m",
        revision: "main",
        files: HF_FILES,
        size_bytes: 343 * MB,
        licence: "DINOv3 License",
        gated: true,
    },
    ModelSpec {
        id: "dinov3_large",
        kind: ModelKind::Encoder,
        name: "DINOv3 ViT-L/16 (the reference library's default encoder)",
        repo: "facebook/dinov3-vitl16-pretrain-lvd1689m",
        revision: "main",
        files: HF_FILES,
        size_bytes: 1_213 * MB,
        licence: "DINOv3 License",
        gated: true,
    },
    ModelSpec {
        id: "dinov2_small",
        kind: ModelKind::Encoder,
        name: "DINOv2 ViT-S/14",
        repo: "facebook/dinov2-small",
        revision: "main",
        files: HF_FILES,
        size_bytes: 88 * MB,
        licence: "Apache-2.0",
        gated: false,
    },
    ModelSpec {
        id: "dinov2_base",
        kind: ModelKind::Encoder,
        name: "DINOv2 ViT-B/14",
        repo: "facebook/dinov2-base",
        revision: "main",
        files: HF_FILES,
        size_bytes: 346 * MB,
        licence: "Apache-2.0",
        gated: false,
    },
    ModelSpec {
        id: "dinov2_small_registers",
        kind: ModelKind::Encoder,
        name: "DINOv2 ViT-S/14 with registers",
        repo: "facebook/dinov2-with-registers-small",
        revision: "main",
        files: HF_FILES,
        size_bytes: 88 * MB,
        licence: "Apache-2.0",
        gated: false,
    },
    ModelSpec {
        id: "dinov2_base_registers",
        kind: ModelKind::Encoder,
        name: "DINOv2 ViT-B/14 with registers",
        repo: "facebook/dinov2-with-registers-base",
        revision: "main",
        files: HF_FILES,
        size_bytes: 346 * MB,
        licence: "Apache-2.0",
        gated: false,
    },
    ModelSpec {
        id: "sam_hq_tiny",
        kind: ModelKind::Segmenter,
        name: "SAM-HQ tiny (TinyViT-5M encoder, HQ decoder; the reference's default segmenter)",
        repo: "lkeab/hq-sam",
        revision: "main",
        files: &["sam_hq_vit_tiny.pth"],
        size_bytes: 43 * MB,
        licence: "Apache-2.0",
        gated: false,
    },
    ModelSpec {
        id: "sam_hq_vit_b",
        kind: ModelKind::Segmenter,
        name: "SAM-HQ ViT-B",
        repo: "lkeab/hq-sam",
        revision: "main",
        files: &["sam_hq_vit_b.pth"],
        size_bytes: 379 * MB,
        licence: "Apache-2.0",
        gated: false,
    },
    ModelSpec {
        id: "sam_hq_vit_l",
        kind: ModelKind::Segmenter,
        name: "SAM-HQ ViT-L",
        repo: "lkeab/hq-sam",
        revision: "main",
        files: &["sam_hq_vit_l.pth"],
        size_bytes: 1_250 * MB,
        licence: "Apache-2.0",
        gated: false,
    },
    ModelSpec {
        id: "sam_hq_vit_h",
        kind: ModelKind::Segmenter,
        name: "SAM-HQ ViT-H",
        repo: "lkeab/hq-sam",
        revision: "main",
        files: &["sam_hq_vit_h.pth"],
        size_bytes: 2_570 * MB,
        licence: "Apache-2.0",
        gated: false,
    },
    ModelSpec {
        id: "sam_vit_b",
        kind: ModelKind::Segmenter,
        name: "SAM ViT-B (original checkpoint)",
        repo: "ybelkada/segment-anything",
        revision: "main",
        files: &["checkpoints/sam_vit_b_01ec64.pth"],
        size_bytes: 375 * MB,
        licence: "Apache-2.0",
        gated: false,
    },
    ModelSpec {
        id: "mobile_sam",
        kind: ModelKind::Segmenter,
        name: "MobileSAM (TinyViT-5M encoder, SAM decoder)",
        repo: "dhkim2810/MobileSAM",
        revision: "main",
        files: &["mobile_sam.pt"],
        size_bytes: 40 * MB,
        licence: "Apache-2.0",
        gated: false,
    },
];

/// Every model this build knows.
pub fn catalogue() -> &'static [ModelSpec] {
    CATALOGUE
}

/// The model with id `id`.
pub fn find(id: &str) -> Option<&'static ModelSpec> {
    CATALOGUE.iter().find(|m| m.id == id)
}
