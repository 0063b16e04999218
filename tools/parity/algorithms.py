"""Parity fixtures for visprompt's zero-shot detection (crate `visprompt-vision`, module `detect`).

Runs the three visual-prompt algorithms of the reference library `instantlearn` (Intel Geti
Instant Learn: `Matcher`, `SoftMatcher`, `PerDino`) end to end on small images, with a tiny DINOv3
encoder and the tiny SAM-HQ segmenter fixture in place of the pretrained models, and writes every
stage's values so that each Rust stage can be checked on its own.

The reference library is not on PyPI: clone the public repository
github.com/open-edge-platform/geti-instant-learn, check out commit be4ca92 and point
`INSTANTLEARN_SRC` at its `library/src` folder. Importing it needs, besides tools/parity/setup.sh,
these PyPI packages in the parity virtualenv: scipy, opencv-python-headless, openvino, polars,
pycocotools, lvis, requests and sam2 (imported, unused here; its sdist builds without CUDA with
`SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2`).

    INSTANTLEARN_SRC=/path/to/geti-instant-learn/library/src \\
        $PARITY_VENV/bin/python tools/parity/algorithms.py [case ...]

Only the models are replaced; the reference's code runs unchanged:

* encoder: a small `DINOv3ViTModel` (patch 16, hidden 32, 2 layers, 2 heads, MLP 128, 4 registers,
  LayerScale) with seeded random weights (`encoders.randomise`), saved in Hugging Face layout under
  `encoder/` and added to the reference's `AVAILABLE_IMAGE_ENCODERS`, so its own
  `HuggingFaceImageEncoder` loads it through `AutoModel` / `AutoImageProcessor` (fast DINOv3
  processor at 512x512: rescale, antialiased bilinear resize, ImageNet normalisation), in fp32;
* segmenter: the tiny SAM-HQ of `fixtures/segmenters/tiny` (`segmenters.build_tiny` + its
  `model.pth`) wrapped in the reference's `SAMPredictor` the way its constructor does it (its
  ONNX-friendly prompt encoder, its expand-based HQ mask decoder), except that the prompt encoder
  gets this model's `mask_in_chans` (8) where the reference hard-codes 16.

Layout of `adapters/vision/tests/fixtures/algorithms/` (D = 32 feature channels):

    encoder/config.json, model.safetensors, preprocessor_config.json   the tiny DINOv3
    images/<name>.png            RGB inputs from the sample frames (references ref_a 240x180,
                                 ref_b 200x150; crowded targets tgt_a 160x120, tgt_b 208x144),
                                 with Gaussian noise (sigma 20) so that patches do not tie
    images/<name>.<object>.png   reference masks, 8-bit grey 0/255
    features.safetensors         the reference encoder on each image alone:
        <name>.features          f32 [1024, D]   patch tokens without the 1+4 prefix tokens,
                                 L2-normalised (32x32 grid, row-major)
        <name>.pixel_values.s16  f32 [3, 32, 32] the processor's 512x512 input, every 16th row
                                 and column
    lsa.safetensors              SciPy's linear_sum_assignment(maximize=True) through the
                                 reference's wrapper, on matrices with ties:
        lsa.<m>.cost f32 [R, C], lsa.<m>.row_ind i64 [min(R,C)], lsa.<m>.col_ind i64 [min(R,C)]
    postprocess.safetensors      the default post-processor on hand-made masks (scenarios
                                 `mixed`, `all_zero`, `single`):
        post.<s>.masks u8 [N, 40, 56], post.<s>.scores f32 [N], post.<s>.labels i64 [N]
        post.<s>.keep.{score_filter,mask_iom_nms,box_iom_nms}  i64: input indices left after
                                 each step, in output order
        post.<s>.pred_scores f32 [M], .pred_labels i64 [M], .pred_boxes f32 [M, 5]
    cases/<case>/case.json       algorithm, parameters, references (image; masks with category
                                 ids), targets (paths relative to the fixture folder), the chosen
                                 confidence threshold, `prompts_differ_in_float64` (the
                                 (target, category) pairs whose points change when the prompt
                                 stage runs in float64: none), a summary
    cases/<case>/io.safetensors  the stages, below
    versions.json                the package versions that made the files

Keys of `io.safetensors` (T targets, C categories, S = the most reference images one category has
masks on, K = foreground + background points per category, t / c index targets / categories):

    target_sizes                 i64 [T, 2]          (H, W)
    ref.category_ids             i64 [C]             ascending (the order of every C axis)
    ref.embedding_sources        i64 [C, S]          the reference (index into case.json
                                 `references`) whose features.safetensors entry fills each
                                 1024-row block of the category's `ref_embeddings`; -1: zeros
    ref.flatten_ref_masks        f32 [C, S*1024]     pooled masks, 1 - maxpool16(1 - resize512(
                                 mask)), not binarised (in-mask = non-zero), zero-padded alike
    ref.masked_ref_embeddings    f32 [C, 1, D]       mean of all in-mask patches of all shots,
                                 L2-normalised
    prompts.points               f32 [T, C, K, 4]    (x, y, score, label) as the prompt generator
                                 returns them: foreground (1) rows, background (-1) rows, zero rows
    prompts.similarity           f32 [T, C, 32, 32]  the similarity map given to the decoder
    matching.t<t>.c<c>.ref_idx, .target_idx  i64 [M], .scores f32 [M]   Matcher only: the
                                 bidirectional matches before coordinates, grid filter and top-k
    soft.scores                  f32 [T, C, 32, 32]  SoftMatcher only: soft correspondence scores,
                                 exp(mean over in-mask rows of log_softmax(sim / 0.1))
    sam.t<t>.c<c>.pass1.point_coords  f32 [P, 1+B, 2]  the decoder's call of
                                 `SAMPredictor.forward`: one prompt per foreground point, then
                                 every background point; pixels of the target
    sam.t<t>.c<c>.pass1.point_labels  f32 [P, 1+B]     1, then -1 per background point
    sam.t<t>.c<c>.pass1.iou           f32 [P, 1]       best of the 3 multimask IoU predictions
    sam.t<t>.c<c>.pass1.mask_area     i64 [P]          pixels of masks[:, 0] (logits > 0)
    sam.t<t>.c<c>.pass2.boxes f32 [N, 1, 4], .point_coords, .point_labels, .iou, .mask_area
                                 the refinement pass (Matcher with refinement, SoftMatcher) on
                                 the pass-1 masks that are not empty, box = their inclusive bbox
    decoder.t<t>.masks_packed    u8 [min(N, 24), ceil(H*W/8)]  the first 24 decoder masks
                                 before post-processing, H*W row-major bits, MSB first
                                 (numpy.packbits)
    decoder.t<t>.areas           i64 [N]             pixels of every decoder mask
    decoder.t<t>.scores          f32 [N]             with the confidence threshold (<= -> 0)
    decoder.t<t>.raw_scores      f32 [N]             the same masks scored with no threshold
    decoder.t<t>.labels          i64 [N]             category ids
    decoder.t<t>.points          f32 [P, 4]          `pred_points`
    final.t<t>.pred_masks        u8 [M, H, W]        0/1, after the default post-processor
                                 (ScoreFilter(0), MaskIoMNMS(0.5), BoxIoMNMS(0.5))
    final.t<t>.pred_scores f32 [M], .pred_labels i64 [M], .pred_boxes f32 [M, 5] (x1, y1, x2, y2
                                 inclusive pixel indices, score)

Random weights give arbitrary scores, so each case picks its confidence threshold from the scores
it gets without one (`choose_threshold`) and writes it to case.json. The random SAM's masks are
noise over the whole image, so their boxes all cover the image and the box NMS keeps one mask per
target; postprocess.safetensors covers several survivors. The script checks that the threshold
zeroes some positive scores, that NMS removes masks but keeps one per target, that the staged run
equals the reference's own `fit` + `predict`, and that every case's encoder output equals
features.safetensors. It is deterministic: running it again rewrites identical files.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = ROOT / "adapters" / "vision" / "tests" / "fixtures" / "algorithms"
SAM_TINY = ROOT / "adapters" / "vision" / "tests" / "fixtures" / "segmenters" / "tiny"
SAMPLES = ROOT / "adapters" / "media" / "assets" / "sample" / "shapes"

ENCODER_ID = "visprompt_tiny_dinov3"
STORED_DECODER_MASKS = 24  # per target; the rest are checked through their areas and scores
NOISE_SIGMA = 20.0  # grey levels of Gaussian noise on every input image
CIRCLE, SQUARE = 7, 3  # category ids, deliberately not in ascending order of first use


def import_reference():
    src = os.environ.get("INSTANTLEARN_SRC")
    if not src or not (Path(src) / "instantlearn").is_dir():
        sys.exit(
            "INSTANTLEARN_SRC must point at the library/src folder of a clone of "
            "github.com/open-edge-platform/geti-instant-learn (commit be4ca92)"
        )
    sys.path.insert(0, str(Path(src).resolve()))
    sys.path.insert(0, str(HERE))


# ----------------------------------------------------------------------------------------------
# Inputs


def colour_masks(img: np.ndarray) -> dict[str, np.ndarray]:
    """The sample scene's objects by colour: the red striped circle and the blue checked square."""
    a = img.astype(np.int32)
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    return {
        "circle": (r > g + 50) & (r > b + 50),
        "square": (b > r + 40) & (b > g + 20),
    }


