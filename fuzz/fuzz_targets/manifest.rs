//! A dataset manifest (JSON), whatever its text: a checked manifest or an error, never a panic; a
//! manifest that parses saves and parses back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(manifest) = coordinator::manifest::Manifest::parse(text)
    {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("manifest.json");
        manifest.save(&path).expect("saved");
        let again = coordinator::manifest::Manifest::load(&path).expect("a saved manifest loads");
        assert_eq!(again.objects, manifest.objects);
    }
});
