//! Helpers shared by the integration tests that check decoded pictures: colour comparison within
//! a tolerance, and the SMPTE colour bars both the video fixture and the RTSP test server show.

use visprompt_runtime::RgbImage;

/// Whether every channel of `got` is within `tolerance` of `want` (lossy codecs shift colours).
pub fn near(got: [u8; 3], want: [u8; 3], tolerance: i16) -> bool {
    got.iter()
        .zip(want)
        .all(|(&g, w)| (i16::from(g) - i16::from(w)).abs() <= tolerance)
}

/// Checks that `frame` is a 320x240 picture of the 75 % SMPTE bars (grey, yellow, cyan, green,
/// magenta, red, blue) by the middle of each bar, each channel within `tolerance`.
pub fn assert_smpte_bars(frame: &RgbImage, tolerance: i16) {
    assert_eq!((frame.width(), frame.height()), (320, 240));
    let bars = [
        [191, 191, 191],
        [191, 191, 0],
        [0, 191, 191],
        [0, 191, 0],
        [191, 0, 191],
        [191, 0, 0],
        [0, 0, 191],
    ];
    for (k, bar) in bars.into_iter().enumerate() {
        let x = (2 * k as u32 + 1) * 320 / 14;
        assert!(
            near(frame.pixel(x, 120), bar, tolerance),
            "bar {k}: {:?}",
            frame.pixel(x, 120)
        );
    }
}
