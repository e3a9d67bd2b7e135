"""The export job: plan -> preparation (input checked, model built, PyTorch outputs) -> each format and recipe
-> parity -> manifest, published atomically; the mixed-precision search for +auto recipes."""
