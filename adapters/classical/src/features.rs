//! Per-pixel features: a colour bin in a hue/saturation/value quantisation and a local gradient
//! code (flat, or one of eight orientations at two strengths), combined into one small integer so
//! that class likelihoods are a single table lookup per pixel. Both quantisations go through
//! lookup tables built once per process, so no pixel needs trigonometry or division.

use std::sync::OnceLock;

use visprompt_runtime::RgbImage;

/// Near-grey pixels, by brightness.
const GREY_BINS: usize = 8;
const HUE_BINS: usize = 24;
const SATURATION_LEVELS: usize = 2;
const VALUE_LEVELS: usize = 3;
pub(crate) const COLOUR_BINS: usize = GREY_BINS + HUE_BINS * SATURATION_LEVELS * VALUE_LEVELS;

/// Code 0 is "flat"; codes 1..=8 weak edges by orientation, 9..=16 strong ones.
pub(crate) const TEXTURE_CODES: usize = 17;
pub(crate) const FEATURE_CODES: usize = COLOUR_BINS * TEXTURE_CODES;

/// Gradient magnitude (|gx| + |gy| on 0..255 luminance, over two pixels) below which a pixel
/// counts as flat; it sits above what sensor noise alone produces.
const FLAT_BELOW: i32 = 24;
const STRONG_FROM: i32 = 90;

/// Gradients are looked up at a resolution of 8 levels per axis.
const GRADIENT_STEP: i32 = 8;
const GRADIENT_CELLS: usize = (512 / GRADIENT_STEP) as usize;

pub(crate) fn colour_of(code: u16) -> usize {
    code as usize / TEXTURE_CODES
}

pub(crate) fn texture_of(code: u16) -> usize {
    code as usize % TEXTURE_CODES
}

struct Quantiser {
    /// Colour bin of every RGB colour cut to 5 bits per channel.
    colour: Vec<u8>,
    /// Orientation (0..8) of every gradient, indexed by (gy, gx) in steps of `GRADIENT_STEP`.
    orientation: Vec<u8>,
}

fn quantiser() -> &'static Quantiser {
    static QUANTISER: OnceLock<Quantiser> = OnceLock::new();
    QUANTISER.get_or_init(|| {
        let mut colour = vec![0u8; 1 << 15];
        for (index, bin) in colour.iter_mut().enumerate() {
            // The centre of the 5-bit cell stands for it.
            let channel = |shift: usize| (((index >> shift) & 31) as u8) << 3 | 4;
            *bin = colour_bin([channel(10), channel(5), channel(0)]) as u8;
        }
        let mut orientation = vec![0u8; GRADIENT_CELLS * GRADIENT_CELLS];
        for gy in 0..GRADIENT_CELLS {
            for gx in 0..GRADIENT_CELLS {
                let centre = |i: usize| (i as i32 * GRADIENT_STEP - 256 + GRADIENT_STEP / 2) as f64;
                let angle = centre(gy).atan2(centre(gx));
                let sector = (angle / std::f64::consts::FRAC_PI_4).round() as i32;
                orientation[gy * GRADIENT_CELLS + gx] = sector.rem_euclid(8) as u8;
            }
        }
        Quantiser {
            colour,
            orientation,
        }
    })
}

/// The bin of one colour: grey levels for weakly coloured pixels, otherwise hue in 15° steps by
/// two saturation and three brightness levels. Hue first because it survives shading best.
fn colour_bin([r, g, b]: [u8; 3]) -> usize {
    let (r, g, b) = (i32::from(r), i32::from(g), i32::from(b));
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let chroma = max - min;
    if chroma < 20 + max / 16 {
        return max as usize * GREY_BINS / 256;
    }
    let c = f64::from(chroma);
    let hue = if max == r {
        (f64::from(g - b) / c).rem_euclid(6.0)
    } else if max == g {
        f64::from(b - r) / c + 2.0
    } else {
        f64::from(r - g) / c + 4.0
    } * 60.0;
    let hue_bin = (hue / (360.0 / HUE_BINS as f64)) as usize % HUE_BINS;
    let saturation = usize::from(c / f64::from(max) >= 0.45);
    let value = match max {
        0..100 => 0,
        100..180 => 1,
        _ => 2,
    };
    GREY_BINS + (hue_bin * SATURATION_LEVELS + saturation) * VALUE_LEVELS + value
}