def frame(i: int) -> np.ndarray:
    return np.asarray(Image.open(SAMPLES / f"frame_{i:02d}.png").convert("RGB"))


def paste(dst: np.ndarray, src_frame: int, obj: str, y: int, x: int) -> None:
    """Copies the pixels of one object of a sample frame (by its colour mask) to (y, x)."""
    src = frame(src_frame)
    mask = colour_masks(src)[obj]
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    patch = src[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    m = mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    region = dst[y:y + patch.shape[0], x:x + patch.shape[1]]
    assert region.shape == patch.shape, (obj, y, x)
    region[m] = patch[m]


def make_images(dst: Path) -> dict[str, dict]:
    """Writes the inputs; returns name -> {"file", "size_hw", "masks": {object: file}}.

    The tiny SAM's masks are large blobs, so the targets are crowded: with the objects covering
    a third to a half of the image, the mean similarity under a mask has either sign and several
    masks pass a threshold while others do not.
    """
    dst.mkdir(parents=True, exist_ok=True)
    images: dict[str, np.ndarray] = {}
    # references: crops of two frames at their own resolution (240x180 and 200x150)
    images["ref_a"] = frame(0)[60:240, 0:240]
    images["ref_b"] = frame(3)[0:150, 0:200]
    # target a: 160x120 (x = (16*col + 8) * 160/512 always ends in .5: round half to even)
    tgt_a = frame(1)[0:120, 160:320].copy()
    for src, obj, y, x in ((0, "circle", 2, 2), (2, "circle", 2, 108), (4, "circle", 68, 56),
                           (0, "square", 8, 58), (2, "square", 74, 4), (4, "square", 76, 116)):
        paste(tgt_a, src, obj, y, x)
    images["tgt_a"] = tgt_a
    # target b: 208x144, one circle and one square of the frame plus pasted ones
    tgt_b = frame(6)[96:240, 0:208].copy()
    for src, obj, y, x in ((7, "circle", 2, 90), (0, "circle", 92, 85), (2, "circle", 44, 150),
                           (4, "square", 4, 160), (7, "square", 100, 10)):
        paste(tgt_b, src, obj, y, x)
    images["tgt_b"] = tgt_b

    used = {"ref_a": ("circle", "square"), "ref_b": ("circle_top", "circle_bottom")}
    out: dict[str, dict] = {}
    # Sensor-like noise (masks come from the clean pictures): the pasted objects are copies of
    # one texture, and without it many patch pairs match equally well, so that the assignment
    # and the order of the points would hang on the last bit of a dot product.
    rng = np.random.default_rng(7)
    for name, clean in images.items():
        noise = np.round(rng.normal(0.0, NOISE_SIGMA, clean.shape))
        img = np.clip(clean.astype(np.float64) + noise, 0, 255).astype(np.uint8)
        Image.fromarray(img).save(dst / f"{name}.png")
        entry = {"file": f"images/{name}.png", "size_hw": list(img.shape[:2]), "masks": {}}
        if name in used:
            masks = colour_masks(clean)
            circle = masks["circle"]
            rows = np.nonzero(circle.any(axis=1))[0]
            mid = (rows.min() + rows.max() + 1) // 2
            masks["circle_top"], masks["circle_bottom"] = circle.copy(), circle.copy()
            masks["circle_top"][mid:] = False
            masks["circle_bottom"][:mid] = False
            for obj in used[name]:
                Image.fromarray(masks[obj].astype(np.uint8) * 255).save(dst / f"{name}.{obj}.png")
                entry["masks"][obj] = f"images/{name}.{obj}.png"
        out[name] = entry
    return out


# ----------------------------------------------------------------------------------------------
# Models


def make_encoder(dst: Path) -> None:
    import transformers as T
    from encoders import randomise

    if dst.exists():
        shutil.rmtree(dst)
    config = T.DINOv3ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        patch_size=16,
        image_size=512,
        num_register_tokens=4,
        layerscale_value=1.0,
    )
    torch.manual_seed(41)
    model = T.DINOv3ViTModel(config).eval()
    randomise(model, 41)
    model.save_pretrained(dst)
    # what the hub repositories of DINOv3 ship; the reference overrides size and crop
    T.DINOv3ViTImageProcessor().save_pretrained(dst)


