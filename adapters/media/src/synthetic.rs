//! The synthetic scene: textured shapes moving over a textured background, at positions known
//! exactly, so it is both the demo source of `just run` and ground truth for detector tests.
//! Everything is a pure function of the seed and the frame number; only [`SyntheticSource`] knows
//! about time.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use visprompt_runtime::{BitMask, FrameSource, RgbImage, SourceError};

/// The kinds of object the scene draws; each has its own shape, colours and texture, so a
/// detector must tell them apart by more than one cue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    /// A red disc with dark diagonal stripes.
    StripedDisc,
    /// A blue square with a checkerboard of darker blue.
    CheckeredSquare,
    /// A green triangle, point up, with pale dots.
    DottedTriangle,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 3] = [
        ObjectKind::StripedDisc,
        ObjectKind::CheckeredSquare,
        ObjectKind::DottedTriangle,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            ObjectKind::StripedDisc => "striped disc",
            ObjectKind::CheckeredSquare => "checkered square",
            ObjectKind::DottedTriangle => "dotted triangle",
        }
    }

    /// The base colour and the texture's colour, before sensor noise.
    pub const fn colours(self) -> [[u8; 3]; 2] {
        match self {
            ObjectKind::StripedDisc => [[205, 40, 45], [120, 15, 35]],
            ObjectKind::CheckeredSquare => [[45, 80, 200], [20, 30, 110]],
            ObjectKind::DottedTriangle => [[40, 150, 60], [190, 235, 150]],
        }
    }

    const fn index(self) -> usize {
        match self {
            ObjectKind::StripedDisc => 0,
            ObjectKind::CheckeredSquare => 1,
            ObjectKind::DottedTriangle => 2,
        }
    }
}

/// A Lissajous path around the centre of the object's own vertical strip of the frame. Giving
/// each kind its own strip keeps the objects from ever overlapping, so every ground-truth mask is
/// the whole shape and a scene without some kinds shows the others exactly where they would be.
#[derive(Clone, Copy, Debug)]
struct Path {
    centre: (f64, f64),
    amplitude: (f64, f64),
    /// Radians per frame.
    speed: (f64, f64),
    phase: (f64, f64),
}

impl Path {
    fn centre_at(&self, t: u64) -> (i32, i32) {
        let t = t as f64;
        let x = self.centre.0 + self.amplitude.0 * (self.speed.0 * t + self.phase.0).sin();
        let y = self.centre.1 + self.amplitude.1 * (self.speed.1 * t + self.phase.1).sin();
        (x.round() as i32, y.round() as i32)
    }
}

/// How many different offsets into one precomputed noise table frames start at: each frame
/// reads the table from its own offset, so frames get different noise without generating any.
/// A prime, so that consecutive frames' offsets do not repeat with a short period.
const NOISE_SHIFTS: usize = 4099;

/// A deterministic scene: a fixed textured background and up to three textured objects moving
/// along smooth paths, with a little sensor noise that changes every frame.
#[derive(Clone, Debug)]
pub struct SyntheticScene {
    width: u32,
    height: u32,
    kinds: Vec<ObjectKind>,
    /// One path per kind, indexed by [`ObjectKind::index`], whether the kind is shown or not.
    paths: [Path; 3],
    /// The diameter of the disc, the side of the triangle; the square is a little smaller.
    extent: i32,
    /// RGB bytes of the background, computed once; shared because clones render the same scene.
    background: Arc<[u8]>,
    /// Signed noise per byte, `NOISE_SHIFTS` longer than a frame; empty when noise is off.
    noise: Arc<[i8]>,
    /// `(period, hidden)`: each object leaves the scene for `hidden` frames of every `period`.
    absences: Option<(u64, u64)>,
}

impl Default for SyntheticScene {
    fn default() -> Self {
        Self::new(640, 480, 0)
    }
}

impl SyntheticScene {
    /// Amplitude (per channel, in grey levels) of the default sensor noise.
    pub const DEFAULT_NOISE: u8 = 4;

