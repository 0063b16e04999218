"""PyTorch side of `just bench-models` for the image encoders.

Usage: python bench_encoders.py <model> <size> <out_dir> <runs>
       python bench_encoders.py --time-again <out_dir> <runs>
  model: dinov3_s16 | dinov2_s14 | dinov3_l16

Builds the full-size HF model with seeded random weights, saves it into <out_dir> (config.json +
model.safetensors, HF layout) together with one input and PyTorch's outputs in f32 and bf16
(`io.safetensors`), times the forward pass at 2 threads in f32 and bf16 (median of <runs> after
warm-up), and prints one JSON line: {"f32_ms": ..., "bf16_ms": ..., "torch": ..., ...}.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch
import transformers as T
from safetensors.torch import save_file


def build(model: str):
    if model == "dinov3_s16":
        cfg = T.DINOv3ViTConfig(
            hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
            patch_size=16, num_register_tokens=4, layer_norm_eps=1e-5, rope_theta=100.0,
            query_bias=True, key_bias=False, value_bias=True,
        )
        return T.DINOv3ViTModel(cfg)
    if model == "dinov3_l16":
        cfg = T.DINOv3ViTConfig(
            hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
            patch_size=16, num_register_tokens=4, layer_norm_eps=1e-5, rope_theta=100.0,
            query_bias=True, key_bias=False, value_bias=True,
        )
        return T.DINOv3ViTModel(cfg)
    if model == "dinov2_s14":
        cfg = T.Dinov2WithRegistersConfig(
            hidden_size=384, num_hidden_layers=12, num_attention_heads=6, mlp_ratio=4,
            patch_size=14, image_size=518, num_register_tokens=4,
        )
        return T.Dinov2WithRegistersModel(cfg)
    raise SystemExit(f"unknown model {model}")


def time_it(model, x, runs: int) -> float:
    with torch.inference_mode():
        for _ in range(2):
            model(pixel_values=x)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            model(pixel_values=x)
            times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def time_again(out_dir: Path, runs: int) -> int:
    """Times the saved model again (f32 and bf16), so both sides are measured more than once
    in the same run on a machine whose load changes."""
    torch.set_num_threads(2)
    from safetensors.torch import load_file

    model = T.AutoModel.from_pretrained(out_dir).eval()
    x = load_file(str(out_dir / "io.safetensors"))["pixel_values"]
    f32_ms = time_it(model, x, runs)
    model = model.to(torch.bfloat16)
    bf16_ms = time_it(model, x.to(torch.bfloat16), runs)
    print(json.dumps({"f32_ms": f32_ms, "bf16_ms": bf16_ms}))
    return 0


def main() -> int:
    if sys.argv[1] == "--time-again":
        return time_again(Path(sys.argv[2]), int(sys.argv[3]))
    model_name, size, out_dir, runs = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = build(model_name).eval()
    # Give LayerScale and biases non-trivial values, as trained weights have.
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or name.endswith("lambda1"):
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    x = torch.randn((1, 3, size, size), generator=gen)
    with torch.inference_mode():
        y32 = model(pixel_values=x).last_hidden_state
    f32_ms = time_it(model, x, runs)
    model_bf16 = model.to(torch.bfloat16)
    xb = x.to(torch.bfloat16)
    with torch.inference_mode():
        y16 = model_bf16(pixel_values=xb).last_hidden_state.float()
    bf16_ms = time_it(model_bf16, xb, runs)
    save_file(
        {"pixel_values": x.contiguous(), "f32": y32.contiguous(), "bf16": y16.contiguous()},
        str(out_dir / "io.safetensors"),
    )
    print(json.dumps({
        "f32_ms": f32_ms,
        "bf16_ms": bf16_ms,
        "bf16_vs_f32_max_abs": (y16 - y32).abs().max().item(),
        "torch": torch.__version__,
        "transformers": T.__version__,
        "attn_implementation": model.config._attn_implementation,
        "threads": torch.get_num_threads(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
