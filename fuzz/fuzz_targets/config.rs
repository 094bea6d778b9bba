//! `config`: arbitrary text as the config YAML (`--config FILE` and the
//! `netpol-guard` ConfigMap). `Settings::from_yaml` must never panic, and a
//! config it accepts must survive a round trip: serialised back to YAML (what
//! `netpol-guard config default` prints) it parses and validates again to the
//! same `Config`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use netpol_guard::config::Settings;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let settings = match Settings::from_yaml(text) {
        Ok(s) => s,
        Err(e) => {
            // Shown to the operator (log line / reload status).
            let _ = e.to_string();
            return;
        }
    };
    let yaml = serde_yaml::to_string(&settings.config).expect("an accepted config serialises");
    let again = Settings::from_yaml(&yaml).unwrap_or_else(|e| {
        panic!(
            "an accepted config does not re-parse: {e}\n--- input\n{text}\n--- serialised\n{yaml}"
        )
    });
    assert_eq!(
        again.config, settings.config,
        "the config changed in a YAML round trip\n--- serialised\n{yaml}"
    );
});
