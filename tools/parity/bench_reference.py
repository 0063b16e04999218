"""The reference library's side of `just bench-algorithms`: times Intel Geti Instant Learn
(`instantlearn`) on the same configurations, frames and model sizes as
tools/bench-algorithms/src/main.rs, so that its REFERENCE figures can be measured again on the
machine that runs our benchmark.

The reference library is not on PyPI and this repository does not contain it: the script drives
its code from an external clone. Clone github.com/open-edge-platform/geti-instant-learn, check
out commit be4ca92 (the one the parity fixtures were made with) and point `INSTANTLEARN_SRC` at
its `library/src` folder. Importing it needs, besides tools/parity/setup.sh, the PyPI packages
that algorithms.py lists (opencv-python-headless, openvino, polars, pycocotools, lvis, requests
and sam2, the last with `SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2`).

The frames are the ones bench-algorithms times, written to PNG by the example of crate
`visprompt-media`:

    cargo run --release -p visprompt-media --example bench_frames -- /tmp/bench-frames
    INSTANTLEARN_SRC=/path/to/geti-instant-learn/library/src \\
        $PARITY_VENV/bin/python tools/parity/bench_reference.py /tmp/bench-frames [RUNS] [config ...]

(`reference.png` and `reference_mask.png`: frame 0 of the default `SyntheticScene`, 640x480, and
its first object, the image fitted on; `target.png`: frame 25, the frame predicted on.) RUNS
defaults to 5; a config is `algorithm` or `algorithm:precision` (matcher, soft_matcher, perdino,
and soft_matcher_40 and perdino_80, which decode all 40 and 80 points; f32, bf16), all of them by
default.

Only the models are replaced, by the product's models at their real sizes with seeded random
weights; the reference's code runs unchanged:

* encoder `dinov3_small`: `transformers`' `DINOv3ViTModel` with the configuration of
  facebook/dinov3-vits16-pretrain-lvd1689m (ViT-S/16: hidden 384, 12 layers, 6 heads, MLP 1536,
  4 register tokens, LayerScale, RoPE), weights from `encoders.randomise`, saved in Hugging Face
  layout and put in the reference's `AVAILABLE_IMAGE_ENCODERS` under `dinov3_small`, so its own
  `HuggingFaceImageEncoder` loads it (fast DINOv3 processor at 512x512);
* segmenter `SAM-HQ-tiny`: the full-size SAM-HQ tiny of `bench_segmenters.build` (TinyViT-5M + HQ
  decoder, random weights) saved as a checkpoint and loaded by the reference's own
  `load_sam_model` through its `model_path` argument (instead of the download), so its prompt
  encoder patch (mask_in_chans 16, the model's own) and its precision handling apply as they are.

Parameters are the product's (application/backend/.../schemas/processor.py at be4ca92, as built
by its model factory), which are those of bench-algorithms: Matcher 5 foreground / 3 background
points, 8 grid cells, no mask refinement, confidence threshold 0.75; SoftMatcher 40 / 2, score
threshold 0.4, no sampling, exact matching, mask refinement (the library's default), threshold
0.42; PerDINO 80 / 2, 16 grid cells, point threshold 0.65, threshold 0.01. Precision is the
reference's own `precision` argument ("fp32" or "bf16": its `optimize_model` casts both models'
weights). Each configuration runs in a child process of its own with torch.set_num_threads(2):
`fit` on the reference image, then `predict` on the target frame, 2 warm-up frames and RUNS timed
ones. Prints one line per configuration:

    algorithm precision median_ms peak_MB prompts

peak_MB is the child's peak resident memory (ru_maxrss); prompts is the number of prompts (one
per foreground point) the decoder got on the last frame, which random weights leave to chance.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent

THREADS = 2
WARMUP = 2
DEFAULT_RUNS = 5
ALGORITHMS = ("matcher", "soft_matcher", "perdino", "soft_matcher_40", "perdino_80")
PRECISIONS = {"f32": "fp32", "bf16": "bf16"}  # our name -> the reference's
ENCODER_ID = "dinov3_small"
DINO_SEED = 3141
CATEGORY_ID = 0  # bench-algorithms fits one mask, category 0

# the product's parameters (MatcherConfig, SoftMatcherConfig, PerDinoConfig) as its factory passes them
PARAMS = {
    "matcher": dict(num_foreground_points=5, num_background_points=3, confidence_threshold=0.75,
                    use_mask_refinement=False, similarity_threshold=None, num_grid_cells=8),
    "soft_matcher": dict(num_foreground_points=40, num_background_points=2, confidence_threshold=0.42,
                         use_sampling=False, use_spatial_sampling=False, approximate_matching=False,
                         softmatching_score_threshold=0.4, softmatching_bidirectional=False),
    "perdino": dict(num_foreground_points=80, num_background_points=2, num_grid_cells=16,
                    point_selection_threshold=0.65, confidence_threshold=0.01),
}
# With random weights the number of prompts is left to chance, and differs from ours: these two
# force the configured counts (all 40 and all 80 foreground points decoded), as bench-algorithms'
# perdino_80 does, so that a frame's work matches ours prompt for prompt.
PARAMS["soft_matcher_40"] = {**PARAMS["soft_matcher"], "softmatching_score_threshold": 0.0}
PARAMS["perdino_80"] = {**PARAMS["perdino"], "point_selection_threshold": -1.0}


# ----------------------------------------------------------------------------------------------
# Models (written once by the parent, loaded by every child)


def make_models(dst: Path) -> None:
    import transformers as T

    with warnings.catch_warnings():  # timm's deprecations, segment_anything_hq's re-registrations
        warnings.simplefilter("ignore")
        import bench_segmenters
    from encoders import randomise

    T.utils.logging.disable_progress_bar()

    # facebook/dinov3-vits16-pretrain-lvd1689m: the class defaults are ViT-S/16, plus 4 registers
    config = T.DINOv3ViTConfig(num_register_tokens=4)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
            config.intermediate_size, config.patch_size) == (384, 12, 6, 1536, 16)
    torch.manual_seed(DINO_SEED)
    dino = T.DINOv3ViTModel(config).eval()
    randomise(dino, DINO_SEED)
    dino.save_pretrained(dst / "encoder")
    T.DINOv3ViTImageProcessor().save_pretrained(dst / "encoder")

    sam = bench_segmenters.build()
    torch.save(sam.state_dict(), dst / "sam_hq_vit_tiny.pth")


def install_models(models: Path) -> None:
    """Points the reference's model loading at the files of `make_models`."""
    from instantlearn.components.encoders import huggingface
    from instantlearn.components.sam import predictor

    huggingface.AVAILABLE_IMAGE_ENCODERS[ENCODER_ID] = (str(models / "encoder"), None)

    def load_sam_model(sam, **kw):
        return predictor.load_sam_model(sam, model_path=models / "sam_hq_vit_tiny.pth", **kw)

    import instantlearn.models.matcher.matcher as matcher_module
    import instantlearn.models.per_dino.per_dino as per_dino_module

    matcher_module.load_sam_model = load_sam_model
    per_dino_module.load_sam_model = load_sam_model


