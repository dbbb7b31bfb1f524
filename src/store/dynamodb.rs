//! The DynamoDB ledger, for Lambda and fleets (being written).