    /// A scene with every kind of object. Panics below 48x48 pixels, where the shapes no longer
    /// fit their strips.
    pub fn new(width: u32, height: u32, seed: u64) -> Self {
        assert!(
            width >= 48 && height >= 48,
            "a synthetic scene needs at least 48x48 pixels, got {width}x{height}"
        );
        let strip = f64::from(width) / 3.0;
        let extent = (strip.min(f64::from(height)) * 0.45).floor() as i32;
        // Keep a margin so that the whole shape stays inside the frame: the triangle's point is
        // the farthest pixel from a centre, two thirds of its height (0.58 extent) away.
        let margin = f64::from(extent) * 0.6 + 3.0;
        let mut rng = SplitMix::new(seed ^ 0x05EE_D0F5_CE7E);
        let paths = std::array::from_fn(|i| Path {
            centre: (strip * (i as f64 + 0.5), f64::from(height) / 2.0),
            amplitude: (
                (strip / 2.0 - margin).max(0.0),
                (f64::from(height) / 2.0 - margin).max(0.0),
            ),
            speed: (0.021 + 0.03 * rng.unit(), 0.017 + 0.03 * rng.unit()),
            phase: (
                std::f64::consts::TAU * rng.unit(),
                std::f64::consts::TAU * rng.unit(),
            ),
        });
        let scene = Self {
            width,
            height,
            kinds: ObjectKind::ALL.to_vec(),
            paths,
            extent,
            background: background(width, height, &mut rng).into(),
            noise: Arc::from([]),
            absences: None,
        };
        scene.with_sensor_noise(Self::DEFAULT_NOISE, seed)
    }

    /// The same scene showing only `kinds` (in the same places); an empty list gives the
    /// background alone.
    pub fn with_kinds(mut self, kinds: &[ObjectKind]) -> Self {
        let mut kinds = kinds.to_vec();
        kinds.sort();
        kinds.dedup();
        self.kinds = kinds;
        self
    }

    /// The same scene with each object absent for `hidden` frames out of every `period`, the
    /// kinds' absences staggered by a third of the period, so detectors meet frames without an
    /// object in a continuous stream. `hidden` 0 (or `period` 0) keeps every object in view.
    pub fn with_absences(mut self, period: u64, hidden: u64) -> Self {
        self.absences = (period > 0 && hidden > 0).then_some((period, hidden.min(period)));
        self
    }

    /// Whether `kind` is in view at frame `t` (if this scene draws it at all).
    pub fn shows(&self, kind: ObjectKind, t: u64) -> bool {
        let Some((period, hidden)) = self.absences else {
            return true;
        };
        let stagger = kind.index() as u64 * period / 3;
        (t + period - stagger % period) % period >= hidden
    }

    /// The most sensor noise a scene takes, in grey levels: the noise is stored as `i8`.
    pub const MAX_NOISE: u8 = 127;