# ----------------------------------------------------------------------------------------------
# One configuration (child process)


def child(algorithm: str, precision: str, runs: int, frames: Path, models: Path) -> None:
    from algorithms import import_reference

    import_reference()
    torch.set_num_threads(THREADS)
    install_models(models)

    from torchvision import tv_tensors

    from instantlearn.data.base.sample import Sample
    from instantlearn.models.matcher import Matcher
    from instantlearn.models.per_dino import PerDino
    from instantlearn.models.soft_matcher import SoftMatcher

    cls = {"matcher": Matcher, "soft_matcher": SoftMatcher, "perdino": PerDino}[
        algorithm.split("_40")[0].split("_80")[0]
    ]
    torch.manual_seed(0)
    model = cls(encoder_model=ENCODER_ID, precision=PRECISIONS[precision], device="cpu",
                **PARAMS[algorithm])

    # the decoder's first pass gets one prompt per foreground point; the refinement pass has boxes
    prompts = [0]
    forward = model.sam_predictor.forward

    def counting_forward(**kw):
        if kw.get("boxes") is None:
            prompts[0] += kw["point_coords"].shape[0]
        return forward(**kw)

    model.sam_predictor.forward = counting_forward

    reference = Sample(
        image_path=str(frames / "reference.png"),
        mask_paths=[str(frames / "reference_mask.png")],
        categories=[f"category_{CATEGORY_ID}"],
        category_ids=[CATEGORY_ID],
        is_reference=[True],
    )
    model.fit(reference)

    # the target as the product's TorchModelHandler builds it from a decoded frame
    frame = np.asarray(Image.open(frames / "target.png").convert("RGB"))
    target = Sample(image=tv_tensors.Image(torch.from_numpy(frame.copy()).permute(2, 0, 1)))

    times = []
    for i in range(WARMUP + runs):
        prompts[0] = 0
        t0 = time.perf_counter()
        model.predict(target)
        if i >= WARMUP:
            times.append((time.perf_counter() - t0) * 1000.0)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"{algorithm} {precision} {statistics.median(times):.1f} {peak_mb:.0f} {prompts[0]}")


