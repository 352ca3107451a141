//! The kiosk as the board gets it: the binary of the default build carries the linuxkms
//! backend (it links libinput), the Debian package depends on every library the binary
//! links, and the systemd unit starts it on linuxkms. A library added by a Slint upgrade
//! or a feature change fails here instead of on a board that cannot start the kiosk.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Debian packages owning the shared libraries the kiosk binary itself needs (its
/// `NEEDED` entries; what those need in turn their own packages depend on).
fn linked_packages() -> BTreeSet<String> {
    let bin = env!("CARGO_BIN_EXE_hallq-kiosk");
    let out = Command::new("readelf")
        .args(["-d", bin])
        .output()
        .expect("readelf runs (binutils, which linking needs anyway)");
    assert!(out.status.success(), "readelf -d {bin} failed");
    let needed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| {
            let start = l.find('[')? + 1;
            let end = l.rfind(']')?;
            Some(l[start..end].to_string())
        })
        .collect();
    assert!(!needed.is_empty(), "no NEEDED entries in {bin}");
    let out = Command::new("ldd").arg(bin).output().expect("ldd runs");
    assert!(out.status.success(), "ldd {bin} failed");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("not found"), "unresolved libraries:\n{text}");
    let mut packages = BTreeSet::new();
    for soname in &needed {
        let path = text
            .lines()
            .filter_map(|l| l.trim().split_once(" => "))
            .find(|(name, _)| name == soname)
            .and_then(|(_, rest)| rest.split_whitespace().next())
            // The dynamic loader is listed by its path alone.
            .or_else(|| {
                text.lines()
                    .filter_map(|l| l.split_whitespace().next())
                    .find(|p| p.starts_with('/') && p.ends_with(&format!("/{soname}")))
            })
            .unwrap_or_else(|| panic!("ldd does not resolve {soname}:\n{text}"));
        // Merged /usr: dpkg may know the file under either name, or only its target.
        let mut candidates = vec![path.to_string()];
        if let Some(rest) = path.strip_prefix("/usr") {
            candidates.push(rest.to_string());
        } else {
            candidates.push(format!("/usr{path}"));
        }
        if let Ok(real) = std::fs::canonicalize(path) {
            candidates.push(real.display().to_string());
        }
        let owner = candidates.iter().find_map(|c| {
            let out = Command::new("dpkg").args(["-S", c]).output().ok()?;
            if !out.status.success() {
                return None;
            }
            let first = String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()?
                .to_string();
            let package = first.split(':').next()?.trim().to_string();
            Some(package)
        });
        let owner = owner.unwrap_or_else(|| panic!("no Debian package owns {path}"));
        packages.insert(owner);
    }
    packages
}

/// The kiosk's Depends as `scripts/package-deb` writes them, alternatives flattened.
fn declared_depends() -> BTreeSet<String> {
    let script = std::fs::read_to_string(repo().join("scripts/package-deb")).expect("package-deb");
    let line = script
        .lines()
        .find_map(|l| l.trim().strip_prefix("kiosk_depends=\", "))
        .expect("package-deb sets kiosk_depends for the kiosk");
    let control = std::fs::read_to_string(repo().join("firmware/packaging/debian/control.in"))
        .expect("control.in");
    let base = control
        .lines()
        .find_map(|l| l.strip_prefix("Depends: "))
        .expect("Depends line");
    assert!(base.contains("@KIOSK_DEPENDS@"), "{base}");
    format!("{}, {}", base.replace("@KIOSK_DEPENDS@", ""), line)
        .trim_end_matches('"')
        .split([',', '|'])
        .map(|d| d.split_whitespace().next().unwrap_or_default().to_string())
        .filter(|d| !d.is_empty())
        .collect()
}

#[test]
fn the_default_build_carries_the_board_backend_and_the_package_names_its_libraries() {
    let linked = linked_packages();
    for board in ["libinput10", "libudev1", "libxkbcommon0"] {
        assert!(
            linked.contains(board),
            "the kiosk links {board} for linuxkms: {linked:?}"
        );
    }
    let declared = declared_depends();
    // libgcc-s1 is of required priority, on every Debian system.
    let missing: Vec<_> = linked
        .iter()
        .filter(|p| !declared.contains(*p) && p.as_str() != "libgcc-s1")
        .collect();
    assert!(
        missing.is_empty(),
        "the package does not depend on {missing:?} (declared {declared:?})"
    );
    // Not linked but needed: the keymap data libxkbcommon compiles at the first key
    // press, and a CJK font.
    assert!(declared.contains("xkb-data"), "{declared:?}");
    assert!(declared.contains("fonts-wqy-microhei"), "{declared:?}");
}

#[test]
fn the_unit_starts_the_kiosk_on_linuxkms() {
    let unit = std::fs::read_to_string(repo().join("firmware/packaging/hallq-kiosk.service"))
        .expect("hallq-kiosk.service");
    let env: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("Environment="))
        .collect();
    assert!(env.contains(&"SLINT_BACKEND=linuxkms-software"), "{env:?}");
    assert!(
        env.iter().any(|e| e.starts_with("HALLQ_CONTROLLER=")),
        "{env:?}"
    );
    let groups = unit
        .lines()
        .find_map(|l| l.strip_prefix("SupplementaryGroups="))
        .expect("groups for the display and the touch screen");
    for g in ["video", "input", "render"] {
        assert!(groups.split_whitespace().any(|x| x == g), "{groups}");
    }
    assert!(unit.contains("ExecStart=/usr/bin/hallq-kiosk"), "{unit}");
}
