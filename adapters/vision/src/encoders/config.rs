//! The encoder configuration, read from a Hugging Face `config.json` (`model_type` `dinov2`,
//! `dinov2_with_registers` or `dinov3_vit`), with the defaults `transformers` applies to keys a
//! file leaves out.

use serde_json::Value;

use super::EncoderError;

/// Which family of vision transformer, which decides the embeddings and the weight names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// HF `Dinov2Model`: learned position embeddings, interpolated with plain bicubic.
    Dinov2,
    /// HF `Dinov2WithRegistersModel`: as DINOv2, plus register tokens and antialiased bicubic
    /// interpolation of the position embeddings.
    Dinov2WithRegisters,
    /// HF `DINOv3ViTModel`: rotary position embeddings on the patch tokens, register tokens.
    Dinov3,
}

/// An activation function named by `hidden_act`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact GELU (erf), transformers' `"gelu"`.
    Gelu,
    /// `x · sigmoid(x)`, transformers' `"silu"` / `"swish"`.
    Silu,
}

/// The feed-forward block of each layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MlpKind {
    /// `fc2(act(fc1(x)))` (DINOv2: `mlp.fc1`/`mlp.fc2`; DINOv3: `mlp.up_proj`/`mlp.down_proj`).
    Plain,
    /// `down(act(gate(x)) · up(x))`. DINOv2 stores gate and up stacked in `mlp.weights_in` and
    /// the down projection in `mlp.weights_out`; DINOv3 stores `gate_proj`/`up_proj`/`down_proj`.
    Gated,
}

/// Everything the encoders need from `config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderConfig {
    pub family: Family,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    /// Width of the feed-forward hidden layer.
    pub intermediate_size: usize,
    pub mlp: MlpKind,
    pub activation: Activation,
    pub patch_size: usize,
    /// The training image size (DINOv2: the size of the learned position-embedding grid).
    pub image_size: usize,
    pub num_register_tokens: usize,
    pub layer_norm_eps: f64,
    pub query_bias: bool,
    pub key_bias: bool,
    pub value_bias: bool,
    pub proj_bias: bool,
    pub mlp_bias: bool,
    /// RoPE base (DINOv3 only).
    pub rope_theta: f64,
}

impl EncoderConfig {
    /// The dimension of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    /// Tokens before the patch tokens: the class token and the registers.
    pub fn num_prefix_tokens(&self) -> usize {
        1 + self.num_register_tokens
    }

