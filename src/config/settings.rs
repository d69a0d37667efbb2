//! The adapter's own settings, layered: defaults < settings file < `PROM_ADAPTER_*` environment < flags.