def install_models():
    """Registers the tiny encoder and puts a loader of the tiny SAM-HQ predictor in place of the
    reference's `load_sam_model` (which downloads a checkpoint)."""
    from segment_anything_hq.predictor import SamPredictor
    from torch import nn

    import segmenters
    from instantlearn.components.encoders import huggingface
    from instantlearn.components.sam.predictor import PromptEncoder, SAMPredictor
    from instantlearn.data import ResizeLongestSide
    from instantlearn.utils.constants import SAMModelName

    huggingface.AVAILABLE_IMAGE_ENCODERS[ENCODER_ID] = (str(OUT / "encoder"), None)

    def load_tiny_sam(sam, device="cpu", precision="fp32", compile_models=False, **_):
        assert precision == "fp32" and device == "cpu"
        sam_hq, _plain = segmenters.build_tiny()
        state = torch.load(SAM_TINY / "model.pth", map_location="cpu")
        sam_hq.load_state_dict(state, strict=True)
        sam_hq.eval()
        # SAMPredictor.__init__ without the download: same attributes, same patches
        pred = SAMPredictor.__new__(SAMPredictor)
        nn.Module.__init__(pred)
        pred.device = device
        pred._sam_model_name = SAMModelName(sam)
        pred.transform = ResizeLongestSide(1024)
        pred._original_size = None
        pred._predictor = SamPredictor(sam_hq)
        original = pred._predictor.model.prompt_encoder
        patched = PromptEncoder(
            embed_dim=original.embed_dim,
            image_embedding_size=original.image_embedding_size,
            input_image_size=original.input_image_size,
            mask_in_chans=segmenters.TINY["mask_in_chans"],
        )
        patched.load_state_dict(original.state_dict(), strict=True)
        pred._predictor.model.prompt_encoder = patched
        pred._patch_hq_mask_decoder_xpu_repeat()
        SAMPredictor._freeze_modules([
            pred._predictor.model.mask_decoder,
            pred._predictor.model.prompt_encoder,
            pred._predictor.model.image_encoder,
        ])
        return pred

    import instantlearn.models.matcher.matcher as matcher_module
    import instantlearn.models.per_dino.per_dino as per_dino_module

    matcher_module.load_sam_model = load_tiny_sam
    per_dino_module.load_sam_model = load_tiny_sam


