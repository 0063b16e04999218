"""Parity fixtures for visprompt's image encoders (crate `visprompt-vision`, module `encoders`).

Builds DINOv2, DINOv2-with-registers and DINOv3 ViT models from Hugging Face `transformers` on
small configurations with fixed random weights, runs them on fixed random inputs, and writes:

    adapters/vision/tests/fixtures/encoders/<case>/config.json        (HF layout)
    adapters/vision/tests/fixtures/encoders/<case>/model.safetensors  (HF weight names)
    adapters/vision/tests/fixtures/encoders/<case>/io.safetensors     (inputs and outputs)

`io.safetensors` holds, for every input `k`, `pixel_values.k` [B,3,H,W] and
`last_hidden_state.k` [B,1+R+h*w,C] (after the final LayerNorm, prefix tokens first).

It also writes `preprocess/io.safetensors`: a real 8-bit RGB frame from the repository's sample
dataset and what the DINOv3 and DINOv2 image processors (torchvision backend, antialiased
resizes) make of it at a few sizes.

Run with the parity virtualenv (tools/parity/setup.sh):  python tools/parity/encoders.py
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

import transformers as T

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "adapters" / "vision" / "tests" / "fixtures" / "encoders"
SAMPLE_FRAME = ROOT / "adapters" / "media" / "assets" / "sample" / "shapes" / "frame_00.png"


def randomise(model: torch.nn.Module, seed: int) -> None:
    """Replaces every parameter with seeded random values, so no term is trivially 0 or 1."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=gen)
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name in (
                "layernorm.weight",
                "norm.weight",
            ):
                p.copy_(1.0 + 0.1 * noise)
            elif name.endswith("lambda1"):
                p.copy_(0.5 + 0.2 * noise)
            elif name.endswith("_token") or name.endswith("register_tokens") or "position_embeddings" in name:
                p.copy_(0.5 * noise)
            else:
                p.copy_(0.08 * noise)


def make_case(name: str, model_cls, config, inputs: dict[str, tuple[int, ...]], seed: int) -> None:
    torch.manual_seed(seed)
    model = model_cls(config).eval()
    randomise(model, seed)
    case_dir = OUT / name
    if case_dir.exists():
        shutil.rmtree(case_dir)
    model.save_pretrained(case_dir)
    gen = torch.Generator().manual_seed(seed + 1)
    io = {}
    with torch.no_grad():
        for key, shape in inputs.items():
            x = torch.randn(shape, generator=gen)
            y = model(pixel_values=x).last_hidden_state
            io[f"pixel_values.{key}"] = x.contiguous()
            io[f"last_hidden_state.{key}"] = y.contiguous()
            print(f"{name}.{key}: {tuple(x.shape)} -> {tuple(y.shape)}")
    save_file(io, str(case_dir / "io.safetensors"))


def encoder_cases() -> None:
    small_v2 = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        mlp_ratio=4,
        patch_size=14,
        image_size=56,
    )
    make_case(
        "dinov2",
        T.Dinov2Model,
        T.Dinov2Config(**small_v2),
        {
            # the trained 4x4 grid: no interpolation
            "square": (1, 3, 56, 56),
            # 5x3: bicubic up in height, down in width; batch of two; 2 px cut off at the right
            "wide": (2, 3, 70, 44),
            # 2x3: down in both
            "small": (1, 3, 28, 42),
        },
        seed=11,
    )
    make_case(
        "dinov2_swiglu",
        T.Dinov2Model,
        T.Dinov2Config(**small_v2, use_swiglu_ffn=True, layer_norm_eps=1e-5),
        {"rect": (1, 3, 42, 56)},
        seed=12,
    )
    reg = dict(small_v2, image_size=70, num_register_tokens=4)
    make_case(
        "dinov2_registers",
        T.Dinov2WithRegistersModel,
        T.Dinov2WithRegistersConfig(**reg),
        {
            "square": (1, 3, 70, 70),
            # 3x7: antialiased bicubic down in height, up in width
            "wide": (1, 3, 42, 98),
            # 4x4 square but not the trained size: antialiased down
            "smaller": (1, 3, 56, 56),
            # 7x6: up in both
            "larger": (1, 3, 98, 84),
        },
        seed=13,
    )
    v3 = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        patch_size=16,
        image_size=64,
        num_register_tokens=4,
    )
    make_case(
        "dinov3",
        T.DINOv3ViTModel,
        T.DINOv3ViTConfig(**v3),
        {
            "rect": (1, 3, 48, 80),
            "square": (2, 3, 48, 48),
            # 7 px beyond the 3x2 grid are ignored, as by the strided convolution
            "ragged": (1, 3, 55, 39),
        },
        seed=21,
    )
    make_case(
        "dinov3_gated",
        T.DINOv3ViTModel,
        T.DINOv3ViTConfig(
            **dict(v3, num_register_tokens=2, patch_size=8),
            use_gated_mlp=True,
            hidden_act="silu",
            layer_norm_eps=1e-6,
            key_bias=False,
            rope_theta=50.0,
        ),
        {"rect": (1, 3, 16, 48)},
        seed=22,
    )


