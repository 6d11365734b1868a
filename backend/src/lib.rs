//! dcwatch's backend: gRPC ingest from sensors and the embedded activity store.