# ----------------------------------------------------------------------------------------------
# Recording the SAM passes (a transparent wrapper: inputs and outputs are only copied)


class PassRecorder:
    def __init__(self, predictor) -> None:
        self.events: list[tuple] = []
        self._forward = predictor.forward
        self._set_image = predictor.set_image
        predictor.forward = self.forward
        predictor.set_image = self.set_image

    def set_image(self, image):
        self.events.append(("image", tuple(image.shape[-2:])))
        return self._set_image(image)

    def forward(self, **kw):
        out = self._forward(**kw)
        masks, iou, _low = out
        self.events.append(("forward", {
            "point_coords": kw["point_coords"].detach().clone().float(),
            "point_labels": kw["point_labels"].detach().clone().float(),
            "boxes": None if kw["boxes"] is None else kw["boxes"].detach().clone().float(),
            "iou": iou.detach().clone().float(),
            "mask_area": masks[:, 0].flatten(1).sum(dim=1).to(torch.int64),
        }))
        return out

    def take(self) -> dict[str, torch.Tensor]:
        """The recorded passes as io keys; clears the record."""
        io: dict[str, torch.Tensor] = {}
        t, c = -1, -1
        for kind, val in self.events:
            if kind == "image":
                t, c = t + 1, -1
                continue
            if val["boxes"] is None:
                c += 1
                tag = f"sam.t{t}.c{c}.pass1"
            else:
                tag = f"sam.t{t}.c{c}.pass2"
                io[f"{tag}.boxes"] = val["boxes"].contiguous()
            io[f"{tag}.point_coords"] = val["point_coords"].contiguous()
            io[f"{tag}.point_labels"] = val["point_labels"].contiguous()
            io[f"{tag}.iou"] = val["iou"].contiguous()
            io[f"{tag}.mask_area"] = val["mask_area"].contiguous()
        self.events.clear()
        return io


# ----------------------------------------------------------------------------------------------
# Cases


def build_model(algorithm: str, params: dict, threshold: float):
    from instantlearn.models.matcher import Matcher
    from instantlearn.models.per_dino import PerDino
    from instantlearn.models.soft_matcher import SoftMatcher

    cls = {"Matcher": Matcher, "SoftMatcher": SoftMatcher, "PerDino": PerDino}[algorithm]
    return cls(
        encoder_model=ENCODER_ID,
        precision="fp32",
        device="cpu",
        confidence_threshold=threshold,
        **params,
    )


def samples(images: dict, refs: list[tuple[str, list[tuple[str, int]]]], targets: list[str]):
    from instantlearn.data.base.sample import Sample

    ref_samples = [
        Sample(
            image_path=str(OUT / images[name]["file"]),
            mask_paths=[str(OUT / images[name]["masks"][obj]) for obj, _ in masks],
            categories=[f"category_{cid}" for _, cid in masks],
            category_ids=[cid for _, cid in masks],
            is_reference=[True] * len(masks),
        )
        for name, masks in refs
    ]
    target_samples = [Sample(image_path=str(OUT / images[name]["file"])) for name in targets]
    return ref_samples, target_samples


def staged(model, algorithm: str, ref_samples, target_samples, io: dict, features: dict):
    """`fit` + `predict`, one stage at a time (the same calls in the same order), keeping values."""
    from instantlearn.data.base.batch import Batch

    ref_batch = Batch.collate(ref_samples)
    ref_emb = model.encoder(images=ref_batch.images)
    ref = model.masked_feature_extractor(ref_emb, ref_batch.masks, ref_batch.category_ids)
    model.ref_features = ref

    target_batch = Batch.collate(target_samples)
    sizes = torch.tensor([img.size()[-2:] for img in target_batch.images])
    target_emb = model.encoder(images=target_batch.images)
    features["refs"] = ref_emb.clone()
    features["targets"] = target_emb.clone()

    if algorithm == "PerDino":
        sims = model.similarity_matcher(ref.masked_ref_embeddings, target_emb, ref.category_ids)
        points = model.prompt_generator(sims, ref.category_ids, sizes)
    else:
        points, sims = model.prompt_generator(
            ref.ref_embeddings, ref.masked_ref_embeddings, ref.flatten_ref_masks,
            ref.category_ids, target_emb, sizes,
        )
    decoded = model.segmenter(target_batch.images, ref.category_ids, point_prompts=points, similarities=sims)
    final = model.apply_postprocessing(decoded)

    io["target_sizes"] = sizes.to(torch.int64)
    io["ref.category_ids"] = torch.tensor(ref.category_ids, dtype=torch.int64)
    io["ref.flatten_ref_masks"] = ref.flatten_ref_masks.float().contiguous()
    io["ref.masked_ref_embeddings"] = ref.masked_ref_embeddings.float().contiguous()
    io["prompts.points"] = points.float().contiguous()
    io["prompts.similarity"] = sims.float().contiguous()
    extra_prompt_stages(model, algorithm, ref, features["targets"], io)
    return ref, decoded, final