    /// Parses the text of a `config.json`.
    pub fn from_json_str(text: &str) -> Result<Self, EncoderError> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| EncoderError::Config(format!("config.json is not valid JSON: {e}")))?;
        Self::from_json(&v)
    }

    /// Reads a parsed `config.json`.
    pub fn from_json(v: &Value) -> Result<Self, EncoderError> {
        let model_type = v
            .get("model_type")
            .and_then(Value::as_str)
            .ok_or_else(|| EncoderError::Config("config.json has no model_type".into()))?;
        let family = match model_type {
            "dinov2" => Family::Dinov2,
            "dinov2_with_registers" => Family::Dinov2WithRegisters,
            "dinov3_vit" => Family::Dinov3,
            other => {
                return Err(EncoderError::Config(format!(
                    "model_type {other:?} is not an image encoder this build supports \
                     (dinov2, dinov2_with_registers, dinov3_vit)"
                )));
            }
        };
        let r = Reader(v);
        let cfg = match family {
            Family::Dinov2 | Family::Dinov2WithRegisters => {
                let hidden_size = r.usize("hidden_size", 768)?;
                let mlp_ratio = r.f64("mlp_ratio", 4.0)?;
                let swiglu = r.bool("use_swiglu_ffn", false)?;
                let plain_hidden = (hidden_size as f64 * mlp_ratio) as usize;
                let (mlp, activation, intermediate_size) = if swiglu {
                    // transformers' Dinov2SwiGLUFFN: 2/3 of the plain width, rounded up to 8.
                    let h = (plain_hidden * 2 / 3).div_ceil(8) * 8;
                    (MlpKind::Gated, Activation::Silu, h)
                } else {
                    (
                        MlpKind::Plain,
                        activation(&r.str("hidden_act", "gelu")?)?,
                        plain_hidden,
                    )
                };
                let qkv_bias = r.bool("qkv_bias", true)?;
                EncoderConfig {
                    family,
                    hidden_size,
                    num_layers: r.usize("num_hidden_layers", 12)?,
                    num_heads: r.usize("num_attention_heads", 12)?,
                    intermediate_size,
                    mlp,
                    activation,
                    patch_size: r.usize("patch_size", 14)?,
                    image_size: r.usize(
                        "image_size",
                        if family == Family::Dinov2 { 224 } else { 518 },
                    )?,
                    num_register_tokens: if family == Family::Dinov2WithRegisters {
                        r.usize("num_register_tokens", 4)?
                    } else {
                        0
                    },
                    layer_norm_eps: r.f64("layer_norm_eps", 1e-6)?,
                    query_bias: qkv_bias,
                    key_bias: qkv_bias,
                    value_bias: qkv_bias,
                    proj_bias: true,
                    mlp_bias: true,
                    rope_theta: 0.0,
                }
            }
            Family::Dinov3 => EncoderConfig {
                family,
                hidden_size: r.usize("hidden_size", 384)?,
                num_layers: r.usize("num_hidden_layers", 12)?,
                num_heads: r.usize("num_attention_heads", 6)?,
                intermediate_size: r.usize("intermediate_size", 1536)?,
                mlp: if r.bool("use_gated_mlp", false)? {
                    MlpKind::Gated
                } else {
                    MlpKind::Plain
                },
                activation: activation(&r.str("hidden_act", "gelu")?)?,
                patch_size: r.usize("patch_size", 16)?,
                image_size: r.usize("image_size", 224)?,
                num_register_tokens: r.usize("num_register_tokens", 0)?,
                layer_norm_eps: r.f64("layer_norm_eps", 1e-5)?,
                query_bias: r.bool("query_bias", true)?,
                key_bias: r.bool("key_bias", false)?,
                value_bias: r.bool("value_bias", true)?,
                proj_bias: r.bool("proj_bias", true)?,
                mlp_bias: r.bool("mlp_bias", true)?,
                rope_theta: r.f64("rope_theta", 100.0)?,
            },
        };
        if cfg.num_heads == 0 || cfg.hidden_size % cfg.num_heads != 0 {
            return Err(EncoderError::Config(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                cfg.hidden_size, cfg.num_heads
            )));
        }
        if cfg.family == Family::Dinov3 && cfg.head_dim() % 4 != 0 {
            return Err(EncoderError::Config(format!(
                "DINOv3 rotary embeddings need a head dimension divisible by 4, not {}",
                cfg.head_dim()
            )));
        }
        if cfg.patch_size == 0 {
            return Err(EncoderError::Config("patch_size must be positive".into()));
        }
        Ok(cfg)
    }

    /// The configuration as `transformers` writes it in `config.json` (the keys this crate reads).
    /// A DINOv2 SwiGLU model is written with `mlp_ratio` 4, the only ratio its checkpoints use:
    /// its hidden width is derived from the ratio and cannot be stated directly.
    pub fn to_json(&self) -> Value {
        let act = match self.activation {
            Activation::Gelu => "gelu",
            Activation::Silu => "silu",
        };
        match self.family {
            Family::Dinov2 | Family::Dinov2WithRegisters => {
                let gated = self.mlp == MlpKind::Gated;
                let mut v = serde_json::json!({
                    "model_type": if self.family == Family::Dinov2 { "dinov2" } else { "dinov2_with_registers" },
                    "architectures": [if self.family == Family::Dinov2 { "Dinov2Model" } else { "Dinov2WithRegistersModel" }],
                    "hidden_size": self.hidden_size,
                    "num_hidden_layers": self.num_layers,
                    "num_attention_heads": self.num_heads,
                    "mlp_ratio": if gated { 4.0 } else { self.intermediate_size as f64 / self.hidden_size as f64 },
                    "use_swiglu_ffn": gated,
                    "hidden_act": act,
                    "patch_size": self.patch_size,
                    "image_size": self.image_size,
                    "layer_norm_eps": self.layer_norm_eps,
                    "qkv_bias": self.query_bias,
                });
                if self.family == Family::Dinov2WithRegisters {
                    v["num_register_tokens"] = self.num_register_tokens.into();
                }
                v
            }
            Family::Dinov3 => serde_json::json!({
                "model_type": "dinov3_vit",
                "architectures": ["DINOv3ViTModel"],
                "hidden_size": self.hidden_size,
                "num_hidden_layers": self.num_layers,
                "num_attention_heads": self.num_heads,
                "intermediate_size": self.intermediate_size,
                "use_gated_mlp": self.mlp == MlpKind::Gated,
                "hidden_act": act,
                "patch_size": self.patch_size,
                "image_size": self.image_size,
                "num_register_tokens": self.num_register_tokens,
                "layer_norm_eps": self.layer_norm_eps,
                "query_bias": self.query_bias,
                "key_bias": self.key_bias,
                "value_bias": self.value_bias,
                "proj_bias": self.proj_bias,
                "mlp_bias": self.mlp_bias,
                "rope_theta": self.rope_theta,
            }),
        }
    }

    /// DINOv2 ViT-S/14 (`facebook/dinov2-small`, or `-with-registers-small` when `registers`).
    pub fn dinov2_small(registers: bool) -> Self {
        Self::dinov2(registers, 384, 6)
    }

    /// DINOv2 ViT-B/14 (`facebook/dinov2-base`, or `-with-registers-base` when `registers`).
    pub fn dinov2_base(registers: bool) -> Self {
        Self::dinov2(registers, 768, 12)
    }

    fn dinov2(registers: bool, hidden_size: usize, num_heads: usize) -> Self {
        EncoderConfig {
            family: if registers {
                Family::Dinov2WithRegisters
            } else {
                Family::Dinov2
            },
            hidden_size,
            num_layers: 12,
            num_heads,
            intermediate_size: 4 * hidden_size,
            mlp: MlpKind::Plain,
            activation: Activation::Gelu,
            patch_size: 14,
            image_size: 518,
            num_register_tokens: if registers { 4 } else { 0 },
            layer_norm_eps: 1e-6,
            query_bias: true,
            key_bias: true,
            value_bias: true,
            proj_bias: true,
            mlp_bias: true,
            rope_theta: 0.0,
        }
    }

    /// DINOv3 ViT-S/16 (`facebook/dinov3-vits16-pretrain-lvd1689m`).
    pub fn dinov3_small() -> Self {
        Self::dinov3(384, 12, 6, 1536)
    }

    /// DINOv3 ViT-B/16 (`facebook/dinov3-vitb16-pretrain-lvd1689m`).
    pub fn dinov3_base() -> Self {
        Self::dinov3(768, 12, 12, 3072)
    }

    /// DINOv3 ViT-L/16 (`facebook/dinov3-vitl16-pretrain-lvd1689m`).
    pub fn dinov3_large() -> Self {
        Self::dinov3(1024, 24, 16, 4096)
    }

    fn dinov3(hidden_size: usize, num_layers: usize, num_heads: usize, inter: usize) -> Self {
        EncoderConfig {
            family: Family::Dinov3,
            hidden_size,
            num_layers,
            num_heads,
            intermediate_size: inter,
            mlp: MlpKind::Plain,
            activation: Activation::Gelu,
            patch_size: 16,
            image_size: 224,
            num_register_tokens: 4,
            layer_norm_eps: 1e-5,
            query_bias: true,
            key_bias: false,
            value_bias: true,
            proj_bias: true,
            mlp_bias: true,
            rope_theta: 100.0,
        }
    }
}