/// Spreads each chromatic bin's mass to its neighbours in hue (a quarter each side, wrapping
/// around), then in brightness and saturation (a fifth each side), and each grey bin's to its
/// neighbours in brightness, so that a colour a little off the reference's (noise, shading, a
/// change of lighting across a level boundary) is still likely under its model. The total mass
/// is kept: at the ends of a non-circular axis the spread-out share stays in place.
pub(crate) fn smooth_colour_histogram(histogram: &mut [f64]) {
    debug_assert_eq!(histogram.len(), COLOUR_BINS);
    blur(&mut histogram[..GREY_BINS], 1, GREY_BINS, 0.25, false);
    let chromatic = &mut histogram[GREY_BINS..];
    blur(
        chromatic,
        SATURATION_LEVELS * VALUE_LEVELS,
        HUE_BINS,
        0.25,
        true,
    );
    blur(chromatic, VALUE_LEVELS, SATURATION_LEVELS, 0.2, false);
    blur(chromatic, 1, VALUE_LEVELS, 0.2, false);
}

/// Moves `share` of every bin's mass to each neighbour along one axis of a row-major array,
/// where consecutive bins on the axis are `stride` apart and the axis has `len` bins.
fn blur(bins: &mut [f64], stride: usize, len: usize, share: f64, circular: bool) {
    let original = bins.to_vec();
    bins.fill(0.0);
    for (i, &mass) in original.iter().enumerate() {
        let position = (i / stride) % len;
        let base = i - position * stride;
        let left = match position {
            0 if circular => Some(len - 1),
            0 => None,
            p => Some(p - 1),
        };
        let right = match position + 1 {
            p if p < len => Some(p),
            _ if circular => Some(0),
            _ => None,
        };
        let mut keep = mass * (1.0 - 2.0 * share);
        for neighbour in [left, right] {
            match neighbour {
                Some(n) => bins[base + n * stride] += mass * share,
                None => keep += mass * share,
            }
        }
        bins[i] += keep;
    }
}

/// Reusable buffers for computing the feature codes of frames of one size after another.
#[derive(Default)]
pub(crate) struct FeatureCodes {
    luminance: Vec<u8>,
    colours: Vec<u8>,
    /// One code per pixel, row-major: `colour * TEXTURE_CODES + texture`.
    pub(crate) codes: Vec<u16>,
}

impl FeatureCodes {
    pub(crate) fn of(image: &RgbImage) -> Self {
        let mut features = Self::default();
        features.compute(image);
        features
    }