def preprocess_case() -> None:
    """A real frame through the HF image processors, as the reference library configures them."""
    frame = np.asarray(Image.open(SAMPLE_FRAME).convert("RGB"))  # (240, 320, 3) uint8
    image = frame[60:180, 80:240].copy()  # the 120x160 centre
    crop = frame[100:136, 150:198].copy()  # 36x48, for an upscaling case
    io = {"image": torch.from_numpy(image.copy()), "crop": torch.from_numpy(crop)}
    # size (h, w): what comes out, from which input
    sizes = {"down": ("image", 56, 72), "up": ("crop", 50, 62)}
    v3 = T.DINOv3ViTImageProcessor
    for key, (src, h, w) in sizes.items():
        img = io[src].numpy()
        p3 = v3(size={"height": h, "width": w})
        out3 = p3(images=img, return_tensors="pt").pixel_values
        io[f"dinov3.{key}"] = out3.contiguous()
        p2 = T.BitImageProcessor(
            size={"height": h, "width": w},
            do_center_crop=False,
            image_mean=[0.485, 0.456, 0.406],
            image_std=[0.229, 0.224, 0.225],
            do_convert_rgb=True,
        )
        out2 = p2(images=img, return_tensors="pt").pixel_values
        io[f"dinov2.{key}"] = out2.contiguous()
        print(f"preprocess.{key}: {img.shape} -> {tuple(out3.shape)} / {tuple(out2.shape)} ({type(p2).__name__})")
    d = OUT / "preprocess"
    d.mkdir(parents=True, exist_ok=True)
    save_file(io, str(d / "io.safetensors"))


def pth_case() -> None:
    """Small PyTorch checkpoints for the `.pth` reader (`weights::load_pth`): a plain state dict,
    and the same wrapped in {"model": ...} as some training scripts save them."""
    gen = torch.Generator().manual_seed(31)
    state = {
        "image_encoder.patch_embed.proj.weight": torch.randn((4, 3, 2, 2), generator=gen),
        "image_encoder.neck.0.bias": torch.arange(5, dtype=torch.float32) * 0.5,
        "mask_decoder.iou_token.weight": torch.randn((1, 6), generator=gen).to(torch.float16),
        # a non-contiguous view, as state dicts sometimes hold
        "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix": torch.randn((3, 2), generator=gen).t(),
    }
    d = OUT / "pth"
    d.mkdir(parents=True, exist_ok=True)
    torch.save(state, d / "state_dict.pth")
    torch.save({"model": state, "epoch": 3}, d / "wrapped.pth")
    save_file({k: v.contiguous().float() for k, v in state.items()}, str(d / "expected.safetensors"))


def main() -> int:
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    encoder_cases()
    preprocess_case()
    pth_case()
    meta = {
        "torch": torch.__version__,
        "transformers": T.__version__,
        "script": "tools/parity/encoders.py",
    }
    (OUT / "versions.json").write_text(json.dumps(meta, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
