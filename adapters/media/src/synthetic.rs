//! The synthetic scene: textured shapes moving over a background, at positions known exactly, so
//! it is both the demo source of `just run` and ground truth for tests.

use std::time::Duration;

use async_trait::async_trait;
use visprompt_runtime::{FrameSource, RgbImage, SourceError};

/// Placeholder scene until the full generator lands: one red square moving right on grey.
#[derive(Clone, Debug)]
pub struct SyntheticScene {
    pub width: u32,
    pub height: u32,
}

impl Default for SyntheticScene {
    fn default() -> Self {
        Self {
            width: 640,
            height: 480,
        }
    }
}

impl SyntheticScene {
    pub fn render(&self, t: u64) -> RgbImage {
        let mut img = RgbImage::from_raw(
            self.width,
            self.height,
            vec![96; self.width as usize * self.height as usize * 3],
        )
        .expect("sizes match");
        let x0 = (t * 4) % (self.width as u64 - 60);
        for y in 100..160 {
            for x in x0..x0 + 60 {
                img.put_pixel(x as u32, y, [220, 40, 40]);
            }
        }
        img
    }
}

pub struct SyntheticSource {
    scene: SyntheticScene,
    t: u64,
    interval: tokio::time::Interval,
}

impl Default for SyntheticSource {
    fn default() -> Self {
        Self::new(SyntheticScene::default(), 30.0)
    }
}

impl SyntheticSource {
    pub fn new(scene: SyntheticScene, fps: f64) -> Self {
        let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / fps));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            scene,
            t: 0,
            interval,
        }
    }
}

#[async_trait]
impl FrameSource for SyntheticSource {
    async fn next_frame(&mut self) -> Result<Option<RgbImage>, SourceError> {
        self.interval.tick().await;
        self.t += 1;
        Ok(Some(self.scene.render(self.t)))
    }
}
