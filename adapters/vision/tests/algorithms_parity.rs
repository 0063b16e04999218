//! Matcher, SoftMatcher and PerDINO against the reference library (`instantlearn`), run by
//! `tools/parity/algorithms.py` on a tiny random-weight DINOv3 and the tiny SAM-HQ of the
//! segmenter fixtures, on the same images and masks. For every case, one-shot and few-shot:
//!
//! - the reference features (pooled masks, prototypes) and the point prompts computed from the
//!   reference's own patch features: identical points, similarity maps within 1e-5;
//! - the whole pipeline from the images with our encoder: identical points; the same decoded
//!   candidates (count, scores within 2e-4, masks at IoU ≥ 0.99); the final masks at IoU ≥ 0.99
//!   with the same labels and scores within 2e-4.
//!
//! Plus SciPy's assignments on tie-heavy matrices and the reference post-processor on hand-made
//! overlapping masks, value for value.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use visprompt_vision::detect::decode::{Candidate, DecodeOptions};
use visprompt_vision::detect::features::{
    self, FeatureEncoder, MaskView, PatchFeatures, ReferenceShot,
};
use visprompt_vision::detect::lsa::linear_sum_assignment;
use visprompt_vision::detect::postprocess::postprocess;
use visprompt_vision::detect::prompts::{
    self, CategoryPrompts, Geometry, GridPrompting, MatcherPrompting, SoftPrompting,
};
use visprompt_vision::detect::{AlgorithmSettings, BinaryMask, ReferenceImage, VisualPrompter};
use visprompt_vision::encoders::RgbImage;
use visprompt_vision::segmenters::{Sam, SamConfig};
use visprompt_vision::weights::load_encoder_dir;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fixtures() -> PathBuf {
    root().join("algorithms")
}