def extra_prompt_stages(model, algorithm: str, ref, target_emb: torch.Tensor, io: dict) -> None:
    """Values inside the prompt generators, from their own methods on the same inputs."""
    gen = model.prompt_generator
    if algorithm == "Matcher":
        for t in range(target_emb.shape[0]):
            for c in range(len(ref.category_ids)):
                sim = ref.ref_embeddings[c] @ target_emb[t].T
                (ref_idx, tgt_idx), scores = gen._perform_matching(sim, ref.flatten_ref_masks[c])
                io[f"matching.t{t}.c{c}.ref_idx"] = ref_idx.to(torch.int64).contiguous()
                io[f"matching.t{t}.c{c}.target_idx"] = tgt_idx.to(torch.int64).contiguous()
                io[f"matching.t{t}.c{c}.scores"] = scores.float().contiguous()
    elif algorithm == "SoftMatcher":
        out = torch.zeros(target_emb.shape[0], len(ref.category_ids), 32, 32)
        for t in range(target_emb.shape[0]):
            for c in range(len(ref.category_ids)):
                sim = ref.ref_embeddings[c] @ target_emb[t].T
                _, _, soft = gen._perform_soft_matching(
                    mask=ref.flatten_ref_masks[c],
                    similarity_map=sim,
                    use_rff=gen.approximate_matching,
                    ref_features=ref.ref_embeddings[c],
                    target_features=target_emb[t],
                    score_threshold=gen.softmatching_score_threshold,
                    bidirectional=gen.softmatching_bidirectional,
                    use_sampling=gen.use_sampling,
                    use_spatial_sampling=gen.use_spatial_sampling,
                    num_samples=gen.num_foreground_points,
                )
                out[t, c] = soft.reshape(32, 32)
        io["soft.scores"] = out.contiguous()


def rounding_sensitive(model, algorithm: str, ref, target_emb: torch.Tensor, sizes: torch.Tensor,
                       points: torch.Tensor) -> list[list[int]]:
    """The (target, category) pairs whose points change when the prompt stage runs in float64: a
    Rust port that rounds its dot products differently may legitimately differ there."""
    d = {k: v.double() for k, v in (("ref", ref.ref_embeddings), ("masked", ref.masked_ref_embeddings),
                                    ("masks", ref.flatten_ref_masks), ("target", target_emb))}
    if algorithm == "PerDino":
        sims = model.similarity_matcher(d["masked"], d["target"].clone(), ref.category_ids)
        p64 = model.prompt_generator(sims, ref.category_ids, sizes)
    else:
        p64, _ = model.prompt_generator(d["ref"], d["masked"], d["masks"], ref.category_ids, d["target"], sizes)
    return [[t, c] for t in range(points.shape[0]) for c in range(points.shape[1])
            if not torch.equal(points[t, c][:, [0, 1, 3]].double(), p64[t, c][:, [0, 1, 3]])]


def embedding_sources(refs: list[tuple[str, list[tuple[str, int]]]], category_ids: list[int]) -> torch.Tensor:
    per_cat = {cid: [] for cid in category_ids}
    for r, (_, masks) in enumerate(refs):
        for cid in dict.fromkeys(cid for _, cid in masks):
            per_cat[cid].append(r)
    width = max(len(v) for v in per_cat.values())
    return torch.tensor([per_cat[cid] + [-1] * (width - len(per_cat[cid])) for cid in category_ids],
                        dtype=torch.int64)


def choose_threshold(raw: list[torch.Tensor], quantile: float) -> float:
    """A threshold halfway between two neighbouring positive decoder scores (the scores without a
    threshold) such that every target keeps a mask, one target keeps two or more (so NMS has
    something to suppress) and some positive score falls below it (so it bites); of those within
    a quarter of the positive scores from the quantile, the one in the widest gap, so that small
    numerical differences of a port do not move a mask across it."""
    pos = torch.sort(torch.cat(raw)[torch.cat(raw) > 0]).values.tolist()
    candidates = []
    for j in range(1, len(pos)):
        lo, hi = pos[j - 1], pos[j]
        thr = float(f"{(lo + hi) / 2:.3g}")
        if not (lo < thr < hi):
            continue
        kept = [int((r > thr).sum()) for r in raw]
        if min(kept) >= 1 and max(kept) >= 2:
            near = abs(j / len(pos) - quantile) <= 0.25
            candidates.append((near, min(thr - lo, hi - thr), thr))
    assert candidates, f"no usable threshold among {pos}"
    return max(candidates)[2]


def save(io: dict[str, torch.Tensor], path: Path) -> None:
    save_file({k: v.detach().clone().contiguous() for k, v in io.items()}, str(path))


def pack(masks: torch.Tensor) -> torch.Tensor:
    m = masks.bool().flatten(1).numpy()
    return torch.from_numpy(np.packbits(m, axis=1)).contiguous()