    /// The same scene with sensor noise of at most `amplitude` grey levels per channel (0: none),
    /// `amplitude` being capped at [`Self::MAX_NOISE`].
    pub fn with_sensor_noise(mut self, amplitude: u8, seed: u64) -> Self {
        let amplitude = amplitude.min(Self::MAX_NOISE);
        if amplitude == 0 {
            self.noise = Arc::from([]);
            return self;
        }
        let len = self.width as usize * self.height as usize * 3 + NOISE_SHIFTS;
        let mut rng = SplitMix::new(seed ^ 0x0015_E000);
        let span = 2 * u64::from(amplitude) + 1;
        let mut noise = Vec::with_capacity(len);
        while noise.len() < len {
            let bits = rng.next();
            for byte in bits.to_le_bytes() {
                // Multiply-shift maps a byte onto 0..span without the bias of `%` on small spans.
                // In i16: the draw goes up to 2 * amplitude, past i8 above 63; the difference is
                // within +-amplitude, which i8 holds once amplitude is capped.
                let draw = ((u64::from(byte) * span) >> 8) as i16;
                noise.push((draw - i16::from(amplitude)) as i8);
            }
        }
        noise.truncate(len);
        self.noise = noise.into();
        self
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// The kinds this scene draws, in [`ObjectKind`] order.
    pub fn kinds(&self) -> &[ObjectKind] {
        &self.kinds
    }

    /// The integer centre of `kind` at frame `t` (also for kinds this scene does not draw).
    pub fn centre(&self, kind: ObjectKind, t: u64) -> (i32, i32) {
        self.paths[kind.index()].centre_at(t)
    }

    /// Frame `t`.
    pub fn render(&self, t: u64) -> RgbImage {
        let mut data = self.background.to_vec();
        let width = self.width as usize;
        for &kind in self.kinds.iter().filter(|&&k| self.shows(k, t)) {
            let [base, pattern] = kind.colours();
            self.visit(kind, t, |x, y, on_pattern| {
                let i = (y * width + x) * 3;
                let rgb = if on_pattern { pattern } else { base };
                data[i..i + 3].copy_from_slice(&rgb);
            });
        }
        if !self.noise.is_empty() {
            let shift = (t.wrapping_mul(7919) % NOISE_SHIFTS as u64) as usize;
            for (byte, &n) in data.iter_mut().zip(&self.noise[shift..]) {
                *byte = byte.saturating_add_signed(n);
            }
        }
        RgbImage::from_raw(self.width, self.height, data)
            .expect("the buffer is sized from the scene")
    }

    /// The exact pixels of every object [`Self::render`] draws at frame `t`, in [`Self::kinds`]
    /// order; objects out of view at `t` are left out.
    pub fn ground_truth(&self, t: u64) -> Vec<(ObjectKind, BitMask)> {
        self.kinds
            .iter()
            .filter(|&&kind| self.shows(kind, t))
            .map(|&kind| {
                let mut mask = BitMask::new(self.width, self.height);
                self.visit(kind, t, |x, y, _| mask.set(x as u32, y as u32, true));
                (kind, mask)
            })
            .collect()
    }

    /// Calls `f(x, y, on_pattern)` for every pixel of `kind` at frame `t` inside the frame. The
    /// texture is laid out relative to the object's centre, so it moves with the object.
    fn visit(&self, kind: ObjectKind, t: u64, mut f: impl FnMut(usize, usize, bool)) {
        let (cx, cy) = self.centre(kind, t);
        let e = self.extent;
        // Covers the triangle's point, the farthest any shape reaches from its centre.
        let half = e * 3 / 5 + 1;
        let (w, h) = (self.width as i32, self.height as i32);
        let ys = (cy - half).max(0)..(cy + half + 1).min(h);
        let xs = (cx - half).max(0)..(cx + half + 1).min(w);
        match kind {
            ObjectKind::StripedDisc => {
                let r2 = (e / 2) * (e / 2);
                for y in ys {
                    let dy = y - cy;
                    for x in xs.clone() {
                        let dx = x - cx;
                        if dx * dx + dy * dy <= r2 {
                            let stripe = (dx + dy).div_euclid(7).rem_euclid(2) == 1;
                            f(x as usize, y as usize, stripe);
                        }
                    }
                }
            }
            ObjectKind::CheckeredSquare => {
                let half_side = e * 2 / 5;
                for y in ys {
                    let dy = y - cy;
                    for x in xs.clone() {
                        let dx = x - cx;
                        if (-half_side..half_side).contains(&dx)
                            && (-half_side..half_side).contains(&dy)
                        {
                            let check = ((dx + half_side) / 12 + (dy + half_side) / 12) % 2 == 1;
                            f(x as usize, y as usize, check);
                        }
                    }
                }
            }
            ObjectKind::DottedTriangle => {
                // Equilateral, point up, centroid at the centre; the inside test is exact integer
                // arithmetic so that render and ground truth agree pixel for pixel.
                let side = i64::from(e);
                let height = side * 866 / 1000;
                let top = -(height * 2 / 3);
                let base = top + height;
                for y in ys {
                    let dy = i64::from(y - cy);
                    if dy < top || dy > base {
                        continue;
                    }
                    for x in xs.clone() {
                        let dx = i64::from(x - cx);
                        if 2 * dx.abs() * height <= (dy - top) * side {
                            let (px, py) = (dx.rem_euclid(12) - 6, dy.rem_euclid(12) - 6);
                            f(x as usize, y as usize, px * px + py * py <= 10);
                        }
                    }
                }
            }
        }
    }
}

/// A warm grey background: smooth gradients plus two octaves of value noise in brightness and a
/// slow tint, so it is textured like a real wall or table rather than flat.
fn background(width: u32, height: u32, rng: &mut SplitMix) -> Vec<u8> {
    let coarse = ValueNoise::new(width, height, 64, rng);
    let fine = ValueNoise::new(width, height, 16, rng);
    let tint = ValueNoise::new(width, height, 96, rng);
    let (w, h) = (f64::from(width), f64::from(height));
    let mut data = Vec::with_capacity(width as usize * height as usize * 3);
    for y in 0..height {
        for x in 0..width {
            let (fx, fy) = (f64::from(x), f64::from(y));
            let brightness = 95.0
                + 55.0 * fx / w
                + 30.0 * fy / h
                + 24.0 * coarse.at(fx, fy)
                + 10.0 * fine.at(fx, fy);
            let warm = 10.0 + 8.0 * tint.at(fx, fy);
            let channel = |v: f64| v.round().clamp(0.0, 255.0) as u8;
            data.push(channel(brightness + warm));
            data.push(channel(brightness + 2.0));
            data.push(channel(brightness - warm));
        }
    }
    data
}

/// Random values in -1..1 on a square lattice, interpolated with smoothstep weights.
struct ValueNoise {
    spacing: f64,
    columns: usize,
    values: Vec<f64>,
}

impl ValueNoise {
    fn new(width: u32, height: u32, spacing: u32, rng: &mut SplitMix) -> Self {
        let columns = (width / spacing + 2) as usize;
        let rows = (height / spacing + 2) as usize;
        let values = (0..columns * rows)
            .map(|_| rng.unit() * 2.0 - 1.0)
            .collect();
        Self {
            spacing: f64::from(spacing),
            columns,
            values,
        }
    }

