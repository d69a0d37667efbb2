//! prometheus-adapter's and klog's arguments: screened before parsing, ignored with a warning or refused with the reason, never silently dropped.

/// prometheus-adapter flags that we accept but that change nothing here, and why.
const IGNORED_FLAGS: &[(&str, bool, &str)] = &[
    ("disable-http2", false, HTTP_1_1),
    ("profiling", false, NO_PROFILING),
    ("contention-profiling", false, NO_PROFILING),
    (
        "enable-priority-and-fairness",
        false,
        "prom-adapter has no request queueing",
    ),
    ("vmodule", true, "use RUST_LOG for per-module levels"),
    ("log-flush-frequency", true, "logs are written unbuffered"),
    ("http2-max-streams-per-connection", true, HTTP_1_1),
    ("permit-port-sharing", false, NOT_SUPPORTED),
    ("permit-address-sharing", false, NOT_SUPPORTED),
    // klog's flags, which older prometheus-adapter manifests pass: logs always go to stderr.
    ("logtostderr", false, KLOG),
    ("alsologtostderr", false, KLOG),
    ("stderrthreshold", true, KLOG),
    ("log-dir", true, KLOG),
    ("log-file", true, KLOG),
    ("log-file-max-size", true, KLOG),
    ("log-backtrace-at", true, KLOG),
    ("skip-headers", false, KLOG),
    ("skip-log-headers", false, KLOG),
    ("add-dir-header", false, KLOG),
    ("one-output", false, KLOG),
];

const HTTP_1_1: &str = "prom-adapter serves HTTP/1.1 only";
const NO_PROFILING: &str = "there are no profiling endpoints";
const NOT_SUPPORTED: &str = "not supported; the flag is ignored";

/// Why klog's flags are ignored.
const KLOG: &str = "a klog flag; prom-adapter always logs to stderr (-v sets the level, --log-format text or json)";

/// The subcommands, which a first argument may name.
const SUBCOMMANDS: &[&str] = &["serve", "check", "explain", "simulate", "help"];

/// prometheus-adapter flags that would change behaviour and are not implemented yet.
const UNSUPPORTED_FLAGS: &[&str] = &["tls-sni-cert-key", "debug-socket-path"];

/// Removes prometheus-adapter flags that we ignore (returning a warning for each) and refuses
/// those that are not implemented yet, so that no flag is ever silently dropped.
pub fn screen_legacy_flags(args: Vec<String>) -> Result<(Vec<String>, Vec<String>), String> {
    let mut kept = Vec::with_capacity(args.len());
    let mut warnings = Vec::new();
    let mut iter = args.into_iter().peekable();
    // The program name.
    kept.extend(iter.next());
    // prometheus-adapter's image and chart pass the binary's path (`/adapter`) as the first
    // argument, which pflag ignores.
    if let Some(first) = iter.peek()
        && !first.starts_with('-')
        && !SUBCOMMANDS.contains(&first.as_str())
        && (first.contains('/') || first.ends_with("adapter"))
    {
        warnings.push(format!(
            "ignoring the argument {first:?}: prometheus-adapter's manifests name its binary first; prom-adapter needs no such argument"
        ));
        iter.next();
    }
    while let Some(arg) = iter.next() {
        let Some(flag) = arg.strip_prefix("--") else {
            kept.push(arg);
            continue;
        };
        let (name, inline_value) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (flag, None),
        };
        if UNSUPPORTED_FLAGS.contains(&name) || name.starts_with("audit-") {
            return Err(format!(
                "flag --{name} (from prometheus-adapter) is not supported by this version of prom-adapter; remove it to start"
            ));
        }
        if let Some((_, takes_value, why)) = IGNORED_FLAGS.iter().find(|(n, ..)| *n == name) {
            if *takes_value && inline_value.is_none() {
                iter.next();
            }
            warnings.push(format!("ignoring flag --{name}: {why}"));
            continue;
        }
        kept.push(arg);
    }
    Ok((kept, warnings))
}
