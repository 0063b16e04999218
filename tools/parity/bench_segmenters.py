"""PyTorch side of `just bench-models` for the segmenters (SAM-HQ tiny, `segment-anything-hq`).

Usage: python bench_segmenters.py <out_dir> <runs>
       python bench_segmenters.py --time-again <out_dir> <runs>   (reuses the saved inputs)

Builds the full-size SAM-HQ tiny (TinyViT-5M + HQ decoder, `build_sam_vit_t`) with seeded random
weights, saves them into <out_dir>/model.safetensors (checkpoint names), and writes
<out_dir>/io.safetensors with the padded, normalised 1024 px input, 40 point prompts in the
product's form (each foreground point its own prompt, two background points labelled -1, in
the resized frame), and PyTorch's f32 outputs (image embedding and intermediate features,
low-resolution logits, IoU).

Times at 2 threads (median of <runs> after warm-up), in f32 and bf16:
  - the image encoder on the 1024 px input;
  - the decoder on the 40 prompts one by one, as the reference's `SamPredictor.predict_torch`
    is called per prompt (HQ features recomputed per call, as the reference does);
  - the decoder on the 40 prompts as one batch (for information).
The decoder is timed in f32 only: the reference prompt encoder casts the point coordinates to
float32 and fails against bf16 weights.
Prints one JSON line.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from segment_anything_hq import sam_model_registry
from segment_anything_hq.predictor import SamPredictor

N_PROMPTS = 40


def randomise(model: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=gen)
            leaf = name.split(".")[-1]
            if p.ndim == 1 and leaf == "weight":
                p.copy_(1.0 + 0.1 * noise)
            elif p.ndim == 1 and leaf == "bias":
                p.copy_(0.1 * noise)
            elif "token" in name or "embed" in name or "attention_biases" in name:
                p.copy_(0.5 * noise)
            else:
                fan_in = p.shape[1] * (p[0, 0].numel() if p.ndim > 2 else 1)
                p.copy_(noise / math.sqrt(max(fan_in, 1)))
        for name, buf in sorted(model.named_buffers()):
            if name.endswith("running_mean"):
                buf.copy_(0.1 * torch.randn(buf.shape, generator=gen))
            elif name.endswith("running_var"):
                buf.copy_(0.8 + 0.4 * torch.rand(buf.shape, generator=gen))


def build() -> torch.nn.Module:
    torch.manual_seed(0)
    sam = sam_model_registry["vit_tiny"]()
    randomise(sam, 4321)
    return sam.eval()


def median_ms(fn, runs: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def time_all(sam, x, coords, labels, runs: int, dtype, f32_embedding) -> dict:
    sam = sam.to(dtype)
    pred = SamPredictor(sam)
    x = x.to(dtype)
    out = {}
    with torch.inference_mode():
        out["encoder_ms"] = median_ms(lambda: sam.image_encoder(x), runs)
        print(f"{dtype}: encoder {out['encoder_ms']:.0f} ms", file=sys.stderr)
        if dtype != torch.float32:
            # This precision's own error: the largest deviation of its image embedding from
            # the f32 one, the yardstick for ours in the same mode.
            emb = sam.image_encoder(x)[0].float()
            out["encoder_err"] = (emb - f32_embedding).abs().max().item()
            # The reference prompt encoder casts point coordinates to float32 and then fails on
            # bf16 weights, so only the encoder is timed in reduced precision.
            return out
        pred.features, pred.interm_features = sam.image_encoder(x)
        pred.features = pred.features.to(dtype)
        pred.interm_features = [t.to(dtype) for t in pred.interm_features]
        pred.is_image_set = True
        pred.original_size = (1024, 1024)
        pred.input_size = (1024, 1024)

        def one_by_one():
            for i in range(N_PROMPTS):
                pred.predict_torch(coords[i : i + 1], labels[i : i + 1], multimask_output=True,
                                   return_logits=True)

        def batch():
            pred.predict_torch(coords, labels, multimask_output=True, return_logits=True)

        out["decoder_one_by_one_ms"] = median_ms(one_by_one, max(1, runs // 3), warmup=1)
        out["decoder_batch_ms"] = median_ms(batch, max(1, runs // 3), warmup=1)
        print(f"{dtype}: decoder {out}", file=sys.stderr)
    return out


def inputs(gen: torch.Generator):
    img = torch.randint(0, 256, (1, 3, 768, 1024), generator=gen, dtype=torch.uint8)
    fg = torch.rand(N_PROMPTS, 1, 2, generator=gen) * torch.tensor([1023.0, 767.0])
    bg = torch.rand(N_PROMPTS, 2, 2, generator=gen) * torch.tensor([1023.0, 767.0])
    coords = torch.cat([fg, bg], dim=1)
    labels = torch.tensor([[1, -1, -1]] * N_PROMPTS, dtype=torch.int)
    return img, coords, labels


def main() -> int:
    torch.set_num_threads(2)
    again = sys.argv[1] == "--time-again"
    out_dir = Path(sys.argv[2] if again else sys.argv[1])
    runs = int(sys.argv[3] if again else sys.argv[2])
    sam = build()
    if again:
        io = load_file(str(out_dir / "io.safetensors"))
        x, coords, labels = io["input"], io["coords"], io["labels"].to(torch.int)
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in sam.state_dict().items()}, str(out_dir / "model.safetensors"))
        img, coords, labels = inputs(torch.Generator().manual_seed(99))
        x = sam.preprocess(img[0].float())[None]
        pred = SamPredictor(sam)
        with torch.inference_mode():
            pred.set_torch_image(img, (768, 1024))
            _, iou, low = pred.predict_torch(coords, labels, multimask_output=True, return_logits=True)
        save_file(
            {
                "input": x.contiguous(),
                "image_embeddings": pred.features.contiguous(),
                "interm_embeddings": pred.interm_features[0].contiguous(),
                "coords": coords.contiguous(),
                "labels": labels.to(torch.int64).contiguous(),
                "low_res": low.contiguous(),
                "iou": iou.contiguous(),
            },
            str(out_dir / "io.safetensors"),
        )
    result = {"torch": torch.__version__}
    with torch.inference_mode():
        f32_embedding = sam.image_encoder(x)[0]
    for name, dtype in (("f32", torch.float32), ("bf16", torch.bfloat16)):
        for k, v in time_all(sam, x, coords, labels, runs, dtype, f32_embedding).items():
            result[f"{name}_{k}"] = v
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