def run_case(name: str, spec: dict, images: dict, shared_features: dict) -> dict:
    algorithm, params = spec["algorithm"], spec["params"]
    refs, targets = spec["refs"], spec["targets"]
    ref_samples, target_samples = samples(images, refs, targets)

    # 1. without a threshold: the raw scores, to choose one
    torch.manual_seed(0)
    probe = build_model(algorithm, params, float("-inf"))
    probe_io: dict = {}
    _, probe_decoded, _ = staged(probe, algorithm, ref_samples, target_samples, probe_io, {})
    raw = [d["pred_scores"] for d in probe_decoded]
    threshold = choose_threshold(raw, spec["quantile"])

    # 2. the case itself
    torch.manual_seed(0)
    model = build_model(algorithm, params, threshold)
    recorder = PassRecorder(model.sam_predictor)
    io: dict[str, torch.Tensor] = {}
    feats: dict = {}
    ref, decoded, final = staged(model, algorithm, ref_samples, target_samples, io, feats)
    io.update(recorder.take())
    sensitive = rounding_sensitive(model, algorithm, ref, feats["targets"], io["target_sizes"], io["prompts.points"])
    io["ref.embedding_sources"] = embedding_sources(refs, ref.category_ids)

    # the stored encoder outputs are the shared ones
    for i, (rname, _) in enumerate(refs):
        assert torch.equal(feats["refs"][i], shared_features[f"{rname}.features"]), rname
    for i, tname in enumerate(targets):
        assert torch.equal(feats["targets"][i], shared_features[f"{tname}.features"]), tname

    summary = []
    for t, (d, f, r) in enumerate(zip(decoded, final, raw)):
        assert torch.equal(d["pred_masks"], probe_decoded[t]["pred_masks"])
        io[f"decoder.t{t}.masks_packed"] = pack(d["pred_masks"][:STORED_DECODER_MASKS])
        io[f"decoder.t{t}.areas"] = d["pred_masks"].flatten(1).sum(dim=1).to(torch.int64)
        io[f"decoder.t{t}.scores"] = d["pred_scores"].float().contiguous()
        io[f"decoder.t{t}.raw_scores"] = r.float().contiguous()
        io[f"decoder.t{t}.labels"] = d["pred_labels"].to(torch.int64).contiguous()
        io[f"decoder.t{t}.points"] = d["pred_points"].float().contiguous()
        io[f"final.t{t}.pred_masks"] = f["pred_masks"].to(torch.uint8).contiguous()
        io[f"final.t{t}.pred_scores"] = f["pred_scores"].float().contiguous()
        io[f"final.t{t}.pred_labels"] = f["pred_labels"].to(torch.int64).contiguous()
        io[f"final.t{t}.pred_boxes"] = f["pred_boxes"].float().contiguous()
        pts = io["prompts.points"][t]
        summary.append({
            "target": targets[t],
            "foreground_points": [int((pts[c, :, 3] == 1).sum()) for c in range(pts.shape[0])],
            "decoder_masks": int(d["pred_masks"].shape[0]),
            "above_threshold": int((d["pred_scores"] > 0).sum()),
            "final_masks": int(f["pred_masks"].shape[0]),
            "final_labels": f["pred_labels"].tolist(),
            "final_mean_area": float(f["pred_masks"].flatten(1).sum(1).float().mean())
            if f["pred_masks"].shape[0] else 0.0,
        })

    # the threshold bites and post-processing removes masks, yet every target keeps one
    positive = sum(int((r > 0).sum()) for r in raw)
    assert sum(s["above_threshold"] for s in summary) < positive, name
    assert all(1 <= s["final_masks"] < s["decoder_masks"] for s in summary), name
    assert any(s["above_threshold"] > s["final_masks"] for s in summary), name

    # 3. the reference's own fit + predict give the same final predictions
    torch.manual_seed(0)
    check = build_model(algorithm, params, threshold)
    check.fit(ref_samples)
    predicted = check.predict(target_samples)
    for f, p in zip(final, predicted):
        for key in ("pred_masks", "pred_scores", "pred_labels", "pred_boxes"):
            assert torch.equal(f[key], p[key]), (name, key)

    case_dir = OUT / "cases" / name
    case_dir.mkdir(parents=True, exist_ok=True)
    save(io, case_dir / "io.safetensors")
    case = {
        "algorithm": algorithm,
        "parameters": {
            **spec["defaults"],
            **params,
            "confidence_threshold": threshold,
            "encoder_input_size": 512,
            "precision": "fp32",
            "sam_max_image_side": 1024,
            "max_masks_per_category": 40,
            "postprocessor": ["ScoreFilter(min_score=0.0)", "MaskIoMNMS(iom_threshold=0.5)",
                              "BoxIoMNMS(iom_threshold=0.5)"],
        },
        "confidence_threshold": threshold,
        "threshold_rule": "halfway (3 significant digits) between two neighbouring positive "
                          "scores of the decoder without a threshold, in the widest such gap within "
                          f"a quarter of the scores from the quantile {spec['quantile']}, such that "
                          "every target keeps a mask and one keeps two",
        "references": [
            {
                "image": images[rname]["file"],
                "masks": [{"file": images[rname]["masks"][obj], "category_id": cid} for obj, cid in masks],
            }
            for rname, masks in refs
        ],
        "targets": [images[t]["file"] for t in targets],
        "category_ids": list(ref.category_ids),
        "prompts_differ_in_float64": sensitive,
        "summary": summary,
    }
    (case_dir / "case.json").write_text(json.dumps(case, indent=2) + "\n")
    return case


# parameter sets: the product's (application/backend/.../schemas/processor.py) and the library's
MATCHER_PRODUCT = dict(num_foreground_points=5, num_background_points=3, use_mask_refinement=False,
                       num_grid_cells=8, similarity_threshold=None)
