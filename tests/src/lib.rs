//! rix-tests: the end-to-end harness. It will start real nodes, a real gateway, RabbitMQ and
//! PostgreSQL (from `ops/start-services.sh`) and drive them over their public interfaces only.
//! The federation tests arrive with issue 6; the schema's own tests live in `schema/tests`.