fn activation(name: &str) -> Result<Activation, EncoderError> {
    match name {
        "gelu" => Ok(Activation::Gelu),
        "silu" | "swish" => Ok(Activation::Silu),
        other => Err(EncoderError::Config(format!(
            "hidden_act {other:?} is not supported (gelu, silu)"
        ))),
    }
}

/// Typed access to optional keys, with the `transformers` default when a key is absent or null.
struct Reader<'a>(&'a Value);

impl Reader<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    fn usize(&self, key: &str, default: usize) -> Result<usize, EncoderError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_u64()
                .map(|n| n as usize)
                // image_size / patch_size may be [h, w]; square ones are accepted.
                .or_else(|| match v.as_array().map(Vec::as_slice) {
                    Some([a, b]) if a == b => a.as_u64().map(|n| n as usize),
                    _ => None,
                })
                .ok_or_else(|| bad(key, v)),
        }
    }

    fn f64(&self, key: &str, default: f64) -> Result<f64, EncoderError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| bad(key, v)),
        }
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool, EncoderError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| bad(key, v)),
        }
    }

    fn str(&self, key: &str, default: &str) -> Result<String, EncoderError> {
        match self.get(key) {
            None => Ok(default.to_string()),
            Some(v) => v.as_str().map(str::to_string).ok_or_else(|| bad(key, v)),
        }
    }
}

fn bad(key: &str, v: &Value) -> EncoderError {
    EncoderError::Config(format!("config.json key {key} has an unexpected value {v}"))
}
