//! Compiles the kiosk's .slint files with the zh-CN and zh-TW catalogues bundled in, so
//! the binary needs no gettext files at run time.

fn main() {
    let config = slint_build::CompilerConfiguration::new()
        .with_bundled_translations("lang")
        .with_default_translation_context(slint_build::DefaultTranslationContext::None)
        // Element names for the tests, which find buttons by their labels as a citizen does.
        .with_debug_info(true);
    slint_build::compile_with_config("ui/app.slint", config).expect("ui/app.slint compiles");
    println!("cargo:rerun-if-changed=lang");
}