    fn at(&self, x: f64, y: f64) -> f64 {
        let (gx, gy) = (x / self.spacing, y / self.spacing);
        let (ix, iy) = (gx.floor() as usize, gy.floor() as usize);
        let smooth = |t: f64| t * t * (3.0 - 2.0 * t);
        let (tx, ty) = (smooth(gx.fract()), smooth(gy.fract()));
        let v = |cx: usize, cy: usize| self.values[cy * self.columns + cx];
        let top = v(ix, iy) * (1.0 - tx) + v(ix + 1, iy) * tx;
        let bottom = v(ix, iy + 1) * (1.0 - tx) + v(ix + 1, iy + 1) * tx;
        top * (1.0 - ty) + bottom * ty
    }
}

/// SplitMix64: tiny, seedable and good enough for textures; no dependency needed.
struct SplitMix(u64);

impl SplitMix {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..1.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A continuous source that plays a [`SyntheticScene`] at a fixed frame rate: frame `t` is
/// `scene.render(t)` for t = 0, 1, 2, ...
pub struct SyntheticSource {
    scene: SyntheticScene,
    t: u64,
    period: Duration,
    /// Created on the first read, inside the runtime, so a source can be built anywhere. `Delay`
    /// means a consumer that falls behind gets frames at the nominal rate again, not a burst.
    interval: Option<tokio::time::Interval>,
}

impl Default for SyntheticSource {
    fn default() -> Self {
        Self::new(SyntheticScene::default(), 30.0)
    }
}

impl SyntheticSource {
    /// Panics unless `fps` is a positive, finite number.
    pub fn new(scene: SyntheticScene, fps: f64) -> Self {
        assert!(
            fps.is_finite() && fps > 0.0,
            "a frame rate must be positive, got {fps}"
        );
        Self {
            scene,
            t: 0,
            period: Duration::from_secs_f64(1.0 / fps),
            interval: None,
        }
    }