MATCHER_LIBRARY = dict(num_foreground_points=40, num_background_points=2, use_mask_refinement=True,
                       num_grid_cells=8, similarity_threshold=None)
SOFT_PRODUCT = dict(num_foreground_points=40, num_background_points=2, use_sampling=False,
                    use_spatial_sampling=False, approximate_matching=False,
                    softmatching_score_threshold=0.4, softmatching_bidirectional=False)
SOFT_IMPLIED = dict(use_mask_refinement=True, num_grid_cells=8, similarity_threshold=None)
PERDINO_PRODUCT = dict(num_foreground_points=80, num_background_points=2, num_grid_cells=16,
                       point_selection_threshold=0.65)
PERDINO_IMPLIED = dict(use_mask_refinement=False)

ONE_SHOT = dict(refs=[("ref_a", [("circle", CIRCLE)])], targets=["tgt_a", "tgt_b"])
FEW_SHOT = dict(
    refs=[
        ("ref_a", [("circle", CIRCLE), ("square", SQUARE)]),
        # two masks of one category on one image: the extractor merges them
        ("ref_b", [("circle_top", CIRCLE), ("circle_bottom", CIRCLE)]),
    ],
    targets=["tgt_a", "tgt_b"],
)

CASES = {
    "matcher_one_shot": dict(algorithm="Matcher", params=MATCHER_PRODUCT, defaults={}, quantile=0.5, **ONE_SHOT),
    "matcher_few_shot": dict(algorithm="Matcher", params=MATCHER_PRODUCT, defaults={}, quantile=0.5, **FEW_SHOT),
    "matcher_library_defaults_few_shot": dict(algorithm="Matcher", params=MATCHER_LIBRARY, defaults={},
                                              quantile=0.5, **FEW_SHOT),
    "soft_matcher_one_shot": dict(algorithm="SoftMatcher", params=SOFT_PRODUCT, defaults=SOFT_IMPLIED,
                                  quantile=0.5, **ONE_SHOT),
    "soft_matcher_few_shot": dict(algorithm="SoftMatcher", params=SOFT_PRODUCT, defaults=SOFT_IMPLIED,
                                  quantile=0.5, **FEW_SHOT),
    "per_dino_one_shot": dict(algorithm="PerDino", params=PERDINO_PRODUCT, defaults=PERDINO_IMPLIED,
                              quantile=0.5, **ONE_SHOT),
    "per_dino_few_shot": dict(algorithm="PerDino", params=PERDINO_PRODUCT, defaults=PERDINO_IMPLIED,
                              quantile=0.5, **FEW_SHOT),
}


def shared_features(images: dict) -> dict[str, torch.Tensor]:
    """Every image through the reference encoder wrapper, alone."""
    from instantlearn.components.encoders import ImageEncoder
    from instantlearn.data.utils.image import read_image
    from instantlearn.utils.constants import Backend

    enc = ImageEncoder(model_id=ENCODER_ID, backend=Backend.HUGGINGFACE, device="cpu", precision="fp32")
    out: dict[str, torch.Tensor] = {}
    for name, entry in images.items():
        img = read_image(OUT / entry["file"])
        out[f"{name}.features"] = enc(images=[img])[0].contiguous()
        pv = enc._model.processor(images=[img], return_tensors="pt")["pixel_values"][0]
        out[f"{name}.pixel_values.s16"] = pv[:, ::16, ::16].contiguous()
    return out


def lsa_cases() -> dict[str, torch.Tensor]:
    from instantlearn.components.linear_sum_assignment import linear_sum_assignment

    rng = np.random.default_rng(2024)
    mats = {
        "wide_quarters": rng.integers(0, 5, (5, 9)) / 4,
        "tall_halves": rng.integers(0, 3, (9, 5)) / 2,
        "square_binary": rng.integers(0, 2, (7, 7)),
        "all_equal": np.full((4, 6), 0.5),
        "one_row": np.array([[0.2, 0.9, 0.9, 0.1, 0.9]]),
        "one_column": np.array([[0.3], [0.7], [0.7], [0.1]]),
        "negative_thirds": rng.integers(-3, 4, (6, 8)) / 3,
        "tenths_16x64": rng.integers(0, 11, (16, 64)) / 10,
        "tenths_40x12": rng.integers(0, 11, (40, 12)) / 10,
        "cosines_20x50": rng.uniform(-1, 1, (20, 50)),
    }
    io: dict[str, torch.Tensor] = {}
    for name, m in mats.items():
        cost = torch.from_numpy(np.asarray(m, dtype=np.float32))
        rows, cols = linear_sum_assignment(cost, maximize=True)
        io[f"lsa.{name}.cost"] = cost.contiguous()
        io[f"lsa.{name}.row_ind"] = rows.to(torch.int64).contiguous()
        io[f"lsa.{name}.col_ind"] = cols.to(torch.int64).contiguous()
    return io


