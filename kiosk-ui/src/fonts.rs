//! Chinese must render on a fresh board: the kiosk loads a CJK font file itself (the one
//! given in its settings, else the first of the usual Debian locations) and makes it the
//! fallback for Han script, instead of trusting whatever fontconfig happens to offer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use slint::fontique_011::fontique;

/// Where Debian's CJK font packages put their files, most preferred first.
pub const CANDIDATES: [&str; 4] = [
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
];

/// Why no CJK font could be loaded.
#[derive(Debug, thiserror::Error)]
pub enum FontError {
    /// None of the files exist or can be read.
    #[error("no CJK font found (tried {0}); install fonts-wqy-microhei or pass --font")]
    Missing(String),
    /// The file is not a font.
    #[error("{0} holds no usable font")]
    NotAFont(PathBuf),
}

/// Loads `explicit` or the first candidate into Slint's font collection as the Han,
/// Hiragana/Katakana and default fallback. Answers the file used.
pub fn load_cjk(explicit: Option<&Path>) -> Result<PathBuf, FontError> {
    let paths: Vec<PathBuf> = match explicit {
        Some(p) => vec![p.to_path_buf()],
        None => CANDIDATES.iter().map(PathBuf::from).collect(),
    };
    for path in &paths {
        let Ok(bytes) = std::fs::read(path) else {
            continue;
        };
        let mut collection = slint::fontique_011::shared_collection();
        let fonts = collection.register_fonts(fontique::Blob::new(Arc::new(bytes)), None);
        if fonts.is_empty() {
            return Err(FontError::NotAFont(path.clone()));
        }
        let families: Vec<_> = fonts.iter().map(|f| f.0).collect();
        for script in [*b"Hani", *b"Hans", *b"Hant", *b"Bopo"] {
            collection.append_fallbacks(
                fontique::FallbackKey::new(fontique::Script::from_bytes(script), None),
                families.iter().copied(),
            );
        }
        tracing::info!(font = %path.display(), "CJK font loaded");
        return Ok(path.clone());
    }
    Err(FontError::Missing(
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    ))
}
