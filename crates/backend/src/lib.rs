//! Every call to a metrics backend, for the server and the tools alike: the Prometheus client (`prometheus`), its credentials, transport, tenancy, instrumentation and named backends. Implements the providers' `MetricsBackend` port.

pub mod prometheus;