# ----------------------------------------------------------------------------------------------


def configs(args: list[str]) -> list[tuple[str, str]]:
    if not args:
        return [(a, p) for a in ALGORITHMS for p in PRECISIONS]
    out = []
    for arg in args:
        algorithm, _, precision = arg.partition(":")
        if algorithm not in ALGORITHMS or (precision and precision not in PRECISIONS):
            sys.exit(f"unknown config {arg!r}: algorithm[:precision] with algorithm in {ALGORITHMS}, "
                     f"precision in {tuple(PRECISIONS)}")
        out += [(algorithm, p) for p in ([precision] if precision else PRECISIONS)]
    return out


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        algorithm, precision, runs, frames, models = sys.argv[2:7]
        child(algorithm, precision, int(runs), Path(frames), Path(models))
        return 0
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    frames = Path(sys.argv[1])
    missing = [f for f in ("reference.png", "reference_mask.png", "target.png") if not (frames / f).is_file()]
    if missing:
        sys.exit(f"{frames} lacks {missing}: see the usage in {Path(__file__).name}")
    rest = sys.argv[2:]
    runs = int(rest.pop(0)) if rest and rest[0].isdigit() else DEFAULT_RUNS
    todo = configs(rest)
    from algorithms import import_reference

    import_reference()  # here only to stop early, with the instructions, if INSTANTLEARN_SRC is wrong

    print(f"# reference library, 640x480 frame, DINOv3 ViT-S/16 @512 + SAM-HQ tiny, random weights, "
          f"{THREADS} threads, torch {torch.__version__}, median of {runs} after {WARMUP} warm-up frames",
          file=sys.stderr)
    print("# algorithm precision median_ms peak_MB prompts", file=sys.stderr)
    failed = 0
    with tempfile.TemporaryDirectory(prefix="bench-reference-") as tmp:
        make_models(Path(tmp))
        env = {**os.environ, "OMP_NUM_THREADS": str(THREADS)}
        for algorithm, precision in todo:
            out = subprocess.run(
                [sys.executable, __file__, "--child", algorithm, precision, str(runs), str(frames), tmp],
                env=env, capture_output=True, text=True,
            )
            line = out.stdout.strip().splitlines()[-1:] if out.returncode == 0 else []
            if line:
                print(line[0], flush=True)
            else:
                failed += 1
                print(f"{algorithm} {precision} failed: {out.stderr.strip()[-2000:]}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
