"""Parity fixtures for visprompt's promptable segmenters (crate `visprompt-vision`, module `segmenters`).

Builds SAM-HQ (TinyViT and ViT image encoders with the HQ mask decoder), MobileSAM (TinyViT with
the plain SAM decoder) and SAM (ViT with the plain decoder) from the `segment-anything-hq` package
on small configurations with fixed random weights, runs them through the same path the product
uses (uint8 bilinear resize of the longest side without antialias, `SamPredictor.set_torch_image`,
`SamPredictor.predict_torch(..., return_logits=True)`), and writes, under
`adapters/vision/tests/fixtures/segmenters/`:

    tiny/model.pth           TinyViT + prompt encoder + HQ decoder as a pickled state dict with the
                             names of `sam_hq_vit_tiny.pth` (MobileSAM's plain decoder is a subset)
    tiny/config.json         the small configuration (our config field names)
    tiny/io.safetensors      image embeddings, intermediate features and, per case and per
                             decoder (`hq`, `plain`), the prompts and reference outputs
    vit/model.safetensors    the same for a small SAM ViT (window + global attention, rel. pos.)
    vit/config.json, vit/io.safetensors
    preprocess/io.safetensors  the product's uint8 resize of a real frame and of a large image

Sizes stay small (about 2.5 MB): low-resolution logits are kept with every s-th row and column
(key suffix `.sS`; s = 1 for the small ViT's HQ decoder, 2 for its plain decoder and for SAM-HQ
tiny's `points` case, 4 for the other tiny cases), which still checks every code path; the upsampled logits at the original image
size are kept whole.

The TinyViT of segment-anything-hq hard-codes the 64x64 output grid (1024 px input) and decides
the stride of the last patch merging from the channel count (stride 1 for 320/448/576, i.e. for
every released model); the small config keeps 1024 px, sets that stride to 1 explicitly and
replaces the neck's hard-coded 256 output channels with the small prompt dimension.

Run with the parity virtualenv:  /work/parity-venv/bin/python tools/parity/segmenters.py
"""

from __future__ import annotations

import json
import math
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

from segment_anything_hq.modeling import (
    ImageEncoderViT,
    MaskDecoderHQ,
    PromptEncoder,
    Sam,
    TinyViT,
    TwoWayTransformer,
)
from segment_anything_hq.modeling.common import LayerNorm2d
from segment_anything_hq.modeling.mask_decoder import MaskDecoder
from segment_anything_hq.predictor import SamPredictor
from segment_anything_hq.utils.transforms import ResizeLongestSide

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "adapters" / "vision" / "tests" / "fixtures" / "segmenters"
SAMPLE_FRAME = ROOT / "adapters" / "media" / "assets" / "sample" / "shapes" / "frame_00.png"

PROMPT_DIM = 32

TINY = dict(
    kind="tiny_vit",
    img_size=1024,
    embed_dims=[8, 16, 24, 32],
    depths=[1, 1, 2, 1],
    num_heads=[1, 2, 3, 2],
    window_sizes=[7, 7, 14, 7],
    mlp_ratio=2.0,
    mbconv_expand_ratio=4.0,
    prompt_embed_dim=PROMPT_DIM,
    mask_in_chans=8,
    decoder_depth=2,
    decoder_heads=2,
    decoder_mlp_dim=64,
    iou_head_hidden_dim=32,
    vit_dim=24,
)

VIT = dict(
    kind="vit",
    img_size=256,
    patch_size=16,
    embed_dim=32,
    depth=4,
    num_heads=2,
    mlp_ratio=4.0,
    window_size=7,
    global_attn_indexes=[1, 3],
    prompt_embed_dim=PROMPT_DIM,
    mask_in_chans=8,
    decoder_depth=2,
    decoder_heads=2,
    decoder_mlp_dim=64,
    iou_head_hidden_dim=32,
    vit_dim=32,
)