    pub(crate) fn compute(&mut self, image: &RgbImage) {
        let q = quantiser();
        let (w, h) = (image.width() as usize, image.height() as usize);
        let n = w * h;
        self.luminance.clear();
        self.colours.clear();
        self.luminance.reserve(n);
        self.colours.reserve(n);
        for p in image.as_raw().chunks_exact(3) {
            let (r, g, b) = (u32::from(p[0]), u32::from(p[1]), u32::from(p[2]));
            self.luminance
                .push(((77 * r + 150 * g + 29 * b) >> 8) as u8);
            let key = ((r >> 3) << 10) | ((g >> 3) << 5) | (b >> 3);
            self.colours.push(q.colour[key as usize]);
        }
        self.codes.clear();
        self.codes.resize(n, 0);
        let lum = &self.luminance;
        for y in 0..h {
            let (up, down) = (y.saturating_sub(1), (y + 1).min(h - 1));
            for x in 0..w {
                let (left, right) = (x.saturating_sub(1), (x + 1).min(w - 1));
                let gx = i32::from(lum[y * w + right]) - i32::from(lum[y * w + left]);
                let gy = i32::from(lum[down * w + x]) - i32::from(lum[up * w + x]);
                let magnitude = gx.abs() + gy.abs();
                let texture = if magnitude < FLAT_BELOW {
                    0
                } else {
                    let cell = |g: i32| ((g + 256) / GRADIENT_STEP) as usize;
                    let orientation = q.orientation[cell(gy) * GRADIENT_CELLS + cell(gx)];
                    1 + orientation as usize + 8 * usize::from(magnitude >= STRONG_FROM)
                };
                let i = y * w + x;
                self.codes[i] = (self.colours[i] as usize * TEXTURE_CODES + texture) as u16;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greys_and_strong_colours_fall_in_different_bins() {
        let grey = colour_bin([128, 128, 128]);
        assert!(grey < GREY_BINS);
        let (red, green, blue) = (
            colour_bin([200, 30, 30]),
            colour_bin([30, 200, 30]),
            colour_bin([30, 30, 200]),
        );
        for bin in [red, green, blue] {
            assert!((GREY_BINS..COLOUR_BINS).contains(&bin));
        }
        assert!(red != green && green != blue && red != blue);
        // Darker red: same hue, another brightness level.
        assert_ne!(colour_bin([90, 10, 10]), red);
    }

    #[test]
    fn the_lookup_table_agrees_with_the_exact_bin_for_cell_centres() {
        let q = quantiser();
        for rgb in [[4u8, 4, 4], [204, 44, 44], [44, 84, 204], [188, 236, 148]] {
            let key = ((rgb[0] as usize >> 3) << 10)
                | ((rgb[1] as usize >> 3) << 5)
                | (rgb[2] as usize >> 3);
            assert_eq!(q.colour[key] as usize, colour_bin(rgb));
        }
    }

    #[test]
    fn flat_areas_are_flat_and_edges_have_their_orientation() {
        // Left half dark, right half bright: a vertical edge, gradient pointing along +x.
        let mut image = RgbImage::new(8, 8);
        for y in 0..8 {
            for x in 4..8 {
                image.put_pixel(x, y, [200, 200, 200]);
            }
        }
        let features = FeatureCodes::of(&image);
        let texture = |x: usize, y: usize| texture_of(features.codes[y * 8 + x]);
        assert_eq!(texture(1, 4), 0);
        assert_eq!(texture(6, 4), 0);
        // Orientation 0 (along +x), strong.
        assert_eq!(texture(3, 4), 1 + 8);
        assert_eq!(texture(4, 4), 1 + 8);
        // The same edge turned by 90°: gradient along +y is orientation 2.
        let mut turned = RgbImage::new(8, 8);
        for y in 4..8 {
            for x in 0..8 {
                turned.put_pixel(x, y, [200, 200, 200]);
            }
        }
        let features = FeatureCodes::of(&turned);
        assert_eq!(texture_of(features.codes[3 * 8 + 2]), 1 + 2 + 8);
        assert_eq!(
            colour_of(features.codes[7 * 8 + 2]),
            colour_bin([200, 200, 200])
        );
    }

    #[test]
    fn smoothing_keeps_the_mass_and_wraps_around_in_hue() {
        let mut histogram = vec![0.0; COLOUR_BINS];
        let red = colour_bin([200, 30, 30]);
        histogram[red] = 1.0;
        histogram[3] = 1.0;
        smooth_colour_histogram(&mut histogram);
        let total: f64 = histogram.iter().sum();
        assert!((total - 2.0).abs() < 1e-9);
        assert!(histogram[red] > 0.2 && histogram[red] < 0.5);
        assert!(histogram[2] > 0.0 && histogram[4] > 0.0);
        // Red sits at hue 0: its neighbour across the wrap gets a share.
        let across = GREY_BINS + (HUE_BINS - 1) * SATURATION_LEVELS * VALUE_LEVELS;
        let red_rest = red - GREY_BINS;
        assert!(histogram[across + red_rest] > 0.1);
        // A darker red, one brightness level down, gets a share too.
        assert!(histogram[colour_bin([120, 20, 20])] > 0.05);
    }
}
