//! The RabbitMQ consumer (being written).