def test_image(h: int, w: int) -> np.ndarray:
    """The deterministic uint8 RGB test image the Rust tests rebuild with the same formula."""
    y, x = np.meshgrid(np.arange(h, dtype=np.int64), np.arange(w, dtype=np.int64), indexing="ij")
    r = (x * 7 + y * 3) % 256
    g = (x * x + y * 11) % 256
    b = ((x // 8 + y // 8) % 2) * 200 + (x + y) % 50
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def mask_prompt(b: int, h: int, w: int) -> torch.Tensor:
    """A smooth low-resolution mask prompt, rebuilt with the same formula in Rust."""
    out = torch.zeros(b, 1, h, w, dtype=torch.float32)
    for i in range(b):
        ys = torch.arange(h, dtype=torch.float32)[:, None]
        xs = torch.arange(w, dtype=torch.float32)[None, :]
        out[i, 0] = 3.0 * torch.cos(xs * (0.05 * (i + 1))) * torch.sin(ys * 0.07) - 0.5
    return out


def randomise(model: torch.nn.Module, seed: int) -> None:
    """Seeded random values for every parameter and batch-norm statistic, none trivially 0 or 1."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=gen)
            leaf = name.split(".")[-1]
            if p.ndim == 1 and leaf == "weight":  # norm scales
                p.copy_(1.0 + 0.1 * noise)
            elif p.ndim == 1 and leaf == "bias":
                p.copy_(0.1 * noise)
            elif "token" in name or "point_embed" in name or "mask_embed" in name:
                p.copy_(0.5 * noise)
            elif "attention_biases" in name or "rel_pos" in name or "pos_embed" in name:
                p.copy_(0.3 * noise)
            else:
                fan_in = p.shape[1] * (p[0, 0].numel() if p.ndim > 2 else 1)
                p.copy_(noise / math.sqrt(max(fan_in, 1)))
        for name, buf in sorted(model.named_buffers()):
            if name.endswith("running_mean"):
                buf.copy_(0.1 * torch.randn(buf.shape, generator=gen))
            elif name.endswith("running_var"):
                buf.copy_(0.8 + 0.4 * torch.rand(buf.shape, generator=gen))
            elif name.endswith("positional_encoding_gaussian_matrix"):
                buf.copy_(torch.randn(buf.shape, generator=gen))


def prompt_and_decoders(cfg: dict, emb: int, vit_dim: int):
    pe = PromptEncoder(
        embed_dim=cfg["prompt_embed_dim"],
        image_embedding_size=(emb, emb),
        input_image_size=(cfg["img_size"], cfg["img_size"]),
        mask_in_chans=cfg["mask_in_chans"],
    )

    def transformer():
        return TwoWayTransformer(
            depth=cfg["decoder_depth"],
            embedding_dim=cfg["prompt_embed_dim"],
            mlp_dim=cfg["decoder_mlp_dim"],
            num_heads=cfg["decoder_heads"],
        )

    hq = MaskDecoderHQ(
        num_multimask_outputs=3,
        transformer=transformer(),
        transformer_dim=cfg["prompt_embed_dim"],
        iou_head_depth=3,
        iou_head_hidden_dim=cfg["iou_head_hidden_dim"],
        vit_dim=vit_dim,
    )
    plain = MaskDecoder(
        num_multimask_outputs=3,
        transformer=transformer(),
        transformer_dim=cfg["prompt_embed_dim"],
        iou_head_depth=3,
        iou_head_hidden_dim=cfg["iou_head_hidden_dim"],
    )
    return pe, hq, plain


def build_tiny() -> tuple[Sam, Sam]:
    c = TINY
    enc = TinyViT(
        img_size=c["img_size"],
        in_chans=3,
        num_classes=10,
        embed_dims=c["embed_dims"],
        depths=c["depths"],
        num_heads=c["num_heads"],
        window_sizes=c["window_sizes"],
        mlp_ratio=c["mlp_ratio"],
        drop_rate=0.0,
        drop_path_rate=0.0,
        use_checkpoint=False,
        mbconv_expand_ratio=c["mbconv_expand_ratio"],
        local_conv_size=3,
        layer_lr_decay=0.8,
    )
    # What `out_dim == 320` decides for the released models: the last merge keeps 64x64.
    enc.layers[2].downsample.conv2.c.stride = (1, 1)
    d = PROMPT_DIM
    enc.neck = torch.nn.Sequential(
        torch.nn.Conv2d(c["embed_dims"][-1], d, kernel_size=1, bias=False),
        LayerNorm2d(d),
        torch.nn.Conv2d(d, d, kernel_size=3, padding=1, bias=False),
        LayerNorm2d(d),
    )
    return finish(enc, c, c["img_size"] // 16)


def build_vit() -> tuple[Sam, Sam]:
    c = VIT
    enc = ImageEncoderViT(
        img_size=c["img_size"],
        patch_size=c["patch_size"],
        in_chans=3,
        embed_dim=c["embed_dim"],
        depth=c["depth"],
        num_heads=c["num_heads"],
        mlp_ratio=c["mlp_ratio"],
        out_chans=c["prompt_embed_dim"],
        qkv_bias=True,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        act_layer=torch.nn.GELU,
        use_abs_pos=True,
        use_rel_pos=True,
        rel_pos_zero_init=True,
        window_size=c["window_size"],
        global_attn_indexes=tuple(c["global_attn_indexes"]),
    )
    return finish(enc, c, c["img_size"] // c["patch_size"])


def finish(enc, cfg: dict, emb: int) -> tuple[Sam, Sam]:
    pe, hq, plain = prompt_and_decoders(cfg, emb, cfg["vit_dim"])
    mean, std = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
    sam_hq = Sam(image_encoder=enc, prompt_encoder=pe, mask_decoder=hq, pixel_mean=mean, pixel_std=std)
    randomise(sam_hq, 1234)
    sam_hq.eval()
    sam_plain = Sam(image_encoder=enc, prompt_encoder=pe, mask_decoder=plain, pixel_mean=mean, pixel_std=std)
    missing, unexpected = sam_plain.load_state_dict(sam_hq.state_dict(), strict=False)
    assert not missing, missing
    sam_plain.eval()
    return sam_hq, sam_plain


def product_resize(img: np.ndarray, long_side: int) -> torch.Tensor:
    """The product's SAM resize: uint8 [1,3,H,W], bilinear, align_corners=False, no antialias."""
    h, w = img.shape[:2]
    nh, nw = ResizeLongestSide.get_preprocess_shape(h, w, long_side)
    t = torch.from_numpy(img).permute(2, 0, 1)[None].contiguous()
    return F.interpolate(t, (nh, nw), mode="bilinear", align_corners=False)


def cases(orig_h: int, orig_w: int, low: int) -> list[dict]:
    gen = torch.Generator().manual_seed(77)

    def pts(b, n):
        xy = torch.rand(b, n, 2, generator=gen)
        return torch.stack([xy[..., 0] * (orig_w - 1), xy[..., 1] * (orig_h - 1)], dim=-1)

    def boxes(b):
        a = torch.rand(b, 2, 2, generator=gen)
        x = a[..., 0].sort(dim=1).values * (orig_w - 1)
        y = a[..., 1].sort(dim=1).values * (orig_h - 1)
        return torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=1)

    return [
        # Each foreground point its own prompt with background points as -1, as the product does,
        # and classic labelled points (1/0) mixed in.
        dict(name="points", coords=pts(3, 3), labels=torch.tensor([[1, 0, -1], [1, 1, 0], [1, -1, -1]]),
             boxes=None, masks=None, multimask=True),
        dict(name="box_points", coords=pts(2, 1), labels=torch.tensor([[1], [0]]),
             boxes=boxes(2), masks=None, multimask=False),
        dict(name="box_only", coords=None, labels=None, boxes=boxes(2), masks=None, multimask=True),
        # The refinement pass: points + box + a low-resolution mask prompt.
        dict(name="refine", coords=pts(2, 2), labels=torch.tensor([[1, -1], [1, 0]]),
             boxes=boxes(2), masks=mask_prompt(2, low, low), multimask=True),
    ]


def run_model(tag: str, sams: tuple[Sam, Sam], cfg: dict, orig_hw: tuple[int, int], strides: dict) -> None:
    out_dir = OUT / tag
    out_dir.mkdir(parents=True, exist_ok=True)
    sam_hq, sam_plain = sams
    if tag == "tiny":
        # Like `sam_hq_vit_tiny.pth`: a pickled state dict (BatchNorm statistics included).
        torch.save(sam_hq.state_dict(), out_dir / "model.pth")
    else:
        sd = {k: v.contiguous() for k, v in sam_hq.state_dict().items()}
        save_file(sd, str(out_dir / "model.safetensors"))
    (out_dir / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")

    h, w = orig_hw
    img = test_image(h, w)
    resized = product_resize(img, cfg["img_size"])
    transform = ResizeLongestSide(cfg["img_size"])
    io: dict[str, torch.Tensor] = {"image": torch.from_numpy(img).contiguous()}
    low = 4 * (cfg["img_size"] // (16 if cfg["kind"] == "tiny_vit" else cfg["patch_size"]))
    for dec_name, sam in (("hq", sam_hq), ("plain", sam_plain)):
        pred = SamPredictor(sam)
        with torch.no_grad():
            pred.set_torch_image(resized, (h, w))
        if dec_name == "hq":
            io["image_embeddings.s2"] = pred.features[..., ::2, ::2].contiguous()
            io["interm_embeddings.s2"] = pred.interm_features[0][:, ::2, ::2, :].contiguous()
        for case in cases(h, w, low):
            key = f"{dec_name}.{case['name']}"
            coords = labels = boxes = None
            if case["coords"] is not None:
                coords = transform.apply_coords_torch(case["coords"], (h, w))
                labels = case["labels"].to(torch.int)
                io[f"{case['name']}.coords"] = case["coords"].float().contiguous()
                io[f"{case['name']}.labels"] = case["labels"].to(torch.int64).contiguous()
            if case["boxes"] is not None:
                boxes = transform.apply_boxes_torch(case["boxes"], (h, w))
                io[f"{case['name']}.boxes"] = case["boxes"].float().contiguous()
            with torch.no_grad():
                masks, iou, low_res = pred.predict_torch(
                    coords, labels, boxes, case["masks"], case["multimask"], return_logits=True
                )
            io[f"{key}.iou"] = iou.contiguous()
            io[f"{key}.masks"] = masks.contiguous()
            st = strides.get((dec_name, case["name"]), strides[dec_name])
            io[f"{key}.low_res.s{st}"] = low_res[..., ::st, ::st].contiguous()
            print(f"{tag} {key}: low_res {tuple(low_res.shape)} |max| {low_res.abs().max():.2f} "
                  f"iou {iou.flatten()[:4].tolist()}")
    save_file(io, str(out_dir / "io.safetensors"))


def preprocess_fixture() -> None:
    out_dir = OUT / "preprocess"
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = np.array(Image.open(SAMPLE_FRAME).convert("RGB"))
    big = test_image(1300, 1100)
    io = {}
    for name, img in (("frame", frame), ("large", big)):
        r = product_resize(img, 1024)[0].permute(1, 2, 0).contiguous()  # HWC
        io[f"{name}.size"] = torch.tensor(list(r.shape[:2]), dtype=torch.int64)
        io[f"{name}.resized.s8"] = r[::8, ::8].contiguous()
        io[f"{name}.sum"] = r.to(torch.int64).sum().reshape(1)
    save_file(io, str(out_dir / "io.safetensors"))


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(2)
    run_model("tiny", build_tiny(), TINY, (48, 64), strides={"hq": 4, ("hq", "points"): 2, "plain": 4})
    run_model("vit", build_vit(), VIT, (40, 56), strides={"hq": 1, "plain": 2})
    preprocess_fixture()
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"fixtures: {total / 1e6:.2f} MB in {OUT}")


if __name__ == "__main__":
    main()