def postprocess_cases() -> dict[str, torch.Tensor]:
    """The default post-processor on hand-made masks: the model cases' masks all span the whole
    image (random SAM weights), so this is where several masks survive and the orderings,
    containment, the `<=` of the IoM threshold, zero-area boxes and class-agnostic suppression
    are checked."""
    from instantlearn.components.postprocessing import default_postprocessor
    from instantlearn.components.postprocessing.base import apply_postprocessing

    h, w = 40, 56
    shapes = []  # (mask, score, label)

    def rect(y0, y1, x0, x1):
        m = torch.zeros(h, w, dtype=torch.bool)
        m[y0:y1, x0:x1] = True
        return m

    ring = rect(22, 38, 2, 18) & ~rect(26, 34, 6, 14)
    shapes += [
        (rect(5, 20, 5, 25), 0.90, 1),    # 0 kept
        (rect(8, 18, 8, 20), 0.80, 2),    # 1 inside 0 (IoM 1): suppressed by the mask NMS
        (rect(5, 20, 20, 40), 0.85, 1),   # 2 overlaps 0 by a quarter: kept
        (rect(30, 36, 44, 50), 0.00, 1),  # 3 zeroed by the confidence threshold: ScoreFilter
        (rect(1, 4, 1, 4), -0.10, 2),     # 4 negative: ScoreFilter
        (ring, 0.40, 2),                  # 5 no pixel in common with 6, but its box holds 6's
        (rect(26, 34, 6, 14), 0.60, 1),   # 6 suppresses 5 in the box NMS
        (rect(10, 30, 50, 51), 0.30, 2),  # 7 one column wide: zero box area, never suppressed
        (rect(25, 35, 26, 36), 0.70, 1),  # 8 IoM with 9 exactly 0.5: not suppressed (<=)
        (rect(25, 35, 31, 41), 0.65, 2),  # 9
        (rect(0, 4, 42, 54), 0.50, 1),    # 10 equal scores: the earlier one wins
        (rect(1, 5, 43, 55), 0.50, 2),    # 11
    ]
    masks = torch.stack([m for m, _, _ in shapes])
    scores = torch.tensor([s for _, s, _ in shapes], dtype=torch.float32)
    labels = torch.tensor([lab for _, _, lab in shapes], dtype=torch.int64)

    io: dict[str, torch.Tensor] = {}
    for name, (m, s, lab) in {
        "mixed": (masks, scores, labels),
        "all_zero": (masks[:2], torch.zeros(2), labels[:2]),
        "single": (masks[5:6], scores[5:6], labels[5:6]),
    }.items():
        pp = default_postprocessor()
        io[f"post.{name}.masks"] = m.to(torch.uint8).contiguous()
        io[f"post.{name}.scores"] = s.contiguous()
        io[f"post.{name}.labels"] = lab.contiguous()
        cur = (m, s, lab)
        for stage, proc in zip(("score_filter", "mask_iom_nms", "box_iom_nms"), pp.processors):
            cur = proc(*cur)
            idx = [next(i for i in range(m.shape[0]) if torch.equal(m[i], k)) for k in cur[0]]
            io[f"post.{name}.keep.{stage}"] = torch.tensor(idx, dtype=torch.int64)
        (out,) = apply_postprocessing([{"pred_masks": m, "pred_scores": s, "pred_labels": lab}], pp)
        assert torch.equal(out["pred_masks"], cur[0])
        io[f"post.{name}.pred_scores"] = out["pred_scores"].float().contiguous()
        io[f"post.{name}.pred_labels"] = out["pred_labels"].to(torch.int64).contiguous()
        io[f"post.{name}.pred_boxes"] = out["pred_boxes"].float().contiguous()
    assert io["post.mixed.keep.box_iom_nms"].tolist() == [0, 2, 8, 9, 6, 10, 7], io["post.mixed.keep.box_iom_nms"]
    return io


def write_versions() -> None:
    from importlib.metadata import version

    meta = {"reference": "geti-instant-learn be4ca92, library/src", "script": "tools/parity/algorithms.py"}
    for pkg in ("torch", "torchvision", "transformers", "segment-anything-hq", "scipy", "numpy", "pillow"):
        meta[pkg] = version(pkg)
    (OUT / "versions.json").write_text(json.dumps(meta, indent=2) + "\n")


def main() -> int:
    import_reference()
    torch.set_num_threads(1)
    only = sys.argv[1:]
    unknown = [name for name in only if name not in CASES]
    if unknown:
        sys.exit(f"unknown cases {unknown}; the cases are {list(CASES)}")
    OUT.mkdir(parents=True, exist_ok=True)
    for sub in ("images",) if only else ("cases", "images"):
        if (OUT / sub).exists():
            shutil.rmtree(OUT / sub)

    images = make_images(OUT / "images")
    make_encoder(OUT / "encoder")
    install_models()

    feats = shared_features(images)
    save(feats, OUT / "features.safetensors")
    save(lsa_cases(), OUT / "lsa.safetensors")
    save(postprocess_cases(), OUT / "postprocess.safetensors")

    for name, spec in CASES.items():
        if only and name not in only:
            continue
        case = run_case(name, spec, images, feats)
        if case["prompts_differ_in_float64"]:
            print(f"{name}: points differ in float64 for (target, category) {case['prompts_differ_in_float64']}")
        for s in case["summary"]:
            print(f"{name} {s['target']}: fg points {s['foreground_points']}, decoder masks "
                  f"{s['decoder_masks']} ({s['above_threshold']} above {case['confidence_threshold']}), "
                  f"final {s['final_masks']} {s['final_labels']}, mean area {s['final_mean_area']:.1f}")
    write_versions()
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"fixtures: {total / 1e6:.2f} MB in {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
