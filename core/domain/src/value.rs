//! Constrained values. Each has a private field and a `parse` constructor, so a value that exists
//! is valid: services never re-check a `ProjectName` or a `Color`.

use std::fmt;

use crate::error::DomainError;

/// Trims `raw` and checks its length in characters and that it holds no control characters.
fn bounded_text(field: &str, raw: &str, min: usize, max: usize) -> Result<String, DomainError> {
    let trimmed = raw.trim();
    let len = trimmed.chars().count();
    if len < min || len > max {
        return Err(DomainError::invalid(
            field,
            format!("must be {min} to {max} characters long (after trimming spaces), got {len}"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

macro_rules! text_value {
    ($(#[$doc:meta])* $name:ident, $field:literal, $min:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const MIN_CHARS: usize = $min;
            pub const MAX_CHARS: usize = $max;

            pub fn parse(raw: &str) -> Result<Self, DomainError> {
                bounded_text($field, raw, $min, $max).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

text_value!(
    /// A project's name: 1–100 characters, unique among projects.
    ProjectName, "name", 1, 100
);
text_value!(
    /// A label's name: 1–100 characters, unique within its project.
    LabelName, "name", 1, 100
);
text_value!(
    /// The display name of a source, sink or model configuration: 1–100 characters.
    DisplayName, "name", 1, 100
);
text_value!(
    /// The phrase of a text prompt: 1–500 characters.
    Phrase, "text", 1, 500
);

/// A colour as `#RRGGBB` (upper-case hex once parsed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Color([u8; 3]);

impl Color {
    /// Colours handed out to labels created without one; chosen to stay distinct on video.
    pub const PALETTE: [Color; 12] = [
        Color([0xE6, 0x19, 0x4B]),
        Color([0x3C, 0xB4, 0x4B]),
        Color([0xFF, 0xE1, 0x19]),
        Color([0x43, 0x63, 0xD8]),
        Color([0xF5, 0x82, 0x31]),
        Color([0x91, 0x1E, 0xB4]),
        Color([0x42, 0xD4, 0xF4]),
        Color([0xF0, 0x32, 0xE6]),
        Color([0xBF, 0xEF, 0x45]),
        Color([0xFA, 0xBE, 0xD4]),
        Color([0x46, 0x99, 0x90]),
        Color([0x9A, 0x63, 0x24]),
    ];

    pub const fn rgb(r: u8, g: u8, b: u8) -> Self {
        Self([r, g, b])
    }

    /// Accepts `#RRGGBB` in either case.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let invalid = || DomainError::invalid("color", format!("must be #RRGGBB, got {raw:?}"));
        let hex = raw.strip_prefix('#').ok_or_else(invalid)?;
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| invalid());
        Ok(Self([byte(0)?, byte(2)?, byte(4)?]))
    }

    /// The first palette colour not in `taken`, or (all taken) the one for the next index.
    pub fn next_from_palette(taken: &[Color]) -> Color {
        Self::PALETTE
            .iter()
            .copied()
            .find(|c| !taken.contains(c))
            .unwrap_or(Self::PALETTE[taken.len() % Self::PALETTE.len()])
    }

    pub const fn channels(&self) -> [u8; 3] {
        self.0
    }
}

impl fmt::Display for Color {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [r, g, b] = self.0;
        write!(f, "#{r:02X}{g:02X}{b:02X}")
    }
}

/// Where inference runs: `auto`, `cpu`, or an accelerator with an index (`cuda-0`, `xpu-1`).
/// Only the syntax is checked here; whether the machine has the device is the runtime's concern.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Device {
    #[default]
    Auto,
    Cpu,
    Cuda(u16),
    Xpu(u16),
}

impl Device {
    /// Accepts `auto`, `cpu`, `cuda`, `cuda-N`, `cuda:N`, `xpu`, `xpu-N`, `xpu:N`.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let invalid = || {
            DomainError::invalid(
                "device",
                format!("must be auto, cpu, cuda[-N] or xpu[-N], got {raw:?}"),
            )
        };
        let (kind, index) = match raw.split_once(['-', ':']) {
            Some((kind, index)) => {
                if index.is_empty()
                    || !index.bytes().all(|b| b.is_ascii_digit())
                    || (index.len() > 1 && index.starts_with('0'))
                {
                    return Err(invalid());
                }
                (kind, Some(index.parse::<u16>().map_err(|_| invalid())?))
            }
            None => (raw, None),
        };
        match (kind, index) {
            ("auto", None) => Ok(Device::Auto),
            ("cpu", None) => Ok(Device::Cpu),
            ("cuda", i) => Ok(Device::Cuda(i.unwrap_or(0))),
            ("xpu", i) => Ok(Device::Xpu(i.unwrap_or(0))),
            _ => Err(invalid()),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Auto => f.write_str("auto"),
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(i) => write!(f, "cuda-{i}"),
            Device::Xpu(i) => write!(f, "xpu-{i}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_trimmed() {
        assert_eq!(ProjectName::parse("  cats ").unwrap().as_str(), "cats");
    }

    #[test]
    fn an_empty_or_blank_name_is_refused() {
        assert!(ProjectName::parse("").is_err());
        assert!(ProjectName::parse("   ").is_err());
    }

    #[test]
    fn a_name_of_101_characters_is_refused_but_100_multibyte_ones_are_accepted() {
        assert!(ProjectName::parse(&"a".repeat(101)).is_err());
        assert!(ProjectName::parse(&"é".repeat(100)).is_ok());
    }

    #[test]
    fn control_characters_are_refused_in_names() {
        assert!(LabelName::parse("a\u{0}b").is_err());
        assert!(LabelName::parse("a\nb").is_err());
    }

    #[test]
    fn colours_parse_in_either_case_and_print_upper_case() {
        assert_eq!(Color::parse("#a0b1c2").unwrap().to_string(), "#A0B1C2");
        assert_eq!(
            Color::parse("#A0B1C2").unwrap(),
            Color::rgb(0xA0, 0xB1, 0xC2)
        );
    }

    #[test]
    fn malformed_colours_are_refused() {
        for raw in [
            "", "#", "A0B1C2", "#A0B1C", "#A0B1C2F", "#G0B1C2", "red", "#+1+1+1",
        ] {
            assert!(Color::parse(raw).is_err(), "{raw:?} was accepted");
        }
    }

    #[test]
    fn the_palette_hands_out_a_colour_not_yet_taken() {
        let taken = [Color::PALETTE[0], Color::PALETTE[1]];
        assert_eq!(Color::next_from_palette(&taken), Color::PALETTE[2]);
        assert_eq!(Color::next_from_palette(&Color::PALETTE), Color::PALETTE[0]);
    }

    #[test]
    fn devices_parse_and_print_in_canonical_form() {
        let cases = [
            ("auto", "auto"),
            ("cpu", "cpu"),
            ("cuda", "cuda-0"),
            ("cuda-1", "cuda-1"),
            ("cuda:2", "cuda-2"),
            ("xpu-0", "xpu-0"),
        ];
        for (raw, canonical) in cases {
            assert_eq!(Device::parse(raw).unwrap().to_string(), canonical);
        }
    }

    #[test]
    fn malformed_devices_are_refused() {
        for raw in [
            "",
            "gpu",
            "cpu-1",
            "cuda-",
            "cuda-01",
            "cuda-x",
            "cuda-99999",
            "AUTO",
        ] {
            assert!(Device::parse(raw).is_err(), "{raw:?} was accepted");
        }
    }
}