fn load(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn f32s(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn i64s(t: &Tensor) -> Vec<i64> {
    t.to_dtype(DType::I64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// An 8-bit RGB image: (width, height, pixels).
fn rgb(rel: &str) -> Pixels {
    let img = image::open(fixtures().join(rel)).unwrap().to_rgb8();
    (img.width() as usize, img.height() as usize, img.into_raw())
}

/// A mask PNG: non-zero pixels are the object.
fn mask(rel: &str) -> Pixels {
    let img = image::open(fixtures().join(rel)).unwrap().to_luma8();
    let data = img.as_raw().iter().map(|&v| u8::from(v != 0)).collect();
    (img.width() as usize, img.height() as usize, data)
}

fn encoder() -> Arc<FeatureEncoder> {
    let e = load_encoder_dir(&fixtures().join("encoder"), DType::F32, &Device::Cpu).unwrap();
    Arc::new(FeatureEncoder::new(e, 512))
}

fn sam() -> Arc<Sam> {
    let text = std::fs::read_to_string(root().join("models/sam_hq_tiny.config.json")).unwrap();
    let cfg: SamConfig = serde_json::from_str(&text).unwrap();
    Arc::new(
        Sam::from_file(
            &cfg,
            &root().join("segmenters/tiny/model.pth"),
            &Device::Cpu,
        )
        .unwrap(),
    )
}

/// (width, height, bytes): RGB pixels or a 0/1 mask.
type Pixels = (usize, usize, Vec<u8>);

struct Case {
    name: String,
    json: Value,
    io: HashMap<String, Tensor>,
}

impl Case {
    fn load(name: &str) -> Self {
        let dir = fixtures().join("cases").join(name);
        let json =
            serde_json::from_str(&std::fs::read_to_string(dir.join("case.json")).unwrap()).unwrap();
        Case {
            name: name.into(),
            json,
            io: load(&dir.join("io.safetensors")),
        }
    }

    fn t(&self, key: &str) -> &Tensor {
        self.io
            .get(key)
            .unwrap_or_else(|| panic!("{}: no {key}", self.name))
    }

    fn settings(&self) -> (AlgorithmSettings, DecodeOptions) {
        let p = &self.json["parameters"];
        let u = |k: &str| p[k].as_u64().unwrap() as usize;
        let threshold = self.json["confidence_threshold"].as_f64().unwrap() as f32;
        match self.json["algorithm"].as_str().unwrap() {
            "Matcher" => (
                AlgorithmSettings::Matcher(MatcherPrompting {
                    num_foreground: u("num_foreground_points"),
                    num_background: u("num_background_points"),
                    similarity_threshold: p["similarity_threshold"].as_f64().map(|v| v as f32),
                    num_grid_cells: u("num_grid_cells"),
                }),
                DecodeOptions {
                    confidence_threshold: threshold,
                    mask_refinement: p["use_mask_refinement"].as_bool().unwrap(),
                },
            ),
            "SoftMatcher" => (
                AlgorithmSettings::SoftMatcher(SoftPrompting {
                    num_foreground: u("num_foreground_points"),
                    num_background: u("num_background_points"),
                    score_threshold: p["softmatching_score_threshold"].as_f64().unwrap() as f32,
                    bidirectional: p["softmatching_bidirectional"].as_bool().unwrap(),
                    spatial_sampling: p["use_spatial_sampling"].as_bool().unwrap(),
                    sampling_seed: None,
                    rff_seed: None,
                }),
                DecodeOptions {
                    confidence_threshold: threshold,
                    mask_refinement: true,
                },
            ),
            "PerDino" => (
                AlgorithmSettings::PerDino(GridPrompting {
                    num_foreground: u("num_foreground_points"),
                    num_background: u("num_background_points"),
                    num_grid_cells: u("num_grid_cells"),
                    point_selection_threshold: p["point_selection_threshold"].as_f64().unwrap()
                        as f32,
                }),
                DecodeOptions {
                    confidence_threshold: threshold,
                    mask_refinement: false,
                },
            ),
            other => panic!("unknown algorithm {other}"),
        }
    }

    /// `(image, [(category id, mask)])` of each reference.
    fn references(&self) -> Vec<(Pixels, Vec<(u32, Pixels)>)> {
        self.json["references"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let masks = r["masks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| {
                        (
                            m["category_id"].as_u64().unwrap() as u32,
                            mask(m["file"].as_str().unwrap()),
                        )
                    })
                    .collect();
                (rgb(r["image"].as_str().unwrap()), masks)
            })
            .collect()
    }

    fn targets(&self) -> Vec<Pixels> {
        self.json["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| rgb(t.as_str().unwrap()))
            .collect()
    }
}

const CASES: &[&str] = &[
    "matcher_one_shot",
    "matcher_few_shot",
    "matcher_library_defaults_few_shot",
    "soft_matcher_one_shot",
    "soft_matcher_few_shot",
    "per_dino_one_shot",
    "per_dino_few_shot",
];

/// The reference's patch features of a fixture image (by file stem).
fn reference_features(stem: &str) -> PatchFeatures {
    let all = load(&fixtures().join("features.safetensors"));
    let data = f32s(&all[&format!("{stem}.features")]);
    let dim = data.len() / 1024;
    PatchFeatures::from_raw(32, 32, dim, data)
}

fn stem(path: &str) -> String {
    Path::new(path)
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string()
}

/// The fixture's prompt rows `[K, 4]` of target `t`, category `c`: (foreground, background).
fn expected_points(case: &Case, t: usize, c: usize) -> (Vec<[f32; 3]>, Vec<[f32; 3]>) {
    let pts = case.t("prompts.points");
    let (_, _, k, _) = pts.dims4().unwrap();
    let rows = f32s(&pts.get(t).unwrap().get(c).unwrap());
    let (mut fg, mut bg) = (Vec::new(), Vec::new());
    for r in rows.chunks_exact(4).take(k) {
        match r[3] as i32 {
            1 => fg.push([r[0], r[1], r[2]]),
            -1 => bg.push([r[0], r[1], r[2]]),
            _ => {}
        }
    }
    (fg, bg)
}

fn assert_points_equal(case: &Case, what: &str, ours: &CategoryPrompts, t: usize, c: usize) {
    let (fg, bg) = expected_points(case, t, c);
    let xy = |p: &[[f32; 3]]| p.iter().map(|v| (v[0], v[1])).collect::<Vec<_>>();
    let ours_fg: Vec<(f32, f32)> = ours.foreground.iter().map(|p| (p.x, p.y)).collect();
    let ours_bg: Vec<(f32, f32)> = ours.background.iter().map(|p| (p.x, p.y)).collect();
    assert_eq!(
        ours_fg,
        xy(&fg),
        "{} {what}: foreground points of t{t} c{c}",
        case.name
    );
    assert_eq!(
        ours_bg,
        xy(&bg),
        "{} {what}: background points of t{t} c{c}",
        case.name
    );
    for (o, e) in ours.foreground.iter().zip(&fg) {
        assert!(
            (o.score - e[2]).abs() <= 1e-5 * e[2].abs().max(1.0),
            "{} {what}: point score {} vs {}",
            case.name,
            o.score,
            e[2]
        );
    }
    let sim = f32s(&case.t("prompts.similarity").get(t).unwrap().get(c).unwrap());
    let worst = sim
        .iter()
        .zip(&ours.similarity)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        worst <= 1e-5,
        "{} {what}: similarity map off by {worst}",
        case.name
    );
}

fn geometry(h: usize, w: usize) -> Geometry {
    Geometry {
        input_size: 512,
        patch_size: 16,
        grid: 32,
        image_size: (h, w),
    }
}

#[test]
fn reference_features_and_prompts_from_the_references_patch_features() {
    for name in CASES {
        let case = Case::load(name);
        // Features of each reference image, from the reference's encoder output.
        let refs = &case.json["references"];
        let feats: Vec<PatchFeatures> = refs
            .as_array()
            .unwrap()
            .iter()
            .map(|r| reference_features(&stem(r["image"].as_str().unwrap())))
            .collect();
        let pixel_masks = case.references();
        let shots: Vec<ReferenceShot<'_>> = feats
            .iter()
            .zip(&pixel_masks)
            .map(|(f, (_, masks))| {
                let views: Vec<(u32, MaskView<'_>)> = masks
                    .iter()
                    .map(|(c, (w, h, d))| {
                        (
                            *c,
                            MaskView {
                                width: *w,
                                height: *h,
                                data: d,
                            },
                        )
                    })
                    .collect();
                ReferenceShot {
                    features: f,
                    pooled_masks: features::pool_category_masks(
                        &views,
                        512,
                        16,
                        features::pool_mask,
                    ),
                }
            })
            .collect();
        let ours = features::reference_features(&shots);
        let ids: Vec<i64> = ours.categories.iter().map(|c| i64::from(c.id)).collect();
        assert_eq!(
            ids,
            i64s(case.t("ref.category_ids")),
            "{name}: category order"
        );
        let masks = f32s(case.t("ref.flatten_ref_masks"));
        let protos = f32s(case.t("ref.masked_ref_embeddings"));
        let dim = ours.dim;
        for (c, cat) in ours.categories.iter().enumerate() {
            let n = cat.ref_mask.len();
            let expected = &masks[c * n..(c + 1) * n];
            for (i, (a, b)) in cat.ref_mask.iter().zip(expected).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 && ((*a == 0.0) == (*b == 0.0)),
                    "{name}: pooled mask of category {} at patch {i}: {a} vs {b}",
                    cat.id
                );
            }
            let p = cat.prototype.as_ref().expect("a prototype");
            let e = &protos[c * dim..(c + 1) * dim];
            let worst = p
                .iter()
                .zip(e)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(
                worst <= 1e-5,
                "{name}: prototype of {} off by {worst}",
                cat.id
            );
        }
        // Prompts from the reference's features of each target.
        let (algorithm, _) = case.settings();
        for (t, target) in case.json["targets"].as_array().unwrap().iter().enumerate() {
            let tf = reference_features(&stem(target.as_str().unwrap()));
            let size = i64s(&case.t("target_sizes").get(t).unwrap());
            let geo = geometry(size[0] as usize, size[1] as usize);
            for (c, cat) in ours.categories.iter().enumerate() {
                let prompts = match &algorithm {
                    AlgorithmSettings::Matcher(p) => prompts::matcher_prompts(cat, &tf, &geo, p),
                    AlgorithmSettings::SoftMatcher(p) => {
                        prompts::soft_matcher_prompts(cat, &tf, &geo, p)
                    }
                    AlgorithmSettings::PerDino(p) => prompts::grid_prompts(cat, &tf, &geo, p),
                }
                .unwrap();
                assert_points_equal(&case, "from its features", &prompts, t, c);
            }
        }
    }
}

fn iou(a: &[u8], b: &[u8]) -> f64 {
    let inter = a
        .iter()
        .zip(b)
        .filter(|(x, y)| **x != 0 && **y != 0)
        .count();
    let union = a
        .iter()
        .zip(b)
        .filter(|(x, y)| **x != 0 || **y != 0)
        .count();
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

/// Row-major bits, most significant first.
fn unpack(packed: &[u8], n: usize) -> Vec<u8> {
    (0..n).map(|i| (packed[i / 8] >> (7 - i % 8)) & 1).collect()
}

#[test]
fn the_whole_pipeline_matches_the_reference_from_the_images() {
    let encoder = encoder();
    let sam = sam();
    // Our encoder against the reference's, on every fixture image.
    let all = load(&fixtures().join("features.safetensors"));
    for stem in ["ref_a", "ref_b", "tgt_a", "tgt_b"] {
        let (w, h, data) = rgb(&format!("images/{stem}.png"));
        let ours = encoder
            .encode(RgbImage {
                width: w,
                height: h,
                data: &data,
            })
            .unwrap();
        let theirs = f32s(&all[&format!("{stem}.features")]);
        let worst = ours
            .data
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst <= 1e-4, "{stem}: encoder features off by {worst}");
    }
    for name in CASES {
        let case = Case::load(name);
        let (algorithm, decode) = case.settings();
        let mut prompter = VisualPrompter::new(encoder.clone(), sam.clone(), algorithm, decode);
        let refs = case.references();
        let shots: Vec<ReferenceImage<'_>> = refs
            .iter()
            .map(|((w, h, data), masks)| ReferenceImage {
                image: RgbImage {
                    width: *w,
                    height: *h,
                    data,
                },
                masks: masks
                    .iter()
                    .map(|(c, (mw, mh, d))| {
                        (
                            *c,
                            MaskView {
                                width: *mw,
                                height: *mh,
                                data: d,
                            },
                        )
                    })
                    .collect(),
            })
            .collect();
        prompter.fit(&shots).unwrap();
        for (t, (w, h, data)) in case.targets().iter().enumerate() {
            let trace = prompter
                .predict_traced(RgbImage {
                    width: *w,
                    height: *h,
                    data,
                })
                .unwrap();
            for (c, p) in trace.prompts.iter().enumerate() {
                assert_points_equal(&case, "end to end", p, t, c);
            }
            check_candidates(&case, t, &trace.candidates, *w * *h);
            check_final(&case, t, &trace.predictions);
        }
    }
}

fn check_candidates(case: &Case, t: usize, ours: &[Candidate], pixels: usize) {
    let name = &case.name;
    let areas = i64s(case.t(&format!("decoder.t{t}.areas")));
    let scores = f32s(case.t(&format!("decoder.t{t}.scores")));
    let labels = i64s(case.t(&format!("decoder.t{t}.labels")));
    assert_eq!(ours.len(), areas.len(), "{name} t{t}: decoded candidates");
    let packed = case.t(&format!("decoder.t{t}.masks_packed"));
    let stored = packed.dim(0).unwrap();
    for (i, c) in ours.iter().enumerate() {
        assert_eq!(
            i64::from(c.category),
            labels[i],
            "{name} t{t}: label of candidate {i}"
        );
        assert!(
            (c.score - scores[i]).abs() <= 2e-4,
            "{name} t{t}: score of candidate {i}: {} vs {}",
            c.score,
            scores[i]
        );
        let area = c.mask.area() as f64;
        assert!(
            (area - areas[i] as f64).abs() <= 0.01 * (areas[i] as f64).max(100.0),
            "{name} t{t}: area of candidate {i}: {area} vs {}",
            areas[i]
        );
        if i < stored {
            let bits: Vec<u8> = packed.get(i).unwrap().to_vec1().unwrap();
            let theirs = unpack(&bits, pixels);
            let v = iou(&c.mask.data, &theirs);
            assert!(v >= 0.99, "{name} t{t}: candidate {i} mask IoU {v}");
        }
    }
}

fn check_final(case: &Case, t: usize, ours: &[visprompt_vision::detect::Prediction]) {
    let name = &case.name;
    let masks = case.t(&format!("final.t{t}.pred_masks"));
    let scores = f32s(case.t(&format!("final.t{t}.pred_scores")));
    let labels = i64s(case.t(&format!("final.t{t}.pred_labels")));
    let boxes = f32s(case.t(&format!("final.t{t}.pred_boxes")));
    assert_eq!(ours.len(), labels.len(), "{name} t{t}: final masks");
    for (i, p) in ours.iter().enumerate() {
        assert_eq!(
            i64::from(p.category),
            labels[i],
            "{name} t{t}: final label {i}"
        );
        assert!(
            (p.score - scores[i]).abs() <= 2e-4,
            "{name} t{t}: final score {i}"
        );
        let theirs: Vec<u8> = masks
            .get(i)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let v = iou(&p.mask.data, &theirs);
        assert!(v >= 0.99, "{name} t{t}: final mask {i} IoU {v}");
        let b = &boxes[i * 5..i * 5 + 4];
        let ours_box = [
            p.bbox.0 as f32,
            p.bbox.1 as f32,
            p.bbox.2 as f32,
            p.bbox.3 as f32,
        ];
        let worst = ours_box
            .iter()
            .zip(b)
            .map(|(a, e)| (a - e).abs())
            .fold(0f32, f32::max);
        assert!(worst <= 2.0, "{name} t{t}: final box {ours_box:?} vs {b:?}");
    }
}

#[test]
fn assignments_equal_scipys_including_ties() {
    let all = load(&fixtures().join("lsa.safetensors"));
    let mut names: Vec<&str> = all.keys().filter_map(|k| k.strip_suffix(".cost")).collect();
    names.sort();
    assert!(names.len() >= 10, "the fixture's matrices");
    for name in names {
        let cost = &all[&format!("{name}.cost")];
        let (r, c) = cost.dims2().unwrap();
        let m: Vec<f64> = f32s(cost).into_iter().map(f64::from).collect();
        let a = linear_sum_assignment(&m, r, c, true);
        let rows: Vec<i64> = a.rows.iter().map(|&v| v as i64).collect();
        let cols: Vec<i64> = a.cols.iter().map(|&v| v as i64).collect();
        assert_eq!(rows, i64s(&all[&format!("{name}.row_ind")]), "{name}: rows");
        assert_eq!(cols, i64s(&all[&format!("{name}.col_ind")]), "{name}: cols");
    }
}

#[test]
fn post_processing_equals_the_reference_step_by_step() {
    let all = load(&fixtures().join("postprocess.safetensors"));
    for scenario in ["mixed", "all_zero", "single"] {
        let k = |s: &str| format!("post.{scenario}.{s}");
        let masks = &all[&k("masks")];
        let (n, h, w) = masks.dims3().unwrap();
        let scores = f32s(&all[&k("scores")]);
        let labels = i64s(&all[&k("labels")]);
        let candidates: Vec<Candidate> = (0..n)
            .map(|i| Candidate {
                category: labels[i] as u32,
                score: scores[i],
                mask: BinaryMask {
                    width: w,
                    height: h,
                    data: masks
                        .get(i)
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1()
                        .unwrap(),
                },
            })
            .collect();
        let out = postprocess(candidates);
        let exp_scores = f32s(&all[&k("pred_scores")]);
        let exp_labels = i64s(&all[&k("pred_labels")]);
        let exp_boxes = f32s(&all[&k("pred_boxes")]);
        let kept = i64s(&all[&k("keep.box_iom_nms")]);
        assert_eq!(out.len(), exp_scores.len(), "{scenario}: kept");
        for (i, p) in out.iter().enumerate() {
            assert_eq!(p.score, exp_scores[i], "{scenario}: score {i}");
            assert_eq!(
                i64::from(p.category),
                exp_labels[i],
                "{scenario}: label {i}"
            );
            assert_eq!(p.score, scores[kept[i] as usize], "{scenario}: which input");
            let b = [
                p.bbox.0 as f32,
                p.bbox.1 as f32,
                p.bbox.2 as f32,
                p.bbox.3 as f32,
            ];
            assert_eq!(&b[..], &exp_boxes[i * 5..i * 5 + 4], "{scenario}: box {i}");
        }
    }
}