    pub fn scene(&self) -> &SyntheticScene {
        &self.scene
    }
}

#[async_trait]
impl FrameSource for SyntheticSource {
    async fn next_frame(&mut self) -> Result<Option<RgbImage>, SourceError> {
        let period = self.period;
        let interval = self.interval.get_or_insert_with(|| {
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        interval.tick().await;
        let frame = self.scene.render(self.t);
        self.t += 1;
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: [u8; 3], b: [u8; 3], tolerance: u8) -> bool {
        a.iter().zip(&b).all(|(x, y)| x.abs_diff(*y) <= tolerance)
    }

    #[test]
    fn every_ground_truth_pixel_has_one_of_its_objects_colours() {
        let scene = SyntheticScene::default();
        for t in [0, 17, 250] {
            let frame = scene.render(t);
            for (kind, mask) in scene.ground_truth(t) {
                assert!(mask.area() > 3000, "{} is too small", kind.name());
                let [base, pattern] = kind.colours();
                let (mut on_base, mut on_pattern) = (0, 0);
                for y in 0..scene.height() {
                    for x in 0..scene.width() {
                        if !mask.get(x, y) {
                            continue;
                        }
                        let rgb = frame.pixel(x, y);
                        let tol = SyntheticScene::DEFAULT_NOISE;
                        match (close(rgb, base, tol), close(rgb, pattern, tol)) {
                            (true, _) => on_base += 1,
                            (_, true) => on_pattern += 1,
                            _ => panic!("{} at ({x}, {y}) has {rgb:?}", kind.name()),
                        }
                    }
                }
                // Both colours show: the object is textured, not flat.
                assert!(
                    on_base > 200 && on_pattern > 200,
                    "{kind:?}: {on_base}/{on_pattern}"
                );
            }
        }
    }

    #[test]
    fn pixels_outside_the_ground_truth_are_background() {
        let scene = SyntheticScene::default();
        let empty = scene.clone().with_kinds(&[]);
        let t = 42;
        let (frame, background) = (scene.render(t), empty.render(t));
        let mut union = BitMask::new(scene.width(), scene.height());
        for (_, mask) in scene.ground_truth(t) {
            assert_eq!(union.intersection_area(&mask), 0, "objects overlap");
            union.union_with(&mask);
        }
        let mut differing = 0u64;
        for y in 0..scene.height() {
            for x in 0..scene.width() {
                let same = frame.pixel(x, y) == background.pixel(x, y);
                assert!(
                    same || union.get(x, y),
                    "({x}, {y}) changed outside objects"
                );
                differing += u64::from(!same);
            }
        }
        // Nearly every object pixel differs from the background behind it.
        assert!(differing as f64 > 0.95 * union.area() as f64);
    }

    #[test]
    fn the_background_is_textured_not_flat() {
        let frame = SyntheticScene::default()
            .with_kinds(&[])
            .with_sensor_noise(0, 0)
            .render(0);
        let grey: Vec<i32> = frame
            .as_raw()
            .chunks_exact(3)
            .map(|p| i32::from(p[1]))
            .collect();
        let (min, max) = (grey.iter().min().unwrap(), grey.iter().max().unwrap());
        assert!(max - min > 50, "brightness spans only {min}..{max}");
        // Neighbouring pixels differ a little somewhere in every row of 16-pixel tiles.
        let changes = grey.windows(2).filter(|w| w[0] != w[1]).count();
        assert!(changes > grey.len() / 4);
    }

    #[test]
    fn objects_move_between_frames_and_stay_inside() {
        let scene = SyntheticScene::default();
        for kind in ObjectKind::ALL {
            let positions: Vec<(i32, i32)> = (0..300)
                .step_by(10)
                .map(|t| scene.centre(kind, t))
                .collect();
            let moved = positions.windows(2).filter(|w| w[0] != w[1]).count();
            assert!(moved >= positions.len() - 2, "{kind:?} barely moves");
            let (xs, ys): (Vec<i32>, Vec<i32>) = positions.iter().copied().unzip();
            assert!(xs.iter().max().unwrap() - xs.iter().min().unwrap() > 40);
            assert!(ys.iter().max().unwrap() - ys.iter().min().unwrap() > 100);
        }
        // A whole shape stays in the frame: its area never shrinks at the border.
        let areas: Vec<Vec<u64>> = (0..400)
            .step_by(7)
            .map(|t| {
                scene
                    .ground_truth(t)
                    .iter()
                    .map(|(_, m)| m.area())
                    .collect()
            })
            .collect();
        for frame_areas in &areas {
            assert_eq!(frame_areas, &areas[0]);
        }
    }

    #[test]
    fn a_scene_is_a_pure_function_of_its_seed_and_frame() {
        let (a, b) = (
            SyntheticScene::new(320, 240, 7),
            SyntheticScene::new(320, 240, 7),
        );
        assert_eq!(a.render(5), b.render(5));
        assert_eq!(a.ground_truth(5)[0].1, b.ground_truth(5)[0].1);
        assert_ne!(a.render(5), a.render(6));
        assert_ne!(a.render(5), SyntheticScene::new(320, 240, 8).render(5));
    }

    #[test]
    fn a_subset_of_kinds_draws_only_those() {
        let scene = SyntheticScene::default().with_kinds(&[ObjectKind::DottedTriangle]);
        let truth = scene.ground_truth(3);
        assert_eq!(truth.len(), 1);
        assert_eq!(truth[0].0, ObjectKind::DottedTriangle);
        let full = SyntheticScene::default().ground_truth(3);
        assert_eq!(truth[0].1, full[2].1);
        assert!(
            SyntheticScene::default()
                .with_kinds(&[])
                .ground_truth(3)
                .is_empty()
        );
    }

    #[test]
    fn objects_leave_and_come_back_when_absences_are_on() {
        let scene = SyntheticScene::new(192, 96, 3).with_absences(30, 10);
        let without = scene.clone().with_kinds(&[]);
        for kind in ObjectKind::ALL {
            let shown: Vec<bool> = (0..60).map(|t| scene.shows(kind, t)).collect();
            assert_eq!(shown.iter().filter(|&&s| !s).count(), 20, "{kind:?}");
        }
        // At every frame some object is in view, and what is drawn matches the ground truth.
        for t in 0..60 {
            let truth = scene.ground_truth(t);
            assert!(!truth.is_empty(), "frame {t} is empty");
            let (frame, background) = (scene.render(t), without.render(t));
            for kind in ObjectKind::ALL {
                let (cx, cy) = scene.centre(kind, t);
                let centre_drawn =
                    frame.pixel(cx as u32, cy as u32) != background.pixel(cx as u32, cy as u32);
                let in_truth = truth.iter().any(|(k, _)| *k == kind);
                assert_eq!(centre_drawn, in_truth, "{kind:?} at frame {t}");
                assert_eq!(in_truth, scene.shows(kind, t));
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_source_plays_the_scene_at_its_frame_rate() {
        let scene = SyntheticScene::new(96, 64, 1);
        let mut source = SyntheticSource::new(scene.clone(), 10.0);
        let start = tokio::time::Instant::now();
        for t in 0..4 {
            let frame = source.next_frame().await.unwrap().unwrap();
            assert_eq!(frame, scene.render(t));
        }
        // The first frame comes at once, the next three a period apart each.
        assert_eq!(start.elapsed(), Duration::from_millis(300));
    }

    #[test]
    fn strong_sensor_noise_stays_within_its_amplitude_on_both_sides() {
        let quiet = SyntheticScene::new(64, 64, 3).with_sensor_noise(0, 3);
        for (amplitude, bound) in [(100u8, 100u8), (255, SyntheticScene::MAX_NOISE)] {
            let noisy = quiet.clone().with_sensor_noise(amplitude, 3);
            let (clean, frame) = (quiet.render(5), noisy.render(5));
            let (mut lowest, mut highest) = (0i16, 0i16);
            for (&c, &n) in clean.as_raw().iter().zip(frame.as_raw()) {
                let d = i16::from(n) - i16::from(c);
                assert!(
                    d.unsigned_abs() <= u16::from(bound),
                    "{amplitude}: {c} became {n}"
                );
                (lowest, highest) = (lowest.min(d), highest.max(d));
            }
            // Saturation at 0 and 255 only shortens a step; the spread still reaches near the
            // bound on both sides.
            let near_bound = i16::from(bound) * 9 / 10;
            assert!(
                lowest <= -near_bound && highest >= near_bound,
                "{amplitude}: {lowest}..{highest}"
            );
        }
    }
}
