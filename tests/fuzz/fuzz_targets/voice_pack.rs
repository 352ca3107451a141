//! The voice pack manifest (`pack.toml`, read by `hallq_voice::Pack::load`): any text
//! is a pack or an error naming the manifest line (or the clip and file at fault),
//! never a panic. The pack folder holds one good clip, so manifests that name it load.
#![no_main]

use std::sync::OnceLock;

use hallq_voice::audio::{Audio, DEFAULT_RATE};
use hallq_voice::{Pack, PackError};
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().expect("temp dir");
        let clip = Audio {
            rate: DEFAULT_RATE,
            samples: vec![0, 1000, -1000, 0],
        };
        std::fs::write(d.path().join("qing.wav"), clip.to_wav()).expect("clip");
        d
    })
    .path()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Clips live in the pack folder; a path elsewhere could name /dev/stdin and hang
    // the run (the manifest is the technician's own file, not a security boundary).
    if text.contains('/') {
        return;
    }
    let dir = dir();
    std::fs::write(dir.join(hallq_voice::pack::MANIFEST), text).expect("manifest");
    match Pack::load(dir) {
        Ok(p) => {
            assert!((8_000..=48_000).contains(&p.rate));
            for t in p.tokens() {
                assert!(!p.clip(t).expect("listed").samples.is_empty());
            }
        }
        Err(PackError::Manifest { line, .. }) => {
            assert!(
                line <= text.lines().count() + 1,
                "line {line} is past the end"
            );
        }
        Err(PackError::Clips { problems, .. }) => assert!(!problems.is_empty()),
        Err(e @ PackError::Read { .. }) => panic!("{e}"),
    }
});
